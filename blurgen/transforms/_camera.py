"""The augmentation's camera pipeline (``RandomCameraShake(pipeline="camera")``): the stages of
``blurgen.blur.raw`` on a batch, by their Numba kernels on the CPU (float32, no gradient needed)
and by their torch twins (``blurgen.blur.torch_isp``) elsewhere; the same values either way
(tests/blur/test_isp_torch.py). Per-image values come from ``blurgen.blur.isp.draw_isp_params`` on
counter-based uniforms, so they depend on ``(seed, index)`` alone.
"""

from __future__ import annotations

import numpy as np
import torch

from blurgen.blur import _isp_jit as jit
from blurgen.blur import torch_isp
from blurgen.blur.isp import (
    N_UNIFORMS,
    PATTERN_CHANNELS,
    IspConfig,
    camera_decode,
    camera_decode_table,
    camera_encode_table,
    draw_isp_params,
)
from blurgen.blur.model import BlurConfig
from blurgen.blur.raw import bilinear_kinds
from blurgen.core.streams import sample_bits, to_uniform
from blurgen.transforms import _torch_ops as ops

TAG_CAMERA = 0x524157  # "RAW": the camera pipeline's draws


def draw(seed: int, indices: np.ndarray, gamma: str, noise: bool, isp: IspConfig) -> dict:
    """The camera values of samples ``indices`` (``draw_isp_params``) plus what the stages take:
    ``to_raw``, ``to_rgb`` (n, 3, 3), ``gains`` (n, 3), ``light_level`` (n,), ``noise_key``."""
    bits = sample_bits(seed, indices, TAG_CAMERA, N_UNIFORMS + 1)
    blur = BlurConfig(gamma=gamma, noise="gaussian" if noise else "off")
    p = draw_isp_params(to_uniform(bits[:, :N_UNIFORMS]), blur, isp)
    g = p["digital_gain"].astype(np.float64)
    gains = np.stack([g * p["wb_red"], g, g * p["wb_blue"]], axis=1)
    ccm = p["ccm"].astype(np.float64)
    p["gains"] = gains.astype(np.float32)
    p["to_raw"] = (ccm / gains[:, :, None]).astype(np.float32)
    p["to_rgb"] = np.linalg.inv(ccm).astype(np.float32)
    threshold = p["light_threshold"].astype(np.float64)
    p["light_level"] = np.where(threshold <= 1.0, camera_decode(np.minimum(threshold, 1.0), gamma), np.inf
                                ).astype(np.float32)
    key = bits[:, N_UNIFORMS]
    p["noise_key"] = np.stack([key & np.uint64(0xFFFFFFFF), key >> np.uint64(32)], axis=1)
    return p


def _normals(p: dict, n: int, count: int, device, noise: bool):
    return ops.sample_normals(p["noise_key"], count, device) if noise else None


def camera_fused(x: torch.Tensor, kernels: np.ndarray, p: dict, gamma: str, noise: bool, isp: IspConfig,
                 method: str) -> torch.Tensor:
    """The pipeline on float32 CPU ``(n, 3, H, W)`` by the Numba kernels (no gradient)."""
    n, _, h, w = x.shape
    src = x.detach().contiguous().numpy()
    raw = np.empty_like(src)
    lights = np.empty(n, np.int64)
    with ops._numba_threads(torch.get_num_threads()) as parallel:
        jit.FRONT.run(parallel, src, camera_decode_table(gamma), p["to_raw"], p["light_level"], p["light_boost"],
                      raw, lights)
    blurred = ops.convolve_valid(ops.reflect_pad(torch.from_numpy(raw), kernels.shape[-1] // 2), kernels, method)
    z = _normals(p, n, h * w, x.device, noise)
    z = np.empty((n, 0), np.float32) if z is None else z.numpy()
    out = np.empty_like(src)
    clipped = np.empty(n, np.int64)
    patterns = PATTERN_CHANNELS[p["bayer_pattern"]]
    kinds = np.stack([bilinear_kinds(int(i)) for i in p["bayer_pattern"]])
    with ops._numba_threads(torch.get_num_threads()) as parallel:
        jit.BACK.run(parallel, blurred.detach().contiguous().numpy(), patterns, kinds, p["noise_a"], p["noise_b"],
                     z, np.float32(2 ** isp.bit_depth - 1), p["gains"], p["to_rgb"], camera_encode_table(gamma),
                     out, clipped)
    p["clipped_share"] = (clipped / (h * w)).astype(np.float32)
    return torch.from_numpy(out)


def camera_torch(x: torch.Tensor, kernels: np.ndarray, p: dict, gamma: str, noise: bool, isp: IspConfig,
                 method: str) -> torch.Tensor:
    """The pipeline by the torch twins (any device and dtype; differentiable, the quantisation
    straight-through)."""
    n, _, h, w = x.shape
    raw = torch_isp.unprocess(torch_isp.camera_decode(x, gamma), p["to_raw"], p["light_level"], p["light_boost"])
    blurred = ops.convolve_valid(ops.reflect_pad(raw, kernels.shape[-1] // 2), kernels, method)
    p["clipped_share"] = ((blurred.detach() > 1).any(dim=1).flatten(1).float().mean(dim=1)).cpu().numpy()
    plane = torch_isp.mosaic(blurred, p["bayer_pattern"])
    plane = torch_isp.raw_noise(plane, p["noise_a"], p["noise_b"], _normals(p, n, h * w, x.device, noise),
                                isp.bit_depth)
    rgb = torch_isp.demosaic(plane, p["bayer_pattern"], p["gains"])
    ones = np.ones((n, 3), np.float32)
    return torch_isp.camera_encode(torch_isp.develop(rgb, ones, p["to_rgb"]), gamma)


def camera(x: torch.Tensor, kernels: np.ndarray, p: dict, gamma: str, noise: bool, isp: IspConfig,
           method: str) -> torch.Tensor:
    """The pipeline on ``(n, 3, H, W)`` in [0, 1]: Numba on float32 CPU tensors that need no
    gradient, torch ops otherwise; returned in the input's dtype."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and not (torch.is_grad_enabled() and x.requires_grad):
        return camera_fused(x, kernels, p, gamma, noise, isp, method)
    work = x if x.dtype == torch.float64 else x.float()
    return camera_torch(work, kernels, p, gamma, noise, isp, method).to(x.dtype)
