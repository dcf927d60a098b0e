"""Laws of the hand-shake motion model: validation, determinism, the process's statistics, poses.

Also run under NUMBA_DISABLE_JIT=1 by tests/camera/test_camera_nojit.py (fewer examples there).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from camera_fixtures import NOJIT, PROPERTY, STEPS, camera_configs
from hypothesis import given
from hypothesis import strategies as st

import blurgen
from blurgen.camera import fitted
from blurgen.camera.config import CameraConfig, ShakeProcess
from blurgen.camera.motion import (
    CameraMotion,
    motion_from_angular_velocity,
    random_camera_motion,
    simulate_angular_velocity,
)
from blurgen.camera.spectra import axis_psd
from blurgen.reference.camera import rodrigues

seeds = st.integers(0, 2**63 - 1)
starts = st.integers(0, 10**12)


def same(a, b):
    ma, pa = a
    mb, pb = b
    for name, value in ma.arrays().items():
        np.testing.assert_array_equal(value, mb.arrays()[name], err_msg=name)
    assert pa.keys() == pb.keys()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


@PROPERTY
@given(config=camera_configs(), seed=seeds, start=starts, n=st.integers(2, 5), m=st.integers(1, 4))
def test_sample_depends_only_on_seed_and_index_whatever_the_batch(config, seed, start, n, m):
    whole = random_camera_motion(n + m, config, seed=seed, start=start)
    head = random_camera_motion(n, config, seed=seed, start=start)
    tail = random_camera_motion(m, config, seed=seed, start=start + n)
    joined = {name: np.concatenate([head[1][name], tail[1][name]]) for name in head[1]}
    same(whole, (CameraMotion(**{k: np.concatenate([head[0].arrays()[k], tail[0].arrays()[k]])
                                 for k in head[0].arrays()}, frame_size=config.frame_size), joined))
    assert list(whole[1]["seed_index"]) == list(range(start, start + n + m))


def test_motion_identical_whatever_the_thread_count():
    import numba
    if NOJIT:
        pytest.skip("threads only exist with the JIT")
    config = CameraConfig(steps=64)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = random_camera_motion(40, config, seed=3)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = random_camera_motion(40, config, seed=3)
    finally:
        numba.set_num_threads(before)
    same(one, two)


@PROPERTY
@given(config=camera_configs(), seed=seeds)
def test_params_record_draws_within_their_ranges(config, seed):
    motion, params = random_camera_motion(6, config, seed=seed)
    lo, hi = config.exposure_s
    assert np.all((params["exposure_s"] >= np.float32(lo) * (1 - 1e-6)) & (params["exposure_s"] <= np.float32(hi) * (1 + 1e-6)))
    lo, hi = config.focal_35mm
    assert np.all((params["focal_35mm"] >= lo * (1 - 1e-6)) & (params["focal_35mm"] <= hi * (1 + 1e-6)))
    np.testing.assert_allclose(params["focal_px"], params["focal_35mm"] / 36.0 * config.frame_size[0], rtol=1e-6)
    assert np.all((params["anchor_x"] >= 0) & (params["anchor_x"] < 1) & (params["anchor_y"] >= 0) & (params["anchor_y"] < 1))
    assert np.all((params["shake_direction_rad"] >= 0) & (params["shake_direction_rad"] < math.pi))
    assert np.all((params["shake_anisotropy"] >= 0) & (params["shake_anisotropy"] <= config.process.anisotropy_max))
    assert np.all(params["frame_kernel_radius_px"] <= (config.size - 1) // 2)
    if config.translation_mps > 0:
        assert np.all((params["depth_m"] >= 0.3 * (1 - 1e-6)) & (params["depth_m"] <= 5.0 * (1 + 1e-6)))
    else:
        assert np.all(np.isinf(params["depth_m"])) and not motion.translation.any()
    np.testing.assert_array_equal(motion.focal_px, params["focal_px"])
    np.testing.assert_array_equal(motion.exposure_s, params["exposure_s"])
    angles = np.linalg.norm(motion.rotation.astype(np.float64), axis=2).max(axis=1)
    np.testing.assert_allclose(angles, params["max_angle_rad"], rtol=1e-5, atol=1e-9)


def trapezoid_mean(values: np.ndarray) -> np.ndarray:
    w = np.ones(values.shape[1])
    w[[0, -1]] = 0.5
    return (values * w[None, :, None]).sum(axis=1) / w.sum()


def test_reference_pose_is_the_time_mean_pose():
    """First order: the rotation vectors (and camera centres) average to zero over the exposure;
    what is left is second order in the spread of the poses."""
    motion, params = random_camera_motion(200, CameraConfig(translation_mps=0.01, steps=STEPS), seed=5)
    rot = motion.rotation.astype(np.float64)
    mean = np.linalg.norm(trapezoid_mean(rot), axis=1)
    spread = params["max_angle_rad"].astype(np.float64)
    assert np.all(mean <= 0.05 * spread ** 2 + 1e-6), (mean / np.maximum(spread, 1e-12) ** 2).max()
    centres = trapezoid_mean(motion.translation.astype(np.float64))
    assert np.abs(centres).max() < 1e-8


def test_rotations_integrate_the_angular_velocity():
    """Constant body rates w for T seconds turn the camera by exactly w T about w (any axis)."""
    w = np.array([0.3, -0.5, 0.2])
    omega = np.broadcast_to(w, (1, 33, 3))
    motion = motion_from_angular_velocity(omega, [0.1], [1000.0], (64, 64))
    rot = motion.rotation[0].astype(np.float64)
    first_to_last = rodrigues(rot[0]).T @ rodrigues(rot[-1])
    np.testing.assert_allclose(first_to_last, rodrigues(w * 0.1), atol=2e-7)
    # Constant rates: the poses are equally spaced about the mean one, symmetric about zero.
    np.testing.assert_allclose(rot, -rot[::-1], atol=2e-7)


def test_sampled_angular_velocity_has_the_analytic_spectrum():
    """The exact discretisation: the periodogram of long simulated runs matches the process's
    PSD (population mean, amplitude draws included) band by band."""
    if NOJIT:
        pytest.skip("too long in pure Python")
    config = CameraConfig(steps=2048)
    seconds = 2047 / 256.0  # 256 Hz
    omega = simulate_angular_velocity(300, config, seconds, seed=1)
    from scipy import signal
    freq, psd = signal.periodogram(omega, fs=256.0, window="hann", axis=1)
    measured = psd.mean(axis=0)
    expected = axis_psd(freq, config.process)
    for lo, hi in ((0.5, 1.2), (1.2, 2.5), (2.5, 5.0), (5.0, 8.0), (8.0, 14.0), (14.0, 30.0)):
        m = (freq >= lo) & (freq < hi)
        ratio = measured[m].sum(axis=0) / expected[m].sum(axis=0)
        assert np.all(np.abs(ratio - 1) < 0.15), (lo, hi, ratio)


def test_stationary_start_keeps_the_variance_constant_over_the_exposure():
    omega = simulate_angular_velocity(4000, CameraConfig(steps=64), 0.25, seed=2)
    var = (omega ** 2).mean(axis=0)  # (steps, 3)
    process = CameraConfig().process
    expected_py = sum(s * s for s in process.sigma_pitch_yaw)
    expected_roll = sum(s * s for s in process.sigma_roll)
    for k in (0, 31, 63):
        np.testing.assert_allclose(var[k, :2], expected_py, rtol=0.12)
        np.testing.assert_allclose(var[k, 2], expected_roll, rtol=0.12)


def test_roll_scale_zero_leaves_no_roll_and_shake_scale_zero_a_still_camera():
    """Without roll rates the pose still turns about the optical axis, but only at second order
    (pitch and yaw do not commute)."""
    motion, params = random_camera_motion(8, CameraConfig(roll_scale=0.0, steps=STEPS), seed=4)
    roll = np.abs(motion.rotation[:, :, 2].astype(np.float64)).max(axis=1)
    assert np.all(roll <= params["max_angle_rad"].astype(np.float64) ** 2)
    still, params = random_camera_motion(3, CameraConfig(shake_scale=0.0, steps=STEPS), seed=4)
    assert not still.rotation.any() and np.all(params["frame_kernel_radius_px"] == 1)


def test_motions_that_do_not_fit_are_redrawn_and_counted():
    config = CameraConfig(exposure_s=(0.05, 0.3), size=31, steps=STEPS)
    _, params = random_camera_motion(40, config, seed=0)
    assert params["redraws"].sum() > 0
    assert np.all(params["frame_kernel_radius_px"] <= 15)


def test_infeasible_size_raises_a_clear_error():
    config = CameraConfig(exposure_s=(2.0, 2.0), shake_scale=5.0, size=3, steps=8)
    with pytest.raises(ValueError, match="size=3 is too small"):
        random_camera_motion(1, config, seed=0)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"frame_size": (16, 100)}, r"frame_size width must be an integer in \[32, 16384\], got 16"),
    ({"frame_size": 640}, r"frame_size must be \(width, height\)"),
    ({"focal_35mm": (50, 20)}, r"focal_35mm must be a pair \(low, high\).*got \(50, 20\)"),
    ({"exposure_s": (0.0, 0.1)}, r"exposure_s must be a pair"),
    ({"shake_scale": -1}, r"shake_scale must be a number in \[0.0, 100.0\], got -1"),
    ({"roll_scale": float("nan")}, r"roll_scale must be a number"),
    ({"translation_mps": 11}, r"translation_mps must be a number in \[0.0, 10.0\]"),
    ({"depth_m": (0.0, 1.0)}, r"depth_m must be a pair"),
    ({"steps": 1}, r"steps must be an integer in \[2, 100000\], got 1"),
    ({"size": 64}, r"size must be an odd integer"),
    ({"process": "fit"}, r"process must be a ShakeProcess"),
])
def test_bad_camera_config_values_raise_value_error_naming_parameter_and_range(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        CameraConfig(**kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"osc_q": (0.5, 3.0, 3.0)}, r"osc_q value must be a number in \[0.51, 100.0\], got 0.5"),
    ({"osc_freq_hz": (1.0, 2.0)}, r"osc_q must have 2 values"),
    ({"sigma_roll": (0.1,)}, r"sigma_roll must have 4 values"),
    ({"drift_tau_s": 0}, r"drift_tau_s must be a number in \[0.001, 100.0\], got 0"),
    ({"amplitude_log_sd": 4}, r"amplitude_log_sd must be a number in \[0.0, 3.0\]"),
    ({"anisotropy_max": 1.5}, r"anisotropy_max must be a number in \[0.0, 1.0\]"),
])
def test_bad_process_values_raise_value_error(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ShakeProcess(**kwargs)


def test_configs_are_frozen_round_trip_and_default_to_the_fit():
    config = blurgen.CameraConfig(frame_size=(640, 480), exposure_s=(0.01, 0.02))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 31
    assert CameraConfig.from_json(config.to_json()) == config
    assert config.process.osc_freq_hz == tuple(float(v) for v in fitted.OSC_FREQ_HZ)
    assert config.process.sigma_pitch_yaw == tuple(float(v) for v in fitted.SIGMA_PITCH_YAW)


def test_bad_call_arguments_raise_value_error():
    with pytest.raises(ValueError, match="n must be an integer"):
        random_camera_motion(0)
    with pytest.raises(ValueError, match="config must be a CameraConfig"):
        random_camera_motion(1, config=blurgen.KernelConfig())
    with pytest.raises(ValueError, match="seed must be"):
        random_camera_motion(1, seed=-1)


def test_camera_motion_validates_indexes_and_round_trips_its_arrays():
    motion, _ = random_camera_motion(3, CameraConfig(steps=STEPS), seed=1)
    one = motion[1]
    assert len(one) == 1 and one.steps == STEPS
    np.testing.assert_array_equal(one.rotation[0], motion.rotation[1])
    back = CameraMotion.from_arrays(motion.arrays(), motion.frame_size)
    for name, value in motion.arrays().items():
        np.testing.assert_array_equal(value, back.arrays()[name])
    arrays = {k: v for k, v in motion.arrays().items() if k not in ("translation", "depth_m")}
    assert np.isinf(CameraMotion.from_arrays(arrays, (64, 64)).depth_m).all()
    with pytest.raises(IndexError):
        motion[3]
    with pytest.raises(ValueError, match="focal_px must have shape"):
        CameraMotion(motion.rotation, motion.translation, [1.0], motion.depth_m, motion.anchor,
                     motion.exposure_s, (64, 64))
    with pytest.raises(ValueError, match="anchor must be finite and in"):
        CameraMotion(motion.rotation, motion.translation, motion.focal_px, motion.depth_m, motion.anchor + 2,
                     motion.exposure_s, (64, 64))
    with pytest.raises(ValueError, match="rotation must be finite"):
        CameraMotion(motion.rotation * np.inf, motion.translation, motion.focal_px, motion.depth_m,
                     motion.anchor, motion.exposure_s, (64, 64))
