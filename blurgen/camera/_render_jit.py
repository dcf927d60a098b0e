"""Numba kernel behind ``blurgen.camera.render``: spatially varying blur from a grid of local kernels.

The output is cut into cells between neighbouring grid nodes. Inside a cell the kernel of pixel
(x, y) is the bilinear interpolation of the cell's four node kernels, so

    out(x, y) = sum over taps d of  c_d(x, y) * src(x - d),   c_d = bilinear mix of k_node(d),

summed over the union of the four kernels' taps. Along a row c_d is linear in x, so each tap
costs two multiply-adds per value (one where the cell has one node column), vectorised over
the row's interleaved RGB values. Each interpolated kernel is a convex mix of centred kernels
summing to 1, so it sums to 1 and stays centred.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from blurgen.core._jit import njit


@njit(cache=True)
def _cell_range(c, nodes, cells, length):
    """Pixels [lo, hi) of cell ``c`` along an axis whose node positions are ``nodes``."""
    lo = 0 if c == 0 else int(math.ceil(nodes[c]))
    hi = length if c == cells - 1 else int(math.ceil(nodes[c + 1]))
    return lo, hi


@njit(cache=True)
def _fraction(v, c, nodes):
    """Bilinear weight of the far node of cell ``c`` at pixel coordinate v (0 with one node)."""
    if nodes.shape[0] == 1:
        return 0.0
    return (v - nodes[c]) / (nodes[c + 1] - nodes[c])


#: Taps summed per pass over an output row (as blurgen.blur's direct convolution: the row is read
#: and written once per eight taps and the x loop vectorises).
TAPS_PER_PASS = 8


@njit(cache=True)
def _union_taps(kernels, j0, i0, j1, i1, src_row):
    """Taps where any of the four node kernels is non-zero: flat source offsets
    ``-dy * src_row - dx * 3`` and the four weights (k00 = (j0, i0), k10 = (j0, i1),
    k01 = (j1, i0), k11 = (j1, i1)), padded with zero taps to a multiple of TAPS_PER_PASS."""
    size = kernels.shape[2]
    half = (size - 1) // 2
    count = 0
    for r in range(size):
        for c in range(size):
            if (kernels[j0, i0, r, c] != 0 or kernels[j0, i1, r, c] != 0 or kernels[j1, i0, r, c] != 0
                    or kernels[j1, i1, r, c] != 0):
                count += 1
    total = count + (-count) % TAPS_PER_PASS
    offsets = np.zeros(total, np.int64)
    weights = np.zeros((total, 4), np.float32)
    t = 0
    for r in range(size):
        for c in range(size):
            w00, w10 = kernels[j0, i0, r, c], kernels[j0, i1, r, c]
            w01, w11 = kernels[j1, i0, r, c], kernels[j1, i1, r, c]
            if w00 != 0 or w10 != 0 or w01 != 0 or w11 != 0:
                offsets[t] = -(r - half) * src_row - (c - half) * 3
                weights[t, 0], weights[t, 1], weights[t, 2], weights[t, 3] = w00, w10, w01, w11
                t += 1
    return offsets, weights


@njit(cache=True)
def _row_weights(weights, b, left, step):
    """Per-row tap weights: ``left`` at the cell's left node column, ``step`` to its right one;
    returns whether any step is non-zero (two node columns with different kernels)."""
    moving = False
    for t in range(weights.shape[0]):
        lw = (1.0 - b) * weights[t, 0] + b * weights[t, 2]
        left[t] = lw
        step[t] = (1.0 - b) * weights[t, 1] + b * weights[t, 3] - lw
        moving = moving or step[t] != 0
    return moving


@njit(cache=True)
def _pass_uniform(src, p, w, out, o, n3, first):
    """out[o + i] (+)= sum of 8 taps w[t] * src[p[t] + i], i < n3 (unsigned indices: Numba's
    negative-index guard on signed ones stops LLVM vectorising, as in blurgen.blur)."""
    p0, p1, p2, p3, p4, p5, p6, p7 = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    w0, w1, w2, w3, w4, w5, w6, w7 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    for k in range(n3):
        i = np.uint64(k)
        v = (w0 * src[p0 + i] + w1 * src[p1 + i] + w2 * src[p2 + i] + w3 * src[p3 + i]
             + w4 * src[p4 + i] + w5 * src[p5 + i] + w6 * src[p6 + i] + w7 * src[p7 + i])
        out[o + i] = v if first else out[o + i] + v


@njit(cache=True)
def _pass_varying(src, p, w, d, ax3, out, o, n3, first):
    """As ``_pass_uniform`` with weights ``w[t] + ax3[i] * d[t]`` varying linearly along the row."""
    p0, p1, p2, p3, p4, p5, p6, p7 = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    w0, w1, w2, w3, w4, w5, w6, w7 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    d0, d1, d2, d3, d4, d5, d6, d7 = d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
    for k in range(n3):
        i = np.uint64(k)
        s0, s1, s2, s3 = src[p0 + i], src[p1 + i], src[p2 + i], src[p3 + i]
        s4, s5, s6, s7 = src[p4 + i], src[p5 + i], src[p6 + i], src[p7 + i]
        a = w0 * s0 + w1 * s1 + w2 * s2 + w3 * s3 + w4 * s4 + w5 * s5 + w6 * s6 + w7 * s7
        c = d0 * s0 + d1 * s1 + d2 * s2 + d3 * s3 + d4 * s4 + d5 * s5 + d6 * s6 + d7 * s7
        v = a + ax3[i] * c
        out[o + i] = v if first else out[o + i] + v


@njit(cache=True)
def _render_cell(src, src_row, margin, offsets, weights, x_lo, x_hi, y_lo, y_hi, cj, node_y, ax3, out, out_row):
    """Rows y_lo .. y_hi - 1, columns x_lo .. x_hi - 1 of the blur, one cell's taps."""
    total = offsets.shape[0]
    left = np.empty(total, np.float32)
    step = np.empty(total, np.float32)
    p = np.empty(TAPS_PER_PASS, np.uint64)
    n3 = 3 * (x_hi - x_lo)
    for y in range(y_lo, y_hi):
        moving = _row_weights(weights, _fraction(y, cj, node_y), left, step)
        base = (y + margin) * src_row + (x_lo + margin) * 3
        o = np.uint64(y * out_row + 3 * x_lo)
        for g in range(0, total, TAPS_PER_PASS):
            for t in range(TAPS_PER_PASS):
                p[t] = np.uint64(base + offsets[g + t])
            w = left[g:g + TAPS_PER_PASS]
            if moving:
                _pass_varying(src, p, w, step[g:g + TAPS_PER_PASS], ax3, out, o, n3, g == 0)
            else:
                _pass_uniform(src, p, w, out, o, n3, g == 0)


@njit(cache=True, parallel=True)
def render_grid(src, src_row, margin, node_x, node_y, kernels, out, out_row):
    """Blur flat ``src`` ((H + 2m) * src_row) float32, src_row = (W + 2m) * 3, into flat ``out``
    (H * out_row), out_row = W * 3, with the kernels ``kernels`` (ny, nx, k, k) at window
    positions ``node_x`` (nx,), ``node_y`` (ny,) (pixels; one node: one column/row of nodes at
    that position); ``margin`` m >= (k - 1) / 2."""
    width, height = out_row // 3, out.shape[0] // out_row
    nx, ny = node_x.shape[0], node_y.shape[0]
    cells_x, cells_y = max(1, nx - 1), max(1, ny - 1)
    for cell in prange(cells_x * cells_y):
        cj, ci = cell // cells_x, cell % cells_x
        x_lo, x_hi = _cell_range(ci, node_x, cells_x, width)
        y_lo, y_hi = _cell_range(cj, node_y, cells_y, height)
        if x_hi <= x_lo or y_hi <= y_lo:
            continue
        offsets, weights = _union_taps(kernels, cj, ci, min(cj + 1, ny - 1), min(ci + 1, nx - 1), src_row)
        if offsets.shape[0] == 0:
            continue
        ax3 = np.empty(3 * (x_hi - x_lo), np.float32)
        for x in range(x_hi - x_lo):
            a = np.float32(_fraction(x_lo + x, ci, node_x))
            ax3[3 * x] = a
            ax3[3 * x + 1] = a
            ax3[3 * x + 2] = a
        _render_cell(src, src_row, margin, offsets, weights, x_lo, x_hi, y_lo, y_hi, cj, node_y, ax3, out, out_row)
