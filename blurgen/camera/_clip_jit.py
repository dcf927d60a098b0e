"""Numba kernels behind ``blurgen.camera.clip``: one continuous hand-shake trajectory per clip.

Private; the validated public functions live in ``blurgen.camera.clip``. The shake process is the
camera3d one (``_motion_jit``: per axis unit Ornstein-Uhlenbeck drift + stochastic damped
oscillators, exact discretisation, stationary start; pitch/yaw mixed in a random direction with a
random anisotropy; one log-normal amplitude), but stepped **in time order** over a grid of times
that covers the whole clip: at every grid time all components draw their noise, in a fixed order
(pitch components, yaw, roll, then the translation velocities). The grid holds every frame's knots
and points in the gaps between exposures; a frame's draws therefore depend only on the grid up to
its last knot, never on how many frames follow. Per clip, the stream (keyed by ``(seed, index,
draw)``) first draws the focal length, anchor, amplitude, direction, anisotropy and (with
translation) depth, once.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from blurgen.camera._motion_jit import (
    C_AMP_SD,
    C_ANISO,
    C_DEPTH_HI,
    C_DEPTH_LO,
    C_F35_HI,
    C_F35_LO,
    C_FRAME_H,
    C_FRAME_W,
    C_ROLL,
    C_SHAKE,
    C_TAU,
    C_TRANS,
    PROBES,
    log_uniform,
    oscillator_step,
    ou_step,
)
from blurgen.camera._project_jit import path_radius, source_offsets
from blurgen.camera._so3_jit import exp_so3, log_so3, matmul3, matmul3_tn
from blurgen.core._jit import njit
from blurgen.core._rng import mix64, next_normal, next_uniform, stream_key

#: Mixes the clip key so clip streams are independent of the single-exposure camera streams.
CLIP_SALT = np.uint64(0x5EED0C11F0A11CE5)
#: Per-draw increment of the clip key (a dataset redraws a clip that outgrows its margins).
DRAW_STEP = np.uint64(0x9E3779B97F4A7C15)

# Per-clip parameter columns (float64 (n, Q_N)).
Q_FOCAL35, Q_FOCAL_PX, Q_ANCHOR_X, Q_ANCHOR_Y, Q_AMPLITUDE, Q_DIRECTION, Q_ANISOTROPY, Q_DEPTH = range(8)
Q_N = 8


@njit(cache=True)
def clip_key(seed, index, draw):
    """Initial stream state of draw ``draw`` of clip ``index`` under ``seed``."""
    return mix64(mix64(stream_key(seed, index) ^ CLIP_SALT) + np.uint64(draw) * DRAW_STEP)


@njit(cache=True)
def _clip_draws(state, cam, q):
    """The per-clip values, once: focal length, anchor, amplitude, direction, anisotropy, depth."""
    state, q[Q_FOCAL35] = log_uniform(state, cam[C_F35_LO], cam[C_F35_HI])
    q[Q_FOCAL_PX] = q[Q_FOCAL35] / 36.0 * cam[C_FRAME_W]
    state, q[Q_ANCHOR_X] = next_uniform(state)
    state, q[Q_ANCHOR_Y] = next_uniform(state)
    amp_sd = cam[C_AMP_SD]
    state, z = next_normal(state)
    q[Q_AMPLITUDE] = cam[C_SHAKE] * math.exp(amp_sd * z - amp_sd * amp_sd)
    state, u = next_uniform(state)
    q[Q_DIRECTION] = math.pi * u
    state, u = next_uniform(state)
    q[Q_ANISOTROPY] = cam[C_ANISO] * u
    q[Q_DEPTH] = np.inf
    if cam[C_TRANS] > 0.0:
        state, q[Q_DEPTH] = log_uniform(state, cam[C_DEPTH_LO], cam[C_DEPTH_HI])
    return state


@njit(cache=True)
def _components(cam, osc_hz, sig_py, sig_roll):
    """The unit processes in draw order: rows (output column 0-5, kind (0 OU, 1 oscillator),
    oscillator index, sigma). Columns 0-2 are pitch, yaw, roll rates, 3-5 translation velocities."""
    n_osc = osc_hz.shape[0]
    comp = np.zeros((3 * (n_osc + 1) + 3, 4))
    m = 0
    for col in range(3):
        sig = sig_roll if col == 2 else sig_py
        for j in range(n_osc + 1):
            if sig[j] > 0.0:
                comp[m, 0], comp[m, 1], comp[m, 2], comp[m, 3] = col, 0 if j == 0 else 1, j - 1, sig[j]
                m += 1
    if cam[C_TRANS] > 0.0:
        for col in range(3, 6):
            comp[m, 0], comp[m, 1], comp[m, 2], comp[m, 3] = col, 0, -1, 1.0
            m += 1
    return comp[:m]


@njit(cache=True)
def _step_coefficients(comp, cam, osc_hz, osc_q, dt, coef):
    """Exact one-step transition of every component for a step of ``dt`` seconds into ``coef``."""
    for m in range(comp.shape[0]):
        if comp[m, 1] == 0:
            coef[m, 0], coef[m, 4] = ou_step(cam[C_TAU], dt)
        else:
            j = int(comp[m, 2])
            a11, a12, a21, a22, l11, l21, l22 = oscillator_step(osc_hz[j], osc_q[j], dt)
            coef[m, 0], coef[m, 1], coef[m, 2], coef[m, 3] = a11, a12, a21, a22
            coef[m, 4], coef[m, 5], coef[m, 6] = l11, l21, l22


@njit(cache=True)
def process_on_grid(state, cam, osc_hz, osc_q, sig_py, sig_roll, times, raw):
    """Fill ``raw`` (G, 6) with the unit-scaled channels at the grid ``times`` (G,), stepping all
    components together in time order; returns the stream state."""
    comp = _components(cam, osc_hz, sig_py, sig_roll)
    n_comp = comp.shape[0]
    x = np.zeros((n_comp, 2))
    coef = np.zeros((n_comp, 7))
    raw[:, :] = 0.0
    last_dt = -1.0
    for i in range(times.shape[0]):
        if i > 0:
            dt = times[i] - times[i - 1]
            if dt != last_dt:
                _step_coefficients(comp, cam, osc_hz, osc_q, dt, coef)
                last_dt = dt
        for m in range(n_comp):
            if comp[m, 1] == 0:
                state, z = next_normal(state)
                x[m, 0] = z if i == 0 else coef[m, 0] * x[m, 0] + coef[m, 4] * z
            else:
                state, z1 = next_normal(state)
                state, z2 = next_normal(state)
                if i == 0:
                    x[m, 0], x[m, 1] = z1, z2
                else:
                    a, b = x[m, 0], x[m, 1]
                    x[m, 0] = coef[m, 0] * a + coef[m, 1] * b + coef[m, 4] * z1
                    x[m, 1] = coef[m, 2] * a + coef[m, 3] * b + coef[m, 5] * z1 + coef[m, 6] * z2
            raw[i, int(comp[m, 0])] += comp[m, 3] * x[m, 0]
    return state


@njit(cache=True)
def mix_channels(cam, q, raw):
    """Unit channels -> body rates (rad/s) in columns 0-2 and velocities (m/s) in 3-5, in place."""
    kappa = q[Q_ANISOTROPY]
    a1 = math.sqrt(2.0 / (1.0 + kappa * kappa))
    a2 = kappa * a1
    c = math.cos(q[Q_DIRECTION])
    s = math.sin(q[Q_DIRECTION])
    amplitude = q[Q_AMPLITUDE]
    for i in range(raw.shape[0]):
        z1 = a1 * raw[i, 0]
        z2 = a2 * raw[i, 1]
        raw[i, 0] = amplitude * (c * z1 - s * z2)
        raw[i, 1] = amplitude * (s * z1 + c * z2)
        raw[i, 2] = amplitude * cam[C_ROLL] * raw[i, 2]
        for col in range(3, 6):
            raw[i, col] *= cam[C_TRANS]


@njit(cache=True)
def integrate_grid(times, rates, mats, centre, step):
    """Camera-to-start rotations ``mats`` (G, 3, 3) and centres ``centre`` (G, 3), m, of body
    rates ``rates[:, :3]`` and velocities ``rates[:, 3:]`` (trapezoid per grid step)."""
    mats[0, :, :] = 0.0
    for a in range(3):
        mats[0, a, a] = 1.0
        centre[0, a] = 0.0
    for i in range(1, times.shape[0]):
        h = 0.5 * (times[i] - times[i - 1])
        exp_so3(h * (rates[i - 1, 0] + rates[i, 0]), h * (rates[i - 1, 1] + rates[i, 1]),
                h * (rates[i - 1, 2] + rates[i, 2]), step)
        matmul3(mats[i - 1], step, mats[i])
        for a in range(3):
            centre[i, a] = centre[i - 1, a] + h * (rates[i - 1, 3 + a] + rates[i, 3 + a])


@njit(cache=True)
def _frame_mean(mats, centre, knots, steps, work, cbar):
    """Time-mean pose of the exposure knots ``knots[:steps]``: rotation into ``work[1]`` (one
    Gauss-Newton step of the Karcher mean, as a single exposure's) and centre into ``cbar``."""
    first = mats[knots[0]]
    mx = my = mz = 0.0
    for a in range(3):
        cbar[a] = 0.0
    for k in range(steps):
        w = 0.5 if k == 0 or k == steps - 1 else 1.0
        matmul3_tn(first, mats[knots[k]], work[0])
        rx, ry, rz = log_so3(work[0])
        mx += w * rx
        my += w * ry
        mz += w * rz
        for a in range(3):
            cbar[a] += w * centre[knots[k], a]
    exp_so3(mx / (steps - 1), my / (steps - 1), mz / (steps - 1), work[0])
    matmul3(first, work[0], work[1])
    for a in range(3):
        cbar[a] /= steps - 1


@njit(cache=True)
def frame_poses(mats, centre, knots, steps, rot, trans, frame_rot, frame_trans, means):
    """Per frame j (knots ``knots[j]`` into the grid, the first ``steps`` exposed): rotation
    vectors ``rot[j]`` (K, 3) and centres ``trans[j]`` (K, 3) in the frame's time-mean pose, and
    that pose relative to frame 0's: ``frame_rot[j]`` (camera-to-reference rotation vector),
    ``frame_trans[j]`` (m). ``means`` (T, 4, 3) scratch: rotation and centre of each mean."""
    work = np.empty((3, 3, 3))
    cbar = np.empty(3)
    for j in range(knots.shape[0]):
        _frame_mean(mats, centre, knots[j], steps, work, cbar)
        means[j, :3, :] = work[1]
        means[j, 3, :] = cbar
        for k in range(knots.shape[1]):
            g = knots[j, k]
            matmul3_tn(work[1], mats[g], work[2])
            rot[j, k, 0], rot[j, k, 1], rot[j, k, 2] = log_so3(work[2])
            for a in range(3):
                d0 = centre[g, 0] - cbar[0]
                d1 = centre[g, 1] - cbar[1]
                d2 = centre[g, 2] - cbar[2]
                trans[j, k, a] = work[1][0, a] * d0 + work[1][1, a] * d1 + work[1][2, a] * d2
        if j == 0:
            frame_rot[0, :] = 0.0
            frame_trans[0, :] = 0.0
            continue
        ref = means[0, :3, :]
        matmul3_tn(ref, means[j, :3, :], work[2])
        frame_rot[j, 0], frame_rot[j, 1], frame_rot[j, 2] = log_so3(work[2])
        for a in range(3):
            d0 = means[j, 3, 0] - means[0, 3, 0]
            d1 = means[j, 3, 1] - means[0, 3, 1]
            d2 = means[j, 3, 2] - means[0, 3, 2]
            frame_trans[j, a] = ref[0, a] * d0 + ref[1, a] * d1 + ref[2, a] * d2


@njit(cache=True)
def frame_radius(cam, rot, trans, steps, focal, inv_depth):
    """Largest local-kernel half-size of one frame's exposure over the frame's probes."""
    mats = np.empty((steps, 3, 3))
    offs = np.empty((steps, 2))
    for k in range(steps):
        exp_so3(np.float64(rot[k, 0]), np.float64(rot[k, 1]), np.float64(rot[k, 2]), mats[k])
    tr = np.empty((steps, 3))
    for k in range(steps):
        for a in range(3):
            tr[k, a] = trans[k, a]
    w, h = cam[C_FRAME_W], cam[C_FRAME_H]
    radius = 0
    for jy in range(PROBES):
        for ix in range(PROBES):
            x = (w - 1.0) * ix / (PROBES - 1)
            y = (h - 1.0) * jy / (PROBES - 1)
            source_offsets(mats, tr, inv_depth, focal, (w - 1.0) / 2.0, (h - 1.0) / 2.0, x, y, offs)
            radius = max(radius, path_radius(offs))
    return radius


@njit(cache=True)
def one_clip(seed, index, draw, model, times, knots, rot, trans, frame_rot, frame_trans, q, radius):
    """Draw ``draw`` of clip ``index``: float32 ``rot``/``trans`` (T, K, 3), ``frame_rot``/
    ``frame_trans`` (T, 3), per-clip values ``q`` (Q_N,), per-frame kernel radii ``radius`` (T,)."""
    cam, osc_hz, osc_q, sig_py, sig_roll, steps = model[0], model[1], model[2], model[3], model[4], model[5]
    state = _clip_draws(clip_key(seed, index, draw), cam, q)
    grid = times.shape[0]
    raw = np.empty((grid, 6))
    process_on_grid(state, cam, osc_hz, osc_q, sig_py, sig_roll, times, raw)
    mix_channels(cam, q, raw)
    mats = np.empty((grid, 3, 3))
    centre = np.empty((grid, 3))
    integrate_grid(times, raw, mats, centre, np.empty((3, 3)))
    frames, k_all = knots.shape[0], knots.shape[1]
    rot64 = np.empty((frames, k_all, 3))
    trans64 = np.empty((frames, k_all, 3))
    fr = np.empty((frames, 3))
    ft = np.empty((frames, 3))
    frame_poses(mats, centre, knots, steps, rot64, trans64, fr, ft, np.empty((frames, 4, 3)))
    focal = np.float64(np.float32(q[Q_FOCAL_PX]))
    inv_depth = 1.0 / np.float64(np.float32(q[Q_DEPTH]))
    for j in range(rot.shape[0]):
        for k in range(k_all):
            for a in range(3):
                rot[j, k, a] = rot64[j, k, a]
                trans[j, k, a] = trans64[j, k, a]
        for a in range(3):
            frame_rot[j, a] = fr[j, a]
            frame_trans[j, a] = ft[j, a]
        radius[j] = frame_radius(cam, rot[j], trans[j], steps, focal, inv_depth)


@njit(cache=True, parallel=True)
def clip_batch(seed, start, draws, model, times, knots, rot, trans, frame_rot, frame_trans):
    """Clips start .. start + n - 1 (draw ``draws[i]`` each) into float32 ``rot``/``trans``
    (n, T, K, 3) and ``frame_rot``/``frame_trans`` (n, T, 3); returns per-clip values (n, Q_N)
    and per-frame kernel radii (n, T). ``times`` (G,) and ``knots`` (T', K) describe the grid
    (T' >= T frames: frames after the clip's last share its grid)."""
    n = rot.shape[0]
    q = np.zeros((n, Q_N))
    radius = np.zeros((n, rot.shape[1]), np.int64)
    for i in prange(n):
        one_clip(seed, start + i, draws[i], model, times, knots, rot[i], trans[i], frame_rot[i], frame_trans[i],
                 q[i], radius[i])
    return q, radius


@njit(cache=True)
def map_points(mat, centre, inv_depth, focal, cx, cy, pts, out):
    """Where pixels ``pts`` (P, 2) of a camera in pose (``mat`` camera-to-reference, ``centre`` m)
    look in the reference image: ``out`` (P, 2), the single-pose case of ``source_offsets``."""
    for p in range(pts.shape[0]):
        u = (pts[p, 0] - cx) / focal
        v = (pts[p, 1] - cy) / focal
        wx = mat[0, 0] * u + mat[0, 1] * v + mat[0, 2]
        wy = mat[1, 0] * u + mat[1, 1] * v + mat[1, 2]
        wz = mat[2, 0] * u + mat[2, 1] * v + mat[2, 2]
        scale = (1.0 - centre[2] * inv_depth) / wz
        out[p, 0] = cx + focal * (centre[0] * inv_depth + scale * wx)
        out[p, 1] = cy + focal * (centre[1] * inv_depth + scale * wy)


@njit(cache=True, inline="always")
def _cubic(t):
    """Catmull-Rom weights (a = -0.5) of the four taps around a fraction t in [0, 1)."""
    a = -0.5
    s = 1.0 + t
    w0 = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    r = 1.0 - t
    w2 = ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0
    s = 2.0 - t
    w3 = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
    return w0, w1, w2, w3


@njit(cache=True, parallel=True)
def warp_u8(src, src_x0, src_y0, mat, centre, inv_depth, focal, cx, cy, out_x0, out_y0, out):
    """The reference image ``src`` (uint8 (Hs, Ws, 3), top-left at frame pixel (src_x0, src_y0))
    as seen from pose (``mat``, ``centre``): ``out`` (Ho, Wo, 3) uint8, top-left at frame pixel
    (out_x0, out_y0); bicubic (Catmull-Rom), rounded, borders replicated. An identity pose copies."""
    hs, ws = src.shape[0], src.shape[1]
    for v in prange(out.shape[0]):
        pts = np.empty((out.shape[1], 2))
        at = np.empty((out.shape[1], 2))
        for u in range(out.shape[1]):
            pts[u, 0] = out_x0 + u
            pts[u, 1] = out_y0 + v
        map_points(mat, centre, inv_depth, focal, cx, cy, pts, at)
        for u in range(out.shape[1]):
            sx = at[u, 0] - src_x0
            sy = at[u, 1] - src_y0
            ix = int(math.floor(sx))
            iy = int(math.floor(sy))
            wx = _cubic(sx - ix)
            wy = _cubic(sy - iy)
            for c in range(3):
                acc = 0.0
                for b in range(4):
                    yy = min(max(iy - 1 + b, 0), hs - 1)
                    row = 0.0
                    for a in range(4):
                        xx = min(max(ix - 1 + a, 0), ws - 1)
                        row += wx[a] * src[yy, xx, c]
                    acc += wy[b] * row
                out[v, u, c] = np.uint8(min(max(math.floor(acc + 0.5), 0.0), 255.0))


@njit(cache=True)
def shifted_exposure(rot, trans, steps, shift_knots, out_rot, out_trans, ref, mean_t):
    """One frame's exposure read ``shift_knots`` knot spacings late (a rolling-shutter row):
    the knots' poses interpolated from ``rot``/``trans`` (K, 3) (relative to the frame's mean
    pose), re-expressed about their own time-mean pose: ``out_rot``/``out_trans`` (S, 3),
    float64; that mean's rotation ``ref`` (3, 3) and centre ``mean_t`` (3,) in the frame's pose."""
    q = int(math.floor(shift_knots))
    f = shift_knots - q
    mats = np.empty((steps, 3, 3))
    tmp = np.empty((3, 3))
    mx = np.zeros(3)
    for a in range(3):
        mean_t[a] = 0.0
    for k in range(steps):
        k1 = min(k + q + 1, rot.shape[0] - 1)
        w = 0.5 if k == 0 or k == steps - 1 else 1.0
        for a in range(3):
            out_rot[k, a] = (1.0 - f) * rot[k + q, a] + f * rot[k1, a]
            out_trans[k, a] = (1.0 - f) * trans[k + q, a] + f * trans[k1, a]
            mx[a] += w * out_rot[k, a]
            mean_t[a] += w * out_trans[k, a]
        exp_so3(out_rot[k, 0], out_rot[k, 1], out_rot[k, 2], mats[k])
    for a in range(3):
        mx[a] /= steps - 1
        mean_t[a] /= steps - 1
    exp_so3(mx[0], mx[1], mx[2], ref)
    for k in range(steps):
        matmul3_tn(ref, mats[k], tmp)
        out_rot[k, 0], out_rot[k, 1], out_rot[k, 2] = log_so3(tmp)
        for a in range(3):
            out_trans[k, a] -= mean_t[a]
