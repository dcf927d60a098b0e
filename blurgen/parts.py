"""Crash-consistent building blocks of a dataset run: the plan, the manifest, block part files.

A run that writes ``pairs.h5`` keeps its finished work in ``pairs.h5.parts/``:

* ``manifest.json`` -- the run's settings (config, seed, sample range, block size, compression),
  written atomically before any work, so ``--resume`` can refuse different settings;
* ``block-<start>-<count>.h5`` -- one small HDF5 file per block of samples, written under a
  temporary name, flushed to disk and renamed when complete: a name that exists is a complete block,
  whatever moment the process was killed at;
* ``.lock`` -- held (``flock``) by the running process, released by the kernel even on SIGKILL.

Sample ``i`` depends only on ``(seed, i)``, so blocks are independent: any worker may make any
block, in any order, and the block size never changes the arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

log = logging.getLogger(__name__)

PARTS_FORMAT = "blurgen-parts"
PARTS_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
#: Held (``flock``) around each "check free space, then write" of one run's processes.
SPACE_LOCK_NAME = ".space-lock"
MAX_BLOCK_SAMPLES = 64
#: Raw bytes of one block's images we aim under, so huge images get smaller blocks (and a worker's
#: memory stays bounded) while small ones keep 64 samples per block.
BLOCK_TARGET_BYTES = 64 * 2**20
#: Free space a part needs beyond its raw arrays: HDF5 metadata, parameters, attributes.
PART_SPACE_MARGIN_BYTES = 4 * 2**20
_PART_RE = re.compile(r"^block-(\d{10})-(\d+)\.h5$")

#: HDF5 filter per chunked dataset: name -> (h5py compression, compression_opts).
Compression = dict[str, tuple[str | None, int | None]]
#: Image compression choices of ``blurgen make --compression``.
IMAGE_COMPRESSIONS = ("none", "lzf", "gzip")


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


class PartsError(Exception):
    """A parts folder that cannot be used (locked by another run, settings differ, unreadable)."""


class DiskFullError(PartsError):
    """No space left for ``path``. Raised before HDF5 writes where possible: after a failed write
    HDF5 2.0 / h5py 3.16 crash (segfault) when the file is closed."""

    def __init__(self, path: str) -> None:
        super().__init__(f"disk full while writing {path}")
        self.path = path


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is ENOSPC, ours or one that HDF5 wrapped into its message text."""
    if isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        return True
    text = str(exc)
    return "No space left on device" in text or "errno = 28," in text


def free_bytes(path: str) -> int:
    """Bytes an unprivileged process may still write on the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def space_reserved(folder: str) -> Iterator[None]:
    """Serialise "check free space, then write" among the processes writing into ``folder``.

    Each writer checks only its own need; two workers (or a worker and the assembler) checking at
    once could both pass and then, together, fill the disk inside HDF5, which prints tracebacks
    and can crash the process (see ``DiskFullError``). Holding this lock from the check until the
    HDF5 file is closed makes every check see the others' writes. ``flock``: released by the
    kernel even on SIGKILL.
    """
    fd = os.open(os.path.join(folder, SPACE_LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def parts_dir_for(out: str) -> str:
    """The folder holding the blocks of ``out`` while it is being made."""
    return os.fspath(out) + ".parts"


def auto_block_size(width: int, height: int) -> int:
    """Samples per block for images of ``width`` x ``height``: 64, fewer for large images."""
    pair_bytes = 2 * 3 * int(width) * int(height)
    return int(max(1, min(MAX_BLOCK_SAMPLES, BLOCK_TARGET_BYTES // pair_bytes)))


def shard_range(n_total: int, shard_index: int, shard_count: int) -> tuple[int, int]:
    """Samples ``[start, stop)`` of shard ``shard_index`` of ``shard_count`` (contiguous, near equal)."""
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard index must be in [0, {shard_count - 1}], got {shard_index}")
    return n_total * shard_index // shard_count, n_total * (shard_index + 1) // shard_count


def plan_blocks(start: int, stop: int, block_size: int) -> list[tuple[int, int]]:
    """Blocks ``(first sample, count)`` covering ``[start, stop)``; block edges are multiples of
    ``block_size`` (absolute), so the shards of one dataset cut the same blocks."""
    blocks = []
    first = start
    while first < stop:
        edge = min(stop, (first // block_size + 1) * block_size)
        blocks.append((first, edge - first))
        first = edge
    return blocks


def part_name(start: int, count: int) -> str:
    return f"block-{start:010d}-{count}.h5"


def part_files(parts_dir: str) -> list[str]:
    """Names of the block part files in ``parts_dir`` (planned or not)."""
    try:
        return sorted(name for name in os.listdir(parts_dir) if _PART_RE.match(name))
    except FileNotFoundError:
        return []


def config_digest(config: dict) -> str:
    """SHA-256 of a config dict's canonical JSON (tuples and lists hash alike, as JSON has only
    lists), so a part can say which settings made it without carrying the whole config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def part_stamp(config: dict, seed: int) -> dict[str, Any]:
    """Attributes every part of one run carries: with its sample range they pin its arrays."""
    return {"seed": int(seed), "config_digest": config_digest(config)}


# ----------------------------------------------------------------------------------- manifest
@dataclass(frozen=True)
class Manifest:
    """Settings of one run; two runs with equal manifests make equal arrays.

    ``config`` is the pairs configuration as a plain dict (``PairsConfig.to_dict()``);
    ``[sample_start, sample_stop)`` is the range this run (shard) makes out of ``n_total``.
    """

    config: dict
    seed: int
    n_total: int
    sample_start: int
    sample_stop: int
    shard_index: int
    shard_count: int
    block_size: int
    compression: dict
    blurgen_version: str
    #: ``Source.fingerprint()``: the image files a folder or GoPro source reads ("" if none).
    source_files_digest: str = ""

    @property
    def n_planned(self) -> int:
        return self.sample_stop - self.sample_start

    def to_dict(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        return {"format": PARTS_FORMAT, "version": PARTS_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        if data.get("format") != PARTS_FORMAT or data.get("version") != PARTS_VERSION:
            raise PartsError(f"not a blurgen parts manifest (format {data.get('format')!r}, "
                             f"version {data.get('version')!r})")
        # A field added later with a default (source_files_digest) may be missing from a manifest
        # an older version wrote; the others are required.
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in data and f.default is dataclasses.MISSING]
        if missing:
            raise PartsError(f"manifest lacks {missing[0]!r}")
        fields = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        fields["compression"] = {k: tuple(v) for k, v in fields["compression"].items()}
        return cls(**fields)

    def settings(self) -> dict[str, Any]:
        """What fixes the arrays, as a finished file records it (``assemble.file_settings``)."""
        return {"config": json.loads(json.dumps(self.config)), "seed": self.seed,
                "n_total": self.n_total, "sample_start": self.sample_start,
                "sample_stop": self.sample_stop}

    def differences(self, other: "Manifest") -> list[str]:
        """Human-readable list of the settings that differ, e.g. ``['seed: 1 != 0']``."""
        mine, theirs = _flatten(self.to_dict()), _flatten(other.to_dict())
        return [f"{key}: {mine.get(key)!r} (now) != {theirs.get(key)!r} (interrupted run)"
                for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:  # JSON turns tuples into lists: compare as lists
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat


def fsync_path(path: str) -> None:
    """fsync a file (its data) or a folder (making a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(parts_dir: str, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically (tmp + fsync + rename)."""
    path = os.path.join(parts_dir, MANIFEST_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest.to_dict(), fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(parts_dir)


def read_manifest(parts_dir: str) -> Manifest:
    """Read ``manifest.json`` of a parts folder; raises PartsError if missing or damaged."""
    path = os.path.join(parts_dir, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise PartsError(f"{parts_dir}: no {MANIFEST_NAME} (not a blurgen parts folder)") from None
    except (OSError, ValueError) as exc:
        raise PartsError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(data, dict):
        raise PartsError(f"{path}: unreadable manifest: not a JSON object")
    try:
        return Manifest.from_dict(data)
    except PartsError as exc:
        raise PartsError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------------------- lock
@contextlib.contextmanager
def locked(parts_dir: str) -> Iterator[None]:
    """Hold the run lock of ``parts_dir``; PartsError if another process holds it.

    ``flock`` locks die with their process (SIGKILL included), so a stale lock never blocks
    ``--resume``.
    """
    fd = os.open(os.path.join(parts_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise PartsError(f"{parts_dir} is in use by another blurgen make "
                                 "(wait for it, or stop it first)") from None
            raise
        yield
    finally:
        os.close(fd)


def is_locked(parts_dir: str) -> bool:
    """Whether a running process holds the lock of ``parts_dir`` (an in-progress run)."""
    path = os.path.join(parts_dir, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- part files
def write_part(parts_dir: str, block: dict, start: int, compression: Compression,
               *, durable: bool = True, stamp: dict[str, Any] | None = None) -> str:
    """Write one block as ``block-<start>-<count>.h5`` atomically; returns its path.

    ``block`` is ``make_block``'s dict: ``blurred``/``sharp`` uint8 (count, H, W, 3), ``kernel``
    float32 (count, k, k), ``params`` name -> 1-D (count,). Chunks are one sample each, compressed
    as the final file's, so assembly copies them without decoding.
    """
    return commit_part(*write_part_tmp(parts_dir, block, start, compression, stamp), durable=durable)


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


def write_part_tmp(parts_dir: str, block: dict, start: int, compression: Compression,
                   stamp: dict[str, Any] | None = None) -> tuple[str, str]:
    """Write a block under a temporary name; returns ``(temporary path, final path)``.

    ``stamp`` (``part_stamp``) is stored as attributes so ``--resume`` can tell this run's parts
    from a stray file of another run that happens to have a planned name.

    HDF5 writes the file directly (building it in memory first and writing the image cost ~1 ms
    of CPU per 256x256 pair more, measured: ~10 % of making the pair). A failed HDF5 write can
    crash the process when the file is closed (see ``DiskFullError``), so the space is checked
    first, under ``space_reserved`` so the run's other workers and its assembler cannot use the
    same free space at the same moment; only another program filling the disk in between can still
    end in that crash, which the parent reports as a dead worker, with finished blocks kept.
    """
    import h5py

    count = int(block["blurred"].shape[0])
    final = os.path.join(parts_dir, part_name(start, count))
    tmp = os.path.join(parts_dir, f".tmp-{os.getpid()}-{part_name(start, count)}")
    raw = sum(np.asarray(block[name]).nbytes for name in ("blurred", "sharp", "kernel"))
    with space_reserved(parts_dir):  # no other writer of this run checks or writes meanwhile
        if free_bytes(parts_dir) < raw + PART_SPACE_MARGIN_BYTES:
            raise DiskFullError(tmp)
        try:
            with h5py.File(tmp, "w") as h5:
                _fill_part(h5, block, start, count, compression, stamp)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a partial part only takes space the rerun needs
            if is_disk_full(exc):
                raise DiskFullError(tmp) from None
            raise
    return tmp, final


def _fill_part(h5: Any, block: dict, start: int, count: int, compression: Compression,
               stamp: dict[str, Any] | None) -> None:
    """Datasets (one sample per chunk, the final file's filters) and attributes of one part."""
    for name in ("blurred", "sharp", "kernel"):
        method, opts = compression[name]
        data = np.ascontiguousarray(block[name])
        h5.create_dataset(name, data=data, chunks=(1, *data.shape[1:]),
                          compression=method, compression_opts=opts)
    group = h5.create_group("params")
    for name, values in block["params"].items():
        values = np.asarray(values)
        if values.shape != (count,):
            raise ValueError(f"param {name!r} has shape {values.shape}, expected ({count},)")
        group.create_dataset(name, data=values)
    h5.attrs["sample_start"] = start
    h5.attrs["count"] = count
    for key, value in (stamp or {}).items():
        h5.attrs[key] = value


def check_part(h5: Any, path: str, start: int, count: int, stamp: dict[str, Any]) -> None:
    """PartsError unless open part ``h5`` records this sample range and ``stamp`` (same run)."""
    expected = {"sample_start": int(start), "count": int(count), **stamp}
    for key, want in expected.items():
        got = h5.attrs.get(key)
        got = got.decode() if isinstance(got, bytes) else got
        got = got.item() if isinstance(got, np.generic) else got
        if got != want:
            raise PartsError(f"{path}: not a part of this run ({key} is {got!r}, expected {want!r})")


def complete_parts(parts_dir: str, blocks: list[tuple[int, int]]) -> dict[int, str]:
    """Planned blocks that have a complete part file: first sample -> path.

    Files that match no planned block are ignored (they cannot come from a run with the same
    manifest, which ``--resume`` checks first). A name is not proof of origin: the caller checks
    each kept part's attributes with ``check_part``.
    """
    planned = dict(blocks)
    found: dict[int, str] = {}
    try:
        names = os.listdir(parts_dir)
    except FileNotFoundError:
        return found
    for name in names:
        match = _PART_RE.match(name)
        if match:
            start, count = int(match.group(1)), int(match.group(2))
            if planned.get(start) == count:
                found[start] = os.path.join(parts_dir, name)
    return found


def remove_stale_tmp(parts_dir: str) -> int:
    """Delete temporaries left by killed processes (only call while holding the lock)."""
    removed = 0
    for name in os.listdir(parts_dir):
        if name.startswith(".tmp-") or name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(parts_dir, name))
                removed += 1
    return removed
