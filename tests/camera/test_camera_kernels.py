"""Laws of the local kernels of a camera motion, and random_kernels with a CameraConfig.

Also run under NUMBA_DISABLE_JIT=1 by tests/camera/test_camera_nojit.py (fewer examples there).
"""

from __future__ import annotations

import numpy as np
import pytest
from camera_fixtures import NOJIT, PROPERTY, STEPS, camera_configs, centroid, covariance, motion_of
from hypothesis import given
from hypothesis import strategies as st

import blurgen
from blurgen import CameraConfig, KernelConfig, local_kernels, random_camera_motion, random_kernels, rasterize
from blurgen.motion.api import random_kernels_with_params
from blurgen.reference.camera import brute_force_kernel

seeds = st.integers(0, 2**63 - 1)


def dense_polyline(knots: np.ndarray, per_piece: int = 400) -> np.ndarray:
    """Points evenly spaced in time along the straight pieces between ``knots`` (S, 2)."""
    f = (np.arange(per_piece) + 0.5) / per_piece
    return (knots[:-1, None] * (1 - f)[None, :, None] + knots[1:, None] * f[None, :, None]).reshape(-1, 2)


@PROPERTY
@given(config=camera_configs(), seed=seeds, data=st.data())
def test_local_kernels_are_normalised_non_negative_and_centred_anywhere(config, seed, data):
    motion, _ = random_camera_motion(2, config, seed=seed)
    w, h = config.frame_size
    xs = data.draw(st.lists(st.floats(-0.2 * w, 1.2 * w), min_size=1, max_size=4))
    ys = data.draw(st.lists(st.floats(-0.2 * h, 1.2 * h), min_size=len(xs), max_size=len(xs)))
    positions = np.stack([xs, ys], axis=1)
    try:
        psf = local_kernels(motion, positions, size=129)
    except ValueError as error:  # far outside the frame a kernel may outgrow even 129
        assert "needs size >=" in str(error)
        return
    assert psf.shape == (2, len(xs), 129, 129) and psf.dtype == np.float32
    assert psf.min() >= 0
    np.testing.assert_allclose(psf.sum(axis=(2, 3), dtype=np.float64), 1.0, atol=1e-5)
    for k in psf.reshape(-1, 129, 129):
        cx, cy = centroid(k)
        assert abs(cx) <= 0.05 and abs(cy) <= 0.05, (cx, cy)


@PROPERTY
@given(config=camera_configs(), seed=seeds, fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_local_kernel_matches_the_brute_force_path_of_its_pixel(config, seed, fx, fy):
    """The knots' polyline, splatted in sub-pixel steps, against the pixel's path re-projected
    through the full homography at 64 instants per knot interval (with at least 32 knots: a
    straight piece between two knots is the projection of a turn only when the turn is small)."""
    motion, _ = random_camera_motion(1, config.replace(steps=max(config.steps, 32)), seed=seed)
    w, h = config.frame_size
    x, y = fx * (w - 1), fy * (h - 1)
    k = local_kernels(motion, [[x, y]], size=65)[0, 0].astype(np.float64)
    ref = brute_force_kernel(motion, x, y, 65, substeps=16 if NOJIT else 64)
    assert np.abs(k - ref).sum() < (0.02 if NOJIT else 0.01), np.abs(k - ref).sum()


def test_small_angle_limit_is_the_rasterized_projected_path():
    """Pure yaw/pitch, no roll, a long lens: every pixel's kernel is the uniform kernel of the
    projected angle path f * (-yaw, pitch), as blurgen.rasterize makes it."""
    rng = np.random.default_rng(0)
    steps = 40
    angles = np.cumsum(rng.normal(0, 1, (steps, 2)), axis=0)
    angles = 2e-6 * (angles - angles.mean(axis=0))  # radians: ~ a few pixels at f = 1e6 px
    rotation = np.column_stack([angles, np.zeros(steps)])
    focal = 1e6
    motion = motion_of(rotation, focal, frame_size=(400, 300))
    path = focal * np.column_stack([-angles[:, 1], angles[:, 0]])
    expected = rasterize(dense_polyline(path).astype(np.float32), size=61)
    for x, y in ((0, 0), (199.5, 149.5), (399, 299), (50, 250)):
        k = local_kernels(motion, [[x, y]], size=61)[0, 0]
        assert np.abs(k - expected).max() < 2e-3 and np.abs(k - expected).sum() < 0.02


def test_roll_blur_length_grows_in_proportion_to_the_distance_from_the_centre():
    steps = 33
    roll = np.linspace(-0.01, 0.01, steps)  # rad, about the optical axis
    motion = motion_of(np.column_stack([np.zeros((steps, 2)), roll]), 800.0, frame_size=(641, 481))
    centre = np.array([320.0, 240.0])
    direction = np.array([0.8, 0.6])
    spread = roll.std()  # uniform angle spread; the polyline's time-weighted sd is close to it
    lengths = []
    for rho in (0.0, 50.0, 100.0, 200.0, 300.0):
        k = local_kernels(motion, [centre + rho * direction], size=65)[0, 0]
        major = np.sqrt(np.linalg.eigvalsh(covariance(k))[-1])
        lengths.append(major)
        # Splatting adds at most 1/4 px^2 of variance per axis.
        assert abs(major - rho * spread) <= 0.5 + 0.02 * rho * spread, (rho, major, rho * spread)
    assert lengths[0] < 0.6 and np.all(np.diff(lengths) > 0)
    # The streak is tangential: perpendicular to the radius.
    k = local_kernels(motion, [centre + 300.0 * direction], size=65)[0, 0]
    axis = np.linalg.eigh(covariance(k))[1][:, -1]
    assert abs(axis @ direction) < 0.02


def test_translation_blur_is_the_focal_length_times_the_path_over_the_depth():
    """A camera sliding parallel to a plane at depth d blurs every pixel alike by f * c / d."""
    steps = 30
    rng = np.random.default_rng(1)
    centres = np.column_stack([np.cumsum(rng.normal(0, 1e-4, (steps, 2)), axis=0), np.zeros(steps)])
    centres -= centres.mean(axis=0)
    focal, depth = 900.0, 0.5
    motion = motion_of(np.zeros((steps, 3)), focal, translation=centres, depth_m=depth)
    path = -focal * centres[:, :2] / depth
    expected = rasterize(dense_polyline(path).astype(np.float32), size=33)
    k = local_kernels(motion, [[0, 0], [160, 120], [319, 239]], size=33)[0]
    for kernel in k:
        assert np.abs(kernel - expected).sum() < 0.02


def test_kernel_too_large_for_size_is_refused_naming_the_size_needed():
    steps = 9
    motion = motion_of(np.column_stack([np.linspace(-0.02, 0.02, steps), np.zeros((steps, 2))]), 1000.0)
    with pytest.raises(ValueError, match=r"the kernel of sample 0 at \(10, 20\) needs size >= 4[0-9]"):
        local_kernels(motion, [[10, 20]], size=15)
    with pytest.raises(ValueError, match="positions must be finite"):
        local_kernels(motion, [[np.nan, 0]])
    with pytest.raises(ValueError, match="motion must be a CameraMotion"):
        local_kernels(np.zeros((1, 9, 3)), [[0, 0]])


@PROPERTY
@given(config=camera_configs(), seed=seeds, start=st.integers(0, 10**12))
def test_random_camera_kernels_are_the_local_kernels_at_their_recorded_positions(config, seed, start):
    psf, params = random_kernels_with_params(3, seed=seed, start=start, config=config)
    assert psf.shape == (3, 65, 65) and psf.dtype == np.float32
    np.testing.assert_allclose(psf.sum(axis=(1, 2), dtype=np.float64), 1.0, atol=1e-5)
    w, h = config.frame_size
    assert np.all((params["position_x"] >= 0) & (params["position_x"] <= w - 1))
    assert np.all((params["position_y"] >= 0) & (params["position_y"] <= h - 1))
    motion, motion_params = random_camera_motion(3, config, seed=seed, start=start)
    for name, value in motion_params.items():
        np.testing.assert_array_equal(value, params[name], err_msg=name)
    positions = np.stack([params["position_x"], params["position_y"]], axis=1)[:, None]
    np.testing.assert_array_equal(local_kernels(motion, positions, size=65)[:, 0], psf)
    for k in psf:
        cx, cy = centroid(k)
        assert abs(cx) <= 0.05 and abs(cy) <= 0.05


def test_random_kernels_with_a_camera_config_are_deterministic_per_sample():
    config = CameraConfig(steps=STEPS, size=33, exposure_s=(0.005, 0.03))
    whole = random_kernels(7, seed=9, start=100, config=config)
    parts = np.concatenate([random_kernels(3, seed=9, start=100, config=config),
                            random_kernels(4, seed=9, start=103, config=config)])
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(random_kernels(2, size=33, seed=9, start=100, config=config.replace(size=65)),
                                  whole[:2])
    assert not np.array_equal(random_kernels(2, seed=10, start=100, config=config), whole[:2])


def test_positions_are_uniform_over_the_frame():
    _, params = random_kernels_with_params(2000, seed=1, config=CameraConfig(steps=8, exposure_s=(1e-3, 2e-3)))
    for name, side in (("position_x", 1279), ("position_y", 719)):
        counts = np.histogram(params[name], bins=4, range=(0, side))[0]
        assert counts.min() > 400, counts


def test_kernel_config_calls_are_unchanged_by_the_camera_dispatch():
    """KernelConfig (or none) still goes to the 2-D model: the same arrays as asking it directly."""
    from blurgen.motion import _walk_jit as _kernels_jit
    from blurgen.motion.walk import _model
    config = KernelConfig(size=31, length_px=20.0)
    psf = np.zeros((3, 31, 31), np.float32)
    with np.errstate(over="ignore"):
        _kernels_jit.kernels_batch(np.int64(4), np.int64(2), _model(config), psf)
    np.testing.assert_array_equal(random_kernels(3, seed=4, start=2, config=config), psf)
    with pytest.raises(ValueError, match="config must be a KernelConfig or a CameraConfig"):
        random_kernels(1, config="camera3d")
    assert blurgen.random_kernels(1, size=31, seed=0, length_px=20.0).shape == (1, 31, 31)
