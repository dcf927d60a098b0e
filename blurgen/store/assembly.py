"""Assemble one pairs file from pieces (block parts or shards) by copying stored chunks.

Parts, shards and the final file share one chunk layout (one sample per chunk) and one filter
pipeline, so assembly moves each chunk's stored bytes with ``read_direct_chunk`` /
``write_direct_chunk``: no decompression, no recompression, mostly disk bandwidth.

HDF5 cannot recover from a failed write (HDF5 2.0 / h5py 3.16 may crash at close), so the file
being assembled reserves its whole final size on disk when its layout is known
(``common.preallocate``): every later HDF5 write lands in space already reserved, and a full
disk or file-size limit is an ordinary ``DiskFullError`` before the first chunk is copied. The
reservation's unused tail is cut off when the file is finished.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from typing import Any, Iterator

import numpy as np

from blurgen.core.common import DiskFullError, disk_full_reason, fsync_path, is_disk_full, one_line, space_for
from blurgen.store.parts import Compression, PartsError, check_part, create_chunked, create_param, reserve, trim
from blurgen.store.schema import (
    CAMERA_SCHEMA_VERSION,
    CLIP_SCHEMA_VERSION,
    H5_ERRORS,
    MOTION,
    SCHEMA_VERSION,
    SOURCE_FILES,
    per_sample_datasets,
    text_attr,
)

log = logging.getLogger(__name__)

#: Room reserved beyond the arrays for HDF5's metadata (chunk indexes, attributes, heaps).
METADATA_BYTES = 4 * 2**20
METADATA_BYTES_PER_SAMPLE = 512
#: Flush the file being assembled to disk every this many bytes, so the final fsync before the
#: rename does not wait for gigabytes of dirty pages at once.
SYNC_EVERY_BYTES = 256 * 2**20


def copy_samples(src: Any, dst: Any, offset: int) -> int:
    """Copy every sample of h5py dataset ``src`` (n, ...) to ``dst[offset:offset + n]``.

    Chunks move as stored bytes when both datasets chunk one sample at a time with the same
    filters; otherwise (e.g. shards written with another compression, or by a blurgen without
    checksums) they are decoded and re-encoded. Returns the bytes written (as stored).
    """
    n = src.shape[0]
    same_layout = (src.chunks == dst.chunks and src.chunks is not None and src.chunks[0] == 1
                   and src.compression == dst.compression
                   and src.compression_opts == dst.compression_opts
                   and src.shuffle == dst.shuffle and src.fletcher32 == dst.fletcher32
                   and src.dtype == dst.dtype)
    if not same_layout:
        dst[offset:offset + n] = src[...]
        return src.size * src.dtype.itemsize
    # Every chunk of a sample: one, or one per frame for clips (chunks (1, 1, H, W, 3)).
    inner = list(itertools.product(*(range(0, size, chunk) for size, chunk in zip(src.shape[1:], src.chunks[1:]))))
    written = 0
    for i in range(n):
        for rest in inner:
            filter_mask, data = src.id.read_direct_chunk((i, *rest))
            dst.id.write_direct_chunk((offset + i, *rest), data, filter_mask)
            written += len(data)
    return written


def reserved_bytes(n_planned: int, per_sample: int, header_bytes: int = 0) -> int:
    """Bytes the file being assembled reserves for ``n_planned`` samples of at most ``per_sample``
    stored bytes each (raw arrays with their checksums, and the params), ``header_bytes`` of
    attributes and /source_files, and HDF5's metadata."""
    return METADATA_BYTES + header_bytes + n_planned * (per_sample + METADATA_BYTES_PER_SAMPLE)


def write_source_files(h5: Any, names: list[str]) -> None:
    """``/source_files``: variable-length UTF-8 strings (bytes that are not UTF-8 in a name are
    kept as ``\\xNN`` escapes)."""
    import h5py

    if names:
        h5.create_dataset(SOURCE_FILES, data=[text_attr(name) for name in names],
                          dtype=h5py.string_dtype("utf-8"))


class Assembler:
    """Builds one pairs file from pieces that each hold a contiguous run of samples.

    The datasets are created from the first piece added (image shape, kernel size, parameter
    names and dtypes) and the file's final size is reserved on disk then, before HDF5 writes
    anything but its superblock (attributes and /source_files included); every later piece must
    match. Write to a temporary path and call ``finish(final_path)``, which sets ``n_written``,
    flushes, trims and renames atomically.

    Args:
        path: temporary file to write.
        n_planned: samples in the file.
        attrs: root attributes (schema attrs other than ``n_written``, plus any extras).
        compression: name -> ``(h5py compression, compression_opts)`` of the chunked datasets.
        space_lock_dir: folder whose space lock (``common.space_for``) the reservation holds (the
            run's workers write parts there at the same time); None when nothing else writes.
        source_files: the input files ``/params/source_file`` indexes, stored as ``/source_files``.
    """

    def __init__(self, path: str, n_planned: int, attrs: dict[str, Any], compression: Compression,
                 space_lock_dir: str | None = None, source_files: list[str] | None = None) -> None:
        import h5py

        self.path = path
        self.space_lock_dir = space_lock_dir
        self.n_planned = int(n_planned)
        self.compression = compression
        self.filled = 0
        self._unsynced = 0
        # Written with the layout, once the file's size is reserved: /source_files alone can be
        # megabytes (a name per image of a folder), and attributes are HDF5 writes too.
        self._attrs = {**attrs, "schema_version": SCHEMA_VERSION, "n_planned": self.n_planned,
                       "n_written": 0}  # n_written 0 until finish(): an unfinished file is incomplete
        self._source_files = source_files or []
        try:
            self._h5 = h5py.File(path, "w")  # HDF5 writes only its superblock here
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(path, disk_full_reason(exc)) from None
            raise
        self._images: dict[str, Any] | None = None  # datasets, made from the first piece
        #: Bytes the file reserves on disk once its layout is known (0 before).
        self.reserve_bytes = 0

    def _header_bytes(self) -> int:
        """Bytes of the root attributes and /source_files, with HDF5's per-item overhead."""
        texts = [*map(str, self._attrs.values()), *self._source_files]
        return sum(len(text_attr(text).encode()) + 64 for text in texts)

    def _reserve(self, images: dict, params: dict) -> None:
        """Reserve the file's final size (arrays as raw, an upper bound for compressed ones)."""
        per_sample = sum(int(np.prod(src.shape[1:])) * src.dtype.itemsize + 4 for src in images.values())
        per_sample += sum(src.dtype.itemsize for src in params.values())
        total = self.reserve_bytes = reserved_bytes(self.n_planned, per_sample, self._header_bytes())
        folder = self.space_lock_dir or os.path.dirname(os.path.abspath(self.path))
        with space_for(folder, total, self.path, lock=self.space_lock_dir is not None):
            reserve(self.path, total)

    def _create_layout(self, images: dict, params: dict, label: str) -> None:
        self._reserve(images, params)
        for key, value in self._attrs.items():
            self._h5.attrs[key] = value
        write_source_files(self._h5, self._source_files)
        for name, src in images.items():
            create_chunked(self._h5, name, (self.n_planned, *src.shape[1:]), src.dtype, self.compression)
        group = self._h5.create_group("params")
        for name, src in params.items():
            create_param(group, name, self.n_planned, src.dtype)
        # Handles and layout kept: h5py lookups per piece were a third of the main process's
        # time (py-spy), and the main process shares the cores with the workers.
        self._images = {name: self._h5[name] for name in images}
        if any(name.startswith(f"{MOTION}/") for name in images):
            clips = images["blurred"].ndim == 5
            self._h5.attrs["schema_version"] = CLIP_SCHEMA_VERSION if clips else CAMERA_SCHEMA_VERSION
        self._params = {name: group[name] for name in params}
        self._layout = {name: (dset.shape[1:], dset.dtype) for name, dset in self._images.items()}
        self._param_dtypes = {name: dset.dtype for name, dset in self._params.items()}
        log.debug("layout from %s", label)

    def _check_matches(self, images: dict, params: dict, label: str) -> None:
        if set(images) != set(self._layout):
            raise PartsError(f"{label}: datasets {sorted(images)} differ from the other pieces' {sorted(self._layout)}")
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
        images = {name: piece[name] for name in per_sample_datasets(piece)}
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

    @contextlib.contextmanager
    def copying(self, path: str) -> Iterator[None]:
        """h5py errors raised inside become ``DiskFullError`` when our write met a full disk (the
        piece is fine: never "remake" a good part) and ``PartsError("<path>: unreadable piece
        ...")`` otherwise."""
        try:
            yield
        except H5_ERRORS as exc:
            if is_disk_full(exc):
                raise DiskFullError(self.path, disk_full_reason(exc)) from None
            raise PartsError(f"{path}: unreadable piece ({one_line(exc)})") from None

    def add_file(self, path: str, offset: int, count: int, part_of: tuple | None = None) -> None:
        """Copy a part file (or shard) ``path`` holding ``count`` samples to ``offset``.

        ``part_of = (first sample, stamp)`` first checks that ``path`` is a part of that run
        (``store.parts.check_part``); PartsError otherwise."""
        import h5py

        with self.copying(path), h5py.File(path, "r") as piece:
            if part_of is not None:
                check_part(piece, path, part_of[0], count, part_of[1])
            self.add(piece, offset, count, path)

    def finish(self, final_path: str, durable: bool = True) -> None:
        """Mark complete, close, trim the unused reservation, flush to disk and rename onto
        ``final_path``."""
        if self.filled != self.n_planned:
            raise PartsError(f"{self.path}: only {self.filled} of {self.n_planned} samples assembled")
        self._h5.attrs["n_written"] = self.n_planned
        self._h5.close()
        trim(self.path)
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
