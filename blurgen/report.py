"""Human-readable reports on pairs files and in-progress runs, and contact sheets of pairs.

Used by ``blurgen inspect`` and ``blurgen make --preview``; library code returns lines of text and
uint8 arrays, the CLI prints and writes them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from blurgen.assemble import finished_with, open_checked, sample_range
from blurgen.pairs_file import PairsFileError, reading
from blurgen.parts import (MANIFEST_NAME, complete_parts, is_locked, part_files, parts_dir_for,
                           plan_blocks, read_manifest)

#: Kernel sums further than this from 1 are reported as problems (float32 sums of ~4000 values).
KERNEL_SUM_TOLERANCE = 1e-3
_SCAN_BLOCK = 1024


def _attr(h5: Any, name: str) -> Any:
    value = h5.attrs.get(name)
    if isinstance(value, bytes):
        value = value.decode()
    return value.item() if isinstance(value, np.generic) else value


def _dataset_line(ds: Any) -> str:
    filters = ds.compression or "uncompressed"
    if ds.compression_opts is not None:
        filters += f" level {ds.compression_opts}"
    return f"  /{ds.name.lstrip('/'):<8} {str(ds.dtype):<8} {ds.shape}  chunks {ds.chunks}  {filters}"


def _scan_problems(h5: Any, n_written: int) -> list[str]:
    """Cheap consistency checks over every complete sample's kernel and parameters."""
    problems = []
    kernel = h5["kernel"]
    bad_sum, negative = [], 0
    for first in range(0, n_written, _SCAN_BLOCK):
        block = kernel[first:min(n_written, first + _SCAN_BLOCK)]
        sums = block.reshape(block.shape[0], -1).sum(axis=1, dtype=np.float64)
        bad_sum.extend((first + np.flatnonzero(np.abs(sums - 1) > KERNEL_SUM_TOLERANCE)).tolist())
        negative += int((block < 0).any(axis=(1, 2)).sum())
    if bad_sum:
        problems.append(f"{len(bad_sum)} kernel(s) do not sum to 1 (first: sample {bad_sum[0]})")
    if negative:
        problems.append(f"{negative} kernel(s) have negative weights")
    for name, ds in h5["params"].items():
        values = ds[:n_written]
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            problems.append(f"/params/{name} has {int((~np.isfinite(values)).sum())} non-finite value(s)")
    start = sample_range(h5)[0]
    seed_index = h5["params"]["seed_index"][:n_written]
    if not np.array_equal(seed_index, np.arange(start, start + n_written)):
        problems.append(f"/params/seed_index is not {start}..{start + n_written - 1} in order")
    return problems


def _param_lines(h5: Any, n_written: int) -> list[str]:
    lines = [f"  {'name':<20} {'dtype':<8} {'min':>12} {'mean':>12} {'max':>12}"]
    for name, ds in sorted(h5["params"].items()):
        values = ds[:n_written]
        if n_written == 0:
            stats = ["-"] * 3
        else:
            as_float = values.astype(np.float64)
            stats = [f"{v:12.6g}" for v in (as_float.min(), as_float.mean(), as_float.max())]
        lines.append(f"  {name:<20} {str(ds.dtype):<8} {stats[0]:>12} {stats[1]:>12} {stats[2]:>12}")
    return lines


def describe_file(path: str) -> tuple[list[str], list[str]]:
    """Report on a pairs file: ``(lines, problems)``. Raises PairsFileError if unreadable."""
    with open_checked(path) as h5, reading(path, "damaged HDF5 data"):
        n_planned, n_written = int(_attr(h5, "n_planned")), int(_attr(h5, "n_written"))
        start, stop, n_total = sample_range(h5)
        state = "complete" if n_written == n_planned else "INCOMPLETE"
        raw = sum(h5[name].size * h5[name].dtype.itemsize for name in ("blurred", "sharp", "kernel"))
        lines = [f"{path}: blurgen pairs file, schema {_attr(h5, 'schema_version')}, "
                 f"blurgen {_attr(h5, 'blurgen_version')}, created {_attr(h5, 'created')}",
                 f"samples: {n_written}/{n_planned} written ({state}), seed {_attr(h5, 'seed')}"]
        if (start, stop) != (0, n_total):
            lines.append(f"shard: {_attr(h5, 'shard_index')}/{_attr(h5, 'shard_count')}, "
                         f"samples {start}..{stop} of {n_total}; join shards with blurgen merge")
        lines.append(f"command: {_attr(h5, 'command')}")
        lines.append(f"config: {_attr(h5, 'config')}")
        lines.append(f"size on disk: {os.path.getsize(path) / 1e6:.1f} MB "
                     f"({os.path.getsize(path) / max(raw, 1):.0%} of the raw arrays)")
        lines.extend(_dataset_line(h5[name]) for name in ("blurred", "sharp", "kernel"))
        lines.append(f"params (over {n_written} samples):")
        lines.extend(_param_lines(h5, n_written))
        problems = _scan_problems(h5, n_written)
        if n_written < n_planned:
            problems.insert(0, f"incomplete: only {n_written} of {n_planned} samples were written")
    return lines, problems


def describe_parts(parts_dir: str) -> tuple[list[str], int, int]:
    """Report on a run in progress or interrupted: ``(lines, n_written, n_planned)``.

    ``n_written`` counts the samples in complete part files. Raises PartsError if the folder is
    not a blurgen parts folder.
    """
    if not os.path.exists(os.path.join(parts_dir, MANIFEST_NAME)):
        return _describe_unmanifested(parts_dir), 0, 0
    manifest = read_manifest(parts_dir)
    blocks = plan_blocks(manifest.sample_start, manifest.sample_stop, manifest.block_size)
    done = complete_parts(parts_dir, blocks)
    sizes = dict(blocks)
    n_written = sum(sizes[s] for s in done)
    running = is_locked(parts_dir)
    out = parts_dir[:-len(".parts")] if parts_dir.endswith(".parts") else parts_dir
    if not running and finished_with(out, manifest.settings()):
        # Killed after the final rename, before the clean-up: nothing is unfinished. No
        # "samples:" line, so the file's count is the one reported.
        return ([f"{parts_dir}: left over by the finished run that wrote {out}; "
                 "blurgen make --resume (same command) removes it"], manifest.n_planned,
                manifest.n_planned)
    how = ("in progress (a blurgen make is writing it)" if running else
           "interrupted; continue with the same blurgen make command plus --resume")
    lines = [f"{parts_dir}: run {how}",
             f"samples: {n_written}/{manifest.n_planned} written ({len(done)} of {len(blocks)} "
             f"blocks of up to {manifest.block_size}); {out} appears when all are done",
             f"seed {manifest.seed}, samples {manifest.sample_start}..{manifest.sample_stop} "
             f"of {manifest.n_total}, blurgen {manifest.blurgen_version}",
             f"config: {json.dumps(manifest.config, sort_keys=True)}"]
    return lines, n_written, manifest.n_planned


def _describe_unmanifested(parts_dir: str) -> list[str]:
    """A parts folder without manifest.json: say what is there (inspect still succeeds)."""
    orphans = part_files(parts_dir)
    if not orphans:
        # A run killed between creating the folder and writing its settings: nothing made yet.
        return [f"{parts_dir}: run interrupted before it recorded its settings; "
                "samples: 0/unknown written; rerun the make command with --resume"]
    # blurgen writes the manifest before any block, so these came from elsewhere (or the
    # manifest was deleted): --resume refuses them, as nothing says which settings made them.
    return [f"{parts_dir}: {len(orphans)} block file(s) but no {MANIFEST_NAME}; settings unknown, "
            "so --resume refuses them; samples: 0/unknown written; start again with --overwrite"]


def resolve_inspect_target(path: str) -> tuple[str | None, str | None]:
    """``(pairs file or None, parts folder or None)`` that ``inspect path`` should report on."""
    path = os.fspath(path).rstrip(os.sep) or os.sep
    if os.path.isdir(path):
        if path.endswith(".parts") or os.path.exists(os.path.join(path, MANIFEST_NAME)):
            return None, path
        raise PairsFileError(f"{path}: a folder that is neither a blurgen pairs file nor a run's "
                             f"parts folder (no {MANIFEST_NAME})")
    parts = parts_dir_for(path)
    return (path if os.path.exists(path) else None), (parts if os.path.isdir(parts) else None)


# ------------------------------------------------------------------------------------- sheets
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
    from blurgen.preview import kernel_tile

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


def sample_rows(h5: Any, count: int, n_available: int) -> list[tuple[np.ndarray, ...]]:
    """Up to ``count`` samples spread evenly over the first ``n_available`` of an open file."""
    picks = np.unique(np.linspace(0, n_available - 1, num=min(count, n_available)).round().astype(int))
    return [(h5["blurred"][i], h5["sharp"][i], h5["kernel"][i]) for i in picks]


def sheet_from_file(path: str, count: int = 8) -> np.ndarray:
    """Contact sheet of a pairs file (or of a part file); raises PairsFileError / ValueError."""
    import h5py

    if path.endswith(".h5") and os.path.basename(path).startswith("block-"):
        with reading(path, "unreadable part file"), h5py.File(path, "r") as h5:
            return pairs_sheet(sample_rows(h5, count, h5["blurred"].shape[0]))
    with open_checked(path) as h5, reading(path, "damaged HDF5 data"):
        n_written = int(_attr(h5, "n_written"))
        if n_written == 0:
            raise ValueError(f"{path} has no complete samples to show")
        return pairs_sheet(sample_rows(h5, count, n_written))


def sheet_from_parts(parts_dir: str, count: int = 8) -> np.ndarray:
    """Contact sheet of the first complete block of a run in progress."""
    manifest = read_manifest(parts_dir)
    done = complete_parts(parts_dir, plan_blocks(manifest.sample_start, manifest.sample_stop,
                                                 manifest.block_size))
    if not done:
        raise ValueError(f"{parts_dir} has no complete block yet")
    return sheet_from_file(done[min(done)], count)
