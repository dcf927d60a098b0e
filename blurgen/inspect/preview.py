"""Pictures a person can look at: kernel tiles and contact sheets (uint8 RGB arrays)."""

from __future__ import annotations

import os

import numpy as np


def kernel_tile(kernel: np.ndarray, scale: int = 1, gamma: float = 0.5) -> np.ndarray:
    """Render a kernel (k, k) as uint8 RGB (k*scale, k*scale, 3), brightest weight white.

    ``gamma`` < 1 lifts faint tails so the whole path is visible. Weights a damaged file may hold
    (NaN, infinite, negative) are drawn black.
    """
    k = np.asarray(kernel, dtype=np.float64)
    k = np.where(np.isfinite(k) & (k > 0), k, 0.0)
    peak = k.max(initial=0.0)
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


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    if image.shape[0] == height:
        return image
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    interp = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_NEAREST
    return cv2.resize(image, (width, height), interpolation=interp)


def pairs_sheet(samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], max_height: int = 256,
                gap: int = 4, background: int = 48) -> np.ndarray:
    """One row per sample: blurred | sharp | kernel, as a uint8 RGB (H, W, 3) picture.

    ``samples`` holds ``(blurred uint8 (H, W, 3), sharp uint8 (H, W, 3), kernel float32 (k, k))``;
    images taller than ``max_height`` are shrunk, the kernel is enlarged by whole pixels to about
    the row height.
    """
    if not samples:
        raise ValueError("pairs_sheet needs at least one sample")
    row_h = min(max_height, samples[0][0].shape[0])
    rows = []
    for blurred, sharp, kernel in samples:
        tile = kernel_tile(kernel, scale=max(1, -(-row_h // kernel.shape[0])))  # then shrunk to fit
        tile = _fit_height(tile, row_h) if tile.shape[0] > row_h else tile
        pad = row_h - tile.shape[0]
        tile = np.pad(tile, ((pad // 2, pad - pad // 2), (0, 0), (0, 0)), constant_values=0)
        pieces = [_fit_height(blurred, row_h), _fit_height(sharp, row_h), tile]
        spacer = np.full((row_h, gap, 3), background, np.uint8)
        rows.append(np.concatenate([pieces[0], spacer, pieces[1], spacer, pieces[2]], axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.full((len(rows) * (row_h + gap) + gap, width + 2 * gap, 3), background, np.uint8)
    for i, row in enumerate(rows):
        y = gap + i * (row_h + gap)
        sheet[y:y + row_h, gap:gap + row.shape[1]] = row
    return sheet


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of uint8 RGB ``image`` with ``text`` written in its top-left corner (white on black)."""
    import cv2

    out = np.ascontiguousarray(image).copy()
    scale = max(0.3, min(0.5, out.shape[1] / 800))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    out[:h + base + 4, :min(out.shape[1], w + 4)] = 0
    cv2.putText(out, text, (2, h + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _camera_caption(params, i: int) -> str:
    """The camera pipeline's noise and saturation values of sample i, short."""
    return (f"shot {params['noise_a'][i]:.1e} read {params['noise_b'][i]:.1e} "
            f"lights {params['light_share'][i]:.1%} clip {params['clipped_share'][i]:.1%}")


def sample_rows(h5, count: int, n_available: int) -> list[tuple[np.ndarray, ...]]:
    """Up to ``count`` samples spread evenly over the first ``n_available`` of an open file; a
    camera-pipeline file's blurred images carry their noise and saturation values."""
    picks = np.unique(np.linspace(0, n_available - 1, num=min(count, n_available)).round().astype(int))
    params = h5["params"] if "params" in h5 and "clipped_share" in h5["params"] else None
    return [(h5["blurred"][i] if params is None else caption(h5["blurred"][i], _camera_caption(params, i)),
             h5["sharp"][i], h5["kernel"][i]) for i in picks]


def sheet_from_file(path: str, count: int = 8) -> np.ndarray:
    """Contact sheet of a pairs file (or of a part file); raises PairsFileError / ValueError."""
    import h5py

    from blurgen.store.schema import attr, open_checked, reading

    if path.endswith(".h5") and os.path.basename(path).startswith("block-"):
        with reading(path, "unreadable part file"), h5py.File(path, "r") as h5:
            return pairs_sheet(sample_rows(h5, count, h5["blurred"].shape[0]))
    with open_checked(path) as h5, reading(path, "damaged HDF5 data"):
        n_written = int(attr(h5, "n_written"))
        if n_written == 0:
            raise ValueError(f"{path} has no complete samples to show")
        return pairs_sheet(sample_rows(h5, count, n_written))


def sheet_from_parts(parts_dir: str, count: int = 8) -> np.ndarray:
    """Contact sheet of the first complete block of a run in progress."""
    from blurgen.runs.folder import RunFolder

    done = RunFolder.at(parts_dir).complete_parts()
    if not done:
        raise ValueError(f"{parts_dir} has no complete block yet")
    return sheet_from_file(done[min(done)], count)
