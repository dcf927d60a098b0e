"""Block part files: one block of samples as a small, complete, checksummed HDF5 file.

A part is written under a temporary name, flushed and renamed: a name that exists is a complete
block. It reserves its whole size on disk before HDF5 writes into it, so a full disk or a
file-size limit is an ordinary ``DiskFullError`` found first, never a failure inside HDF5 (after
which HDF5 2.0 / h5py 3.16 can crash the process when the file is closed). Chunks are one sample
each, with the final file's filters and a fletcher32 checksum, so assembly copies their stored
bytes as they are and a damaged part is found before it is adopted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
from typing import Any

import numpy as np

from blurgen.common import (BlurgenError, DiskFullError, disk_full_reason, fsync_path, is_disk_full,
                            preallocate, space_for)
from blurgen.common import one_line
from blurgen.store.schema import CHUNKED, H5_ERRORS, MOTION, attr_value, per_sample_datasets

#: HDF5 filter per chunked dataset: name -> (h5py compression, compression_opts).
Compression = dict[str, tuple[str | None, int | None]]
#: Image compression choices of ``blurgen make --compression``.
IMAGE_COMPRESSIONS = ("none", "lzf", "gzip")
#: Free space a part needs beyond its arrays: HDF5 metadata, parameters, attributes.
PART_SPACE_MARGIN_BYTES = 4 * 2**20
_PART_RE = re.compile(r"^block-(\d{10})-(\d+)\.h5$")


class PartsError(BlurgenError):
    """A part file or parts folder that cannot be used (locked, settings differ, unreadable)."""


def compression_for(images: str = "none") -> Compression:
    """Filters for ``images`` = ``none``, ``lzf``, ``gzip`` or ``gzip:LEVEL`` (0-9).

    Measured on default dead-leaves pairs (benchmarks/RESULTS.md): the blurred images carry
    sensor noise and do not compress (lzf 99.7 %, gzip-1 ~90 % of raw), the sharp ones do somewhat
    (lzf ~73 %, gzip-1 ~65 %), while lzf costs ~5x and gzip ~10x an uncompressed write, as much as
    making the pair. So images are stored uncompressed by default; kernels (mostly zeros, tiny)
    always use gzip, which every HDF5 reader has (no plugin needed).
    """
    method, _, level = images.partition(":")
    if method not in IMAGE_COMPRESSIONS or (level and (method != "gzip" or not level.isdigit()
                                                       or int(level) > 9)):
        raise ValueError(f"compression must be none, lzf, gzip or gzip:0-9, got {images!r}")
    filters = {"none": (None, None), "lzf": ("lzf", None), "gzip": ("gzip", int(level or 1))}
    return {"blurred": filters[method], "sharp": filters[method], "kernel": ("gzip", 4)}


DEFAULT_COMPRESSION: Compression = compression_for("none")


#: Filter of the per-sample camera motion arrays (schema 2): small, smooth, always gzip.
MOTION_FILTER = ("gzip", 4)


def create_chunked(h5: Any, name: str, shape: tuple, dtype: Any, compression: Compression,
                   data: np.ndarray | None = None) -> Any:
    """Create ``/name`` as the store lays it out: one sample per chunk, ``compression[name]``
    (``MOTION_FILTER`` for the motion arrays), fletcher32 checksums."""
    method, opts = compression.get(name, MOTION_FILTER)
    return h5.create_dataset(name, shape=shape, dtype=dtype, data=data, chunks=(1, *shape[1:]),
                             compression=method, compression_opts=opts, fletcher32=True)


def create_param(group: Any, name: str, n: int, dtype: Any, data: np.ndarray | None = None) -> Any:
    """Create ``/params/name`` (n,), chunked with a fletcher32 checksum."""
    return group.create_dataset(name, shape=(n,), dtype=dtype, data=data,
                                chunks=(max(1, min(n, 4096)),), fletcher32=True)


def part_name(start: int, count: int) -> str:
    return f"block-{start:010d}-{count}.h5"


def parse_part_name(name: str) -> tuple[int, int] | None:
    """``(first sample, count)`` of a part file name, None for other names."""
    match = _PART_RE.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def part_files(folder: str) -> list[str]:
    """Names of the block part files in ``folder`` (planned or not)."""
    try:
        return sorted(name for name in os.listdir(folder) if _PART_RE.match(name))
    except FileNotFoundError:
        return []


def config_digest(config: dict) -> str:
    """SHA-256 of a config dict's canonical JSON (tuples and lists hash alike, as JSON has only
    lists), so a part can say which settings made it without carrying the whole config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def part_stamp(config: dict, seed: int) -> dict[str, Any]:
    """Attributes every part of one run carries: with its sample range they pin its arrays."""
    return {"seed": int(seed), "config_digest": config_digest(config)}


def hdf5_end_of_data(path: str) -> int | None:
    """The end-of-allocation address HDF5 recorded in ``path``'s superblock (at offset 0): the
    file's meaningful length. None for a layout this function does not know."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    if len(head) < 48 or head[:8] != b"\x89HDF\r\n\x1a\n":
        return None
    version, size_of_offsets = head[8], head[13] if head[8] < 2 else head[9]
    if size_of_offsets != 8:
        return None
    at = {0: 40, 1: 44, 2: 28, 3: 28}.get(version)
    return None if at is None else struct.unpack_from("<Q", head, at)[0]


def reserve(path: str, nbytes: int) -> None:
    """Reserve ``nbytes`` on disk for the (HDF5) file ``path`` before HDF5 writes into it: later
    writes inside that size cannot meet a full disk or the file-size limit, after which HDF5 2.0 /
    h5py 3.16 can crash the process when the file is closed. ``DiskFullError`` if it cannot be
    reserved; ``trim`` cuts the unused tail off once the file is closed."""
    fd = os.open(path, os.O_RDWR)
    try:
        preallocate(fd, nbytes, path)
    finally:
        os.close(fd)


def trim(path: str) -> None:
    """Cut a closed HDF5 file's reserved but unused tail (past its end of data)."""
    end = hdf5_end_of_data(path)
    if end is not None and end < os.path.getsize(path):
        os.truncate(path, end)


def _block_bytes(block: dict) -> int:
    """An upper bound of a part file's size: its arrays raw, checksums, metadata."""
    arrays = [block[name] for name in CHUNKED] + list(block.get("motion", {}).values())
    count = int(block["blurred"].shape[0])
    return (sum(np.asarray(a).nbytes + 4 * count for a in arrays)
            + sum(np.asarray(v).nbytes + 4 for v in block["params"].values()) + PART_SPACE_MARGIN_BYTES)


def _fill_part(h5: Any, block: dict, start: int, compression: Compression, stamp: dict[str, Any]) -> None:
    """Datasets (one sample per chunk, the final file's filters, checksums) and attributes of a part."""
    count = int(block["blurred"].shape[0])
    arrays = {**{name: block[name] for name in CHUNKED},
              **{f"{MOTION}/{name}": values for name, values in block.get("motion", {}).items()}}
    for name, values in arrays.items():
        data = np.ascontiguousarray(values)
        create_chunked(h5, name, data.shape, data.dtype, compression, data)
    group = h5.create_group("params")
    for name, values in block["params"].items():
        values = np.asarray(values)
        if values.shape != (count,):
            raise ValueError(f"param {name!r} has shape {values.shape}, expected ({count},)")
        create_param(group, name, count, values.dtype, values)
    for key, value in {"sample_start": start, "count": count, **stamp}.items():
        h5.attrs[key] = value


def write_part_tmp(folder: str, block: dict, start: int, compression: Compression,
                   stamp: dict[str, Any]) -> tuple[str, str]:
    """Write a block under a temporary name in ``folder``; returns ``(temporary, final path)``.

    The part reserves its whole size on disk (``reserve``) before HDF5 writes its data, so a full
    disk or file-size limit is a ``DiskFullError`` before any HDF5 write can fail, and leaves no
    temporary. The free-space check and the reservation hold the folder's space lock
    (``common.space_for``), so the run's other workers and its assembler never count the same
    free space twice. (Building parts in memory instead cost ~13 ms more CPU per 1280x720 pair:
    buffer growth and page faults, measured.)
    """
    import h5py

    count = int(block["blurred"].shape[0])
    final = os.path.join(folder, part_name(start, count))
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{part_name(start, count)}")
    need = _block_bytes(block)
    try:
        with space_for(folder, need + PART_SPACE_MARGIN_BYTES, tmp):
            h5 = h5py.File(tmp, "w")
            try:
                reserve(tmp, need)
                _fill_part(h5, block, start, compression, stamp)
            finally:
                h5.close()
            trim(tmp)  # under the lock: the next check sees what the part really takes
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a partial part only takes space the rerun needs
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(tmp, disk_full_reason(exc)) from None
        raise
    return tmp, final


def commit_part(tmp: str, final: str, durable: bool = True) -> str:
    """Publish a written part: flush it to disk, then rename it to its final name; returns it.

    Separate from writing so a worker can run it in a background thread (fsync waits on the disk,
    not the CPU) while it makes the next block.
    """
    if durable:
        fsync_path(tmp)
    os.replace(tmp, final)
    if durable:
        fsync_path(os.path.dirname(final))
    return final


def write_part(folder: str, block: dict, start: int, compression: Compression,
               *, durable: bool = True, stamp: dict[str, Any] | None = None) -> str:
    """Write one block as ``block-<start>-<count>.h5`` atomically; returns its path."""
    return commit_part(*write_part_tmp(folder, block, start, compression, stamp or {}), durable=durable)


def check_part(h5: Any, path: str, start: int, count: int, stamp: dict[str, Any]) -> None:
    """PartsError unless open part ``h5`` records this sample range and ``stamp`` (same run)."""
    expected = {"sample_start": int(start), "count": int(count), **stamp}
    for key, want in expected.items():
        got = attr_value(h5.attrs.get(key))
        if got != want:
            raise PartsError(f"{path}: not a part of this run ({key} is {got!r}, expected {want!r})")


def verify_stored_data(h5: Any, path: str, names: tuple[str, ...] | None = None,
                       stop: int | None = None) -> None:
    """Read every stored chunk of the chunked datasets and params of open file ``h5`` (samples
    ``[0, stop)``), so HDF5 checks each fletcher32 checksum; PartsError naming the first damaged
    sample otherwise. Memory stays at one chunk at a time."""
    names = names or (*per_sample_datasets(h5), *(f"params/{p}" for p in h5["params"]))
    for name in names:
        ds = h5[name]
        n = ds.shape[0] if stop is None else min(stop, ds.shape[0])
        step = 1 if ds.ndim > 1 else max(1, ds.chunks[0] if ds.chunks else n)
        for first in range(0, n, step):
            try:
                ds[first:first + step]
            except H5_ERRORS as exc:
                raise PartsError(f"{path}: /{name} sample {first} is damaged ({one_line(exc)})") from None
