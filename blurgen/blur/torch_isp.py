"""Torch twins of the camera pipeline's stages (``blurgen.blur.raw``) on batches ``(B, C, H, W)``
with per-sample values, for the augmentation on any device and for autograd. Each is tested equal
to the NumPy/Numba stage (tests/blur/test_isp_torch.py).

Imported only by ``blurgen.transforms`` (torch stays out of ``import blurgen``).

Example:
    >>> flat = torch.full((1, 1, 6, 8), 0.3)
    >>> bool(torch.allclose(demosaic(flat, np.array([0])), torch.full((1, 3, 6, 8), 0.3)))
    True
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from blurgen.blur.isp import PATTERN_CHANNELS
from blurgen.blur.raw import _GREEN, _RED_BLUE
from blurgen.blur.torch_stages import decode_curve, encode_curve


def smoothstep(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0.0, 1.0)
    return y * y * (3.0 - 2.0 * y)


def inverse_smoothstep(v: torch.Tensor) -> torch.Tensor:
    return 0.5 - torch.sin(torch.asin((1.0 - 2.0 * v.clamp(0.0, 1.0)).clamp(-1.0, 1.0)) / 3.0)


def camera_decode(v: torch.Tensor, gamma: str) -> torch.Tensor:
    """``blurgen.blur.isp.camera_decode``: output value -> linear light."""
    return decode_curve(inverse_smoothstep(v), gamma)


def camera_encode(x: torch.Tensor, gamma: str) -> torch.Tensor:
    """``blurgen.blur.isp.camera_encode``: linear light -> output value."""
    return smoothstep(encode_curve(x.clamp(0.0, 1.0), gamma))


def _per_sample(values, like: torch.Tensor, shape: tuple) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=like.dtype, device=like.device).reshape(shape)


def unprocess(lin: torch.Tensor, to_raw, light_level, boost) -> torch.Tensor:
    """``raw.unprocess_image`` per sample: ``to_raw`` (B, 3, 3), ``light_level``, ``boost`` (B,)."""
    m = _per_sample(to_raw, lin, (-1, 3, 3))
    light = lin.amax(dim=1, keepdim=True) >= _per_sample(light_level, lin, (-1, 1, 1, 1))
    factor = torch.where(light, _per_sample(boost, lin, (-1, 1, 1, 1)), torch.ones_like(light, dtype=lin.dtype))
    return torch.einsum("bij,bjhw->bihw", m, lin) * factor


def colour_masks(patterns, height: int, width: int, device, dtype, offset: int = 0) -> torch.Tensor:
    """One-hot colour filter layout (B, 3, H, W) of Bayer patterns ``patterns`` (B,) indices;
    row/column i shows pixel i + ``offset`` (-1 for a plane padded by one pixel: mirroring keeps
    the parity, so pixel -1 has pixel 1's colour)."""
    tiles = torch.as_tensor(PATTERN_CHANNELS[np.asarray(patterns, np.int64)], device=device)  # (B, 2, 2)
    rows = (torch.arange(height, device=device) + offset) % 2
    cols = (torch.arange(width, device=device) + offset) % 2
    layout = tiles[:, rows][:, :, cols]
    return F.one_hot(layout, 3).permute(0, 3, 1, 2).to(dtype)


def mosaic(raw: torch.Tensor, patterns) -> torch.Tensor:
    """Each pixel's own colour of ``raw`` (B, 3, H, W), clipped to [0, 1]: the plane (B, 1, H, W)."""
    masks = colour_masks(patterns, raw.shape[-2], raw.shape[-1], raw.device, raw.dtype)
    return (raw.clamp(0.0, 1.0) * masks).sum(dim=1, keepdim=True)


def raw_noise(plane: torch.Tensor, shot, read, normals: torch.Tensor | None, bit_depth: int) -> torch.Tensor:
    """``clip(v + sqrt(shot v + read) z)`` (z: ``normals`` reshaped like the plane; none if
    ``None``), quantised to ``bit_depth`` bits (0: not) with a straight-through gradient."""
    v = plane
    if normals is not None:
        a, b = _per_sample(shot, v, (-1, 1, 1, 1)), _per_sample(read, v, (-1, 1, 1, 1))
        v = (v + torch.sqrt((a * v + b).clamp_min(0.0)) * normals.reshape(v.shape).to(v.dtype)).clamp(0.0, 1.0)
    if bit_depth:
        levels = float(2 ** bit_depth - 1)
        v = v + (torch.floor(v * levels + 0.5) / levels - v).detach()
    return v


def demosaic(plane: torch.Tensor, patterns, gains=None) -> torch.Tensor:
    """``raw.demosaic`` per sample: bilinear demosaicing of (B, 1, H, W) planes into (B, 3, H, W),
    after ``min(plane * gains[colour], 1)`` if ``gains`` (B, 3) are given. Differentiable."""
    h, w = plane.shape[-2:]
    if gains is not None:
        masks = colour_masks(patterns, h, w, plane.device, plane.dtype)
        gain_map = (masks * _per_sample(gains, plane, (-1, 3, 1, 1))).sum(dim=1, keepdim=True)
        plane = (plane * gain_map).clamp_max(1.0)
    padded = F.pad(plane, (1, 1, 1, 1), mode="reflect")
    masks = colour_masks(patterns, h + 2, w + 2, plane.device, plane.dtype, offset=-1)
    kernels = torch.from_numpy(np.stack([_RED_BLUE, _GREEN, _RED_BLUE])[:, None]).to(plane.device, plane.dtype)
    return F.conv2d(padded * masks, kernels, groups=3)


def develop(rgb: torch.Tensor, gains, to_rgb) -> torch.Tensor:
    """``raw.develop_image``: clip, times ``gains`` (B, 3), clip at 1, ``to_rgb`` (B, 3, 3), clip."""
    balanced = (rgb.clamp(0.0, 1.0) * _per_sample(gains, rgb, (-1, 3, 1, 1))).clamp_max(1.0)
    return torch.einsum("bij,bjhw->bihw", _per_sample(to_rgb, rgb, (-1, 3, 3)), balanced).clamp(0.0, 1.0)
