"""Laws of the spatially varying renderer: exactness against brute force, constants, ramps,
flux, the small-angle limit, alignment, margins and determinism.

Also run under NUMBA_DISABLE_JIT=1 by tests/camera/test_camera_nojit.py (fewer examples there).
"""

from __future__ import annotations

import numpy as np
import pytest
from camera_fixtures import NOJIT, PROPERTY, camera_configs, motion_of
from hypothesis import given
from hypothesis import strategies as st

from blurgen import CameraConfig, blur_camera, local_kernels, random_camera_motion
from blurgen.blur import blur_linear, srgb_to_linear
from blurgen.camera.render import TOLERANCE_PX, camera_margin, plan_camera_blur, window_origin
from blurgen.reference.camera import brute_force_blur
from blurgen.sources.deadleaves import dead_leaves

seeds = st.integers(0, 2**63 - 1)
#: A hard camera for the renderer: a wide lens (18 mm), long exposures and three times the
#: recorded roll, so the kernels change fast across the frame.
HARD = CameraConfig(frame_size=(320, 240), focal_35mm=(18.0, 18.0), exposure_s=(0.06, 0.1), roll_scale=3.0,
                    steps=24 if NOJIT else 64, size=129)
#: The stated accuracy of the default renderer against brute force: mean absolute error in
#: linear light (measured ~0.04-0.07 / 255 on HARD; see benchmarks/bench_camera.py).
MAE_LIMIT = 0.5 / 255


def window(config: CameraConfig, seed: int, data) -> tuple:
    motion, _ = random_camera_motion(1, config, seed=seed)
    fw, fh = config.frame_size
    width = data.draw(st.integers(1, min(fw, 24 if NOJIT else 90)))
    height = data.draw(st.integers(1, min(fh, 24 if NOJIT else 70)))
    origin = (data.draw(st.integers(-10, fw - width + 10)), data.draw(st.integers(-10, fh - height + 10)))
    return motion, plan_camera_blur(motion, width, height, origin=origin)


@PROPERTY
@given(config=camera_configs(), seed=seeds, level=st.floats(0.0, 4.0), data=st.data())
def test_constant_image_stays_constant(config, seed, level, data):
    _, plan = window(config, seed, data)
    crop = np.full((*plan.crop_size, 3), level, np.float32)
    blurred, sharp = plan.render(crop)
    assert blurred.shape == (plan.height, plan.width, 3)
    np.testing.assert_allclose(blurred, level, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(sharp, np.float32(level))


@PROPERTY
@given(config=camera_configs(), seed=seeds, slope=st.tuples(st.floats(-1, 1), st.floats(-1, 1)), data=st.data())
def test_linear_ramp_is_unchanged_so_every_pixel_kernel_is_centred(config, seed, slope, data):
    """sum_d k(d) ramp(x - d) = ramp(x) - slope . centroid(k): every pixel's interpolated kernel
    sums to 1 with its centroid within 0.05 px of the pixel iff the ramp moves by less than
    0.05 |slope|."""
    _, plan = window(config, seed, data)
    ys, xs = np.mgrid[0:plan.crop_size[0], 0:plan.crop_size[1]].astype(np.float64)
    ramp = 100.0 + slope[0] * xs + slope[1] * ys
    crop = np.repeat(ramp[:, :, None], 3, axis=2).astype(np.float32)
    blurred, sharp = plan.render(crop)
    tolerance = 0.05 * (abs(slope[0]) + abs(slope[1])) + 1e-4 * 100.0
    assert np.abs(blurred.astype(np.float64) - sharp).max() <= tolerance


@pytest.mark.parametrize("seed", [0, 1, 2] if not NOJIT else [0])
def test_render_matches_brute_force_within_the_stated_tolerance(seed):
    """Every pixel's own path, re-projected at 8 instants per knot interval, centred on its own
    mean, sampling the sharp crop bilinearly: mean absolute error <= 0.5/255 in linear light."""
    config = HARD.replace(translation_mps=0.02 if seed == 2 else 0.0, depth_m=(0.5, 0.5))
    motion, _ = random_camera_motion(1, config, seed=seed)
    width, height = (40, 30) if NOJIT else (120, 90)
    plan = plan_camera_blur(motion, width, height, origin=(0, 0))
    crop = srgb_to_linear(dead_leaves(*plan.crop_size, np.random.default_rng(seed)))
    blurred, _ = plan.render(crop)
    reference = brute_force_blur(crop, motion, width, height, (0, 0), plan.margin, substeps=4 if NOJIT else 8)
    error = np.abs(blurred - reference)
    assert plan.node_x.size * plan.node_y.size > 4  # the kernels really vary across this window
    assert error.mean() <= MAE_LIMIT, error.mean() * 255
    assert error.max() <= 4 / 255, error.max() * 255


def test_finer_tolerance_converges_to_brute_force():
    motion, _ = random_camera_motion(1, HARD, seed=4)
    errors = []
    for tolerance in (1.0, 0.25):
        plan = plan_camera_blur(motion, 48, 40, origin=(0, 0), tolerance_px=tolerance)
        crop = srgb_to_linear(dead_leaves(*plan.crop_size, np.random.default_rng(0)))
        ref = brute_force_blur(crop, motion, 48, 40, (0, 0), plan.margin, substeps=4)
        errors.append(np.abs(plan.render(crop)[0] - ref).mean())
    assert errors[1] < 0.5 * errors[0], errors


def test_flux_is_kept():
    """Light is neither made nor lost: a point source's blur sums to its flux (to second order
    in the warp's divergence: within 0.5 % even for HARD), and a whole image's mean is kept."""
    motion, _ = random_camera_motion(3, HARD, seed=5)
    for i in range(3):
        plan = plan_camera_blur(motion, 90, 80, index=i, origin=(0, 0))
        crop = np.zeros((*plan.crop_size, 3), np.float32)
        crop[plan.margin + 40, plan.margin + 45] = 1.0
        blurred, _ = plan.render(crop)
        assert abs(blurred.sum(axis=(0, 1)) - 1.0).max() < 5e-3
        # A picture dark within two margins of the output's border keeps all its light inside.
        image = srgb_to_linear(dead_leaves(*plan.crop_size, np.random.default_rng(i)))
        dark = 3 * plan.margin
        image[:dark], image[-dark:], image[:, :dark], image[:, -dark:] = 0, 0, 0, 0
        blurred, _ = plan.render(image)
        assert abs(blurred.sum(dtype=np.float64) / image.sum(dtype=np.float64) - 1) < 5e-3


def test_small_angle_limit_equals_a_uniform_convolution():
    """Pure yaw/pitch and a long lens: the same kernel everywhere, and blur_camera is the valid
    convolution with it (blur_linear)."""
    rng = np.random.default_rng(3)
    angles = np.cumsum(rng.normal(0, 1, (30, 2)), axis=0)
    angles = 2e-6 * (angles - angles.mean(axis=0))
    motion = motion_of(np.column_stack([angles, np.zeros(30)]), 1e6, frame_size=(200, 150))
    image = srgb_to_linear(dead_leaves(110, 120, np.random.default_rng(1)))
    blurred, sharp = blur_camera(image, motion)
    plan = plan_camera_blur(motion, blurred.shape[1], blurred.shape[0])
    assert plan.node_x.size == plan.node_y.size == 1
    size = 2 * plan.margin + 1
    kernel = local_kernels(motion, [[99.5, 74.5]], size=size)[0, 0]
    m = (image.shape[0] - blurred.shape[0]) // 2
    inner = image[m - plan.margin:image.shape[0] - m + plan.margin, m - plan.margin:image.shape[1] - m + plan.margin]
    np.testing.assert_allclose(blurred, blur_linear(inner, kernel), atol=2e-3)
    np.testing.assert_array_equal(sharp, image[m:-m, m:-m])


def test_sharp_output_is_the_crop_centre_and_the_margin_is_the_largest_node_kernel():
    motion, _ = random_camera_motion(2, HARD, seed=6)
    plan = plan_camera_blur(motion, 50, 40, index=1)
    crop = np.random.default_rng(0).random((*plan.crop_size, 3), dtype=np.float32)
    _, sharp = plan.render(crop)
    m = plan.margin
    np.testing.assert_array_equal(sharp, crop[m:m + 40, m:m + 50])
    from blurgen.core.kernel_shape import support_radius
    radii = [support_radius(k) for k in plan.kernels.reshape(-1, *plan.kernels.shape[2:])]
    assert plan.margin == max(radii) and plan.kernels.shape[2] == 2 * m + 1
    assert camera_margin(motion, 50, 40, index=1) == m
    assert plan.centre == (plan.origin[0] + 24.5, plan.origin[1] + 19.5)
    small = plan_camera_blur(motion, 1, 1, index=1)  # one node, at the centre
    assert small.kernels.shape[:2] == (1, 1)
    np.testing.assert_array_equal(local_kernels(motion[1], [small.centre], size=2 * small.margin + 1)[0, 0],
                                  small.kernels[0, 0])
    with pytest.raises(ValueError, match="crop must have shape"):
        plan.render(crop[1:])


def test_blur_camera_cuts_the_margin_the_motion_needs():
    motion, _ = random_camera_motion(1, HARD, seed=7)
    image = np.random.default_rng(1).random((90, 100, 3), dtype=np.float32)
    blurred, sharp = blur_camera(image, motion)
    m = (100 - blurred.shape[1]) // 2
    assert blurred.shape == sharp.shape == (90 - 2 * m, 100 - 2 * m, 3)
    assert camera_margin(motion, 100 - 2 * m, 90 - 2 * m) <= m
    wider, _ = blur_camera(image, motion, margin=m + 3)
    assert wider.shape == (90 - 2 * m - 6, 100 - 2 * m - 6, 3)
    with pytest.raises(ValueError, match="needs a margin of"):
        blur_camera(image, motion, margin=0)
    with pytest.raises(ValueError, match="too small for a blur margin"):
        blur_camera(image[:10, :10], motion, margin=6)
    with pytest.raises(ValueError, match=r"image_linear must have shape \(H, W, 3\)"):
        blur_camera(image[:, :, 0], motion)


def test_window_origin_spreads_the_anchor_over_the_room_in_the_frame():
    for anchor, expected in (((0.0, 0.0), (0, 0)), ((0.999999, 0.999999), (1280 - 256, 720 - 256)),
                             ((0.5, 0.5), (512, 232))):
        motion = motion_of(np.zeros((2, 3)), 1000.0, frame_size=(1280, 720), anchor=anchor)
        assert window_origin(motion, 256, 256) == expected
    motion = motion_of(np.zeros((2, 3)), 1000.0, frame_size=(64, 48))
    assert window_origin(motion, 100, 50) == (-18, -1)


def test_render_identical_whatever_the_thread_count():
    import numba
    if NOJIT:
        pytest.skip("threads only exist with the JIT")
    motion, _ = random_camera_motion(1, HARD, seed=8)
    plan = plan_camera_blur(motion, 160, 120)
    crop = np.random.default_rng(2).random((*plan.crop_size, 3), dtype=np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = plan.render(crop)[0]
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = plan.render(crop)[0]
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    assert TOLERANCE_PX == 0.25


@pytest.mark.parametrize("config", [CameraConfig(steps=32 if NOJIT else 128),
                                    HARD.replace(size=33, exposure_s=(0.01, 0.1), translation_mps=0.05)])
def test_accepted_motions_need_no_more_margin_than_the_configured_kernel_anywhere(config):
    """A motion whose kernels at the frame's corners, edge midpoints and centre fit ``size`` has
    every window's grid kernels within it too: ``(size - 1) / 2`` works as a fixed margin."""
    n = 20 if NOJIT else 200
    motion, _ = random_camera_motion(n, config, seed=12)
    fw, fh = config.frame_size
    for i in range(n):
        for width, height in ((fw, fh), (fw // 3, fh // 2), (17, 9)):
            assert plan_camera_blur(motion, width, height, index=i).margin <= (config.size - 1) // 2
