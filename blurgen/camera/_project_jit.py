"""Numba kernels: where a pixel looks during the exposure, and its local blur kernel.

Conventions. Frame pixel coordinates: x right, y down, pixel centres on integers, principal point
at the frame centre ``((W - 1) / 2, (H - 1) / 2)``, focal length ``f`` px (square pixels). Camera
axes: x right, y down, z forward. ``R_k`` (camera-to-reference rotation) and ``c_k`` (camera
centre, m, reference frame) are the pose at knot k of the exposure; the scene is the plane Z =
depth of the reference camera (``inv_depth = 0``: at infinity, translation has no effect).

At knot k, output pixel x sees the reference (sharp) image at ``s_k(x) = pi(K X)`` with X the
point of the plane on the ray ``c_k + lambda R_k K^-1 (x, 1)``. Its offsets ``d_k = x - s_k``,
centred on their time mean, are the blur path: the local kernel (true convolution orientation,
row = y, column = x) is the bilinear splat of that path, ``blurred(x) = sum_d k_x(d) sharp(x - d)``.
Between knots the path runs straight at constant speed (the polyline of the knots), so its time
mean is the trapezoid mean of the knots and the kernel's centroid is exactly its centre.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from blurgen.camera._so3_jit import exp_so3
from blurgen.core._jit import njit

#: Longest step, in pixels, between the points splatted along one straight piece of a path.
SUB_PX = 0.25
#: Largest |offset| (px) a path may have; beyond it (or NaN/inf) ``path_radius`` answers
#: ``NO_FIT``, so no caller splats it (an int of 1e20 or NaN is undefined in compiled code).
MAX_OFFSET_PX = 1e6
#: The radius ``path_radius`` gives a path it cannot measure: larger than any kernel.
NO_FIT = 2**40


@njit(cache=True)
def source_offsets(mats, trans, inv_depth, focal, cx, cy, x, y, out):
    """Centred offsets ``out[k] = x - s_k - mean`` (S, 2) float64 of pixel ``(x, y)``;
    ``mats`` (S, 3, 3) rotations, ``trans`` (S, 3) camera centres (m)."""
    steps = mats.shape[0]
    u = (x - cx) / focal
    v = (y - cy) / focal
    mx = 0.0
    my = 0.0
    for k in range(steps):
        m = mats[k]
        wx = m[0, 0] * u + m[0, 1] * v + m[0, 2]
        wy = m[1, 0] * u + m[1, 1] * v + m[1, 2]
        wz = m[2, 0] * u + m[2, 1] * v + m[2, 2]
        # X / depth on the plane Z = depth: c / depth + (1 - c_z / depth) w / w_z.
        scale = (1.0 - trans[k, 2] * inv_depth) / wz
        sx = cx + focal * (trans[k, 0] * inv_depth + scale * wx)
        sy = cy + focal * (trans[k, 1] * inv_depth + scale * wy)
        dx = x - sx
        dy = y - sy
        out[k, 0] = dx
        out[k, 1] = dy
        w = 0.5 if k == 0 or k == steps - 1 else 1.0
        mx += w * dx
        my += w * dy
    mx /= steps - 1
    my /= steps - 1
    for k in range(steps):
        out[k, 0] -= mx
        out[k, 1] -= my


@njit(cache=True)
def path_radius(offs):
    """Smallest kernel half-size r whose (2r+1)^2 kernel holds the splat of centred path ``offs``:
    a point at offset d touches pixels floor(d) and floor(d) + 1 about the centre. A path with a
    NaN, infinite or larger than ``MAX_OFFSET_PX`` offset gets ``NO_FIT``."""
    r = 0
    for k in range(offs.shape[0]):
        for c in range(2):
            d = offs[k, c]
            if not abs(d) <= MAX_OFFSET_PX:  # NaN compares false too
                return NO_FIT
            lo = math.floor(d)
            r = max(r, int(-lo), int(lo) + 1)
    return r


@njit(cache=True, inline="always")
def _splat_point(acc, px, py, w):
    ix = int(math.floor(px))
    iy = int(math.floor(py))
    u = px - ix
    v = py - iy
    acc[iy, ix] += w * (1.0 - u) * (1.0 - v)
    acc[iy, ix + 1] += w * u * (1.0 - v)
    acc[iy + 1, ix] += w * (1.0 - u) * v
    acc[iy + 1, ix + 1] += w * u * v


@njit(cache=True)
def splat_path(offs, acc, out):
    """Splat centred path ``offs`` (S, 2) into kernel ``out`` (k, k) about its centre pixel.

    Each straight piece between knots gets ``ceil(length / SUB_PX)`` equally weighted points at
    the midpoints of equal sub-pieces, so every piece carries 1/(S-1) of the weight and the
    centroid is the path's time mean (zero, so the centre). ``acc`` is float64 scratch of
    ``out``'s shape, all zero on entry and left all zero; the caller checked that the path fits
    (``path_radius(offs) <= (k - 1) / 2``), and a path that does not is refused here too
    (``out`` left unchanged, returns False) rather than written out of bounds.
    """
    steps = offs.shape[0]
    size = out.shape[0]
    if path_radius(offs) > (size - 1) // 2:
        return False
    centre = (size - 1) / 2.0
    piece = 1.0 / (steps - 1)
    for k in range(steps - 1):
        x0 = offs[k, 0] + centre
        y0 = offs[k, 1] + centre
        ddx = offs[k + 1, 0] + centre - x0
        ddy = offs[k + 1, 1] + centre - y0
        parts = max(1, int(math.ceil(math.sqrt(ddx * ddx + ddy * ddy) / SUB_PX)))
        w = piece / parts
        for j in range(parts):
            f = (j + 0.5) / parts
            _splat_point(acc, x0 + f * ddx, y0 + f * ddy, w)
    for r in range(size):
        for c in range(size):
            out[r, c] = acc[r, c]
            acc[r, c] = 0.0
    return True


@njit(cache=True)
def window_slopes(mats, trans, inv_depth, focal, cx, cy, x0, y0, width, height, probes, offs, prev, curr):
    """How fast the blur path changes across a window: the largest ``max_t |d(p) - d(q)| / |p - q|``
    over neighbouring pairs of a ``probes`` x ``probes`` grid along x and along y (px per px).
    ``offs``/``prev`` (S, 2) and ``curr`` (probes, probes, S, 2) are scratch."""
    steps = mats.shape[0]
    for j in range(probes):
        for i in range(probes):
            px = x0 + (width - 1.0) * i / (probes - 1)
            py = y0 + (height - 1.0) * j / (probes - 1)
            source_offsets(mats, trans, inv_depth, focal, cx, cy, px, py, offs)
            curr[j, i, :, :] = offs
    sx = 0.0
    sy = 0.0
    gx = max(width - 1.0, 1e-9) / (probes - 1)
    gy = max(height - 1.0, 1e-9) / (probes - 1)
    for j in range(probes):
        for i in range(probes):
            for k in range(steps):
                if i + 1 < probes:
                    dx = curr[j, i + 1, k, 0] - curr[j, i, k, 0]
                    dy = curr[j, i + 1, k, 1] - curr[j, i, k, 1]
                    sx = max(sx, math.sqrt(dx * dx + dy * dy) / gx)
                if j + 1 < probes:
                    dx = curr[j + 1, i, k, 0] - curr[j, i, k, 0]
                    dy = curr[j + 1, i, k, 1] - curr[j, i, k, 1]
                    sy = max(sy, math.sqrt(dx * dx + dy * dy) / gy)
    return sx, sy


@njit(cache=True, parallel=True)
def kernels_at_positions(rot, trans, focal, inv_depth, cx, cy, positions, psf):
    """``psf[i, p]`` = local kernel of sample i at ``positions[i, p]`` (x, y); all-zero ``psf``
    (n, P, k, k) float32. Returns the kernel half-size each needs (n, P) (a kernel that does not
    fit is left zero)."""
    n, npos, size = psf.shape[0], psf.shape[1], psf.shape[2]
    steps = rot.shape[1]
    need = np.zeros((n, npos), np.int64)
    for i in prange(n):
        mats = np.empty((steps, 3, 3))
        offs = np.empty((steps, 2))
        acc = np.zeros((size, size))
        for k in range(steps):
            exp_rot(rot[i, k], mats[k])
        for p in range(npos):
            source_offsets(mats, trans[i], inv_depth[i], focal[i], cx, cy, positions[i, p, 0],
                           positions[i, p, 1], offs)
            need[i, p] = path_radius(offs)
            if need[i, p] <= (size - 1) // 2:
                splat_path(offs, acc, psf[i, p])
    return need


@njit(cache=True)
def exp_rot(r, out):
    """``out = exp(r)`` for one float32/float64 rotation vector ``r`` (3,)."""
    exp_so3(np.float64(r[0]), np.float64(r[1]), np.float64(r[2]), out)


@njit(cache=True, parallel=True)
def paths_at_positions(rot, trans, focal, inv_depth, cx, cy, positions, paths):
    """``paths[i, p]`` (S, 2) = centred offsets (the blur path, px) of sample i at
    ``positions[i, p]``; returns each path's kernel half-size (n, P)."""
    n, npos, steps = paths.shape[0], paths.shape[1], paths.shape[2]
    need = np.zeros((n, npos), np.int64)
    for i in prange(n):
        mats = np.empty((steps, 3, 3))
        for k in range(steps):
            exp_rot(rot[i, k], mats[k])
        for p in range(npos):
            source_offsets(mats, trans[i], inv_depth[i], focal[i], cx, cy, positions[i, p, 0],
                           positions[i, p, 1], paths[i, p])
            need[i, p] = path_radius(paths[i, p])
    return need
