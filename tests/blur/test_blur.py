"""The camera blur model: transfer curves, valid convolution, noise, one sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blurgen.blur import (
    BlurConfig,
    add_sensor_noise,
    blur_linear,
    blur_sample,
    draw_blur_params,
    jpeg_round_trip,
    linear_to_srgb,
    noisy_to_srgb,
    srgb_to_linear,
)
from blurgen.blur.curves import ENCODE_STEPS, decode_curve, encode_curve
from blurgen.motion.api import random_kernels

QUIET = BlurConfig(saturation=False, noise="off")


def asymmetric_kernel(size: int, seed: int) -> np.ndarray:
    """A sparse, non-negative, unnormalised-then-normalised kernel with no symmetry, so that
    correlation (flipped) or a transposed (x/y swapped) result cannot pass for convolution."""
    rng = np.random.default_rng(seed)
    k = np.zeros((size, size), np.float32)
    taps = max(2, size)
    ys, xs = rng.integers(0, size, taps), rng.integers(0, size, taps)
    k[ys, xs] = rng.random(taps, dtype=np.float32) + 0.1
    k[0, size - 1] = 0.3  # top-right corner: breaks every flip and the transpose
    return k / k.sum()


def point_image(height: int, width: int, y: int, x: int, value: float = 1.0) -> np.ndarray:
    img = np.zeros((height, width), np.float32)
    img[y, x] = value
    return img


# ---------------------------------------------------------------- transfer curves


@pytest.mark.parametrize("gamma", ["srgb", "2.2"])
def test_srgb_round_trip_is_identity_for_every_code_value(gamma):
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(linear_to_srgb(srgb_to_linear(codes, gamma), gamma), codes)


@pytest.mark.parametrize("gamma", ["srgb", "2.2"])
def test_linear_to_srgb_within_one_code_value_of_exact_curve(gamma):
    x = np.concatenate([np.linspace(0, 1, 400_001), np.geomspace(1e-9, 0.02, 100_000)]).astype(np.float32)
    exact = encode_curve(x.astype(np.float64), gamma) * 255.0
    got = linear_to_srgb(x, gamma).astype(np.float64)
    assert np.abs(got - exact).max() <= 0.51 + 1e-9  # rounding (0.5) plus < 0.02 of a code
    assert np.all(np.diff(linear_to_srgb(np.sort(x), gamma).astype(int)) >= 0)  # monotone


def test_srgb_curves_match_their_definitions():
    codes = np.arange(256, dtype=np.uint8)
    v = codes / 255.0
    srgb = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(srgb_to_linear(codes), srgb, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(srgb_to_linear(codes, "2.2"), v ** 2.2, rtol=1e-6, atol=1e-9)
    assert ENCODE_STEPS == 65536


def test_linear_to_srgb_clips_and_maps_nan_to_black():
    out = linear_to_srgb(np.array([-1.0, 2.0, np.nan, np.inf], np.float32))
    assert out.tolist() == [0, 255, 0, 255]


def test_srgb_to_linear_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        srgb_to_linear(np.zeros(3, np.float32))


# ---------------------------------------------------------------- valid convolution


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_blurring_a_constant_image_leaves_it_constant(method):
    for k in [*random_kernels(3, size=41, seed=5, length_px=25.0), asymmetric_kernel(15, 1)]:
        img = np.full((80, 90, 3), 0.37, np.float32)
        out = blur_linear(img, k, method)
        assert out.shape == (80 - k.shape[0] + 1, 90 - k.shape[0] + 1, 3)
        np.testing.assert_allclose(out, 0.37, rtol=2e-6)


@pytest.mark.parametrize("size", [3, 5, 9, 15, 31, 65])
@pytest.mark.parametrize("method", ["direct", "auto"])
def test_point_becomes_the_stored_kernel_exactly(size, method):
    k = asymmetric_kernel(size, seed=size)
    h = (size - 1) // 2
    img = point_image(3 * size, 3 * size + 4, y=size + h + 1, x=size + h + 3)
    out = blur_linear(img, k, method)
    # Output pixel (y, x) sees input (y + 2h - i, x + 2h - j) through k[i, j]: the point at
    # (size + h + 1, size + h + 3) lands k[0, 0] at output (size - h + 1, size - h + 3).
    y0, x0 = size - h + 1, size - h + 3
    window = out[y0:y0 + size, x0:x0 + size]
    if method == "direct":
        assert np.array_equal(window, k)  # bit for bit: row = y, column = x, not flipped
    else:
        np.testing.assert_allclose(window, k, atol=1e-6)
    assert abs(out.sum() - 1.0) < 1e-5


@pytest.mark.parametrize("size", [5, 31, 65])
def test_fft_path_reproduces_the_kernel_from_a_point(size):
    k = asymmetric_kernel(size, seed=100 + size)
    img = point_image(2 * size + 5, 2 * size + 5, size + 2, size + 2)
    out = blur_linear(img, k, "fft")
    y0 = size + 2 - (size - 1)
    np.testing.assert_allclose(out[y0:y0 + size, y0:y0 + size], k, atol=1e-6)


def test_auto_takes_the_direct_path_for_sparse_kernels_and_fft_for_dense_ones():
    img = np.random.default_rng(1).random((120, 130, 3), dtype=np.float32)
    sparse = asymmetric_kernel(9, 3)
    dense = np.full((41, 41), 1 / 41 ** 2, np.float32)
    assert np.array_equal(blur_linear(img, sparse), blur_linear(img, sparse, "direct"))
    assert np.array_equal(blur_linear(img, dense), blur_linear(img, dense, "fft"))
    assert not np.array_equal(blur_linear(img, dense, "direct"), blur_linear(img, dense, "fft"))


def test_kernel_rows_are_y_and_columns_are_x():
    k = np.zeros((5, 5), np.float32)
    k[4, 2] = 1.0  # two rows below the centre
    img = point_image(15, 15, 7, 7)
    out = blur_linear(img, k, "direct")  # (11, 11); the point sits at output (5, 5)
    assert np.argwhere(out == 1.0).tolist() == [[7, 5]]  # moved down (+y), not right


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_black_border_keeps_the_linear_light_sum(method):
    rng = np.random.default_rng(3)
    for k in random_kernels(3, size=65, seed=11):
        img = np.zeros((200, 210, 3), np.float32)
        img[70:130, 70:140] = rng.random((60, 70, 3), dtype=np.float32)  # border 70 > 65
        out = blur_linear(img, k, method)
        rel = np.abs(out.sum(axis=(0, 1), dtype=np.float64) / img.sum(axis=(0, 1), dtype=np.float64) - 1)
        assert rel.max() < 1e-5


def test_direct_and_fft_paths_agree():
    rng = np.random.default_rng(4)
    kernels = [*random_kernels(4, size=65, seed=2), asymmetric_kernel(21, 7), asymmetric_kernel(3, 8)]
    for k in kernels:
        img = rng.random((150, 170, 3), dtype=np.float32)
        direct, fft = blur_linear(img, k, "direct"), blur_linear(img, k, "fft")
        assert direct.shape == fft.shape == (150 - 64, 170 - 64, 3) if k.shape[0] == 65 else True
        np.testing.assert_allclose(direct, fft, atol=2e-6)


def test_two_dimensional_and_single_channel_images():
    k = asymmetric_kernel(7, 9)
    img = np.random.default_rng(5).random((30, 40), dtype=np.float32)
    flat = blur_linear(img, k)
    assert flat.shape == (24, 34)
    np.testing.assert_array_equal(blur_linear(img[:, :, None], k)[:, :, 0], flat)


def test_centroid_of_a_blurred_point_is_the_point():
    kernels = random_kernels(6, size=65, seed=21, exposures=(0.1, 0.5, 1.0))
    ys, xs = np.mgrid[0:97, 0:97]
    for k in kernels:
        for method in ("direct", "fft"):
            out = blur_linear(point_image(161, 161, 80, 80), k, method)  # point -> output (48, 48)
            w = out.astype(np.float64)
            cy, cx = (w * ys).sum() / w.sum(), (w * xs).sum() / w.sum()
            assert abs(cy - 48) <= 0.05 and abs(cx - 48) <= 0.05


def test_blur_linear_rejects_bad_shapes():
    with pytest.raises(ValueError, match="odd"):
        blur_linear(np.zeros((10, 10), np.float32), np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        blur_linear(np.zeros((4, 10), np.float32), np.ones((5, 5), np.float32))
    with pytest.raises(ValueError, match="method"):
        blur_linear(np.zeros((10, 10), np.float32), np.ones((3, 3), np.float32), "fast")


# ---------------------------------------------------------------- noise


def _fit_variance(model: str, a: float, b: float, shape: tuple[int, ...]) -> tuple[float, float, list]:
    levels = [0.05, 0.2, 0.4, 0.6, 0.8]
    rng = np.random.default_rng(6)
    means, variances = [], []
    for x in levels:
        noisy = add_sensor_noise(np.full(shape, x, np.float32), a, b, rng, model).astype(np.float64)
        means.append(noisy.mean() - x)
        variances.append(noisy.var())
    slope, intercept = np.polyfit(levels, variances, 1)
    return slope, intercept, means


def test_gaussian_noise_variance_is_a_x_plus_b():
    a, b = 2e-3, 1e-4
    slope, intercept, bias = _fit_variance("gaussian", a, b, (512, 512, 3))
    assert slope == pytest.approx(a, rel=0.03)
    assert intercept == pytest.approx(b, rel=0.1)
    assert np.abs(bias).max() < 2e-4  # zero-mean


def test_poisson_noise_variance_is_a_x_plus_b():
    a, b = 2e-3, 1e-4
    slope, intercept, bias = _fit_variance("poisson", a, b, (256, 256, 3))
    assert slope == pytest.approx(a, rel=0.05)
    assert intercept == pytest.approx(b, rel=0.25)
    assert np.abs(bias).max() < 4e-4


def test_noise_off_and_gaussian_noise_is_deterministic_per_generator():
    lin = np.random.default_rng(1).random((40, 50, 3), dtype=np.float32)
    assert np.array_equal(add_sensor_noise(lin, 1e-3, 1e-5, np.random.default_rng(0), "off"), lin)
    one = add_sensor_noise(lin, 1e-3, 1e-5, np.random.default_rng(9))
    two = add_sensor_noise(lin, 1e-3, 1e-5, np.random.default_rng(9))
    other = add_sensor_noise(lin, 1e-3, 1e-5, np.random.default_rng(10))
    assert np.array_equal(one, two) and not np.array_equal(one, other)


@pytest.mark.parametrize("gamma", ["srgb", "2.2"])
def test_fused_noise_and_encode_equals_the_two_steps(gamma):
    lin = np.random.default_rng(3).random((33, 47, 3), dtype=np.float32) * 1.1 - 0.05
    fused = noisy_to_srgb(lin, 3e-3, 1e-5, np.random.default_rng(8), gamma)
    two_step = linear_to_srgb(add_sensor_noise(lin, 3e-3, 1e-5, np.random.default_rng(8)), gamma)
    assert np.array_equal(fused, two_step)


def test_gaussian_noise_looks_gaussian():
    z = add_sensor_noise(np.zeros(400_000, np.float32), 0.0, 1.0, np.random.default_rng(2)).astype(np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005
    assert abs(np.mean(np.abs(z) < 2) - 0.9545) < 0.003
    assert np.mean(z ** 4) == pytest.approx(3.0, rel=0.03)  # kurtosis of a normal


# ---------------------------------------------------------------- one sample


def test_blur_sample_of_a_constant_with_everything_off_is_the_constant():
    sharp = np.full((64 + 30, 80 + 30, 3), (12, 128, 250), np.uint8)
    k = random_kernels(1, size=31, seed=3, length_px=15.0)[0]
    blurred, out_sharp, params = blur_sample(sharp, k, np.random.default_rng(0), QUIET)
    assert blurred.shape == out_sharp.shape == (64, 80, 3)
    assert np.array_equal(blurred, out_sharp) and np.array_equal(blurred, sharp[15:-15, 15:-15])
    assert params == {"gain": 1.0, "noise_a": 0.0, "noise_b": 0.0, "jpeg_quality": -1}


def test_blur_sample_with_a_delta_kernel_keeps_the_pair_identical_and_aligned():
    rng = np.random.default_rng(7)
    sharp = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    delta = np.zeros((11, 11), np.float32)
    delta[5, 5] = 1
    blurred, out_sharp, _ = blur_sample(sharp, delta, rng, BlurConfig(noise="off", gain_prob=1.0))
    assert np.array_equal(blurred, out_sharp)  # same gain and clip on both


def test_blur_sample_linear_sum_without_saturation_or_noise():
    rng = np.random.default_rng(8)
    sharp = np.zeros((190, 190, 3), np.uint8)
    sharp[70:120, 70:120] = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    k = random_kernels(1, size=65, seed=8)[0]
    blurred, out_sharp, _ = blur_sample(sharp, k, rng, QUIET)
    before = srgb_to_linear(sharp).sum(dtype=np.float64)
    after = srgb_to_linear(blurred).sum(dtype=np.float64)
    assert after == pytest.approx(before, rel=2e-3)  # 8-bit quantisation of the result only


def test_blurred_point_in_the_pair_is_centred_on_the_sharp_point():
    sharp = np.zeros((64 + 64, 64 + 64, 3), np.uint8)
    sharp[64 + 10, 64 + 20] = 255  # sharp output pixel (42, 52)
    ys, xs = np.mgrid[0:64, 0:64]
    for k in random_kernels(4, size=65, seed=30, length_px=20.0):
        blurred, out_sharp, _ = blur_sample(sharp, k, np.random.default_rng(1), QUIET)
        assert out_sharp[42, 52].tolist() == [255, 255, 255]
        w = srgb_to_linear(blurred[:, :, 0]).astype(np.float64)
        cy, cx = (w * ys).sum() / w.sum(), (w * xs).sum() / w.sum()
        assert abs(cy - 42) < 0.1 and abs(cx - 52) < 0.1


def test_noise_touches_only_the_blurred_image():
    sharp = np.random.default_rng(2).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    k = random_kernels(1, size=21, seed=2, length_px=8.0)[0]
    config = BlurConfig(saturation=False, noise_a_range=(0.01, 0.01), noise_b_range=(1e-4, 1e-4))
    noisy, sharp_a, params = blur_sample(sharp, k, np.random.default_rng(3), config)
    clean, sharp_b, _ = blur_sample(sharp, k, np.random.default_rng(3), config.replace(noise="off"))
    assert np.array_equal(sharp_a, sharp_b) and np.array_equal(sharp_a, sharp[10:-10, 10:-10])
    diff = noisy.astype(int) - clean.astype(int)
    assert diff.std() > 2 and abs(diff.mean()) < 1
    assert params["noise_a"] == pytest.approx(0.01) and params["noise_b"] == pytest.approx(1e-4)


def test_gain_saturates_both_images_alike():
    sharp = np.full((40, 40, 3), 230, np.uint8)
    k = random_kernels(1, size=11, seed=1, length_px=4.0)[0]
    config = BlurConfig(noise="off", gain_prob=1.0, gain_max=4.0)
    blurred, out_sharp, params = blur_sample(sharp, k, np.random.default_rng(4), config)
    expected = linear_to_srgb(np.float32(srgb_to_linear(np.uint8(230)) * np.float32(params["gain"])))
    assert 1.0 < params["gain"] <= 4.0
    assert np.all(out_sharp == expected) and np.all(blurred == expected)


def test_jpeg_stage_changes_only_the_blurred_image_and_is_recorded():
    ramp = np.linspace(0, 255, 80)
    sharp = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 128.0), axis=2).astype(np.uint8)
    k = random_kernels(1, size=17, seed=2, length_px=6.0)[0]
    base = BlurConfig(noise="off", saturation=False)
    plain, s1, p1 = blur_sample(sharp, k, np.random.default_rng(5), base)
    jpeg, s2, p2 = blur_sample(sharp, k, np.random.default_rng(5), base.replace(jpeg_quality_range=(30, 40)))
    assert p1["jpeg_quality"] == -1 and 30 <= p2["jpeg_quality"] <= 40
    assert np.array_equal(s1, s2) and not np.array_equal(plain, jpeg)
    assert np.array_equal(jpeg, jpeg_round_trip(plain, p2["jpeg_quality"]))
    assert np.abs(plain.astype(int) - jpeg.astype(int)).mean() < 3  # a round trip, not garbage


def test_draw_blur_params_respects_ranges_and_fixed_draw_order():
    config = BlurConfig(gain_prob=0.3, gain_max=2.0, noise_a_range=(1e-3, 2e-3), noise_b_range=(0.0, 1e-5))
    draws = [draw_blur_params(np.random.default_rng(i), config) for i in range(2000)]
    gains = np.array([d["gain"] for d in draws])
    assert np.mean(gains > 1) == pytest.approx(0.3, abs=0.04) and gains.max() <= 2.0
    assert all(1e-3 <= d["noise_a"] <= 2e-3 and 0 <= d["noise_b"] <= 1e-5 for d in draws)
    with_jpeg = [draw_blur_params(np.random.default_rng(i), config.replace(jpeg_quality_range=(50, 60)))
                 for i in range(50)]
    assert all(a["gain"] == b["gain"] and a["noise_a"] == b["noise_a"] for a, b in zip(draws, with_jpeg))
    assert {d["jpeg_quality"] for d in with_jpeg} <= set(range(50, 61))
    assert draw_blur_params(np.random.default_rng(0), config.replace(noise="off"))["noise_a"] == 0.0
    assert draw_blur_params(np.random.default_rng(0), config.replace(saturation=False, gain_prob=1.0))["gain"] == 1.0


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("field, value", [
    ("gamma", "linear"), ("gain_prob", 1.5), ("gain_prob", -0.1), ("gain_max", 0.5),
    ("gain_max", float("nan")), ("noise", "salt"), ("noise_a_range", (2e-3, 1e-3)),
    ("noise_a_range", (0.0, 0.5)), ("noise_b_range", (-1.0, 0.0)), ("noise_b_range", 3),
    ("jpeg_quality_range", (0, 90)), ("jpeg_quality_range", (90, 80)), ("jpeg_quality_range", (50.5, 60)),
    ("saturation", "yes"), ("jpeg_quality_range", (float("inf"), 5)), ("jpeg_quality_range", (50, float("nan"))),
    ("gain_max", np.bool_(True)),
])
def test_blur_config_rejects_bad_values_naming_the_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        BlurConfig(**{field: value})


def test_blur_config_takes_numpy_scalars_as_plain_values():
    config = BlurConfig(gain_max=np.float32(2.0), gain_prob=np.int64(1), saturation=np.bool_(True),
                        noise_a_range=np.array([1e-4, 2e-4]), jpeg_quality_range=(np.int64(60), np.float64(90.0)))
    assert config == BlurConfig(gain_max=2.0, gain_prob=1.0, noise_a_range=(1e-4, 2e-4), jpeg_quality_range=(60, 90))
    assert type(config.saturation) is bool and type(config.jpeg_quality_range[1]) is int
    assert BlurConfig.from_json(config.to_json()) == config


def test_poisson_noise_with_a_vanishing_shot_factor_is_read_noise_only():
    lin = np.linspace(0, 1.5, 3000, dtype=np.float32).reshape(10, 100, 3)
    for a in (1e-20, 1e-45):  # x / a used to overflow numpy's Poisson sampler
        out = add_sensor_noise(lin, a, 1e-6, np.random.default_rng(0), "poisson")
        assert np.isfinite(out).all() and np.abs(out - lin).max() < 1e-2


def test_blur_config_round_trips_through_json():
    config = BlurConfig(gamma="2.2", gain_prob=0.5, jpeg_quality_range=(60, 90), noise="poisson")
    again = BlurConfig.from_dict(json.loads(config.to_json()))
    assert again == config and again.jpeg_quality_range == (60, 90)
    assert BlurConfig.from_dict(BlurConfig().to_dict()) == BlurConfig()
    with pytest.raises(ValueError, match="unknown"):
        BlurConfig().replace(sigma=1)


def test_decode_curve_inverts_encode_curve():
    x = np.linspace(0, 1, 1001)
    for gamma in ("srgb", "2.2"):
        np.testing.assert_allclose(decode_curve(encode_curve(x, gamma), gamma), x, atol=1e-12)


@pytest.mark.parametrize("where", ["image", "kernel"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_blur_linear_refuses_nan_or_infinite_input_naming_it(where, bad):
    image = np.ones((9, 9, 3), np.float32)
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, 1] = 1
    (image if where == "image" else kernel)[0, 0] = bad
    with pytest.raises(ValueError, match=f"{where} holds NaN or infinite values"):
        blur_linear(image, kernel)
