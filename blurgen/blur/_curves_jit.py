"""Numba kernels of the transfer curves: linear light -> table index -> uint8 code value."""

from __future__ import annotations

import math

import numpy as np

from blurgen.core._jit import njit

#: Values per pass of the encode and noise loops: a multiple of five (whole noise hashes), small
#: enough that a chunk's normals and table indices stay in L1 cache.
CHUNK = 5 * 512


@njit(cache=True, inline="always")
def unit(v):
    """v clipped to [0, 1] (NaN -> 0)."""
    return min(max(v, np.float32(0.0)), np.float32(1.0)) if v == v else np.float32(0.0)


@njit(cache=True, inline="always")
def lerp(table, t):
    """Linear interpolation of the 1-D ``table`` at fractional index t in [0, len - 2]."""
    i = np.int64(t)
    f = t - np.float32(i)
    return table[i] + f * (table[i + 1] - table[i])


@njit(cache=True, inline="always")
def code_index(x, top):
    """Encode-table index of linear value x (clipped to [0, 1]; NaN -> 0 since ``not x > 0``);
    ``top`` is the table's last index as float32. Branch-free, so loops over it vectorise."""
    k = np.int32(np.float32(math.sqrt(min(max(x, np.float32(0.0)), np.float32(1.0)))) * top + np.float32(0.5))
    return k if x > 0.0 else 0


@njit(cache=True, inline="always")
def look_up(lut, index, count, out, start):
    """out[start + i] = lut[index[i]] for i < count: the table reads, kept out of the
    arithmetic loops so those vectorise (measured 2x faster than one fused loop)."""
    for i in range(count):
        out[start + i] = lut[index[i]]


@njit(cache=True)
def encode(flat_linear, lut, out):
    index = np.empty(CHUNK, np.int32)
    top = np.float32(lut.shape[0] - 1)
    for start in range(0, flat_linear.shape[0], CHUNK):
        count = min(CHUNK, flat_linear.shape[0] - start)
        for i in range(count):
            index[i] = code_index(flat_linear[start + i], top)
        look_up(lut, index, count, out, start)
