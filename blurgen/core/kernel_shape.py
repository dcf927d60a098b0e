"""Where a kernel's weight lies: its support about the centre pixel, and the symmetric crop to it.

NumPy only (no Numba), so kernel banks load without the JIT; ``blurgen.motion.walk`` exports both.
"""

from __future__ import annotations

import numpy as np


def support_radius(kernel: np.ndarray) -> int:
    """Smallest r such that all non-zero weight of ``kernel`` ((k, k) or (n, k, k)) lies within
    r pixels (Chebyshev) of the centre pixel."""
    k = np.asarray(kernel)
    size = k.shape[-1]
    centre = (size - 1) // 2
    nz = np.any(k.reshape(-1, size, size) != 0, axis=0)
    rows, cols = np.nonzero(nz)
    if rows.size == 0:
        return 0
    return int(max(np.abs(rows - centre).max(), np.abs(cols - centre).max()))


def crop_to_support(kernel: np.ndarray) -> np.ndarray:
    """Crop ``kernel`` ((k, k) or (n, k, k)) symmetrically about its centre to its support.

    Symmetric, so the centre pixel stays the centre and a blur with the cropped kernel is not
    shifted against one with the full kernel.
    """
    k = np.asarray(kernel)
    size = k.shape[-1]
    if k.shape[-2] != size or size % 2 == 0:
        raise ValueError(f"kernel must be square with an odd side, got shape {k.shape}")
    centre = (size - 1) // 2
    r = support_radius(k)
    return k[..., centre - r:centre + r + 1, centre - r:centre + r + 1]


def check_kernel_values(kernels: np.ndarray, what: str = "kernels") -> np.ndarray:
    """``kernels`` as float32 if every weight is a finite, real, non-negative number (also once
    in float32) and each kernel (the last two axes) has a positive sum; else ``ValueError`` naming
    what was found.

    Example:
        >>> check_kernel_values(np.array([[[0.0, 1.0, 0.0]] * 3])).dtype
        dtype('float32')
        >>> check_kernel_values(np.zeros((1, 3, 3)))
        Traceback (most recent call last):
        ValueError: kernels must be finite, real, non-negative with a positive sum; kernel 0 sums to 0
    """
    k = np.asarray(kernels)
    rule = f"{what} must be finite, real, non-negative with a positive sum"
    if k.dtype.kind not in "biuf":
        raise ValueError(f"{rule}; got values of type {k.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        k32 = k.astype(np.float32)
    if k.size and not np.isfinite(k32).all():
        bad = "NaN" if np.isnan(k).any() else "infinite" if np.isinf(k).any() else "beyond float32 (> 3.4e38)"
        raise ValueError(f"{rule}; got {bad} weights")
    if k.size and float(k32.min()) < 0:
        raise ValueError(f"{rule}; got a negative weight ({float(k32.min()):.3g})")
    sums = k32.reshape(-1, *k32.shape[-2:]).sum(axis=(1, 2), dtype=np.float64) if k32.ndim >= 2 else k32
    for i, total in enumerate(np.atleast_1d(sums)):
        if not np.isfinite(total) or total <= 0:
            raise ValueError(f"{rule}; kernel {i} sums to {float(total):.6g}")
    return k32
