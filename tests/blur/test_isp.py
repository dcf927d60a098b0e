"""Laws of the camera pipeline's stages (blurgen.blur.isp, blurgen.blur.raw): the unprocess ->
process round trip, exact bilinear demosaicing for every Bayer pattern, the RAW noise variance of
the drawn shot/read levels, saturated streaks, and `make --pipeline camera`."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen.blur import BlurConfig, blur_linear
from blurgen.blur import _isp_jit as jit
from blurgen.blur.isp import (
    N_UNIFORMS,
    PATTERN_NAMES,
    IspConfig,
    camera_decode,
    camera_decode_lut,
    camera_decode_table,
    camera_encode,
    camera_encode_lut,
    draw_isp_params,
    gains_of,
    matrices_of,
)
from blurgen.blur.raw import demosaic, develop_image, mosaic_image, render_camera_sample, unprocess_image
from blurgen.pairs.pipeline import PairsConfig, make_block

#: OpenCV names a Bayer layout by the 2x2 block at its second row and column (tested below).
OPENCV_CODES = {"RGGB": cv2.COLOR_BayerBG2RGB, "BGGR": cv2.COLOR_BayerRG2RGB,
                "GRBG": cv2.COLOR_BayerGB2RGB, "GBRG": cv2.COLOR_BayerGR2RGB}


def _params(seed: int, n: int = 1, **isp) -> dict:
    u = np.random.default_rng(seed).random((n, N_UNIFORMS))
    return draw_isp_params(u, BlurConfig(), IspConfig(**isp))


@pytest.mark.parametrize("gamma", ["srgb", "2.2"])
def test_curves_invert_each_other(gamma):
    v = np.linspace(0, 1, 1001)
    assert np.abs(camera_encode(camera_decode(v, gamma), gamma) - v).max() < 1e-9
    codes = np.arange(256)
    assert np.array_equal(camera_encode_lut(gamma)[np.round(np.sqrt(camera_decode_lut(gamma)) * 65535).astype(int)],
                          codes)
    table = camera_decode_table(gamma)
    assert np.abs(table[np.round(codes / 255 * 65536).astype(int)] - camera_decode_lut(gamma)).max() < 1e-4


@pytest.mark.parametrize("seed", range(6))
def test_unprocess_then_process_returns_the_image_off_the_clipped_range(seed):
    rng = np.random.default_rng(100 + seed)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    p = _params(seed)
    to_raw, to_rgb = matrices_of(p, 0)
    lin = camera_decode_lut()[img]
    raw, lights = unprocess_image(lin, to_raw)
    assert lights == 0
    out = np.empty_like(img)
    jit.develop_codes(raw, gains_of(p, 0), to_rgb, camera_encode_lut(), out)
    camera = lin @ p["ccm"][0].T.astype(np.float64)  # white-balanced camera RGB: clipped outside [0, 1]
    inside = ((camera >= 0) & (camera <= 1)).all(axis=2) & (raw <= 1).all(axis=2)
    assert inside.mean() > 0.5
    diff = np.abs(out.astype(int) - img)[inside]
    assert diff.max() <= 1, diff.max()
    assert np.abs(develop_image(raw, gains_of(p, 0), to_rgb) - lin)[inside].max() < 1e-4


def _card(pattern_shape=(48, 64)) -> np.ndarray:
    """A colour card: 12 flat patches of different colours (8 px margin inside each)."""
    colours = np.random.default_rng(5).random((3, 4, 3)).astype(np.float32)
    return np.repeat(np.repeat(colours, pattern_shape[0] // 3, 0), pattern_shape[1] // 4, 1)


@pytest.mark.parametrize("pattern", range(4))
def test_demosaic_is_exact_on_flat_fields_and_on_linear_ramps(pattern):
    card = _card()
    plane, _ = mosaic_image(card, pattern)
    out = demosaic(plane, pattern)
    inside = np.zeros(card.shape[:2], bool)
    for py in range(3):
        for px in range(4):  # away from the patch edges (1 px) the patches are flat fields
            inside[py * 16 + 1:py * 16 + 15, px * 16 + 1:px * 16 + 15] = True
    assert np.abs(out - card)[inside].max() < 1e-6
    flat = np.full((10, 14, 3), [0.2, 0.5, 0.7], np.float32)
    assert np.abs(demosaic(mosaic_image(flat, pattern)[0], pattern) - flat).max() < 1e-6  # borders too
    y, x = np.mgrid[0:40, 0:50].astype(np.float32)
    ramp = np.stack([0.01 * x + 0.005 * y, 0.3 + 0.004 * x - 0.006 * y, 0.9 - 0.01 * x - 0.003 * y], axis=2)
    got = demosaic(mosaic_image(ramp, pattern)[0], pattern)
    assert np.abs(got - ramp)[1:-1, 1:-1].max() < 1e-6
    assert np.abs(got - ramp).max() > 1e-3  # the border is not exact (so the test can tell)


@pytest.mark.parametrize("name", PATTERN_NAMES)
def test_demosaic_agrees_with_opencv_bilinear_under_its_own_code_names(name):
    pattern = PATTERN_NAMES.index(name)
    img = (np.random.default_rng(1).integers(0, 4096, (32, 40, 3)) / 4095).astype(np.float32)
    plane, _ = mosaic_image(img, pattern, bit_depth=16)
    ref = cv2.cvtColor(np.round(plane * 65535).astype(np.uint16), OPENCV_CODES[name]) / 65535.0
    assert np.abs(ref - demosaic(plane, pattern))[2:-2, 2:-2].max() < 2e-5


@pytest.mark.parametrize("u_shot", [0.85, 0.95, 1.0])
def test_flat_field_raw_noise_has_the_variance_of_the_drawn_levels(u_shot):
    u = np.random.default_rng(7).random((1, N_UNIFORMS))
    u[0, 8], u[0, 9] = u_shot, 0.99  # high shot noise, read noise 2.3 sigma above the line: measurable
    p = draw_isp_params(u, BlurConfig(), IspConfig(bit_depth=16))
    shot, read = float(p["noise_a"][0]), float(p["noise_b"][0])
    # Flat fields >= 4.8 sigma from both clips (the clip bends the law); the same normals at every
    # level, so their sample variance scales all levels alike instead of scattering the fit.
    levels = np.linspace(0.3, 0.55, 6)
    z = np.random.default_rng(3).standard_normal(512 * 512).astype(np.float32)
    variances = [mosaic_image(np.full((512, 512, 3), level, np.float32), 0, shot, read, z, 16)[0]
                 .astype(np.float64).var() for level in levels]
    slope, intercept = np.polyfit(levels, variances, 1)
    quantisation = (1 / (2**16 - 1)) ** 2 / 12
    assert abs(slope / shot - 1) < 0.05, (slope, shot)
    assert abs(intercept / (read + quantisation) - 1) < 0.05, (intercept, read)


def test_read_noise_follows_the_calibrated_log_linear_relation():
    p = _params(0, n=4000)
    log_shot, log_read = np.log(p["noise_a"]), np.log(p["noise_b"])
    slope, intercept = np.polyfit(log_shot, log_read, 1)
    assert abs(slope - 2.18) < 0.05 and abs(intercept - 1.20) < 0.3
    assert 0.2 < np.std(log_read - (2.18 * log_shot + 1.20)) < 0.27
    assert p["noise_a"].min() >= 1e-4 * 0.999 and p["noise_a"].max() <= 1.2e-2 * 1.001


@pytest.mark.parametrize("length", [3, 5, 9, 15])
def test_a_point_light_of_radiance_10_becomes_a_streak_clipped_where_the_blur_leaves_more_than_1(length):
    scene = np.zeros((61, 61, 3), np.float32)
    scene[30, 30] = 10.0
    kernel = np.zeros((31, 31), np.float32)
    kernel[15, 15 - length // 2:15 + length // 2 + 1] = 1.0 / length
    blurred = blur_linear(scene, kernel)  # (31, 31, 3)
    plane, clipped = mosaic_image(blurred, 0)
    streak = blurred[:, :, 0] > 0
    assert streak.sum() == length
    expected = np.minimum(blurred.max(axis=2), 1.0)
    assert np.array_equal(plane[streak], expected[streak])
    assert (plane[streak] == 1.0).all() == (10.0 / length > 1)
    assert clipped == (length if 10.0 / length > 1 else 0)


def test_a_light_in_the_sharp_image_streaks_white_in_the_blurred_one():
    sharp = np.full((51, 51, 3), 40, np.uint8)
    sharp[24:27, 24:27] = 255  # a saturated light source, 3 px wide (a 1 px line demosaics to colour fringes)
    kernel = np.zeros((21, 21), np.float32)
    kernel[10, 8:13] = 0.2
    isp = IspConfig(light_boost_range=(10.0, 10.0))
    blurred, out_sharp, params = render_camera_sample(sharp, 10, lambda raw: blur_linear(raw, kernel),
                                                      np.random.default_rng(0), BlurConfig(noise="off"), isp)
    assert params["light_boost"] == pytest.approx(10.0) and params["light_share"] == pytest.approx(9 / 51**2)
    assert (blurred[15, 13:18] == 255).all() and params["clipped_share"] >= 3 * 5 / 31**2
    assert (out_sharp[15, 15] == 255).all() and abs(int(out_sharp[0, 0, 1]) - 40) <= 1
    no_lights = render_camera_sample(sharp, 10, lambda raw: blur_linear(raw, kernel), np.random.default_rng(0),
                                     BlurConfig(noise="off", saturation=False), isp)
    assert no_lights[0][15, 15].max() < 245 and no_lights[2]["clipped_share"] == 0


def test_camera_blocks_are_deterministic_per_sample_and_record_every_value():
    config = PairsConfig(width=32, height=32, pipeline="camera")
    whole = make_block(config, seed=3, start=0, count=3)
    part = make_block(config, seed=3, start=2, count=1)
    assert np.array_equal(whole["blurred"][2], part["blurred"][0])
    assert np.array_equal(whole["sharp"][2], part["sharp"][0])
    params = whole["params"]
    assert all(v.shape == (3,) for v in params.values())
    ccm = np.stack([params[f"ccm_{k}"] for k in range(9)], axis=1).reshape(3, 3, 3)
    assert np.allclose(ccm.sum(axis=2), 1.0, atol=1e-5)
    assert set(params["bayer_pattern"]) <= {0, 1, 2, 3}
    assert not np.array_equal(whole["blurred"], make_block(PairsConfig(width=32, height=32), 3, 0, 3)["blurred"])


def test_srgb_configs_keep_their_dict_and_camera_configs_round_trip():
    assert "pipeline" not in PairsConfig().to_dict() and "isp" not in PairsConfig().to_dict()
    camera = PairsConfig(pipeline="camera", isp=IspConfig(bayer_patterns=("GBRG",), bit_depth=10))
    assert PairsConfig.from_dict(camera.to_dict()) == camera
    with pytest.raises(ValueError, match="pipeline"):
        PairsConfig(pipeline="raw")
    with pytest.raises(ValueError, match="bit_depth"):
        IspConfig(bit_depth=20)


@pytest.mark.parametrize("args, flag", [
    (["--pipeline", "camera", "--gain-prob", "0.5"], "--gain-prob"),
    (["--pipeline", "camera", "--noise-b", "1e-6,1e-5"], "--noise-b"),
    (["--shot-noise", "1e-3,1e-2"], "--shot-noise"),
    (["--pipeline", "camera", "--bayer", "RGBG"], "--bayer"),
    (["--pipeline", "camera", "--light-boost", "0.5,2"], "--light-boost"),
])
def test_make_refuses_options_of_the_other_pipeline_with_exit_2(tmp_path, args, flag):
    from blurgen.cli import main

    result = CliRunner().invoke(main, ["make", "--n", "2", "--out", str(tmp_path / "x.h5"), *args])
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output


def test_make_pipeline_camera_writes_the_camera_values(tmp_path):
    from blurgen import read_pairs
    from blurgen.cli import main

    out = tmp_path / "cam.h5"
    result = CliRunner().invoke(main, ["make", "--n", "3", "--out", str(out), "--size", "32", "--workers", "1",
                                       "--pipeline", "camera", "--noise", "off", "--jpeg-quality", "90",
                                       "--blur-length-px", "off", "--preview", str(tmp_path / "cam.png")])
    assert result.exit_code == 0, result.output
    report = CliRunner().invoke(main, ["inspect", str(out)])
    assert report.exit_code == 0 and "camera pipeline: streaked highlights" in report.output
    assert "of 3 samples" in report.output and (tmp_path / "cam.png").stat().st_size > 0
    with read_pairs(str(out)) as pairs:
        assert pairs.params["noise_a"].tolist() == [0, 0, 0]
        assert (pairs.params["jpeg_quality"] == 90).all() and "clipped_share" in pairs.params
        block = make_block(PairsConfig(width=32, height=32, pipeline="camera", blur=BlurConfig(
            noise="off", jpeg_quality_range=(90, 90))), seed=0, start=1, count=1)
        assert np.array_equal(pairs[1][0], block["blurred"][0])


def test_the_stage_laws_hold_without_jit():
    """The laws again with NUMBA_DISABLE_JIT=1: the kernels' Python source is what runs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    here = Path(__file__).parent
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here / "test_isp.py"),
                             "-k", "round_trip or returns_the_image or exact_on_flat or opencv or streak"],
                            env=env, capture_output=True, text=True, timeout=600, cwd=here)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
