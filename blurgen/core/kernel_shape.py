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
