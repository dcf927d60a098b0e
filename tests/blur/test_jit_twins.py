"""The blur model's and the dead-leaves painter's Numba kernels against independent twins (scipy's
convolution, a plain numpy port of the noise stream, the exact transfer curves), on small inputs
so that ``tests/project/test_nojit.py`` can run this file again with ``NUMBA_DISABLE_JIT=1``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve

from blurgen.blur import blur_linear, linear_to_srgb, noisy_to_srgb, srgb_to_linear
from blurgen.blur.curves import encode_curve
from blurgen.core._rng import normal_table
from blurgen.reference.streams import noise_normals
from blurgen.sources.deadleaves import dead_leaves


def _normals(key: int, n: int) -> np.ndarray:
    return noise_normals(key, n, normal_table(12))


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("size", [1, 3, 7])
def test_valid_convolution_equals_scipys(method, size):
    rng = np.random.default_rng(size)
    image = rng.random((11 + size, 9 + size, 3), dtype=np.float32)
    kernel = rng.random((size, size), dtype=np.float32) * (rng.random((size, size)) < 0.6)
    kernel[size // 2, size // 2] += 0.1  # never all zero
    expected = np.stack([convolve(image[:, :, c].astype(np.float64), kernel.astype(np.float64), mode="valid")
                         for c in range(3)], axis=-1)
    got = blur_linear(image, kernel, method=method)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-5)


def test_encoding_is_the_exact_curve_rounded_within_one_code_value():
    x = np.linspace(-0.1, 1.1, 997, dtype=np.float32)
    exact = np.round(encode_curve(np.clip(x.astype(np.float64), 0, 1), "srgb") * 255)
    assert np.abs(linear_to_srgb(x).astype(int) - exact).max() <= 1
    codes = np.arange(256, dtype=np.uint8)
    assert (linear_to_srgb(srgb_to_linear(codes)) == codes).all()


def test_gaussian_noise_equals_a_plain_port_of_its_stream():
    rng = np.random.default_rng(5)
    clean = rng.random((4, 6, 3), dtype=np.float32) * 1.2
    a, b, gain = 2e-3, 1e-4, 1.25
    key = int(np.random.default_rng(9).integers(0, 2**63, dtype=np.int64))  # what noisy_to_srgb draws
    got = noisy_to_srgb(clean, a, b, np.random.default_rng(9), gain=gain, clip=True)
    x = np.clip(clean.reshape(-1) * np.float32(gain), 0, 1)
    noisy = x + np.sqrt(np.maximum(np.float32(a) * x + np.float32(b), 0)) * _normals(key, x.size)
    expected = np.round(encode_curve(np.clip(noisy.astype(np.float64), 0, 1), "srgb") * 255)
    assert np.abs(got.reshape(-1).astype(int) - expected).max() <= 1


def test_dead_leaves_window_and_determinism_laws():
    full = dead_leaves(24, 30, np.random.default_rng(4))
    assert full.shape == (24, 30, 3) and full.dtype == np.uint8
    assert np.array_equal(full, dead_leaves(24, 30, np.random.default_rng(4)))
    part = dead_leaves(24, 30, np.random.default_rng(4), window=(3, 5, 10, 12))
    assert np.array_equal(part, full[3:13, 5:17])
    assert len(np.unique(full.reshape(-1, 3), axis=0)) > 8  # several leaves, not one colour
