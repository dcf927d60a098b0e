"""Torch twins of the camera stages (``blurgen.blur``) that the augmentation runs on tensors: the
transfer curves, the valid convolution by FFT and its direct/FFT rule, and the sensor noise given
its normals. Each is tested equal to the NumPy/Numba stage on the same inputs (within 1e-5).

Imported only by ``blurgen.transforms`` (torch stays out of ``import blurgen``).

Example:
    >>> x = torch.linspace(0, 1, 5, dtype=torch.float64)
    >>> bool(torch.allclose(encode_curve(decode_curve(x, "srgb"), "srgb"), x))
    True
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.fft import next_fast_len

from blurgen.blur.convolve import DIRECT_MAX_TAPS

#: Convolution methods: ``"direct"`` (sum over the kernel's non-zero taps) or ``"fft"``;
#: ``"auto"`` picks direct up to ``DIRECT_MAX_TAPS`` taps (the dataset's rule).
METHODS = ("auto", "direct", "fft")


def decode_curve(v: torch.Tensor, gamma: str) -> torch.Tensor:
    """``blurgen.blur.curves.decode_curve`` on tensors: sRGB-encoded [0, 1] -> linear light
    (differentiable: the pow branches are clamped so their gradient stays finite)."""
    if gamma == "2.2":
        return v.clamp_min(0.0) ** 2.2
    return torch.where(v <= 0.04045, v / 12.92, ((v.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def encode_curve(x: torch.Tensor, gamma: str) -> torch.Tensor:
    """``blurgen.blur.curves.encode_curve`` on tensors: linear light [0, 1] -> sRGB-encoded."""
    if gamma == "2.2":
        return x.clamp_min(1e-12) ** (1 / 2.2) * (x > 0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def most_taps(kernels: np.ndarray) -> int:
    """The largest number of non-zero taps among ``kernels`` ``(N, K, K)``."""
    return int(np.count_nonzero(kernels.reshape(len(kernels), -1), axis=1).max(initial=0))


def pick_method(kernels: np.ndarray, method: str, direct_ok: bool = True) -> str:
    """``"direct"`` or ``"fft"`` for ``method`` (``"taps"`` is the old word for ``"direct"``):
    ``"auto"`` is direct when possible and every kernel has at most ``DIRECT_MAX_TAPS`` taps."""
    if method == "taps":
        method = "direct"
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        return "direct" if direct_ok and most_taps(kernels) <= DIRECT_MAX_TAPS else "fft"
    return method


def convolve_fft(src: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Valid convolution of ``src`` ``(N, C, Hs, Ws)`` with one kernel per sample ``(N, K, K)`` by
    real FFTs of a fast size >= the source (the circular convolution equals the linear one on
    the valid region, where the kernel does not wrap). Differentiable."""
    hs, ws = src.shape[-2:]
    size = kernels.shape[-1]
    shape = (next_fast_len(hs, real=True), next_fast_len(ws, real=True))
    spectrum = torch.fft.rfft2(src, s=shape) * torch.fft.rfft2(kernels, s=shape)[:, None]
    full = torch.fft.irfft2(spectrum, s=shape)
    return full[..., size - 1:hs, size - 1:ws]


def add_noise(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``x + sqrt(max(a x + b, 0)) z``: the sensor noise of ``blurgen.blur.noise`` given its
    standard normals ``z`` (same shape as ``x``; ``a``, ``b`` broadcast against it). Not clipped."""
    return x + torch.sqrt((a * x + b).clamp_min(0.0)) * z
