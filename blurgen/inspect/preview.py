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


#: Height of a caption band in pixels, and its text size (OpenCV's Hershey simplex font).
CAPTION_PX, CAPTION_SCALE = 14, 0.38


def caption(image: np.ndarray, text: str, background: int = 24) -> np.ndarray:
    """``image`` with a dark band on top holding ``text`` (one line, cut to fit): labels for
    pictures a person looks at, never for data outputs."""
    import cv2

    band = np.full((CAPTION_PX, image.shape[1], 3), background, np.uint8)
    while text and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE, 1)[0][0] > image.shape[1] - 4:
        text = text[:-2] + "~" if len(text) > 2 else ""
    cv2.putText(band, text, (2, CAPTION_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE, (235, 235, 235), 1,
                cv2.LINE_AA)
    return np.concatenate([band, np.ascontiguousarray(image)], axis=0)


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
                gap: int = 4, background: int = 48, captions: list[str] | None = None,
                title: str = "") -> np.ndarray:
    """One row per sample: blurred | sharp | kernel, as a uint8 RGB (H, W, 3) picture.

    ``samples`` holds ``(blurred uint8 (H, W, 3), sharp uint8 (H, W, 3), kernel float32 (k, k)
    or an RGB picture of kernels)``; images taller than ``max_height`` are shrunk, the kernel is
    enlarged by whole pixels to about the row height. ``captions`` (one per sample) label the
    rows, ``title`` the sheet.
    """
    if not samples:
        raise ValueError("pairs_sheet needs at least one sample")
    row_h = min(max_height, samples[0][0].shape[0])
    rows = []
    for i, (blurred, sharp, kernel) in enumerate(samples):
        tile = kernel if kernel.ndim == 3 else kernel_tile(kernel, scale=max(1, -(-row_h // kernel.shape[0])))
        tile = _fit_height(tile, row_h) if tile.shape[0] > row_h else tile
        pad = row_h - tile.shape[0]
        tile = np.pad(tile, ((pad // 2, pad - pad // 2), (0, 0), (0, 0)), constant_values=0)
        pieces = [_fit_height(blurred, row_h), _fit_height(sharp, row_h), tile]
        spacer = np.full((row_h, gap, 3), background, np.uint8)
        row = np.concatenate([pieces[0], spacer, pieces[1], spacer, pieces[2]], axis=1)
        rows.append(caption(row, captions[i]) if captions else row)
    width = max(r.shape[1] for r in rows)
    height = rows[0].shape[0]
    sheet = np.full((len(rows) * (height + gap) + gap, width + 2 * gap, 3), background, np.uint8)
    for i, row in enumerate(rows):
        y = gap + i * (height + gap)
        sheet[y:y + height, gap:gap + row.shape[1]] = row
    return caption(sheet, title) if title else sheet


def _picks(count: int, n_available: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_available - 1, num=min(count, n_available)).round().astype(int))


def sample_rows(h5, count: int, n_available: int) -> list[tuple[np.ndarray, ...]]:
    """Up to ``count`` samples spread evenly over the first ``n_available`` of an open file."""
    return [(h5["blurred"][i], h5["sharp"][i], h5["kernel"][i]) for i in _picks(count, n_available)]


#: What a row caption says about a sample, from the /params it has: (name, format).
CAPTION_PARAMS = (("exposure_fraction", "exposure {:.2f}"), ("path_length_px", "blur {:.0f} px"),
                  ("exposure_s", "{:.4g} s"), ("focal_35mm", "{:.0f} mm"), ("bank_index", "bank kernel {}"),
                  ("gain", "gain {:.2f}"), ("noise_a", "noise {:.0e}"), ("noise_b", "{:.0e}"),
                  ("light_share", "lights {:.1%}"), ("clipped_share", "clipped {:.1%}"))


def row_captions(h5, count: int, n_available: int) -> list[str]:
    """One line per picked sample: its index and the parameters that describe its blur."""
    params = h5.get("params", {})
    lines = []
    for i in _picks(count, n_available):
        index = int(params["seed_index"][i]) if "seed_index" in params else int(i)
        parts = [f"#{index}"] + [fmt.format(params[name][i]) for name, fmt in CAPTION_PARAMS if name in params]
        if "window_x" in params:
            parts.insert(1, f"at ({int(params['window_x'][i])},{int(params['window_y'][i])})")
        lines.append("  ".join(parts))
    return lines


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
        rows = sample_rows(h5, count, n_written)
        captions = row_captions(h5, count, n_written)
    rows = _window_kernels(path, rows, count, n_written)
    title = f"{os.path.basename(path)}: blurred | sharp | " + ("local kernels across the window"
                                                                if rows and rows[0][2].ndim == 3 else "kernel")
    return pairs_sheet(rows, captions=captions, title=title)


def _window_kernels(path: str, rows: list, count: int, n_written: int) -> list:
    """For a file that stores camera motions, each row's kernel becomes a 3x3 picture of the local
    kernels at the corners, edge midpoints and centre of its window (the blur varies across it)."""
    from blurgen.store.reader import PairsFile

    with PairsFile(path) as f:
        if not f.has_motion:
            return rows
        out = []
        for (blurred, sharp, kernel), i in zip(rows, _picks(count, n_written)):
            out.append((blurred, sharp, window_kernel_grid(f, int(i), blurred.shape[:2], kernel.shape[0])))
        return out


def window_kernel_grid(f, i: int, shape: tuple[int, int], size: int, scale: int = 1) -> np.ndarray:
    """The local kernels of sample ``i`` of an open ``PairsFile`` at 3x3 points of its output
    window, as one RGB picture."""
    from blurgen.camera.kernels import local_kernels
    from blurgen.camera.motion import CameraMotion

    frame = tuple(f.attrs["config_dict"]["camera"]["frame_size"])
    motion = CameraMotion.from_arrays(f.motion_arrays(i), frame)
    x0, y0 = float(f.params["window_x"][i]), float(f.params["window_y"][i])
    h, w = shape
    points = np.array([(x0 + fx * (w - 1), y0 + fy * (h - 1)) for fy in (0, 0.5, 1) for fx in (0, 0.5, 1)])
    kernels = local_kernels(motion, points, size)[0]
    return grid([kernel_tile(k, scale) for k in kernels], columns=3, gap=1, background=24)


def sheet_from_parts(parts_dir: str, count: int = 8) -> np.ndarray:
    """Contact sheet of the first complete block of a run in progress."""
    from blurgen.runs.folder import RunFolder

    done = RunFolder.at(parts_dir).complete_parts()
    if not done:
        raise ValueError(f"{parts_dir} has no complete block yet")
    if not done[min(done)].endswith(".h5"):  # a folders, LMDB or WebDataset run stages tars
        raise ValueError(f"{parts_dir} is a run in progress of PNG images: --png draws its output once it is "
                         "finished (the report above says how far it is)")
    return sheet_from_file(done[min(done)], count)
