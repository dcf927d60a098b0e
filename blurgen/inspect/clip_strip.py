"""Frame strips of a clips file (schema 3): per clip a row of blurred frames over a row of sharp ones.

Example:
    >>> blurred = np.zeros((2, 3, 8, 10, 3), np.uint8); sharp = np.full_like(blurred, 255)
    >>> clip_strip(blurred, sharp, gap=2).shape
    (40, 34, 3)
"""

from __future__ import annotations

import numpy as np

from blurgen.store.reader import PairsFile


def clip_strip(blurred: np.ndarray, sharp: np.ndarray, gap: int = 4, background: int = 40) -> np.ndarray:
    """uint8 RGB picture of clips ``(n, T, H, W, 3)``: for each clip the blurred frames left to
    right, the sharp frames under them, clips separated by a double gap."""
    n, t, h, w, _ = blurred.shape
    rows = []
    for i in range(n):
        for frames in (blurred[i], sharp[i]):
            row = np.full((h, t * w + (t - 1) * gap, 3), background, np.uint8)
            for j in range(t):
                row[:, j * (w + gap):j * (w + gap) + w] = frames[j]
            rows.append(row)
            rows.append(np.full((gap, row.shape[1], 3), background, np.uint8))
        rows.append(np.full((gap, rows[-1].shape[1], 3), background, np.uint8))
    return np.concatenate(rows[:-2], axis=0)


def strip_from_file(path: str, clips: int = 3, frames: int = 8) -> np.ndarray:
    """``clip_strip`` of the first ``clips`` clips (first ``frames`` frames each) of a clips file,
    with a title saying what it shows (clip settings) and what each row is."""
    import os

    from blurgen.inspect.preview import caption

    with PairsFile(path) as f:
        if f.frames is None:
            raise ValueError(f"{path} is a pairs file, not a clips file")
        n = min(clips, len(f))
        blurred, sharp, _ = f[0:n]
        settings = f.attrs.get("config_dict", {}).get("clips", {})
    shown = min(frames, blurred.shape[1])
    title = (f"clips 0-{n - 1}, frames 0-{shown - 1}: blurred over sharp, {settings.get('fps', 0):g} fps, "
             f"shutter {settings.get('shutter_angle', 0):g} deg ({os.path.basename(path)})")
    return caption(clip_strip(blurred[:, :frames], sharp[:, :frames]), title)
