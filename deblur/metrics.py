"""Image quality metrics on uint8 RGB images, in the conventions deblurring papers report.

- PSNR: ``10 log10(255^2 / MSE)`` over all pixels and channels of uint8 images (data range 255);
  identical images give ``inf``.
- SSIM: scikit-image's ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``: an 11x11 Gaussian window
  (σ = 1.5, truncated at 3.5σ), K1 = 0.01, K2 = 0.03, population (not sample) covariances, the
  SSIM map averaged over the pixels at least 5 from every border, then over the channels.

Implemented with numpy/scipy only (no skimage, no torch) so it runs anywhere; float64 throughout,
as skimage does, so the results agree to ~1e-12.

>>> import numpy as np
>>> a = np.full((16, 16, 3), 100, np.uint8)
>>> psnr(a, a), ssim(a, a)
(inf, 1.0)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # skimage's (and scipy.ndimage.gaussian_filter's) truncation for this window
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"expected uint8 images (data range 255), got {a.dtype} and {b.dtype}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape (any layout, e.g. HWC RGB).

    ``inf`` when they are identical.
    """
    a, b = _check_pair(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE * DATA_RANGE / mse)


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """Normalised 1-D Gaussian taps, float64 ``(2r + 1,)`` with ``r = int(truncate * sigma + 0.5)``
    (11 taps for σ = 1.5), the same taps ``scipy.ndimage.gaussian_filter`` uses."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    # Separable Gaussian over H then W. The border mode does not matter: only pixels whose whole
    # window lies inside the image are kept by ssim_map's crop.
    return correlate1d(correlate1d(x, taps, axis=0, mode="reflect"), taps, axis=1, mode="reflect")


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two single-channel uint8 ``(H, W)`` images, float64
    ``(H - 10, W - 10)``: the pixels whose 11x11 window lies inside the image."""
    a, b = _check_pair(a, b)
    taps = gaussian_window()
    pad = (len(taps) - 1) // 2
    if a.ndim != 2:
        raise ValueError(f"expected a (H, W) channel, got shape {a.shape}")
    if min(a.shape) < len(taps):
        raise ValueError(f"SSIM needs images of at least {len(taps)}x{len(taps)} pixels, got {a.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    mu_x, mu_y = _filter(x, taps), _filter(y, taps)
    # Population (not sample) covariances: use_sample_covariance=False.
    var_x = _filter(x * x, taps) - mu_x * mu_x
    var_y = _filter(y * y, taps) - mu_y * mu_y
    cov = _filter(x * y, taps) - mu_x * mu_y
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s[pad:-pad, pad:-pad]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 images, ``(H, W)`` or ``(H, W, C)`` (HWC, e.g. RGB), averaged over
    the valid pixels and then over the channels (skimage's ``channel_axis=-1``). H, W >= 11.
    Identical images give exactly 1.0."""
    a, b = _check_pair(a, b)
    if a.ndim == 2:
        return float(ssim_map(a, b).mean())
    if a.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) images, got shape {a.shape}")
    return float(np.mean([ssim_map(a[..., c], b[..., c]).mean() for c in range(a.shape[-1])]))


#: PSNR that an exact reconstruction (``inf``) counts as in means (eval tables, training's
#: validation): one identical pair would otherwise make a whole source's mean ``inf``.
PSNR_CAP_DB = 100.0


class RunningMean:
    """Mean of a stream of per-image values (e.g. PSNR over a test set). Every value counts;
    values above ``cap`` count as ``cap`` (``PSNR_CAP_DB`` for PSNR, so an exact reconstruction
    neither hides the other images behind ``inf`` nor is dropped)."""

    def __init__(self, cap: float = math.inf) -> None:
        self.total = 0.0
        self.count = 0
        self.cap = cap

    def add(self, value: float) -> None:
        self.total += min(float(value), self.cap)
        self.count += 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan
