"""Small rotation helpers for the Numba kernels: rotation vectors <-> matrices (SO(3)).

A rotation vector ``r`` (rad) is the axis times the angle; ``exp(r)`` is Rodrigues' formula and
``log`` its inverse for angles below pi. Matrices are float64 ``(3, 3)``; near zero both use their
Taylor series so tiny rotations (the common case: milliradians) keep full precision.
"""

from __future__ import annotations

import math

import numpy as np

from blurgen.core._jit import njit

#: Below this squared angle (t < 0.05 rad) exp and log use their series.
SERIES_T2 = 0.0025


@njit(cache=True)
def exp_so3(rx, ry, rz, out):
    """Write ``exp([r]x)`` into ``out`` (3, 3) float64."""
    t2 = rx * rx + ry * ry + rz * rz
    if t2 < SERIES_T2:
        # sin(t)/t and (1-cos t)/t^2 by their series to t^6: the first omitted terms are
        # t^8/9! and t^8/10!, below 1e-16 relative for t < 0.05 (hand shake: milliradians),
        # and a few multiplications instead of sin, cos and a division.
        a = 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0))
        b = 0.5 * (1.0 - t2 / 12.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0)))
    else:
        t = math.sqrt(t2)
        a = math.sin(t) / t
        b = (1.0 - math.cos(t)) / t2
    out[0, 0] = 1.0 - b * (ry * ry + rz * rz)
    out[1, 1] = 1.0 - b * (rx * rx + rz * rz)
    out[2, 2] = 1.0 - b * (rx * rx + ry * ry)
    out[0, 1] = b * rx * ry - a * rz
    out[1, 0] = b * rx * ry + a * rz
    out[0, 2] = b * rx * rz + a * ry
    out[2, 0] = b * rx * rz - a * ry
    out[1, 2] = b * ry * rz - a * rx
    out[2, 1] = b * ry * rz + a * rx


@njit(cache=True)
def log_so3(m):
    """Rotation vector ``(rx, ry, rz)`` of rotation matrix ``m`` (angle < pi)."""
    c = 0.5 * (m[0, 0] + m[1, 1] + m[2, 2] - 1.0)
    c = min(1.0, max(-1.0, c))
    vx = 0.5 * (m[2, 1] - m[1, 2])
    vy = 0.5 * (m[0, 2] - m[2, 0])
    vz = 0.5 * (m[1, 0] - m[0, 1])
    s2 = vx * vx + vy * vy + vz * vz
    if s2 < SERIES_T2 and c > 0.0:
        # t / sin(t) = asin(s) / s = 1 + s^2/6 + 3 s^4/40 + 5 s^6/112 + O(s^8) with s = sin t
        # (c > 0: t < pi/2); the omitted term is below 2e-12 relative for s < 0.05.
        k = 1.0 + s2 * (1.0 / 6.0 + s2 * (3.0 / 40.0 + s2 * (5.0 / 112.0)))
    else:
        s = math.sqrt(s2)
        k = math.atan2(s, c) / max(s, 1e-300)
    return vx * k, vy * k, vz * k


@njit(cache=True)
def matmul3(a, b, out):
    """``out = a @ b`` for (3, 3) float64 (``out`` must not alias ``a`` or ``b``)."""
    for i in range(3):
        for j in range(3):
            out[i, j] = a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]


@njit(cache=True)
def matmul3_tn(a, b, out):
    """``out = a.T @ b`` for (3, 3) float64."""
    for i in range(3):
        for j in range(3):
            out[i, j] = a[0, i] * b[0, j] + a[1, i] * b[1, j] + a[2, i] * b[2, j]


@njit(cache=True)
def rotations_from_vectors(rot, mats):
    """``mats[k] = exp(rot[k])`` for rotation vectors ``rot`` (S, 3) (any float dtype)."""
    for k in range(rot.shape[0]):
        exp_so3(np.float64(rot[k, 0]), np.float64(rot[k, 1]), np.float64(rot[k, 2]), mats[k])
