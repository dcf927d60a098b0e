"""One image formation: the augmentation's torch stages equal the dataset's NumPy/Numba stages on
the same inputs (curves, sensor noise given the same normals, valid convolution), within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from blurgen.blur import torch_stages as ts  # noqa: E402
from blurgen.blur.convolve import DIRECT_MAX_TAPS, convolve_valid  # noqa: E402
from blurgen.blur.curves import GAMMAS, decode_curve, encode_curve  # noqa: E402
from blurgen.blur.noise import add_noise_with  # noqa: E402
from blurgen.motion.api import random_kernels  # noqa: E402
from blurgen.transforms import _torch_ops as ops  # noqa: E402


@pytest.mark.parametrize("gamma", GAMMAS)
def test_torch_curves_equal_the_dataset_curves(gamma):
    v = np.linspace(0.0, 1.0, 4097)
    np.testing.assert_allclose(ts.decode_curve(torch.from_numpy(v), gamma).numpy(), decode_curve(v, gamma),
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(ts.encode_curve(torch.from_numpy(v), gamma).numpy(), encode_curve(v, gamma),
                               rtol=0, atol=1e-5)


def test_torch_noise_equals_the_dataset_noise_given_the_same_normals():
    rng = np.random.default_rng(0)
    lin = rng.random((2, 3, 17, 19), dtype=np.float32)
    z = rng.standard_normal(lin.shape).astype(np.float32)
    for a, b in [(1e-3, 1e-6), (0.05, 0.01), (0.0, 0.0)]:
        expected = add_noise_with(lin, a, b, z)
        got = ts.add_noise(torch.from_numpy(lin), torch.tensor(a), torch.tensor(b), torch.from_numpy(z)).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        assert a == 0 or np.abs(expected - lin).max() > 1e-3  # the noise is there


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_torch_convolution_equals_the_dataset_convolution(method):
    kernels = random_kernels(3, size=21, seed=5, length_px=15.0)
    src = np.random.default_rng(1).random((3, 40, 44, 3), dtype=np.float32)  # HWC, as the dataset
    expected = np.stack([convolve_valid(src[i], kernels[i], "direct") for i in range(3)])
    got = ops.convolve_valid(torch.from_numpy(src).permute(0, 3, 1, 2).contiguous(), kernels, method)
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), expected, rtol=0, atol=1e-5)
    dataset_fft = np.stack([convolve_valid(src[i], kernels[i], "fft") for i in range(3)])
    np.testing.assert_allclose(dataset_fft, expected, rtol=0, atol=1e-5)


def test_one_direct_or_fft_rule_for_the_dataset_and_the_augmentation():
    thin = np.zeros((1, 31, 31), np.float32)
    thin[0, 15, :] = 1 / 31
    dense = np.full((1, 31, 31), 1 / 961, np.float32)
    assert DIRECT_MAX_TAPS == 400
    assert ts.pick_method(thin, "auto") == "direct" and ts.pick_method(dense, "auto") == "fft"
    assert ts.pick_method(thin, "taps") == "direct"  # the older word
    x = torch.rand(1, 3, 8, 8)
    assert ops.fused_ok(x, thin, "auto") and not ops.fused_ok(x, dense, "auto")
    assert not ops.fused_ok(x.double(), thin, "auto")
