"""Pictures a person can look at: kernel tiles and contact sheets (uint8 RGB arrays)."""

from __future__ import annotations

import numpy as np


def kernel_tile(kernel: np.ndarray, scale: int = 1, gamma: float = 0.5) -> np.ndarray:
    """Render a kernel (k, k) as uint8 RGB (k*scale, k*scale, 3), brightest weight white.

    ``gamma`` < 1 lifts faint tails so the whole path is visible.
    """
    k = np.asarray(kernel, dtype=np.float64)
    peak = k.max()
    norm = (k / peak) ** gamma if peak > 0 else np.zeros_like(k)
    tile = np.round(norm * 255).astype(np.uint8)
    if scale > 1:
        tile = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
    return np.repeat(tile[:, :, None], 3, axis=2)


def grid(tiles: list[np.ndarray], columns: int, gap: int = 2, background: int = 64) -> np.ndarray:
    """Lay equally sized uint8 (h, w, 3) tiles on a grid ``columns`` wide with ``gap`` pixels."""
    if not tiles:
        raise ValueError("grid needs at least one tile")
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), background, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        sheet[y:y + h, x:x + w] = tile
    return sheet
