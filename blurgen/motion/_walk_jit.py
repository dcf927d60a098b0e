"""Numba kernels behind ``blurgen.motion.walk``: camera-shake paths and bilinear splatting.

Private: the public, validated functions live in ``blurgen.motion.walk``. Argument dtypes are fixed
(float64 scalars and arrays, int64 counts) so each kernel compiles once. Per-sample work runs in
``prange``; nothing is reduced across samples, so the output does not depend on the thread count.
``blurgen.reference.walk`` is the plain-Python twin of this file, used as test oracle and baseline.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from blurgen.core._jit import njit
from blurgen.core._rng import next_normal_pair, next_uniform, stream_key

# Parameter columns returned by the samplers (float64 (n, N_PARAMS)).
P_ANXIETY, P_CENTRIPETAL, P_GAUSSIAN, P_BIG_PROB, P_ANGLE, P_EXPOSURE = 0, 1, 2, 3, 4, 5
P_USED, P_BIG_COUNT, P_REDRAWS = 6, 7, 8
N_PARAMS = 9


@njit(cache=True)
def _draw_sample_params(state, anxieties, centripetal_max, gaussian_max, big_prob_max, exposures, out):
    """Draw one sample's model parameters into ``out``; returns the advanced stream state."""
    state, u = next_uniform(state)
    out[P_ANXIETY] = anxieties[min(int(u * anxieties.shape[0]), anxieties.shape[0] - 1)]
    state, u = next_uniform(state)
    out[P_CENTRIPETAL] = centripetal_max * u
    state, u = next_uniform(state)
    out[P_GAUSSIAN] = gaussian_max * u
    state, u = next_uniform(state)
    out[P_BIG_PROB] = big_prob_max * u
    state, u = next_uniform(state)
    out[P_ANGLE] = 2.0 * math.pi * u
    state, u = next_uniform(state)
    out[P_EXPOSURE] = exposures[min(int(u * exposures.shape[0]), exposures.shape[0] - 1)]
    return state


@njit(cache=True)
def _walk_constants(params, length_px, steps):
    """(step_px, jitter, pull, big_prob, vx0, vy0) of one sample's walk."""
    step_px = length_px / (steps - 1)
    anxiety = params[P_ANXIETY]
    # dv = anxiety * (gaussian * n - centripetal * pos) * step_px, with the constants folded so
    # that only the pull term sits on the step-to-step dependency chain.
    jitter = anxiety * params[P_GAUSSIAN] * step_px
    pull = anxiety * params[P_CENTRIPETAL] * step_px
    big_prob = params[P_BIG_PROB] * anxiety
    return (step_px, jitter, pull, big_prob, math.cos(params[P_ANGLE]) * anxiety,
            math.sin(params[P_ANGLE]) * anxiety)


@njit(cache=True, inline="always")
def _shake_step(state, x, y, vx, vy, step_px, jitter, pull, big_prob):
    """One step of the Markov camera shake; returns ``(state, x, y, vx, vy, big_shake)``.

    Velocity has inertia; each step adds Gaussian jitter and a pull back towards the start, and
    with probability ``big_prob`` an impulsive reversal (twice the velocity, turned by pi +- 0.5
    rad); the speed is then renormalised to ``step_px`` so the path length is exact.
    """
    state, u = next_uniform(state)
    big = 0
    if u < big_prob:
        state, w = next_uniform(state)
        turn = math.pi + (w - 0.5)
        c = math.cos(turn)
        s = math.sin(turn)
        bx = 2.0 * (vx * c - vy * s)
        by = 2.0 * (vx * s + vy * c)
        vx += bx
        vy += by
        big = 1
    state, nx, ny = next_normal_pair(state)
    vx += jitter * nx - pull * x
    vy += jitter * ny - pull * y
    scale = step_px / math.sqrt(vx * vx + vy * vy)
    vx *= scale
    vy *= scale
    return state, x + vx, y + vy, vx, vy, big


@njit(cache=True)
def _walk(state, params, length_px, path):
    """Fill ``path`` (steps, 2) with one camera-shake path from (0, 0); returns
    ``(state, big_shake_count)``."""
    steps = path.shape[0]
    step_px, jitter, pull, big_prob, vx, vy = _walk_constants(params, length_px, steps)
    x = 0.0
    y = 0.0
    path[0, 0] = 0.0
    path[0, 1] = 0.0
    big_count = 0
    for t in range(steps - 1):
        state, x, y, vx, vy, big = _shake_step(state, x, y, vx, vy, step_px, jitter, pull, big_prob)
        big_count += big
        # Stored as the public float32 trajectories hold them, so rasterising those is bit-identical.
        path[t + 1, 0] = np.float32(x)
        path[t + 1, 1] = np.float32(y)
    return state, big_count


@njit(cache=True)
def samples_for_exposure(steps, exposure):
    """Path samples exposed by fraction ``exposure``: t from 0 to f on the grid k / (steps - 1)."""
    return max(1, min(steps, int(math.floor(exposure * (steps - 1) + 0.5)) + 1))


@njit(cache=True)
def _centring_shift(path, used, size):
    """Shift (dx, dy) putting the mean of the first ``used`` samples on the centre pixel, and
    whether all of them then lie in [0, size - 1), so splatting needs no clip. (Adding dx is
    monotonic in floating point, so the extremes decide the fit for every sample.)"""
    sx = 0.0
    sy = 0.0
    lo_x = hi_x = path[0, 0]
    lo_y = hi_y = path[0, 1]
    for t in range(used):
        px = path[t, 0]
        py = path[t, 1]
        sx += px
        sy += py
        lo_x = min(lo_x, px)
        hi_x = max(hi_x, px)
        lo_y = min(lo_y, py)
        hi_y = max(hi_y, py)
    centre = (size - 1) / 2.0
    dx = centre - sx / used
    dy = centre - sy / used
    fits = 0.0 <= lo_x + dx and hi_x + dx < size - 1 and 0.0 <= lo_y + dy and hi_y + dy < size - 1
    return dx, dy, fits


@njit(cache=True, inline="always")
def _flush_cell(acc, ix, iy, w00, w01, w10, w11):
    acc[iy, ix] += w00
    acc[iy, ix + 1] += w01
    acc[iy + 1, ix] += w10
    acc[iy + 1, ix + 1] += w11


@njit(cache=True)
def _splat(path, used, dx, dy, acc, out):
    """Bilinear splat of the first ``used`` samples (shifted by dx, dy) into ``out`` (k, k).

    Row = y, column = x; each sample keeps its position as the weighted mean of its four
    weights. ``acc`` is float64 scratch of ``out``'s shape, all zero on entry and left all zero;
    only the pixels the path touches are written in ``out``, which must be zero elsewhere. The
    weights 1/used of the four taps of each sample sum to 1, so the float64 total is 1 to ~1e-13
    and needs no renormalising.

    Consecutive samples are ~0.03 px apart, so a run of them shares one pixel cell: their
    weights are summed in registers and added to ``acc`` once per run (adding each sample to
    memory chained every add through a store and a load: ~2x slower, measured).
    """
    ix0, iy0, ix1, iy1 = acc.shape[1], acc.shape[0], -1, -1
    cx, cy = -1, -1
    w00 = w01 = w10 = w11 = 0.0
    for t in range(used):
        px = path[t, 0] + dx
        py = path[t, 1] + dy
        ix = int(math.floor(px))
        iy = int(math.floor(py))
        if ix != cx or iy != cy:
            if cx >= 0:
                _flush_cell(acc, cx, cy, w00, w01, w10, w11)
            cx, cy = ix, iy
            w00 = w01 = w10 = w11 = 0.0
            ix0, iy0, ix1, iy1 = min(ix0, ix), min(iy0, iy), max(ix1, ix + 1), max(iy1, iy + 1)
        u = px - ix
        v = py - iy
        w00 += (1.0 - u) * (1.0 - v)
        w01 += u * (1.0 - v)
        w10 += (1.0 - u) * v
        w11 += u * v
    _flush_cell(acc, cx, cy, w00, w01, w10, w11)
    weight = 1.0 / used
    for r in range(iy0, iy1 + 1):
        for c in range(ix0, ix1 + 1):
            out[r, c] = acc[r, c] * weight
            acc[r, c] = 0.0


@njit(cache=True)
def _draw(state, model, path, params):
    """One draw of a sample: its parameters, then its path; returns ``(state, big_count)``."""
    steps, length_px, anxieties, centripetal_max, gaussian_max, big_prob_max, exposures = model[:7]
    state = _draw_sample_params(state, anxieties, centripetal_max, gaussian_max, big_prob_max,
                                exposures, params)
    return _walk(state, params, length_px, path)


@njit(cache=True)
def _settle(state, big, model, path, params):
    """Accept the sample's current draw if its path fits once centred, else redraw it whole
    (parameters included: a near-straight path too long for the kernel would never fit with its
    parameters kept) from its own stream, up to ``max_draws`` draws in all.

    Returns ``(dx, dy, fits)``; ``params`` gets exposed samples, big shakes and redraws.
    """
    steps, size, max_draws = model[0], model[7], model[8]
    used = samples_for_exposure(steps, params[P_EXPOSURE])
    dx, dy, fits = _centring_shift(path, used, size)
    draws = 1
    while not fits and draws < max_draws:
        state, big = _draw(state, model, path, params)
        used = samples_for_exposure(steps, params[P_EXPOSURE])
        dx, dy, fits = _centring_shift(path, used, size)
        draws += 1
    params[P_USED] = used
    params[P_BIG_COUNT] = big
    params[P_REDRAWS] = draws - 1
    return dx, dy, fits


@njit(cache=True)
def _fitted_sample(seed, index, model, path, params):
    """Draw sample ``index`` until its path fits; returns ``(dx, dy, fits)``."""
    state, big = _draw(stream_key(seed, index), model, path, params)
    return _settle(state, big, model, path, params)


#: Samples per parallel task: each task allocates its scratch once for all of them (allocating
#: per sample cost ~10 % of the kernel rate). Samples never depend on their task, so neither
#: this nor the thread count changes any output.
CHUNK = 32


@njit(cache=True)
def _chunk_bounds(c, n):
    """Samples ``[lo, hi)`` of task ``c`` out of ``n`` samples."""
    return c * CHUNK, min(n, (c + 1) * CHUNK)


# The batch functions fill output arrays their caller allocates with NumPy: NumPy asks the kernel
# for huge pages on large arrays, Numba does not, and first touching a fresh 65x65 kernel's 4 kB
# pages cost ~12 us of system time per kernel (~15 % of the rate; measured with getrusage).


@njit(cache=True, parallel=True)
def trajectories_batch(seed, start, model, xy):
    """Fill ``xy`` (n, steps, 2) float32 with the paths of samples start .. start + n - 1;
    returns their parameters (n, N_PARAMS) and fit flags. ``model`` = (steps, length_px,
    anxieties, centripetal_max, gaussian_max, big_prob_max, exposures, size, max_draws)."""
    n, steps = xy.shape[0], xy.shape[1]
    params = np.empty((n, N_PARAMS), dtype=np.float64)
    fitted = np.empty(n, dtype=np.bool_)
    for c in prange((n + CHUNK - 1) // CHUNK):
        path = np.empty((steps, 2), dtype=np.float64)
        lo, hi = _chunk_bounds(c, n)
        for i in range(lo, hi):
            fitted[i] = _fitted_sample(seed, start + i, model, path, params[i])[2]
            for t in range(steps):
                xy[i, t, 0] = path[t, 0]
                xy[i, t, 1] = path[t, 1]
    return params, fitted


@njit(cache=True, parallel=True)
def kernels_batch(seed, start, model, psf):
    """Fill all-zero ``psf`` (n, size, size) float32 with the kernels of samples
    start .. start + n - 1; returns their parameters and fit flags."""
    n, size = psf.shape[0], psf.shape[1]
    steps = model[0]
    params = np.empty((n, N_PARAMS), dtype=np.float64)
    fitted = np.empty(n, dtype=np.bool_)
    for c in prange((n + CHUNK - 1) // CHUNK):
        path = np.empty((steps, 2), dtype=np.float64)
        acc = np.zeros((size, size), dtype=np.float64)
        lo, hi = _chunk_bounds(c, n)
        for i in range(lo, hi):
            dx, dy, fits = _fitted_sample(seed, start + i, model, path, params[i])
            fitted[i] = fits
            if fits:
                _splat(path, int(params[i, P_USED]), dx, dy, acc, psf[i])
    return params, fitted


@njit(cache=True, parallel=True)
def rasterize_batch(xy, used, psf):
    """Fill all-zero ``psf`` (n, size, size) with the kernels of float32 paths ``xy``,
    ``used[i]`` leading samples each; returns fit flags."""
    n, size = xy.shape[0], psf.shape[1]
    fitted = np.empty(n, dtype=np.bool_)
    for c in prange((n + CHUNK - 1) // CHUNK):
        path = np.empty((xy.shape[1], 2), dtype=np.float64)
        acc = np.zeros((size, size), dtype=np.float64)
        lo, hi = _chunk_bounds(c, n)
        for i in range(lo, hi):
            for t in range(xy.shape[1]):
                path[t, 0] = xy[i, t, 0]
                path[t, 1] = xy[i, t, 1]
            dx, dy, fits = _centring_shift(path, used[i], size)
            fitted[i] = fits
            if fits:
                _splat(path, used[i], dx, dy, acc, psf[i])
    return fitted
