"""PSNR/SSIM conventions: inf/1.0 for identical images, analytic PSNR, skimage's SSIM."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blurgen.deblur.metrics import RunningMean, gaussian_window, psnr, ssim, ssim_map


def _noisy_pair(seed, shape=(48, 64, 3), amplitude=60):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(np.int64) + rng.integers(-amplitude, amplitude + 1, shape), 0, 255).astype(np.uint8)
    return a, b


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    a, _ = _noisy_pair(0)
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == 1.0
    flat = np.full((20, 20, 3), 77, np.uint8)
    assert ssim(flat, flat) == 1.0


def test_psnr_of_a_known_error_is_exact():
    a = np.full((10, 10, 3), 128, np.uint8)
    b = a.copy()
    b[::2] += 5
    b[1::2] -= 5  # every pixel off by exactly 5: MSE 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 25), abs=1e-12)


def test_psnr_of_gaussian_noise_matches_the_analytic_value():
    sigma = 10.0
    rng = np.random.default_rng(1)
    a = np.full((512, 512, 3), 128, np.uint8)  # mid-grey: +-12 sigma before clipping, none occurs
    noise = np.rint(rng.normal(0.0, sigma, a.shape))
    b = (a + noise).astype(np.uint8)
    # Rounding a Gaussian to integers adds ~1/12 of variance (Sheppard's correction).
    expected = 10 * math.log10(255 ** 2 / (sigma ** 2 + 1 / 12))
    assert psnr(a, b) == pytest.approx(expected, abs=0.03)


def test_gaussian_window_is_skimage_11_tap_sigma_1_5():
    w = gaussian_window()
    assert w.shape == (11,) and w.sum() == pytest.approx(1.0)
    assert w[5] / w[4] == pytest.approx(math.exp(1 / (2 * 1.5 ** 2)))


@pytest.mark.parametrize("seed,shape,amplitude", [(0, (48, 64, 3), 60), (1, (11, 11, 3), 20),
                                                  (2, (33, 17, 3), 5), (3, (40, 40), 100)])
def test_ssim_matches_skimage_convention(seed, shape, amplitude):
    skm = pytest.importorskip("skimage.metrics")
    a, b = _noisy_pair(seed, shape, amplitude)
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if len(shape) == 3:
        kwargs["channel_axis"] = -1
    expected = skm.structural_similarity(a, b, **kwargs)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-4)


def _ssim_direct(a, b):
    """Independent oracle: explicit 11x11 Gaussian windows at every valid pixel, no filtering."""
    g = gaussian_window()
    w2 = np.outer(g, g)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)
    vals = []
    for i in range(5, a.shape[0] - 5):
        for j in range(5, a.shape[1] - 5):
            px, py = x[i - 5:i + 6, j - 5:j + 6], y[i - 5:i + 6, j - 5:j + 6]
            mx, my = (w2 * px).sum(), (w2 * py).sum()
            vx, vy = (w2 * (px - mx) ** 2).sum(), (w2 * (py - my) ** 2).sum()
            cxy = (w2 * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return np.mean(vals)


def test_ssim_map_matches_a_direct_windowed_oracle():
    a, b = _noisy_pair(4, (16, 19), 50)
    assert ssim_map(a, b).shape == (6, 9)
    assert ssim(a, b) == pytest.approx(_ssim_direct(a, b), abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), amplitude=st.integers(0, 255))
def test_ssim_is_symmetric_and_at_most_one(seed, amplitude):
    a, b = _noisy_pair(seed, (12, 14, 3), amplitude)
    s = ssim(a, b)
    assert s == pytest.approx(ssim(b, a), abs=1e-12)
    assert -1.0 <= s <= 1.0 + 1e-12


def test_metrics_reject_mismatched_or_non_uint8_images():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        psnr(a, np.zeros((16, 15, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        ssim(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20, 3), np.uint8))


def test_running_mean_keeps_infinite_values():
    m = RunningMean()
    assert math.isnan(m.mean)
    for v in (10.0, 20.0):
        m.add(v)
    assert m.mean == 15.0
    m.add(math.inf)
    assert m.mean == math.inf


def test_psnr_means_count_an_exact_reconstruction_as_the_cap():
    torch = pytest.importorskip("torch")
    from blurgen.deblur.evaluate import evaluate
    from blurgen.deblur.metrics import PSNR_CAP_DB

    m = RunningMean(PSNR_CAP_DB)
    for v in (20.0, math.inf):
        m.add(v)
    assert m.mean == (20.0 + PSNR_CAP_DB) / 2

    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    noisy = np.clip(sharp.astype(int) + rng.integers(-9, 10, sharp.shape), 0, 255).astype(np.uint8)
    scores = evaluate(Identity(), "src", iter([("same", sharp, sharp), ("noisy", noisy, sharp)]))
    row = scores.as_dict()
    assert row["model"]["psnr"] == pytest.approx((PSNR_CAP_DB + psnr(noisy, sharp)) / 2)
