"""Numba kernels of the sensor noise: counter-based Gaussian noise, fused with gain, clipping and
encoding."""

from __future__ import annotations

import math

import numpy as np

from blurgen.blur._curves_jit import CHUNK, code_index, look_up
from blurgen.core._jit import njit
from blurgen.core._rng import GOLDEN, mix64

NORMAL_BITS = 12
NORMALS_PER_HASH = 64 // NORMAL_BITS


@njit(cache=True, inline="always")
def _clean(x, gain, clip):
    """x * gain, clipped to [0, 1] if ``clip`` (NaN stays NaN, as with np.clip); branch-free."""
    x = x * gain
    # Comparisons, not min/max, so that NaN falls through both.
    clipped = np.float32(0.0) if x < np.float32(0.0) else (np.float32(1.0) if x > np.float32(1.0) else x)  # noqa: FURB136
    return clipped if clip else x


@njit(cache=True, inline="always")
def _noisy(x, a, b, z):
    return x + np.float32(math.sqrt(max(a * x + b, np.float32(0.0)))) * z


@njit(cache=True)
def noise_with_normals(flat, a, b, z):
    """``_noisy`` on every value of ``flat`` (in place) with the normals ``z``."""
    for i in range(flat.shape[0]):
        flat[i] = _noisy(flat[i], a, b, z[i])


@njit(cache=True)
def gaussian_noise(flat, gain, clip, a, b, key, table, lut, out_u8):
    """x + sqrt(a*x + b) * z with x = ``_clean(flat, gain, clip)`` and z from the counter-based
    hash stream ``key`` (five normals per 64-bit hash: normal i comes from hash i // 5); in
    place on ``flat``, or, when ``lut`` is non-empty, encoded through it into ``out_u8``
    instead (fused: one pass over the image instead of five). Chunk by chunk: first the
    chunk's normals, then vectorised arithmetic (branches hoisted out of the loops: inside
    them they stopped the vectorisation, measured)."""
    n = flat.shape[0]
    encode = lut.shape[0] > 0
    per = NORMALS_PER_HASH
    mask = np.uint64((1 << NORMAL_BITS) - 1)
    z = np.empty(CHUNK, np.float32)
    index = np.empty(CHUNK, np.int32)
    top = np.float32(lut.shape[0] - 1)
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        first_hash = start // per
        for block in range((count + per - 1) // per):
            h = mix64(key + np.uint64(first_hash + block + 1) * GOLDEN)
            for j in range(per):
                z[per * block + j] = table[np.int64((h >> np.uint64(NORMAL_BITS * j)) & mask)]
        if encode:
            for i in range(count):
                index[i] = code_index(_noisy(_clean(flat[start + i], gain, clip), a, b, z[i]), top)
            look_up(lut, index, count, out_u8, start)
        else:
            for i in range(count):
                flat[start + i] = _noisy(_clean(flat[start + i], gain, clip), a, b, z[i])
