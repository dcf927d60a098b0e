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
import secrets
import socket
import struct
import zlib
from typing import Any

import numpy as np

from blurgen.core.common import (
    BlurgenError,
    DiskFullError,
    disk_full_reason,
    fsync_path,
    is_disk_full,
    one_line,
    preallocate,
    space_for,
)
from blurgen.store.schema import CHUNKED, H5_ERRORS, IMAGE_DATASETS, MOTION, attr_value, per_sample_datasets

#: HDF5 filter per chunked dataset: name -> (h5py compression, compression_opts).
Compression = dict[str, tuple[str | None, int | None]]
#: Image compression choices of ``blurgen make --compression``.
IMAGE_COMPRESSIONS = ("none", "lzf", "gzip")
#: Free space a part needs beyond its arrays: HDF5 metadata, parameters, attributes.
PART_SPACE_MARGIN_BYTES = 4 * 2**20
#: HDF5 metadata of one part file beyond its arrays (an object header and chunk index per
#: dataset; measured 60-66 KB with 20 params), for estimates made before any part exists.
PART_OVERHEAD_BYTES = 64 * 1024
#: What a part reserves for that metadata while HDF5 writes it (an upper bound; trimmed after).
PART_METADATA_BOUND = 2**20
#: Block files: HDF5 parts, or the tars of the folders, LMDB and WebDataset sinks
#: (``blurgen.runs.samples``); a run folder holds only its own format's (its manifest says which).
_PART_RE = re.compile(r"^block-(\d{10})-(\d+)\.(?:h5|tar)$")
#: A part's last bytes: this marker, then the CRC-32 (big-endian) of every byte before the marker
#: (HDF5 ignores bytes past its end of data). CRC-32 finds every single-bit flip and every burst
#: up to 32 bits, at ~3 GB/s here (BLAKE2b: ~0.9 GB/s, ~6 ms more CPU per 1280x720 pair).
PART_DIGEST_MARKER = b"blurgen-part-crc32:"
_PIECE = 2**20


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
    # Clips (schema 3, (N, T, H, W, 3)): one frame per chunk.
    chunks = (1, 1, *shape[2:]) if name in IMAGE_DATASETS and len(shape) == 5 else (1, *shape[1:])
    return h5.create_dataset(name, shape=shape, dtype=dtype, data=data, chunks=chunks,
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
    """What a part reserves: an upper bound of its size (arrays raw, checksums, metadata)."""
    arrays = [block[name] for name in CHUNKED] + list(block.get("motion", {}).values())
    count = int(block["blurred"].shape[0])
    return (sum(np.asarray(a).nbytes + 4 * count for a in arrays)
            + sum(np.asarray(v).nbytes + 4 for v in block["params"].values()) + PART_METADATA_BOUND)


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


def _crc_of_file(handle: Any, nbytes: int) -> int:
    """CRC-32 of the next ``nbytes`` of ``handle`` (fewer if it ends first), read in 1 MiB pieces."""
    crc = 0
    while nbytes > 0:
        piece = handle.read(min(nbytes, _PIECE))
        if not piece:
            break
        crc = zlib.crc32(piece, crc)
        nbytes -= len(piece)
    return crc


def append_digest(path: str) -> None:
    """Append the trailer ``check_part_bytes`` checks: marker and CRC-32 of the file's bytes."""
    with open(path, "r+b") as handle:
        crc = _crc_of_file(handle, os.fstat(handle.fileno()).st_size)
        handle.seek(0, os.SEEK_END)
        handle.write(PART_DIGEST_MARKER + struct.pack(">I", crc))


def check_part_bytes(path: str) -> None:
    """PartsError unless part file ``path`` holds exactly the bytes it was written with (its
    trailing CRC-32 matches); reads it in pieces of 1 MiB."""
    trailer = len(PART_DIGEST_MARKER) + 4
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size - trailer
            crc = _crc_of_file(handle, size)
            tail = handle.read(trailer) if size >= 0 and handle.tell() == size else b""
    except OSError as exc:
        raise PartsError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if tail != PART_DIGEST_MARKER + struct.pack(">I", crc):
        raise PartsError(f"{path}: damaged (its bytes do not match the checksum written with them)")


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
    # Unique per host, process and call: a block made twice (a retried task on another machine
    # writing to the same shared folder) never shares a temporary; the rename makes either win.
    tmp = os.path.join(folder, f".tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}-"
                               f"{part_name(start, count)}")
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
            append_digest(tmp)
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
        # One row of chunks at a time (whole chunks: a chunk holding many samples is decompressed
        # once, not once per sample); a contiguous image dataset one sample at a time.
        step = max(1, ds.chunks[0] if ds.chunks else (1 if ds.ndim > 1 else n))
        for first in range(0, n, step):
            try:
                ds[first:first + step]
            except H5_ERRORS as exc:
                raise PartsError(f"{path}: /{name} sample {first} is damaged ({one_line(exc)})") from None
