"""Numba kernels behind ``blurgen.kernels``: camera-shake paths and bilinear splatting.

Private: the public, validated functions live in ``blurgen.kernels``. Argument dtypes are fixed
(float64 scalars and arrays, int64 counts) so each kernel compiles once. Per-sample work runs in
``prange``; nothing is reduced across samples, so the output does not depend on the thread count.
``blurgen.reference`` is the plain-Python twin of this file, used as test oracle and baseline.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from blurgen._rng import next_normal_pair, next_uniform, stream_key

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


@njit(cache=True)
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
        path[t + 1, 0] = x
        path[t + 1, 1] = y
    return state, big_count


@njit(cache=True)
def _walk_pair(state_a, params_a, path_a, state_b, params_b, path_b, length_px):
    """``_walk`` of two independent samples interleaved step by step.

    Each step's arithmetic is a serial chain (renormalisation: sqrt, divide); two chains side by
    side let the CPU overlap them. Each sample's stream is consumed exactly as ``_walk`` would,
    so the paths are bit-identical to walking them one at a time.
    """
    steps = path_a.shape[0]
    step_a, jitter_a, pull_a, prob_a, vxa, vya = _walk_constants(params_a, length_px, steps)
    step_b, jitter_b, pull_b, prob_b, vxb, vyb = _walk_constants(params_b, length_px, steps)
    xa = ya = xb = yb = 0.0
    path_a[0, 0] = path_a[0, 1] = path_b[0, 0] = path_b[0, 1] = 0.0
    big_a = big_b = 0
    for t in range(steps - 1):
        state_a, xa, ya, vxa, vya, ba = _shake_step(state_a, xa, ya, vxa, vya, step_a, jitter_a, pull_a, prob_a)
        state_b, xb, yb, vxb, vyb, bb = _shake_step(state_b, xb, yb, vxb, vyb, step_b, jitter_b, pull_b, prob_b)
        big_a += ba
        big_b += bb
        path_a[t + 1, 0] = xa
        path_a[t + 1, 1] = ya
        path_b[t + 1, 0] = xb
        path_b[t + 1, 1] = yb
    return state_a, big_a, state_b, big_b


@njit(cache=True)
def samples_for_exposure(steps, exposure):
    """Path samples exposed by fraction ``exposure``: t from 0 to f on the grid k / (steps - 1)."""
    return max(1, min(steps, int(math.floor(exposure * (steps - 1) + 0.5)) + 1))


@njit(cache=True)
def _centring_shift(path, used, size):
    """Shift (dx, dy) putting the mean of the first ``used`` (float32-rounded) samples on the
    centre pixel, and whether all of them then lie in [0, size - 1) so splatting needs no clip."""
    sx = 0.0
    sy = 0.0
    for t in range(used):
        sx += np.float64(np.float32(path[t, 0]))
        sy += np.float64(np.float32(path[t, 1]))
    centre = (size - 1) / 2.0
    dx = centre - sx / used
    dy = centre - sy / used
    fits = True
    for t in range(used):
        px = np.float64(np.float32(path[t, 0])) + dx
        py = np.float64(np.float32(path[t, 1])) + dy
        if not (0.0 <= px < size - 1 and 0.0 <= py < size - 1):
            fits = False
            break
    return dx, dy, fits


@njit(cache=True)
def _splat(path, used, dx, dy, acc, out):
    """Bilinear splat of the first ``used`` samples (shifted by dx, dy) into ``out`` (k, k).

    Positions are the float32-rounded path, so rasterising the float32 trajectories that the
    public API returns gives bit-identical kernels. ``acc`` is float64 scratch of ``out``'s shape.
    Row = y, column = x. Each sample keeps its position as the weighted mean of its four weights.
    """
    acc[:, :] = 0.0
    weight = 1.0 / used
    for t in range(used):
        px = np.float64(np.float32(path[t, 0])) + dx
        py = np.float64(np.float32(path[t, 1])) + dy
        ix = int(math.floor(px))
        iy = int(math.floor(py))
        u = px - ix
        v = py - iy
        acc[iy, ix] += weight * (1.0 - u) * (1.0 - v)
        acc[iy, ix + 1] += weight * u * (1.0 - v)
        acc[iy + 1, ix] += weight * (1.0 - u) * v
        acc[iy + 1, ix + 1] += weight * u * v
    total = 0.0
    for r in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            total += acc[r, c]
    for r in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            out[r, c] = acc[r, c] / total


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
def _fitted_pair(seed, index, pair, model, path_a, params_a, path_b, params_b):
    """Draw sample ``index`` (and ``index + 1`` if ``pair``) until each path fits.

    The first draws of the two samples are walked interleaved (``_walk_pair``); misfits are then
    redrawn one at a time. Either way each sample consumes its own stream identically, so its
    result does not depend on its partner. Returns ``(dx_a, dy_a, fits_a, dx_b, dy_b, fits_b)``.
    """
    steps, length_px, anxieties, centripetal_max, gaussian_max, big_prob_max, exposures = model[:7]
    state_a = _draw_sample_params(stream_key(seed, index), anxieties, centripetal_max, gaussian_max,
                                  big_prob_max, exposures, params_a)
    if not pair:
        state_a, big_a = _walk(state_a, params_a, length_px, path_a)
        dx_a, dy_a, fits_a = _settle(state_a, big_a, model, path_a, params_a)
        return dx_a, dy_a, fits_a, 0.0, 0.0, False
    state_b = _draw_sample_params(stream_key(seed, index + 1), anxieties, centripetal_max,
                                  gaussian_max, big_prob_max, exposures, params_b)
    state_a, big_a, state_b, big_b = _walk_pair(state_a, params_a, path_a, state_b, params_b,
                                                path_b, length_px)
    dx_a, dy_a, fits_a = _settle(state_a, big_a, model, path_a, params_a)
    dx_b, dy_b, fits_b = _settle(state_b, big_b, model, path_b, params_b)
    return dx_a, dy_a, fits_a, dx_b, dy_b, fits_b


@njit(cache=True, parallel=True)
def trajectories_batch(seed, start, n, model):
    """Paths (n, steps, 2) float32, parameters (n, N_PARAMS) and fit flags of samples
    start .. start + n - 1. ``model`` = (steps, length_px, anxieties, centripetal_max,
    gaussian_max, big_prob_max, exposures, size, max_draws)."""
    steps = model[0]
    xy = np.empty((n, steps, 2), dtype=np.float32)
    params = np.empty((n, N_PARAMS), dtype=np.float64)
    fitted = np.empty(n, dtype=np.bool_)
    for j in prange((n + 1) // 2):
        i = 2 * j
        pair = i + 1 < n
        paths = np.empty((2, steps, 2), dtype=np.float64)
        res = _fitted_pair(seed, start + i, pair, model, paths[0], params[i], paths[1],
                           params[i + 1 if pair else i])
        for k in range(2 if pair else 1):
            fitted[i + k] = res[2] if k == 0 else res[5]
            for t in range(steps):
                xy[i + k, t, 0] = paths[k, t, 0]
                xy[i + k, t, 1] = paths[k, t, 1]
    return xy, params, fitted


@njit(cache=True, parallel=True)
def kernels_batch(seed, start, n, model):
    """Kernels (n, size, size) float32, parameters and fit flags of samples start .. start + n - 1."""
    steps, size = model[0], model[7]
    psf = np.empty((n, size, size), dtype=np.float32)
    params = np.empty((n, N_PARAMS), dtype=np.float64)
    fitted = np.empty(n, dtype=np.bool_)
    for j in prange((n + 1) // 2):
        i = 2 * j
        pair = i + 1 < n
        paths = np.empty((2, steps, 2), dtype=np.float64)
        acc = np.empty((size, size), dtype=np.float64)
        res = _fitted_pair(seed, start + i, pair, model, paths[0], params[i], paths[1],
                           params[i + 1 if pair else i])
        for k in range(2 if pair else 1):
            dx, dy, fits = (res[0], res[1], res[2]) if k == 0 else (res[3], res[4], res[5])
            fitted[i + k] = fits
            if fits:
                _splat(paths[k], int(params[i + k, P_USED]), dx, dy, acc, psf[i + k])
            else:
                psf[i + k] = 0.0
    return psf, params, fitted


@njit(cache=True, parallel=True)
def rasterize_batch(xy, used, size):
    """Kernels (n, size, size) from float32 paths, ``used[i]`` leading samples each; fit flags."""
    n = xy.shape[0]
    psf = np.zeros((n, size, size), dtype=np.float32)
    fitted = np.empty(n, dtype=np.bool_)
    for i in prange(n):
        path = np.empty((xy.shape[1], 2), dtype=np.float64)
        acc = np.empty((size, size), dtype=np.float64)
        for t in range(xy.shape[1]):
            path[t, 0] = xy[i, t, 0]
            path[t, 1] = xy[i, t, 1]
        dx, dy, fits = _centring_shift(path, used[i], size)
        fitted[i] = fits
        if fits:
            _splat(path, used[i], dx, dy, acc, psf[i])
    return psf, fitted
