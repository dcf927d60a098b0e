"""Numba kernels of ``blurgen.transforms`` on the CPU: batched sparse-tap convolution and
counter-based Gaussian noise. No torch here; ``blurgen.transforms._torch_ops`` wraps them.

Sparse taps (the blur model's ``conv_taps`` row kernel, one plane at a time): a camera-shake
kernel is a thin curve (the default 65x65 model has ~60-170 non-zero taps of 4225), so summing
shifted planes over the non-zero taps only is several times faster on the CPU than an FFT of the
whole image (measured, see ``blurgen.blur.convolve.DIRECT_MAX_TAPS``).

Noise: normal ``e`` of a sample with key ``(k0, k1)`` is ``normal_table()[w & 0xFFFF]`` with
``w`` a 32-bit counter hash of ``e`` (``lowbias32``, C. Wellons, applied twice with the key), so
it is a pure function of the sample's key and the element's position.
``blurgen.transforms._torch_ops.hash_normals`` computes the same integers with torch integer ops on any
device, so every device draws the same noise.

Transfer curves on the CPU are tables with linear interpolation (``decode_table``,
``encode_table``): exact curves cost a ``pow`` per value, several times the whole blur.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import prange

from blurgen.blur._convolve_jit import TAPS_PER_PASS, conv_taps  # the blur model's sparse-tap row kernel
from blurgen.blur._curves_jit import lerp as _lookup
from blurgen.blur._curves_jit import unit as _unit
from blurgen.blur.curves import decode_curve, encode_curve
from blurgen.core._jit import njit
from blurgen.core._rng import normal_table as shared_normal_table

_M32 = np.uint64(0xFFFFFFFF)
_H1 = np.uint64(0x7FEB352D)
_H2 = np.uint64(0x846CA68B)


def _conv_taps_batch(src, src_h, src_w, channels, offsets, weights, ntaps, out, out_h, out_w):
    """Valid convolution of every plane of ``src`` (float32 flat ``(S * channels, src_h,
    src_w)``) with its sample's taps into ``out`` (float32 flat ``(S * channels, out_h,
    out_w)``); plane p belongs to sample p // channels. Planes run in parallel (``CONV_TAPS``)."""
    planes = offsets.shape[0] * channels
    src_plane, out_plane = src_h * src_w, out_h * out_w
    for p in prange(planes):
        s = p // channels
        _plane(src[p * src_plane:(p + 1) * src_plane], src_w, offsets[s], weights[s], ntaps[s],
               out[p * out_plane:(p + 1) * out_plane], out_w)


@njit(cache=True, inline="always")
def _plane(src, src_w, offsets, weights, ntaps, out, out_w):
    """One flat plane: ``conv_taps`` over the sample's first ``ntaps`` taps (zeros if none)."""
    if ntaps == 0:
        out[:] = 0.0
    else:
        conv_taps(src, src_w, offsets[:ntaps], weights[:ntaps], out, out_w)


def taps(kernels: np.ndarray, src_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero taps of valid convolutions with ``kernels`` (float32 ``(S, K, K)``) over rows of
    ``src_w`` values: ``(offsets uint64 (S, T), weights float32 (S, T), ntaps int64 (S,))``, T a
    multiple of TAPS_PER_PASS, zero-weight padding after each sample's taps.

    Valid convolution reads source pixel (y + K-1-i, x + K-1-j) through kernel[i, j].
    """
    flipped = kernels[:, ::-1, ::-1]
    counts = np.count_nonzero(flipped.reshape(len(kernels), -1), axis=1)
    width = max(TAPS_PER_PASS, -(-int(counts.max(initial=0)) // TAPS_PER_PASS) * TAPS_PER_PASS)
    offsets = np.zeros((len(kernels), width), np.uint64)
    weights = np.zeros((len(kernels), width), np.float32)
    for s, k in enumerate(flipped):
        ys, xs = np.nonzero(k)
        offsets[s, :ys.size] = ys * src_w + xs
        weights[s, :ys.size] = k[ys, xs]
    ntaps = -(-counts // TAPS_PER_PASS) * TAPS_PER_PASS
    return offsets, weights, ntaps.astype(np.int64)


@njit(cache=True, inline="always")
def _hash32(x):
    """lowbias32 (C. Wellons): a 32-bit bijection with low bias, on uint64 holding 32 bits."""
    x = x ^ (x >> np.uint64(16))
    x = (x * _H1) & _M32
    x = x ^ (x >> np.uint64(15))
    x = (x * _H2) & _M32
    return x ^ (x >> np.uint64(16))


@njit(cache=True, inline="always")
def _word(e, k0, k1):
    """The 32-bit word of counter ``e`` under key ``(k0, k1)``."""
    return _hash32(((_hash32(e ^ k0) + k1) & _M32))


#: Values of the decode table (sRGB value -> linear) and of the encode table (linear -> sRGB
#: value), both indexed by the square root of their input, which spreads the steep dark end.
#: Interpolation error (tests/transforms/test_transforms.py): decode < 2e-7, encode < 2e-6 (the 2.2 power's
#: first cell; sRGB < 1e-7), an encode-decode round trip < 2e-6.
DECODE_STEPS = 4096
ENCODE_STEPS = 65536
#: Bits of a hash word that pick a normal from the table (a Gaussian discretised at 65536
#: quantiles, truncated at 4.3 sigma).
NORMAL_BITS = 16


@functools.lru_cache(maxsize=None)
def decode_table(gamma: str) -> np.ndarray:
    """float32 (DECODE_STEPS + 2,): linear light at value (i / DECODE_STEPS)**2 (one guard
    entry). Indexed by the square root, so the pure power's first cell (where linear light is
    tiny and the encode curve steepest) is accurate too."""
    s = np.minimum(np.arange(DECODE_STEPS + 2) / DECODE_STEPS, 1.0)
    return decode_curve(s * s, gamma).astype(np.float32)


@functools.lru_cache(maxsize=None)
def encode_table(gamma: str) -> np.ndarray:
    """float32 (ENCODE_STEPS + 2,): sRGB value of linear light (i / ENCODE_STEPS)**2."""
    s = np.minimum(np.arange(ENCODE_STEPS + 2) / ENCODE_STEPS, 1.0)
    return encode_curve(s * s, gamma).astype(np.float32)


def normal_table() -> np.ndarray:
    """float32 (2**NORMAL_BITS,): the noise's table of normals (``blurgen.core._rng.normal_table``)."""
    return shared_normal_table(NORMAL_BITS)


_NORMAL_MASK = np.uint64((1 << NORMAL_BITS) - 1)


def normals(keys: np.ndarray, count: int, parallel: bool = True) -> np.ndarray:
    """float32 ``(S, count)``: normal e of sample s (32-bit key pair ``keys[s]``, uint64)."""
    return NORMALS.run(parallel, np.ascontiguousarray(keys, np.uint64), normal_table(),
                       np.empty((len(keys), count), np.float32))


def _normals(keys, table, out):
    for s in prange(out.shape[0]):
        k0, k1 = keys[s, 0], keys[s, 1]
        for e in range(out.shape[1]):
            out[s, e] = table[np.int64(_word(np.uint64(e), k0, k1) & _NORMAL_MASK)]
    return out


def _pad_decode(src, p, rows, cols, decode, buf):
    """buf = decode(clip(src[p][rows][:, cols])) as a flat (len(rows), len(cols)) plane."""
    scale = np.float32(decode.shape[0] - 2)
    width = cols.shape[0]
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(width):
            v = _unit(src[p, r, cols[j]])
            buf[i * width + j] = _lookup(decode, np.float32(math.sqrt(v)) * scale) if decode.shape[0] else v


def _finish(out, p, sample, plane_start, a, b, key, table, encode):
    """out[p] <- encode(clip(x + sqrt(a x + b) z)) with x = clip(out[p]) (noise if a table is
    given; z of element plane_start + e of the sample), in place."""
    scale = np.float32(encode.shape[0] - 2)
    width = out.shape[2]
    k0, k1 = key[sample, 0], key[sample, 1]
    for y in range(out.shape[1]):
        for x in range(width):
            v = _unit(out[p, y, x])
            if table.shape[0]:
                z = table[np.int64(_word(np.uint64(plane_start + y * width + x), k0, k1) & _NORMAL_MASK)]
                v = _unit(v + np.float32(math.sqrt(max(a[sample] * v + b[sample], np.float32(0.0)))) * z)
            out[p, y, x] = _lookup(encode, np.float32(math.sqrt(v)) * scale) if encode.shape[0] else v


def _shake(src, rows, cols, decode, encode, offsets, weights, ntaps, a, b, key, table, out):
    """The whole CPU blur per plane: decode + reflect-pad, sparse-tap convolution, clip,
    noise, clip, encode. src, out: float32 (S * C, H, W); rows, cols: reflect maps of the
    padded plane; empty tables switch stages off."""
    channels = out.shape[0] // offsets.shape[0]
    plane = out.shape[1] * out.shape[2]
    hp, wp = rows.shape[0], cols.shape[0]
    for p in prange(out.shape[0]):
        s = p // channels
        buf = np.empty(hp * wp, np.float32)
        _pad_decode(src, p, rows, cols, decode, buf)
        _plane(buf, wp, offsets[s], weights[s], ntaps[s], out[p].reshape(-1), out.shape[2])
        _finish(out, p, s, (p % channels) * plane, a, b, key, table, encode)


_pad_decode = njit(cache=True, inline="always")(_pad_decode)
_finish = njit(cache=True, inline="always")(_finish)


#: ``blurgen.core._jit.ForkSafe`` loops: ``.run(parallel, ...)`` picks the parallel or the serial
#: compilation (one thread, or a process forked after numba's pool ran, runs the serial one).
SHAKE = njit(cache=True, parallel=True)(_shake)
CONV_TAPS = njit(cache=True, parallel=True)(_conv_taps_batch)
NORMALS = njit(cache=True, parallel=True)(_normals)
