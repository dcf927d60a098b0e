"""Numba kernels behind ``blurgen.camera.motion``: the hand-shake process and its poses.

Private; the validated public functions live in ``blurgen.camera.motion``. Per sample (stream
keyed by ``(seed, index)`` alone, see ``blurgen.core._rng``) the draws come in a fixed order: exposure,
35 mm focal length, anchor (x, y), amplitude, direction, anisotropy, the three angular-velocity
channels component by component, then (only when translation is on) depth and the three
translation channels. A sample whose local kernels do not fit the configured kernel size is
redrawn whole from its own stream (deterministic, counted).

Angular velocity, rad/s, about the camera's x (pitch), y (yaw), z (roll) axes::

    (w_pitch, w_yaw) = s * Rot(psi) @ diag(a1, a2) @ (z1, z2),   w_roll = s * roll_scale * z3
    z_c(t) = sigma_c0 * OU_tau(t) + sum_j sigma_cj * OSC_(f_j, Q_j)(t)

with unit-variance stationary components (an Ornstein-Uhlenbeck drift with time constant tau and
stochastic damped oscillators at f_j Hz with quality Q_j), each sampled exactly at the knots
(exact discretisation, stationary start), ``s = shake_scale * exp(amp_sd * N - amp_sd**2)``
(so E[s^2] = shake_scale^2), psi ~ U(0, pi), a2 / a1 = kappa ~ U(0, aniso_max), a1^2 + a2^2 = 2.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from blurgen.camera._project_jit import path_radius, source_offsets, splat_path
from blurgen.camera._so3_jit import exp_so3, log_so3, matmul3, matmul3_tn, rotations_from_vectors
from blurgen.core._jit import njit
from blurgen.core._rng import mix64, next_normal, next_uniform, stream_key

# Float settings ``cam`` (float64 (N_CAM,)) of the model tuple.
C_FRAME_W, C_FRAME_H, C_F35_LO, C_F35_HI, C_EXP_LO, C_EXP_HI = 0, 1, 2, 3, 4, 5
C_SHAKE, C_ROLL, C_AMP_SD, C_ANISO, C_TAU, C_TRANS, C_DEPTH_LO, C_DEPTH_HI = 6, 7, 8, 9, 10, 11, 12, 13
# Target blur length range, px (0: unset, exposures log-uniform in the exposure range).
C_BLUR_LO, C_BLUR_HI = 14, 15
N_CAM = 16

# Parameter columns (float64 (n, N_PARAMS)).
P_EXPOSURE, P_FOCAL35, P_FOCAL_PX, P_ANCHOR_X, P_ANCHOR_Y, P_AMPLITUDE = 0, 1, 2, 3, 4, 5
P_DIRECTION, P_ANISOTROPY, P_DEPTH, P_REDRAWS, P_MAX_ANGLE, P_RADIUS = 6, 7, 8, 9, 10, 11
P_POS_X, P_POS_Y, P_BLUR_TARGET, P_BLUR_MADE = 12, 13, 14, 15
N_PARAMS = 16
#: Exposure refinements towards a target blur length, and the relative error that ends them.
BLUR_ITERATIONS, BLUR_TOLERANCE = 40, 0.01

#: Mixes the sample key so camera streams are independent of the 2-D kernel model's streams.
CAMERA_SALT = np.uint64(0xC0FFEE5EED15CA3A)
#: Probe positions per frame side (corners, edge midpoints, centre): the local kernels of a
#: rotating camera are largest at the frame's corners and edges.
PROBES = 3


@njit(cache=True)
def camera_key(seed, index):
    """Initial stream state of camera sample ``index`` under ``seed``."""
    return mix64(stream_key(seed, index) ^ CAMERA_SALT)


@njit(cache=True)
def ou_step(tau, dt):
    """Exact one-step coefficients (phi, noise_sd) of a unit-variance OU process."""
    phi = math.exp(-dt / tau)
    return phi, math.sqrt(max(0.0, 1.0 - phi * phi))


@njit(cache=True)
def oscillator_step(freq_hz, q, dt):
    """Exact one-step transition A (a11, a12, a21, a22) and noise Cholesky (l11, l21, l22) of a
    unit-variance stochastic damped oscillator x'' + (w0/Q) x' + w0^2 x = noise, on the state
    (x, x'/w0), whose stationary covariance is the identity (so the step noise is I - A A^T)."""
    w0 = 2.0 * math.pi * freq_hz
    g = w0 / (2.0 * q)
    wd = math.sqrt(max(w0 * w0 - g * g, 1e-300))
    e = math.exp(-g * dt)
    c = math.cos(wd * dt)
    s = math.sin(wd * dt) / wd
    a11 = e * (c + g * s)
    a12 = e * w0 * s
    a21 = -a12
    a22 = e * (c - g * s)
    q11 = 1.0 - a11 * a11 - a12 * a12
    q12 = -(a11 * a21 + a12 * a22)
    q22 = 1.0 - a21 * a21 - a22 * a22
    l11 = math.sqrt(max(q11, 0.0))
    l21 = q12 / l11 if l11 > 0.0 else 0.0
    l22 = math.sqrt(max(q22 - l21 * l21, 0.0))
    return a11, a12, a21, a22, l11, l21, l22


@njit(cache=True)
def _add_ou(state, sigma, tau, dt, out, col):
    phi, sd = ou_step(tau, dt)
    state, x = next_normal(state)
    out[0, col] += sigma * x
    for k in range(1, out.shape[0]):
        state, z = next_normal(state)
        x = phi * x + sd * z
        out[k, col] += sigma * x
    return state


@njit(cache=True)
def _add_oscillator(state, sigma, freq_hz, q, dt, out, col):
    a11, a12, a21, a22, l11, l21, l22 = oscillator_step(freq_hz, q, dt)
    state, x, y = _normal_pair(state)
    out[0, col] += sigma * x
    for k in range(1, out.shape[0]):
        state, z1, z2 = _normal_pair(state)
        x, y = a11 * x + a12 * y + l11 * z1, a21 * x + a22 * y + l21 * z1 + l22 * z2
        out[k, col] += sigma * x
    return state


@njit(cache=True, inline="always")
def _normal_pair(state):
    state, a = next_normal(state)
    state, b = next_normal(state)
    return state, a, b


@njit(cache=True)
def unit_channel(state, tau, sigmas, osc_hz, osc_q, dt, out, col):
    """Add one channel (``sigmas[0]`` OU + ``sigmas[1 + j]`` oscillator j) sampled every ``dt``
    seconds into ``out[:, col]``; returns the advanced stream state."""
    # A component without power draws nothing (a fitted process may switch one off).
    if sigmas[0] > 0.0:
        state = _add_ou(state, sigmas[0], tau, dt, out, col)
    for j in range(osc_hz.shape[0]):
        if sigmas[1 + j] > 0.0:
            state = _add_oscillator(state, sigmas[1 + j], osc_hz[j], osc_q[j], dt, out, col)
    return state


@njit(cache=True)
def angular_velocity(state, cam, osc_hz, osc_q, sig_py, sig_roll, dt, omega, params):
    """Fill ``omega`` (S, 3) rad/s (pitch, yaw, roll) at knots ``dt`` apart; records amplitude,
    direction and anisotropy in ``params``; returns the stream state."""
    amp_sd = cam[C_AMP_SD]
    state, z = next_normal(state)
    amplitude = cam[C_SHAKE] * math.exp(amp_sd * z - amp_sd * amp_sd)
    state, u = next_uniform(state)
    direction = math.pi * u
    state, u = next_uniform(state)
    kappa = cam[C_ANISO] * u
    params[P_AMPLITUDE] = amplitude
    params[P_DIRECTION] = direction
    params[P_ANISOTROPY] = kappa
    omega[:, :] = 0.0
    state = unit_channel(state, cam[C_TAU], sig_py, osc_hz, osc_q, dt, omega, 0)
    state = unit_channel(state, cam[C_TAU], sig_py, osc_hz, osc_q, dt, omega, 1)
    state = unit_channel(state, cam[C_TAU], sig_roll, osc_hz, osc_q, dt, omega, 2)
    a1 = math.sqrt(2.0 / (1.0 + kappa * kappa))
    a2 = kappa * a1
    c = math.cos(direction)
    s = math.sin(direction)
    for k in range(omega.shape[0]):
        z1 = a1 * omega[k, 0]
        z2 = a2 * omega[k, 1]
        omega[k, 0] = amplitude * (c * z1 - s * z2)
        omega[k, 1] = amplitude * (s * z1 + c * z2)
        omega[k, 2] = amplitude * cam[C_ROLL] * omega[k, 2]
    return state


@njit(cache=True)
def integrate_rotations(omega, dt, mats, rot, step):
    """``mats[k]`` = camera-to-start rotation at knot k for body rates ``omega`` (S, 3)
    (R' = R [w]x, trapezoid rates per step), and ``rot[k]`` its rotation vector; returns the
    rotation vectors' trapezoid time mean. ``step`` is (3, 3) scratch; ``rot`` may be ``omega``
    (each knot's rates are read before its vector is written)."""
    mats[0, :, :] = 0.0
    for i in range(3):
        mats[0, i, i] = 1.0
    steps = omega.shape[0]
    px, py, pz = omega[0, 0], omega[0, 1], omega[0, 2]
    rot[0, 0] = rot[0, 1] = rot[0, 2] = 0.0
    mx = my = mz = 0.0
    for k in range(1, steps):
        wx, wy, wz = omega[k, 0], omega[k, 1], omega[k, 2]
        exp_so3(0.5 * dt * (px + wx), 0.5 * dt * (py + wy), 0.5 * dt * (pz + wz), step)
        matmul3(mats[k - 1], step, mats[k])
        px, py, pz = wx, wy, wz
        rx, ry, rz = log_so3(mats[k])
        rot[k, 0], rot[k, 1], rot[k, 2] = rx, ry, rz
        w = 0.5 if k == steps - 1 else 1.0
        mx += w * rx
        my += w * ry
        mz += w * rz
    return mx / (steps - 1), my / (steps - 1), mz / (steps - 1)


@njit(cache=True)
def relative_rotations(mats, mean, rot, ref):
    """Rotation vectors ``rot`` (S, 3) of ``mats`` relative to the time-mean pose, taken as
    ``exp(mean)`` (``mean``: trapezoid mean of the vectors from the first pose; one Gauss-Newton
    step of the Karcher mean, leaving the new vectors' mean at second order in the spread);
    returns the largest angle (rad). ``ref`` is (2, 3, 3) scratch."""
    exp_so3(mean[0], mean[1], mean[2], ref[0])
    big = 0.0
    for k in range(mats.shape[0]):
        matmul3_tn(ref[0], mats[k], ref[1])
        rx, ry, rz = log_so3(ref[1])
        rot[k, 0], rot[k, 1], rot[k, 2] = rx, ry, rz
        big = max(big, rx * rx + ry * ry + rz * rz)
    return math.sqrt(big)


@njit(cache=True)
def translation_path(state, cam, dt, trans, vel):
    """Camera centre ``trans`` (S, 3) m about its time mean, for OU velocities of rms
    ``cam[C_TRANS]`` m/s per axis (time constant ``cam[C_TAU]``); ``vel`` (S, 3) scratch."""
    vel[:, :] = 0.0
    ones = np.ones(1)
    none = np.empty(0)
    for axis in range(3):
        state = unit_channel(state, cam[C_TAU], ones, none, none, dt, vel, axis)
    steps = trans.shape[0]
    for axis in range(3):
        trans[0, axis] = 0.0
        for k in range(1, steps):
            trans[k, axis] = trans[k - 1, axis] + 0.5 * dt * cam[C_TRANS] * (vel[k - 1, axis] + vel[k, axis])
        mean = 0.5 * (trans[0, axis] + trans[steps - 1, axis])
        for k in range(1, steps - 1):
            mean += trans[k, axis]
        mean /= steps - 1
        for k in range(steps):
            trans[k, axis] -= mean
    return state


@njit(cache=True)
def log_uniform(state, lo, hi):
    """A log-uniform draw in [lo, hi] from the stream; returns (state, value)."""
    state, u = next_uniform(state)
    return state, math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


@njit(cache=True)
def _draw_camera(state, cam, params):
    """Exposure (or, with a blur-length range, the target length in its place), focal length and
    anchor of one draw."""
    if cam[C_BLUR_LO] > 0.0:
        state, params[P_BLUR_TARGET] = log_uniform(state, cam[C_BLUR_LO], cam[C_BLUR_HI])
    else:
        state, params[P_EXPOSURE] = log_uniform(state, cam[C_EXP_LO], cam[C_EXP_HI])
    state, params[P_FOCAL35] = log_uniform(state, cam[C_F35_LO], cam[C_F35_HI])
    params[P_FOCAL_PX] = params[P_FOCAL35] / 36.0 * cam[C_FRAME_W]
    state, params[P_ANCHOR_X] = next_uniform(state)
    state, params[P_ANCHOR_Y] = next_uniform(state)
    return state


@njit(cache=True)
def make_scratch(steps, size):
    """Per-task scratch: omega/vel/offs (S, 3|2), rotation matrices (S, 3, 3), 3x3 work, kernel
    accumulator (size, size)."""
    return (np.empty((steps, 3)), np.empty((steps, 3)), np.empty((steps, 2)),
            np.empty((steps, 3, 3)), np.empty((3, 3, 3)), np.zeros((size, size)))


@njit(cache=True)
def centre_path_length(omega, dt, focal_px):
    """Length, px, of the path the frame centre's image draws under body rates ``omega`` (S, 3)
    (small angles: focal x the integral of the pitch/yaw speed; roll does not move the centre)."""
    total = 0.0
    for k in range(omega.shape[0] - 1):
        a = math.hypot(omega[k, 0], omega[k, 1])
        b = math.hypot(omega[k + 1, 0], omega[k + 1, 1])
        total += 0.5 * (a + b) * dt
    return focal_px * total


@njit(cache=True)
def _made_length(state, model, omega, params, exposure):
    """Centre path length, px, of this draw's shake (same stream) over ``exposure`` seconds."""
    cam, osc_hz, osc_q, sig_py, sig_roll = model[0], model[1], model[2], model[3], model[4]
    dt = exposure / (omega.shape[0] - 1)
    angular_velocity(state, cam, osc_hz, osc_q, sig_py, sig_roll, dt, omega, params)
    return centre_path_length(omega, dt, params[P_FOCAL_PX])


@njit(cache=True)
def _exposure_for_length(state, model, omega, params):
    """Choose the exposure so the centre's blur path is ``params[P_BLUR_TARGET]`` px long under
    this draw's own shake (same stream: same amplitude and noise at any exposure). Start from the
    process's rms speed; until the target is bracketed, step by the length ratio; then a secant
    step in log exposure against log length between the bracket's ends (bisection when it would
    land near an end). Ends within ``BLUR_TOLERANCE`` or after ``BLUR_ITERATIONS`` evaluations on
    the best exposure evaluated, within the exposure range (no shake: its top). Returns the stream
    state from before the shake (``_draw_motion`` draws it once more at the chosen exposure)."""
    cam, sig_py = model[0], model[3]
    target = params[P_BLUR_TARGET]
    power = 0.0
    for j in range(sig_py.shape[0]):
        power += sig_py[j] * sig_py[j]
    speed = cam[C_SHAKE] * math.sqrt(2.0 * power) * params[P_FOCAL_PX]
    lo, hi = cam[C_EXP_LO], cam[C_EXP_HI]
    exposure = hi if speed <= 0.0 else min(hi, max(lo, target / speed))
    best, best_error = exposure, np.inf
    short_e, short_m, long_e, long_m = -1.0, 0.0, -1.0, 0.0  # bracket ends (-1: not seen yet)
    for _ in range(BLUR_ITERATIONS):
        made = _made_length(state, model, omega, params, exposure)
        error = abs(made - target) / target
        if error < best_error:
            best, best_error = exposure, error
        if made <= 0.0 or error <= BLUR_TOLERANCE:
            break
        if made < target:
            short_e, short_m = exposure, made
        else:
            long_e, long_m = exposure, made
        if short_e < 0.0 or long_e < 0.0 or short_m <= 0.0:  # not bracketed: ratio step
            new = min(hi, max(lo, exposure * target / made))
        else:
            a, b = math.log(short_e), math.log(long_e)
            fa, fb = math.log(short_m / target), math.log(long_m / target)
            x = a - fa * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
            if not a + 0.05 * (b - a) < x < b - 0.05 * (b - a):
                x = 0.5 * (a + b)
            new = math.exp(x)
        if new == exposure:
            break
        exposure = new
    params[P_EXPOSURE] = best
    return state


@njit(cache=True)
def _draw_motion(state, model, rot, trans, params, scratch):
    """One draw of a sample into float32 ``rot``/``trans`` (S, 3) and ``params``."""
    cam, osc_hz, osc_q, sig_py, sig_roll = model[0], model[1], model[2], model[3], model[4]
    omega, vel, offs, mats, work, acc = scratch
    state = _draw_camera(state, cam, params)
    if cam[C_BLUR_LO] > 0.0:
        state = _exposure_for_length(state, model, omega, params)
    dt = params[P_EXPOSURE] / (rot.shape[0] - 1)
    state = angular_velocity(state, cam, osc_hz, osc_q, sig_py, sig_roll, dt, omega, params)
    if cam[C_BLUR_LO] > 0.0:
        params[P_BLUR_MADE] = centre_path_length(omega, dt, params[P_FOCAL_PX])
    mean = integrate_rotations(omega, dt, mats, omega, work[0])
    params[P_MAX_ANGLE] = relative_rotations(mats, mean, omega, work[1:])
    for k in range(rot.shape[0]):
        for c in range(3):
            rot[k, c] = omega[k, c]
    if cam[C_TRANS] > 0.0:
        state, params[P_DEPTH] = log_uniform(state, cam[C_DEPTH_LO], cam[C_DEPTH_HI])
        state = translation_path(state, cam, dt, omega, vel)
        for k in range(rot.shape[0]):
            for c in range(3):
                trans[k, c] = omega[k, c]
    else:
        params[P_DEPTH] = np.inf
        trans[:, :] = 0.0
    return state


@njit(cache=True)
def _frame_radius(model, rot, trans, params, scratch, x, y):
    """Largest kernel half-size over the frame's probes (and pixel (x, y) if x >= 0), for the
    stored (float32) motion."""
    cam = model[0]
    omega, vel, offs, mats, work, acc = scratch
    rotations_from_vectors(rot, mats)
    inv_depth = 1.0 / np.float64(np.float32(params[P_DEPTH]))
    focal = np.float64(np.float32(params[P_FOCAL_PX]))
    w, h = cam[C_FRAME_W], cam[C_FRAME_H]
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    radius = 0
    for j in range(PROBES):
        for i in range(PROBES):
            px = (w - 1.0) * i / (PROBES - 1)
            py = (h - 1.0) * j / (PROBES - 1)
            source_offsets(mats, trans, inv_depth, focal, cx, cy, px, py, offs)
            radius = max(radius, path_radius(offs))
    if x >= 0.0:
        source_offsets(mats, trans, inv_depth, focal, cx, cy, x, y, offs)
        radius = max(radius, path_radius(offs))
    return radius


@njit(cache=True)
def kernel_position(model, params):
    """Frame position (x, y) of a sample's kernel: its anchor spread uniformly over the pixel
    centres (float32 anchors, as stored)."""
    cam = model[0]
    x = np.float64(np.float32(params[P_ANCHOR_X])) * (cam[C_FRAME_W] - 1.0)
    y = np.float64(np.float32(params[P_ANCHOR_Y])) * (cam[C_FRAME_H] - 1.0)
    return x, y


@njit(cache=True)
def fitted_motion(seed, index, model, rot, trans, params, scratch, at_position):
    """Draw sample ``index`` until its kernels (frame probes, and its kernel position when
    ``at_position``) fit ``size``; returns whether one did within ``max_draws``."""
    size, max_draws = model[6], model[7]
    half = (size - 1) // 2
    state = camera_key(seed, index)
    for draw in range(max_draws):
        state = _draw_motion(state, model, rot, trans, params, scratch)
        x, y = kernel_position(model, params)
        if not at_position:
            x = -1.0
        params[P_POS_X] = x
        params[P_POS_Y] = y
        radius = _frame_radius(model, rot, trans, params, scratch, x, y)
        params[P_RADIUS] = radius
        params[P_REDRAWS] = draw
        if radius <= half:
            return True
    return False


#: Samples per parallel task (scratch allocated once per task); outputs never depend on it.
CHUNK = 16


@njit(cache=True, parallel=True)
def motion_batch(seed, start, model, rot, trans):
    """Fill float32 ``rot``, ``trans`` (n, S, 3) with samples start .. start + n - 1; returns
    parameters (n, N_PARAMS) and fit flags. ``model`` = (cam, osc_hz, osc_q, sig_py, sig_roll,
    steps, size, max_draws)."""
    n, steps = rot.shape[0], rot.shape[1]
    params = np.zeros((n, N_PARAMS))
    fitted = np.empty(n, dtype=np.bool_)
    for c in prange((n + CHUNK - 1) // CHUNK):
        scratch = make_scratch(steps, 1)
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            fitted[i] = fitted_motion(seed, start + i, model, rot[i], trans[i], params[i], scratch, False)
    return params, fitted


@njit(cache=True, parallel=True)
def kernels_batch(seed, start, model, psf):
    """Fill all-zero ``psf`` (n, size, size) float32 with each sample's local kernel at its
    kernel position; returns parameters and fit flags."""
    n, size = psf.shape[0], psf.shape[1]
    steps = model[5]
    params = np.zeros((n, N_PARAMS))
    fitted = np.empty(n, dtype=np.bool_)
    for c in prange((n + CHUNK - 1) // CHUNK):
        scratch = make_scratch(steps, size)
        rot = np.empty((steps, 3), np.float32)
        trans = np.empty((steps, 3), np.float32)
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            fitted[i] = fitted_motion(seed, start + i, model, rot, trans, params[i], scratch, True)
            if fitted[i]:
                _kernel_of(model, rot, trans, params[i], scratch, psf[i])
    return params, fitted


@njit(cache=True, parallel=True)
def omega_batch(seed, start, cam, osc_hz, osc_q, sig_py, sig_roll, dt, omega):
    """Angular velocity alone (n, S, 3) rad/s of samples start .. start + n - 1, knots ``dt``
    apart (streams keyed as the motion's but drawn from their start: for fitting and checks)."""
    n = omega.shape[0]
    params = np.zeros((n, N_PARAMS))
    for i in prange(n):
        angular_velocity(camera_key(seed, start + i), cam, osc_hz, osc_q, sig_py, sig_roll, dt, omega[i], params[i])
    return params


@njit(cache=True)
def _kernel_of(model, rot, trans, params, scratch, out):
    cam = model[0]
    omega, vel, offs, mats, work, acc = scratch
    inv_depth = 1.0 / np.float64(np.float32(params[P_DEPTH]))
    focal = np.float64(np.float32(params[P_FOCAL_PX]))
    cx, cy = (cam[C_FRAME_W] - 1.0) / 2.0, (cam[C_FRAME_H] - 1.0) / 2.0
    # mats already hold exp(rot) from the fit check of this draw.
    source_offsets(mats, trans, inv_depth, focal, cx, cy, params[P_POS_X], params[P_POS_Y], offs)
    splat_path(offs, acc, out)


@njit(cache=True, parallel=True)
def poses_batch(omega, exposure_s, rot):
    """Rotation vectors ``rot`` (n, S, 3) float32 about the time-mean pose of body rates
    ``omega`` (n, S, 3) rad/s sampled at S knots over each exposure; returns the largest angles."""
    n, steps = omega.shape[0], omega.shape[1]
    big = np.empty(n)
    for i in prange(n):
        mats = np.empty((steps, 3, 3))
        work = np.empty((3, 3, 3))
        out = np.empty((steps, 3))
        mean = integrate_rotations(omega[i], exposure_s[i] / (steps - 1), mats, out, work[0])
        big[i] = relative_rotations(mats, mean, out, work[1:])
        for k in range(steps):
            for c in range(3):
                rot[i, k, c] = out[k, c]
    return big
