"""The torch twins of the camera pipeline (blurgen.blur.torch_isp) equal the NumPy/Numba stages,
and RandomCameraShake(pipeline="camera") gives the same images by either path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blurgen.blur import torch_isp
from blurgen.blur.isp import N_UNIFORMS, IspConfig, camera_decode, camera_encode, draw_isp_params, gains_of, matrices_of
from blurgen.blur.model import BlurConfig
from blurgen.blur.raw import demosaic, develop_image, mosaic_image, unprocess_image
from blurgen.transforms import NumpyCameraShake, RandomCameraShake


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].detach().numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("pattern", range(4))
@pytest.mark.parametrize("shape", [(16, 20), (15, 21)])
def test_torch_demosaic_equals_the_numpy_demosaic(pattern, shape):
    rng = np.random.default_rng(pattern)
    plane = rng.random(shape).astype(np.float32)
    gains = np.array([2.1, 1.2, 1.7], np.float32)
    for g in (None, gains):
        ref = demosaic(plane, pattern, g)
        got = torch_isp.demosaic(torch.from_numpy(plane)[None, None], np.array([pattern]),
                                 None if g is None else g[None])
        assert np.abs(_hwc(got) - ref).max() < 1e-6


def test_torch_stages_equal_the_numpy_stages():
    rng = np.random.default_rng(0)
    p = draw_isp_params(rng.random((1, N_UNIFORMS)), BlurConfig(), IspConfig())
    to_raw, to_rgb = matrices_of(p, 0)
    lin = rng.random((12, 14, 3)).astype(np.float32)
    raw, _ = unprocess_image(lin, to_raw, 0.9, 4.0)
    raw_t = torch_isp.unprocess(_chw(lin), to_raw[None], [0.9], [4.0])
    assert np.abs(_hwc(raw_t) - raw).max() < 1e-5
    z = rng.standard_normal(12 * 14).astype(np.float32)
    for bits in (0, 12):
        plane, _ = mosaic_image(raw, 1, 1e-3, 1e-5, z, bits)
        plane_t = torch_isp.raw_noise(torch_isp.mosaic(raw_t, [1]), [1e-3], [1e-5], torch.from_numpy(z), bits)
        assert np.abs(plane_t[0, 0].numpy() - plane).max() < (1e-5 if bits == 0 else 1.5 / 4095)
    rgb = rng.random((12, 14, 3)).astype(np.float32) * 1.2
    out = torch_isp.develop(_chw(rgb), gains_of(p, 0)[None], to_rgb[None])
    assert np.abs(_hwc(out) - develop_image(rgb, gains_of(p, 0), to_rgb)).max() < 1e-6
    v = torch.linspace(0, 1, 257, dtype=torch.float64)
    assert np.abs(torch_isp.camera_decode(v, "srgb").numpy() - camera_decode(v.numpy())).max() < 1e-12
    assert np.abs(torch_isp.camera_encode(v, "2.2").numpy() - camera_encode(v.numpy(), "2.2")).max() < 1e-12


@pytest.mark.parametrize("noise", [False, True])
def test_camera_augmentation_is_the_same_by_numba_and_by_torch(noise):
    x = torch.rand(3, 3, 40, 44, generator=torch.Generator().manual_seed(0))
    shake = RandomCameraShake(p=1.0, seed=5, pipeline="camera", noise=noise)
    fused = shake(x, indices=[0, 1, 2])
    leaf = x.clone().requires_grad_(True)
    twin = shake(leaf, indices=[0, 1, 2])
    twin.sum().backward()
    assert leaf.grad.abs().sum() > 0
    diff = (fused - twin.detach()).abs()
    # Identical but for RAW values on a quantisation boundary (float rounding picks the level).
    assert (diff > 1e-4).float().mean() < 2e-3 and diff.max() < 0.02
    assert not torch.allclose(fused, RandomCameraShake(p=1.0, seed=5, noise=noise)(x, indices=[0, 1, 2]))


def test_camera_augmentation_depends_on_the_index_only_and_checks_its_options():
    x = torch.rand(4, 3, 33, 31, generator=torch.Generator().manual_seed(1))
    shake = RandomCameraShake(p=1.0, seed=2, pipeline="camera", noise=True)
    y, params = shake(x, indices=[7, 8, 9, 10], return_params=True)
    assert torch.equal(shake(x[2:3], indices=[9]), y[2:3])
    assert (params["noise_a"] > 0).all() and (params["noise_b"] > 0).all()
    img = (x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    numpy_shake = NumpyCameraShake(p=1.0, seed=2, pipeline="camera")
    assert np.array_equal(numpy_shake(img, index=3), numpy_shake(img, index=3))
    with pytest.raises(ValueError, match="pipeline"):
        RandomCameraShake(pipeline="raw")
    with pytest.raises(ValueError, match="gamma"):
        RandomCameraShake(pipeline="camera", gamma=None)
    with pytest.raises(ValueError, match="3 channels"):
        RandomCameraShake(p=1.0, pipeline="camera")(torch.rand(1, 1, 20, 20))
