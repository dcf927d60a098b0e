"""Issue 23, round 3 review: the augmentation's kernel checks (F7) and regressions found by the
adversarial pass over this wave's surfaces (docs/adversarial-pass-wave3.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blurgen.transforms import camera_shake

_DELTA = np.zeros((1, 5, 5), np.float64)
_DELTA[0, 2, 2] = 1.0
_BAD_KERNELS = {
    "NaN": np.full((1, 5, 5), np.nan),
    "infinite": np.full((1, 5, 5), np.inf),
    "beyond float32": _DELTA * 1e308,
    "sums to 0": np.zeros((1, 5, 5)),
    "sums to 0 in float32": _DELTA * 1e-300,
    "negative": -_DELTA,
    "complex128": _DELTA.astype(complex),
    "object": _DELTA.astype(object),
    "complex64": torch.from_numpy(_DELTA).to(torch.complex64),
}


@pytest.mark.parametrize("dtype,method", [(torch.float32, "auto"), (torch.float32, "direct"),
                                          (torch.float32, "fft"), (torch.float64, "auto"), (torch.float64, "fft")])
@pytest.mark.parametrize("found", sorted(_BAD_KERNELS))
def test_camera_shake_refuses_bad_kernels_on_every_path(found, dtype, method):
    x = torch.rand(1, 3, 12, 12, dtype=dtype)
    with pytest.raises(ValueError, match="finite, real, non-negative with a positive sum") as err:
        camera_shake(x, _BAD_KERNELS[found], method=method)
    assert found.split()[0] in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("dtype,method", [(torch.float32, "direct"), (torch.float32, "fft"), (torch.float64, "fft")])
def test_camera_shake_nan_input_is_refused_on_every_path(dtype, method):
    x = torch.rand(1, 3, 12, 12, dtype=dtype)
    x[0, 1, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        camera_shake(x, _DELTA, method=method)
    with pytest.raises(ValueError, match="NaN"):
        camera_shake(x, _DELTA, gamma=None, method=method)


def test_camera_shake_still_takes_integer_and_unnormalised_kernels():
    x = torch.rand(2, 3, 12, 12)
    k = np.zeros((2, 3, 3), np.int64)
    k[:, 1, 1] = 1
    assert torch.allclose(camera_shake(x, k, gamma=None), x)
    assert torch.allclose(camera_shake(x, k.astype(bool), gamma=None), x)
