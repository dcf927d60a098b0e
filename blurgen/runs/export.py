"""Export a blurgen HDF5 pairs file (plain, merged or virtual) to the folders, LMDB or WebDataset
formats through the same run machinery as ``make``: blocks are read from the file by the workers,
encoded and staged by the sink, so an export is crash-safe and resumable too.

Sample ``i`` of the file is named ``i`` (8 digits) in the export; its ``seed_index`` parameter
keeps its index in the whole dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from blurgen.runs.workers import BlockMaker
from blurgen.store.reader import PairsFile


@dataclass(frozen=True)
class SourceFileConfig:
    """The parts of a ``PairsConfig`` the run machinery uses, read from a pairs file."""

    width: int
    height: int
    kernel_size: int
    config_json: str

    def to_dict(self) -> dict:
        return json.loads(self.config_json)

    def to_json(self) -> str:
        return self.config_json


class FileBlockMaker(BlockMaker):
    """Blocks read from pairs file ``path`` (opened lazily in each worker). Each call asks the
    kernel to read the next samples' images in the background (``prefetch``): a worker then
    encodes while the disk reads, instead of waiting for every chunk it reads."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._file: PairsFile | None = None
        self._advised = (0, 0)  # the rows the last prefetch asked for

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def source_files_digest(self) -> str:
        """Pins the file read (path, size, modification time): a resume refuses a changed one."""
        info = os.stat(self.path)
        return hashlib.sha256(f"{self.path}:{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()

    def source_files(self) -> list[str]:
        return self.file.source_files

    @property
    def file(self) -> PairsFile:
        if self._file is None:
            self._file = PairsFile(self.path).open()
        return self._file

    def close(self) -> None:
        """Close the file (a run in this process; a worker's closes when it exits)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __call__(self, config: Any, seed: int, start: int, count: int) -> dict:
        blurred, sharp, kernel = self.file[start:start + count]
        # the next two calls' samples: a block's calls run in order in one worker
        self.prefetch(start + count, min(start + 3 * count, len(self.file)))
        params = {name: values[start:start + count] for name, values in self.file.params.items()}
        block = {"blurred": blurred, "sharp": sharp, "kernel": kernel, "params": params}
        if self.file.has_motion:
            h5 = self.file._open()
            block["motion"] = {name: h5["motion"][name][start:start + count] for name in ("rotation", "translation")}
        return block

    def prefetch(self, start: int, stop: int) -> None:
        """Ask the kernel to read the image chunks of samples ``[start, stop)`` into the page cache
        in the background (``posix_fadvise WILLNEED``, in pieces of ``ADVICE_BYTES``; a hint:
        nothing waits for it, and any error only skips it: the read of those samples reports a
        damaged file). Without it a worker waited for each chunk it read from a file not in the
        page cache. Rows already asked for by the previous call are not asked for again. Skipped
        for virtual datasets (a merge: the chunks are in its shards) and where the system has no
        ``posix_fadvise``."""
        last_start, last_stop = self._advised
        if last_start <= start < last_stop:
            start = last_stop
        if start >= stop or not hasattr(os, "posix_fadvise"):
            return
        self._advised = (start, stop)
        try:
            rows = stored_rows(self.path, self.file._open())
            ranges = coalesced([piece for table in rows for piece in table.ranges(start, stop)])
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)  # not kept: a Dask task's maker is never closed
        except Exception:  # noqa: BLE001 -- a hint only
            return
        try:
            with contextlib.suppress(Exception):  # e.g. a damaged chunk address too large for an off_t
                for offset, size in ranges:
                    for piece in range(offset, offset + size, ADVICE_BYTES):
                        os.posix_fadvise(fd, piece, min(ADVICE_BYTES, offset + size - piece),
                                         os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


#: The most one ``posix_fadvise`` WILLNEED call asks for: Linux reads at most
#: max(read_ahead_kb, max_sectors_kb) of a call (128 KiB by default) and drops the rest.
ADVICE_BYTES = 128 * 1024


class StoredRows:
    """Where the rows of an h5py dataset are stored in its file, found once: the chunk index is
    read in one pass (``chunk_iter``; looking chunks up one at a time took time growing with the
    row's position, quadratic over an export). Rows ``[start, stop)`` map to the ``(byte offset,
    size)`` of the chunks holding them (their first column of chunks: blurgen's images are
    chunked a row each) or to the slice of a contiguous dataset; to none for a virtual dataset,
    unwritten chunks, or an h5py without ``chunk_iter`` (built on HDF5 older than 1.12.3: no
    read-ahead there rather than the lookup one at a time)."""

    def __init__(self, dataset: Any) -> None:
        self.step, self.offsets, self.sizes, self.base, self.row = 1, None, None, None, 0
        if dataset.is_virtual:
            return
        if dataset.chunks is None:
            self.base = dataset.id.get_offset()
            self.row = dataset.dtype.itemsize * int(np.prod(dataset.shape[1:]))
            return
        if not hasattr(dataset.id, "chunk_iter"):
            return
        self.step = dataset.chunks[0]
        count = -(-dataset.shape[0] // self.step)
        self.offsets, self.sizes = np.full(count, -1, np.int64), np.zeros(count, np.uint32)

        def note(info) -> None:
            if info.byte_offset is not None and not any(info.chunk_offset[1:]):
                self.offsets[info.chunk_offset[0] // self.step] = info.byte_offset
                self.sizes[info.chunk_offset[0] // self.step] = info.size

        dataset.id.chunk_iter(note)

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        if self.base is not None:
            return [(self.base + start * self.row, (stop - start) * self.row)]
        if self.offsets is None or start >= stop:
            return []
        chunks = slice(start // self.step, -(-stop // self.step))
        offsets, sizes = self.offsets[chunks], self.sizes[chunks]
        written = offsets >= 0
        return list(zip(offsets[written].tolist(), sizes[written].tolist()))


#: The ``StoredRows`` of the images of the last ``STORED_FILES`` files a process read ahead in:
#: kept across the blocks a worker (or a Dask worker's tasks, of several exports at once) makes,
#: found again by the file's identity.
_STORED: dict[tuple, tuple[StoredRows, StoredRows]] = {}
STORED_FILES = 4


def stored_rows(path: str, h5: Any) -> tuple[StoredRows, StoredRows]:
    """The ``StoredRows`` of ``blurred`` and ``sharp`` of the open pairs file ``h5`` at ``path``."""
    info = os.stat(path)
    key = (path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    rows = _STORED.pop(key, None)
    if rows is None:
        rows = (StoredRows(h5["blurred"]), StoredRows(h5["sharp"]))
    _STORED[key] = rows  # the newest last
    while len(_STORED) > STORED_FILES:
        _STORED.pop(next(iter(_STORED)), None)
    return rows


def coalesced(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte ranges sorted, with touching or overlapping ones joined.

    >>> coalesced([(100, 50), (0, 100), (300, 10)])
    [(0, 150), (300, 10)]
    """
    joined: list[list[int]] = []
    for offset, size in sorted(ranges):
        if joined and offset <= joined[-1][0] + joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], offset + size - joined[-1][0])
        else:
            joined.append([offset, size])
    return [(offset, size) for offset, size in joined]


def export_file(src: str, out: str, sink: Any, *, workers: int | None = None, resume: bool = False,
                overwrite: bool = False, command: str = "", progress=None, executor: Any = None,
                durable: bool = True):
    """Write every sample of pairs file ``src`` to ``out`` through ``sink``; returns the
    ``MakeResult``. Raises ``PairsFileError`` for an unreadable file, ``DatasetError`` as ``make``
    (``durable=False``, no fsync, only for benchmarks of the rest)."""
    from blurgen.runs.dataset import make_dataset

    maker = FileBlockMaker(src)
    with PairsFile(src) as pairs:
        n, (height, width, _), attrs = len(pairs), pairs.image_shape, pairs.attrs
        config = SourceFileConfig(width, height, pairs.kernel_size, attrs["config"])
    try:
        return make_dataset(out, config, n, int(attrs["seed"]), workers=workers, resume=resume,
                            overwrite=overwrite, command=command, maker=maker, progress=progress, sink=sink,
                            executor=executor, durable=durable)
    finally:
        maker.close()
