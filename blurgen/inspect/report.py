"""Human-readable reports on pairs files and in-progress runs (``blurgen inspect``).

Library code returns lines of text; the CLI prints them. Every scan reads at most what the file
really stores, in bounded pieces that each decompress every chunk once: a small crafted file that
declares 10^8 samples it never wrote is reported as such, not read as 10^8 fill values.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any, Iterator

import numpy as np

from blurgen.inspect import incomplete_problem
from blurgen.inspect.camera import camera_lines
from blurgen.runs.folder import MANIFEST_NAME, RunFolder, parts_dir_for
from blurgen.store.parts import PartsError, part_files, verify_stored_data
from blurgen.store.schema import (
    PairsFileError,
    attr,
    finished_with,
    open_checked,
    per_sample_datasets,
    reading,
    sample_range,
)

#: Kernel sums further than this from 1 are reported as problems (float32 sums of ~4000 values).
KERNEL_SUM_TOLERANCE = 1e-3
#: Parameters for which +inf is a value, not damage (depth_m: a scene at infinity, no translation).
INFINITY_ALLOWED = ("depth_m",)
#: Values read at a time by a scan (more when one chunk holds more).
_SCAN_VALUES = 2**20


def _dataset_line(ds: Any) -> str:
    filters = ds.compression or "uncompressed"
    if ds.compression_opts is not None:
        filters += f" level {ds.compression_opts}"
    if ds.fletcher32:
        filters += ", fletcher32"
    return f"  /{ds.name.lstrip('/'):<8} {str(ds.dtype):<8} {ds.shape}  chunks {ds.chunks}  {filters}"


def _stored_samples(ds: Any, n_written: int) -> int:
    """Samples of ``ds`` (first axis) that have data in the file, up to ``n_written``."""
    if ds.is_virtual:  # a virtual merge: the shards hold the data (checked when the file opened)
        return n_written
    if ds.chunks is None:
        return n_written if ds.id.get_storage_size() > 0 else 0
    if ds.chunks[0] == 1:
        return min(n_written, ds.id.get_num_chunks())
    return min(n_written, ds.id.get_num_chunks() * ds.chunks[0])


def _unstored(h5: Any, n_written: int) -> list[str]:
    """Problems for datasets that lack stored data for some of the ``n_written`` samples."""
    names = [*per_sample_datasets(h5), *(f"params/{p}" for p in h5["params"])]
    short = [(name, _stored_samples(h5[name], n_written)) for name in names]
    return [f"/{name} stores data for only {stored} of the {n_written} samples the file declares "
            "written" for name, stored in short if stored < n_written]


def scan_pieces(ds: Any, n: int, values: int = _SCAN_VALUES) -> Iterator[tuple[int, int]]:
    """Ranges ``[first, stop)`` covering samples ``[0, n)`` of ``ds`` to read one at a time: about
    ``values`` values each, on chunk boundaries, so each chunk is decompressed once and memory is
    bounded by ``values`` or one row of chunks (1024 kernels of 1025 x 1025 at a time needed
    13 GB; a crafted file whose chunks hold millions of samples was decompressed per sample)."""
    per_sample = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)))
    rows = ds.chunks[0] if ds.chunks else 1
    step = max(rows, values // per_sample // rows * rows)
    for first in range(0, n, step):
        yield first, min(n, first + step)


def _kernel_problems(h5: Any, n_written: int) -> list[str]:
    kernel = h5["kernel"]
    bad_sum, first_bad, negative, non_finite = 0, None, 0, 0  # counts: millions of bad ones fit
    for first, stop in scan_pieces(kernel, n_written):
        block = kernel[first:stop].astype(np.float64)
        inner = tuple(range(1, block.ndim))  # (k, k), or (T, k, k) per clip (schema 3)
        finite = np.isfinite(block).all(axis=inner)
        non_finite += int((~finite).sum())
        sums = block.sum(axis=(-2, -1)).reshape(block.shape[0], -1)  # per kernel (each frame's)
        bad = np.flatnonzero(~(np.abs(sums - 1) <= KERNEL_SUM_TOLERANCE).all(axis=1))
        bad_sum += bad.size
        if first_bad is None and bad.size:
            first_bad = first + int(bad[0])
        negative += int((block < 0).any(axis=inner).sum())
    problems = []
    if non_finite:
        problems.append(f"{non_finite} kernel(s) hold NaN or infinite weights")
    if bad_sum:
        problems.append(f"{bad_sum} kernel(s) do not sum to 1 (first: sample {first_bad})")
    if negative:
        problems.append(f"{negative} kernel(s) have negative weights")
    return problems


def _param_stats(ds: Any, n_written: int) -> tuple[float, float, float, int]:
    """``(min, mean, max, non-finite count)`` over the first ``n_written`` values, read in pieces."""
    low, high, total, bad = np.inf, -np.inf, 0.0, 0
    for first, stop in scan_pieces(ds, n_written):
        values = ds[first:stop].astype(np.float64)
        finite = values[np.isfinite(values)]
        bad += values.size - finite.size
        if finite.size:
            low, high, total = min(low, finite.min()), max(high, finite.max()), total + finite.sum()
    count = n_written - bad
    return low, (total / count if count else np.nan), high, bad


def _nan_count(ds: Any, n_written: int) -> int:
    return sum(int(np.isnan(ds[first:min(n_written, first + _SCAN_VALUES)].astype(np.float64)).sum())
               for first in range(0, n_written, _SCAN_VALUES))


def _param_lines(h5: Any, n_written: int) -> tuple[list[str], list[str]]:
    lines = [f"  {'name':<20} {'dtype':<8} {'min':>12} {'mean':>12} {'max':>12}"]
    problems = []
    for name, ds in sorted(h5["params"].items()):
        stats = ["-"] * 3
        if n_written:
            low, mean, high, bad = _param_stats(ds, n_written)
            stats = [f"{v:12.6g}" for v in (low, mean, high)]
            if bad and name in INFINITY_ALLOWED:
                bad = _nan_count(ds, n_written)
            if bad:
                problems.append(f"/params/{name} has {bad} non-finite value(s)")
        lines.append(f"  {name:<20} {str(ds.dtype):<8} {stats[0]:>12} {stats[1]:>12} {stats[2]:>12}")
    return lines, problems


def _order_problems(h5: Any, n_written: int) -> list[str]:
    start = sample_range(h5)[0]
    seed_index = h5["params"]["seed_index"]
    for first, stop in scan_pieces(seed_index, n_written):
        if not np.array_equal(seed_index[first:stop], np.arange(start + first, start + stop)):
            return [f"/params/seed_index is not {start}..{start + n_written - 1} in order"]
    return []


def _header_lines(path: str, h5: Any, n_written: int) -> list[str]:
    n_planned = int(attr(h5, "n_planned"))
    start, stop, n_total = sample_range(h5)
    state = "complete" if n_written == n_planned else "INCOMPLETE"
    raw = sum(h5[name].size * h5[name].dtype.itemsize for name in per_sample_datasets(h5))
    lines = [f"{path}: blurgen pairs file, schema {attr(h5, 'schema_version')}, "
             f"blurgen {attr(h5, 'blurgen_version')}, created {attr(h5, 'created')}",
             f"samples: {n_written}/{n_planned} written ({state}), seed {attr(h5, 'seed')}"]
    if (start, stop) != (0, n_total):
        lines.append(f"shard: {attr(h5, 'shard_index')}/{attr(h5, 'shard_count')}, "
                     f"samples {start}..{stop} of {n_total}; join shards with blurgen merge")
    lines.append(f"command: {attr(h5, 'command')}")
    lines.append(f"config: {attr(h5, 'config')}")
    lines.append(f"size on disk: {os.path.getsize(path) / 1e6:.1f} MB "
                 f"({os.path.getsize(path) / max(raw, 1):.0%} of the raw arrays)")
    lines.extend(_dataset_line(h5[name]) for name in per_sample_datasets(h5))
    return lines


def _motion_problems(path: str) -> list[str]:
    from blurgen.store.motion_check import motion_problem

    found = motion_problem(path)
    return [found] if found else []


def describe_file(path: str, verify: bool = True) -> tuple[list[str], list[str]]:
    """Report on a pairs file: ``(lines, problems)``. With ``verify``, every stored chunk is read
    so its checksum is checked (files written since checksums were added). Raises PairsFileError
    if unreadable."""
    with open_checked(path) as h5, reading(path, "damaged HDF5 data"):
        n_planned, n_written = int(attr(h5, "n_planned")), int(attr(h5, "n_written"))
        lines = _header_lines(path, h5, n_written)
        problems = _unstored(h5, n_written)
        if problems:  # declared but never written: scanning would read fill values for ever
            lines.append("params: not scanned (the file lacks data it declares written)")
        else:
            param_lines, param_problems = _param_lines(h5, n_written)
            lines += [f"params (over {n_written} samples):", *param_lines, *camera_lines(h5["params"], n_written)]
            problems += _kernel_problems(h5, n_written) + param_problems + _order_problems(h5, n_written)
            if verify:
                problems += _checksum_problems(path, h5, n_written)
        problems += _motion_problems(path)
        if n_written < n_planned:
            problems.insert(0, incomplete_problem(n_written, n_planned, "samples were written"))
    return lines, problems


def _checksum_problems(path: str, h5: Any, n_written: int) -> list[str]:
    try:
        verify_stored_data(h5, path, stop=n_written)
    except PartsError as exc:
        return [f"damaged data: {exc}"]
    return []


def describe_parts(parts_dir: str) -> tuple[list[str], int, int]:
    """Report on a run in progress or interrupted: ``(lines, n_written, n_planned)``.

    ``n_written`` counts the samples in complete part files. Raises PartsError if the folder's
    manifest is damaged.
    """
    run = RunFolder.at(parts_dir)
    out = run.out
    if not run.has_manifest():
        return _describe_unmanifested(parts_dir), 0, 0
    manifest = run.manifest
    done = run.complete_parts()
    n_written = run.samples_done()
    running = run.is_locked()
    if not running and finished_with(out, manifest.settings()):
        # Killed after the final rename, before the clean-up: nothing is unfinished. No
        # "samples:" line, so the file's count is the one reported.
        return ([f"{parts_dir}: left over by the finished run that wrote {out}; "
                 "blurgen make --resume (same command) removes it"], manifest.n_planned,
                manifest.n_planned)
    how = ("in progress (a blurgen make is writing it)" if running else
           "interrupted; continue with the same blurgen make command plus --resume")
    lines = [f"{parts_dir}: run {how}",
             f"samples: {n_written}/{manifest.n_planned} written ({len(done)} of {len(manifest.blocks)} "
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
        held = webdataset_outputs_in(path)
        more = ", ..." if len(held) > 3 else ""
        hint = (f"; it holds the WebDataset output {held[0]}: inspect that" if len(held) == 1 else
                f"; it holds the WebDataset outputs {', '.join(held[:3])}{more}: inspect one of them" if held else "")
        raise PairsFileError(f"{path}: a folder that is neither a blurgen pairs file nor a run's "
                             f"parts folder (no {MANIFEST_NAME}){hint}")
    parts = parts_dir_for(path)
    if not os.path.exists(path) and not os.path.isdir(parts) and path.endswith(".tar"):
        parts = parts_dir_for(path[:-len(".tar")])  # a WebDataset run named as make's --out PREFIX.tar
    return (path if os.path.exists(path) else None), (parts if os.path.isdir(parts) else None)


def webdataset_outputs_in(folder: str) -> list[str]:
    """The WebDataset outputs (their ``PREFIX``) whose index is in ``folder``: what a user who
    names the folder holding the tars most likely means."""
    from blurgen.runs.outputs import read_meta

    found = set()
    for path in glob.glob(os.path.join(glob.escape(folder), "*.json")):
        prefix = re.sub(r"(\.shard-\d+-of-\d+)?\.json$", "", path)
        # only an index beside its tars, and only a regular file of index size: never a FIFO (the
        # read would wait for ever) or someone's large annotation file
        if (prefix in found or not glob.glob(glob.escape(prefix) + "-[0-9]*.tar") or not os.path.isfile(path)
                or os.path.getsize(path) > MAX_INDEX_BYTES):
            continue
        try:
            meta = read_meta(path)
        except PairsFileError:
            continue
        if meta["format"] == "webdataset":
            found.add(prefix)
    return sorted(found)


#: The largest WebDataset index ``webdataset_outputs_in`` reads (one lists its tars: ~2 kB here).
MAX_INDEX_BYTES = 16 * 2**20
