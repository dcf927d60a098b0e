"""Assemble pairs files from block parts or shards by copying compressed chunks as they are.

Parts, shards and the final file share one chunk layout (one sample per chunk) and one filter
pipeline, so assembly moves each chunk's stored bytes with ``read_direct_chunk`` /
``write_direct_chunk``: no decompression, no recompression, mostly disk bandwidth.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np

from blurgen.pairs_file import (H5_ERRORS, IMAGE_DATASETS, SCHEMA_VERSION, PairsFileError, one_line,
                                open_validated, reading)
from blurgen.parts import (DiskFullError, PartsError, check_part, free_bytes, fsync_path,
                           is_disk_full, space_reserved)

log = logging.getLogger(__name__)

CHUNKED = (*IMAGE_DATASETS, "kernel")
#: Space kept free beyond each copied piece for HDF5's metadata (chunk index, attributes), which it
#: writes later: a write that fails inside HDF5 cannot be recovered from (see DiskFullError).
SPACE_MARGIN_BYTES = 2**20
SPACE_MARGIN_PER_SAMPLE = 256
#: Flush the file being assembled to disk every this many bytes, so the final fsync before the
#: rename does not wait for gigabytes of dirty pages at once.
SYNC_EVERY_BYTES = 256 * 2**20


def now_iso() -> str:
    """Current UTC time, ISO 8601 to the second, e.g. ``2025-01-31T12:00:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def copy_samples(src: Any, dst: Any, offset: int) -> int:
    """Copy every sample of h5py dataset ``src`` (n, ...) to ``dst[offset:offset + n]``.

    Chunks move as stored bytes when both datasets chunk one sample at a time with the same
    filters; otherwise (e.g. shards written with another compression) they are decoded and
    re-encoded. Returns the bytes written (as stored).
    """
    n = src.shape[0]
    same_layout = (src.chunks == dst.chunks and src.chunks is not None and src.chunks[0] == 1
                   and src.compression == dst.compression
                   and src.compression_opts == dst.compression_opts
                   and src.shuffle == dst.shuffle and src.dtype == dst.dtype)
    if not same_layout:
        dst[offset:offset + n] = src[...]
        return src.size * src.dtype.itemsize
    zeros = (0,) * (src.ndim - 1)
    written = 0
    for i in range(n):
        filter_mask, data = src.id.read_direct_chunk((i, *zeros))
        dst.id.write_direct_chunk((offset + i, *zeros), data, filter_mask)
        written += len(data)
    return written


class Assembler:
    """Builds one pairs file (schema 1) from pieces that each hold a contiguous run of samples.

    The datasets are created from the first piece added (image shape, kernel size, parameter
    names and dtypes); every later piece must match. Write to a temporary path and call
    ``finish(final_path)``, which sets ``n_written``, flushes and renames atomically.

    Args:
        path: temporary file to write.
        n_planned: samples in the file.
        attrs: root attributes (schema attrs other than ``n_written``, plus any extras).
        compression: name -> ``(h5py compression, compression_opts)`` of the chunked datasets.
        space_lock_dir: folder whose ``parts.space_reserved`` lock ``add_file`` holds from its
            free-space check to the end of its copy (the run's workers write parts there at the
            same time); None when nothing else of this run writes meanwhile.
    """

    def __init__(self, path: str, n_planned: int, attrs: dict[str, Any],
                 compression: dict[str, tuple[str | None, int | None]],
                 space_lock_dir: str | None = None) -> None:
        import h5py

        self.path = path
        self.space_lock_dir = space_lock_dir
        self.n_planned = int(n_planned)
        self.compression = compression
        self.filled = 0
        self._unsynced = 0
        self._h5 = h5py.File(path, "w")
        for key, value in attrs.items():
            self._h5.attrs[key] = value
        self._h5.attrs["schema_version"] = SCHEMA_VERSION
        self._h5.attrs["n_planned"] = self.n_planned
        self._h5.attrs["n_written"] = 0  # until finish(): an unfinished temporary is incomplete
        self._images: dict[str, Any] | None = None  # datasets, made from the first piece

    def _create_layout(self, images: dict, params: dict, label: str) -> None:
        for name, src in images.items():
            method, opts = self.compression[name]
            self._h5.create_dataset(name, shape=(self.n_planned, *src.shape[1:]), dtype=src.dtype,
                                    chunks=(1, *src.shape[1:]), compression=method,
                                    compression_opts=opts)
        group = self._h5.create_group("params")
        for name, src in params.items():
            group.create_dataset(name, shape=(self.n_planned,), dtype=src.dtype)
        # Handles and layout kept: h5py lookups per piece were a third of the main process's
        # time (py-spy), and the main process shares the cores with the workers.
        self._images = {name: self._h5[name] for name in CHUNKED}
        self._params = {name: group[name] for name in params}
        self._layout = {name: (dset.shape[1:], dset.dtype) for name, dset in self._images.items()}
        self._param_dtypes = {name: dset.dtype for name, dset in self._params.items()}
        log.debug("layout from %s", label)

    def _check_matches(self, images: dict, params: dict, label: str) -> None:
        for name, (shape, dtype) in self._layout.items():
            theirs = images[name]
            if theirs.shape[1:] != shape or theirs.dtype != dtype:
                raise PartsError(f"{label}: /{name} is {theirs.dtype} {theirs.shape[1:]} per sample, "
                                 f"expected {dtype} {shape}")
        if set(self._param_dtypes) != set(params):
            diff = sorted(set(self._param_dtypes) ^ set(params))
            raise PartsError(f"{label}: /params differ from the other pieces in {', '.join(diff)}")
        for name, dtype in self._param_dtypes.items():
            if params[name].dtype != dtype:
                raise PartsError(f"{label}: /params/{name} is {params[name].dtype}, expected {dtype}")

    def add(self, piece: Any, offset: int, count: int, label: str) -> None:
        """Copy the ``count`` samples of open h5py group ``piece`` to ``[offset, offset + count)``."""
        images = {name: piece[name] for name in CHUNKED}
        params = dict(piece["params"].items())
        if self._images is None:
            self._create_layout(images, params, label)
        else:
            self._check_matches(images, params, label)
        if offset < 0 or offset + count > self.n_planned:
            raise PartsError(f"{label}: samples {offset}..{offset + count} outside 0..{self.n_planned}")
        for name, src in images.items():
            if src.shape[0] != count:
                raise PartsError(f"{label}: /{name} holds {src.shape[0]} samples, expected {count}")
            self._unsynced += copy_samples(src, self._images[name], offset)
        for name, src in params.items():
            self._params[name][offset:offset + count] = src[...]
        self.filled += count

    def sync_if_due(self) -> None:
        """fsync the data written so far once ``SYNC_EVERY_BYTES`` have accumulated."""
        if self._unsynced >= SYNC_EVERY_BYTES:
            self._h5.flush()
            fsync_path(self.path)
            self._unsynced = 0

    def ensure_space(self, nbytes: int) -> None:
        """DiskFullError unless ``nbytes`` more (plus metadata margin) fit; called before a copy,
        so HDF5 itself never meets a full disk (what ``finish`` and ``close`` still write fits)."""
        margin = SPACE_MARGIN_BYTES + SPACE_MARGIN_PER_SAMPLE * self.n_planned
        if free_bytes(os.path.dirname(os.path.abspath(self.path))) < nbytes + margin:
            raise DiskFullError(self.path)

    @contextlib.contextmanager
    def copying(self, path: str) -> Iterator[None]:
        """Room for piece ``path`` is checked (under the run's space lock, if any: no worker of
        this run takes the free space between the check and the copy), then h5py errors raised
        inside become ``DiskFullError`` when our write met a full disk (the piece is fine: never
        "remake" a good part) and ``PartsError("<path>: unreadable piece ...")`` otherwise."""
        guard = (space_reserved(self.space_lock_dir) if self.space_lock_dir is not None
                 else contextlib.nullcontext())
        with guard:
            self.ensure_space(os.path.getsize(path))
            try:
                yield
            except H5_ERRORS as exc:
                if is_disk_full(exc):
                    raise DiskFullError(self.path) from None
                raise PartsError(f"{path}: unreadable piece ({one_line(exc)})") from None

    def add_file(self, path: str, offset: int, count: int, part_of: tuple | None = None) -> None:
        """Copy a part file (or shard) ``path`` holding ``count`` samples to ``offset``.

        ``part_of = (first sample, stamp)`` first checks that ``path`` is a part of that run
        (``blurgen.parts.check_part``); PartsError otherwise."""
        import h5py

        with self.copying(path), h5py.File(path, "r") as piece:
            if part_of is not None:
                check_part(piece, path, part_of[0], count, part_of[1])
            self.add(piece, offset, count, path)

    def finish(self, final_path: str, durable: bool = True) -> None:
        """Mark complete, close, flush to disk and rename onto ``final_path``."""
        if self.filled != self.n_planned:
            raise PartsError(f"{self.path}: only {self.filled} of {self.n_planned} samples assembled")
        self._h5.attrs["n_written"] = self.n_planned
        self._h5.close()
        if durable:
            fsync_path(self.path)
        os.replace(self.path, final_path)
        if durable:
            fsync_path(os.path.dirname(os.path.abspath(final_path)))

    def close(self) -> None:
        """Close without finishing and delete the temporary (a no-op after ``finish``): an
        unfinished assembly is worthless, as the next run assembles from the parts again, and on
        a full disk its space is what the rerun needs."""
        if self._h5.id.valid:
            try:
                self._h5.close()
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)


# -------------------------------------------------------------------------------------- merge
def _attr(h5: Any, name: str, default: Any = None) -> Any:
    value = h5.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def open_checked(path: str) -> Any:
    """Open a pairs file with h5py and validate schema 1; raises PairsFileError (one line)."""
    return open_validated(path)[0]


def sample_range(h5: Any) -> tuple[int, int, int]:
    """``(sample_start, sample_stop, n_total)`` of a pairs file; a file without shard attributes
    is taken as the whole dataset."""
    n = int(_attr(h5, "n_planned"))
    start = int(_attr(h5, "sample_start", 0))
    return start, int(_attr(h5, "sample_stop", start + n)), int(_attr(h5, "n_total", n))


def file_settings(h5: Any) -> dict[str, Any]:
    """What fixes an open pairs file's arrays (compare with ``Manifest.settings()``)."""
    start, stop, n_total = sample_range(h5)
    return {"config": json.loads(_attr(h5, "config")), "seed": int(_attr(h5, "seed")),
            "n_total": n_total, "sample_start": start, "sample_stop": stop}


def is_complete(h5: Any) -> bool:
    return int(_attr(h5, "n_written")) == int(_attr(h5, "n_planned"))


def finished_with(path: str, settings: dict[str, Any]) -> bool:
    """Whether ``path`` is a complete, readable pairs file made with ``settings``
    (``Manifest.settings()``): then a parts folder beside it is what a run killed after its final
    rename left behind, not unfinished work."""
    if not os.path.isfile(path):
        return False
    try:
        with open_checked(path) as h5, reading(path, "unreadable root attributes"):
            return is_complete(h5) and file_settings(h5) == settings
    except PairsFileError:
        return False


def _read_shard_attrs(h5: Any) -> tuple:
    """Every root attribute the merge compares (raises h5py's errors if one is damaged)."""
    return (json.loads(_attr(h5, "config")), _attr(h5, "seed"), sample_range(h5),
            int(_attr(h5, "n_written")), _attr(h5, "blurgen_version"))


def _check_shards_compatible(files: list[tuple[str, Any]]) -> None:
    """PairsFileError unless all shards share settings and tile ``[0, n_total)`` exactly."""
    first_path, first = files[0]
    keys = {"config": lambda h: json.loads(_attr(h, "config")), "seed": lambda h: _attr(h, "seed"),
            "n_total": lambda h: sample_range(h)[2],
            "blurgen_version": lambda h: _attr(h, "blurgen_version")}
    for path, h5 in files:
        if int(_attr(h5, "n_written")) != int(_attr(h5, "n_planned")):
            raise PairsFileError(f"{path}: incomplete ({_attr(h5, 'n_written')}/{_attr(h5, 'n_planned')} "
                                 "samples); finish it with blurgen make --resume first")
        for key, get in keys.items():
            if get(h5) != get(first):
                raise PairsFileError(f"{path}: {key} differs from {first_path} "
                                     f"({get(h5)!r} != {get(first)!r}); not shards of one dataset")
    expected = 0
    for path, h5 in sorted(files, key=lambda item: sample_range(item[1])[0]):
        start, stop, _ = sample_range(h5)
        if start > expected:
            raise PairsFileError(f"samples {expected}..{start} are missing (no shard covers them; "
                                 f"next is {path})")
        if start < expected:
            raise PairsFileError(f"{path}: samples {start}..{min(stop, expected)} overlap another shard")
        expected = stop
    n_total = sample_range(first)[2]
    if expected != n_total:
        raise PairsFileError(f"samples {expected}..{n_total} are missing (no shard covers them)")


def _mb(nbytes: int) -> int:
    """Whole megabytes, rounded up (at least 1) for messages."""
    return max(1, -(-int(nbytes) // 10**6))


def _copy_shards(assembler: Assembler, files: list[tuple[str, Any]]) -> None:
    for path, h5 in files:
        start, stop, _ = sample_range(h5)
        try:
            with assembler.copying(path):
                assembler.add(h5, start, stop - start, path)
        except DiskFullError:
            raise
        except PartsError as exc:
            raise PairsFileError(str(exc)) from None


def merge_files(paths: list[str], tmp_path: str, final_path: str, command: str,
                compression: dict[str, tuple[str | None, int | None]] | None = None) -> int:
    """Merge complete shards (``--shard i/N`` files) into one pairs file; returns its length.

    Checks that the shards come from one dataset (same config, seed, size, version) and cover
    ``[0, n_total)`` without gaps or overlaps; raises PairsFileError naming the file otherwise.
    The result equals an unsharded run array for array.
    """
    files: list[tuple[str, Any]] = []
    try:
        for path in paths:
            files.append((path, open_checked(path)))
            with reading(path, "unreadable root attributes"):
                _read_shard_attrs(files[-1][1])  # fail here, naming the file, not mid-comparison
        _check_shards_compatible(files)
        first = files[0][1]
        n_total = sample_range(first)[2]
        compression = compression or {name: (first[name].compression, first[name].compression_opts)
                                      for name in CHUNKED}
        attrs = {"blurgen_version": _attr(first, "blurgen_version"), "created": now_iso(),
                 "command": command, "config": _attr(first, "config"), "seed": _attr(first, "seed"),
                 "n_total": n_total, "sample_start": 0, "sample_stop": n_total,
                 "shard_index": 0, "shard_count": 1}
        assembler = Assembler(tmp_path, n_total, attrs, compression)
        try:
            _copy_shards(assembler, files)
            assembler.finish(final_path)
        except DiskFullError as exc:
            raise PairsFileError(f"{exc} (need ~{_mb(sum(os.path.getsize(p) for p in paths))} MB "
                                 "free); free space and merge again") from None
        finally:
            assembler.close()
        return n_total
    finally:
        for _, h5 in files:
            h5.close()
