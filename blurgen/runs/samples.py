"""One sample as files: PNG images, ``.npy`` arrays and a JSON of its parameters, and a block of
samples as one tar file (the unit the folders, LMDB and WebDataset sinks stage and commit).

A sample ``i`` is named by its 8-digit index (``00000042``: sortable, no dots, so WebDataset's
key rule and BasicSR's "key = name before the first dot" both hold) and has the members
``KEY.blur.png``, ``KEY.sharp.png`` (RGB, 8-bit, lossless), ``KEY.kernel.npy`` (float32 (k, k)),
``KEY.motion.npy`` when the dataset stores camera motion (float32 (S, 6): rotation then
translation per pose) and ``KEY.json`` (every per-sample parameter, exact for float32;
infinities and NaN as the strings ``"Infinity"``, ``"-Infinity"``, ``"NaN"``).

A block tar carries, in its PAX global header, the run it belongs to (first sample, count, the
run's stamp) and, in each member's PAX header, the member's CRC-32, so a damaged or foreign block
is found before it is used. Tar readers (Python's ``tarfile``, GNU tar, WebDataset) skip PAX
headers, so a block tar is also a valid WebDataset shard.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import math
import os
import secrets
import socket
import zlib
from typing import Any, Callable, Iterator

import numpy as np

from blurgen.core.common import DiskFullError, disk_full_reason, is_disk_full, is_temporary
from blurgen.runs import block_tar
from blurgen.store.parts import PartsError

#: PNG compression level (zlib 0-9) of every image the folders, LMDB and WebDataset sinks write.
#: Level 1 (2.0 ms per 256x256 image, 119 kB) against level 0 (0.21 ms, 197 kB: stored, not
#: compressed), measured by ``benchmarks/bench_formats.py --sections png``; see README.
DEFAULT_PNG_LEVEL = 1
#: PNG encoders: OpenCV's libpng (zlib ``level``, Z_RLE strategy, one row filter) or fpng (``pip
#: install blurgen[fastpng]``: one fixed fast deflate, ``level`` unused; measured ~10x faster than
#: OpenCV at level 1 on 256x256 images, files ~12 % larger). Both are lossless: the arrays are the same.
PNG_ENCODERS = ("opencv", "fpng")
#: Digits of a sample's name (up to 100 million samples).
NAME_DIGITS = 8
#: Order of a sample's members in a block tar (a WebDataset sample's extensions).
MEMBER_KINDS = ("blur.png", "sharp.png", "kernel.npy", "motion.npy", "json")
_STAMP_KEY = "blurgen.block"
_CRC_KEY = "blurgen.crc32"
_DTYPES_KEY = "blurgen.dtypes"
#: The pax keyword holding a member's CRC-32 (and a JSON member's parameter dtypes) as
#: ``blurgen.crc32=N[ blurgen.dtypes=JSON]``: ``comment``, which POSIX tells readers to ignore and
#: GNU tar, tarfile and WebDataset do. Under keywords of their own (blurgen 0.1's tars, still read)
#: GNU tar printed "Ignoring unknown extended header keyword" for every member it listed.
_NOTE_KEY = "comment"
#: PAX key of a member the worker wrote as a file of the output (``FileBlockWriter``): its size
#: and CRC-32 (``SIZE:CRC``); the tar holds it with no data.
_FILE_KEY = "blurgen.file"
#: Name prefix of a file being written into the output (never a sample's name: those are digits).
FILE_TEMPORARY_PREFIX = ".tmp-"


class BlockFileError(PartsError):
    """A block tar that is unreadable, damaged or of another run (a ``PartsError``: the run
    deletes it and makes the block again)."""


def sample_name(index: int) -> str:
    """The name of sample ``index``: 8 digits, e.g. ``sample_name(42) == '00000042'``.

    >>> sample_name(42)
    '00000042'
    """
    return f"{int(index):0{NAME_DIGITS}d}"


def encode_png(image: np.ndarray, level: int = DEFAULT_PNG_LEVEL, encoder: str = "opencv") -> bytes:
    """PNG bytes of an RGB uint8 (H, W, 3) image: OpenCV's encoder at zlib ``level`` with the
    Z_RLE strategy and one fixed row filter (``_opencv_png_params``), or ``encoder="fpng"``
    (``PNG_ENCODERS``)."""
    if encoder == "fpng":
        import fpng

        return fpng.from_ndarray(np.ascontiguousarray(image))
    import cv2

    # cvtColor: ~0.005 ms per 256x256 image, where the strided copy image[..., ::-1] took 0.23 ms
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                            _opencv_png_params(int(level)))
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


@functools.lru_cache(maxsize=16)
def _opencv_png_params(level: int) -> list[int]:
    """``cv2.imencode`` parameters of a PNG at zlib ``level``: the Z_RLE strategy (measured ~25 %
    faster than the default strategy at level 1, files no larger on blurred images) and, where
    OpenCV offers the choice (4.11 and later), one row filter instead of libpng's adaptive choice
    among all five, which spent 40 % of the encoding time: "average" at levels 1-9 (measured 2.0
    instead of 3.4-3.7 ms per 256x256 image, files 1-3 % larger), none at level 0 (stored, not
    compressed: filtering only costs time there, 0.2 instead of 1.7 ms, same size)."""
    import cv2

    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE if level == 0 else cv2.IMWRITE_PNG_FILTER_AVG]
    return params


def decode_png(data: bytes) -> np.ndarray:
    """RGB uint8 (H, W, 3) image of PNG bytes (what ``encode_png`` wrote).

    >>> image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    >>> bool((decode_png(encode_png(image)) == image).all())
    True
    """
    import cv2

    from blurgen.core.imageio import png_is_whole

    if not png_is_whole(data):  # checked first: libpng would print its own error on stderr
        raise ValueError("not a whole PNG image (damaged or cut short)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a PNG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=64)
def npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """What ``np.save`` writes before the data of a C-ordered array of ``dtype`` and ``shape``."""
    handle = io.BytesIO()
    np.lib.format.write_array_header_1_0(handle, {"descr": dtype, "fortran_order": False, "shape": shape})
    return handle.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """The bytes ``np.save`` writes for ``array`` (a numeric one), its header cached by dtype and
    shape (``np.save`` spent ~0.1 ms a call building it, more than a kernel's data takes).

    >>> kernel = np.eye(3, dtype=np.float32)
    >>> handle = io.BytesIO(); np.save(handle, kernel)
    >>> npy_bytes(kernel) == handle.getvalue()
    True
    """
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject or array.dtype.fields is not None:
        handle = io.BytesIO()
        np.save(handle, array, allow_pickle=False)
        return handle.getvalue()
    return npy_header(np.lib.format.dtype_to_descr(array.dtype), array.shape) + array.tobytes()


def load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def motion_array(motion: dict[str, np.ndarray], i: int) -> np.ndarray:
    """Sample ``i``'s camera motion as one float32 (S, 6) array: rotation (3), translation (3)."""
    return np.concatenate([motion["rotation"][i], motion["translation"][i]], axis=-1).astype(np.float32)


def params_json(block: dict, i: int) -> bytes:
    """The JSON member of row ``i`` of ``block``: every per-sample parameter (exact for float32).
    JSON has no number for infinities and NaN (a camera with no translation has ``depth_m`` inf):
    they are the strings ``"Infinity"``, ``"-Infinity"``, ``"NaN"``, which Python's ``float``,
    numpy's ``np.array(..., dtype)`` and JavaScript's ``Number`` read back.

    >>> params_json({"params": {"depth_m": np.array([np.inf], np.float32), "seed": np.array([3])}}, 0)
    b'{"depth_m": "Infinity", "seed": 3}'
    """
    params = {name: _json_value(np.asarray(values[i]).item()) for name, values in block["params"].items()}
    return json.dumps(params, sort_keys=True, allow_nan=False).encode()


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def sample_members(block: dict, i: int, index: int, level: int, encoder: str = "opencv") -> list[tuple[str, bytes]]:
    """``(member name, bytes)`` of row ``i`` of ``block`` (sample ``index``), in ``MEMBER_KINDS`` order."""
    key = sample_name(index)
    members = [(f"{key}.blur.png", encode_png(block["blurred"][i], level, encoder)),
               (f"{key}.sharp.png", encode_png(block["sharp"][i], level, encoder)),
               (f"{key}.kernel.npy", npy_bytes(np.asarray(block["kernel"][i], np.float32)))]
    if block.get("motion"):
        members.append((f"{key}.motion.npy", npy_bytes(motion_array(block["motion"], i))))
    members.append((f"{key}.json", params_json(block, i)))
    return members


def param_dtypes(block: dict) -> dict[str, str]:
    """Name -> numpy dtype string of a block's parameters (recorded, so readers restore them)."""
    return {name: np.asarray(values).dtype.str for name, values in block["params"].items()}


def block_tar_name(start: int, count: int) -> str:
    return f"block-{start:010d}-{count}.tar"


def close_descriptor(owner: Any, attribute: str) -> None:
    """Close the file descriptor ``owner.<attribute>`` if it is open (-1: closed), errors ignored."""
    fd = getattr(owner, attribute, -1)
    if fd >= 0:
        setattr(owner, attribute, -1)
        with contextlib.suppress(OSError):
            os.close(fd)


#: Bytes (and pieces) a block tar gathers before writing them with one ``os.writev``.
GATHER_BYTES = 512 * 1024
GATHER_PARTS = 64  # far below the system's IOV_MAX (1024 on Linux)


class BlockTarWriter:
    """Writes one block tar under a temporary name in ``folder``; ``close()`` returns
    ``(temporary, final path)``. Any failure removes the temporary; a full disk becomes
    ``DiskFullError``."""

    def __init__(self, folder: str, start: int, count: int, stamp: dict[str, Any]) -> None:
        self.final = os.path.join(folder, block_tar_name(start, count))
        # Unique per host, process and call: a block made twice never shares a temporary.
        self.tmp = os.path.join(folder, f".tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}-"
                                        f"{block_tar_name(start, count)}")
        header = {_STAMP_KEY: json.dumps({"start": int(start), "count": int(count), **stamp}, sort_keys=True)}
        self._fd, self._parts, self._gathered, self._size = -1, [], 0, 0
        with self.guard():
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            self._emit(block_tar.pax_header(header, b"g"))

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            self._close_fd()
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                raise DiskFullError(self.tmp, disk_full_reason(exc)) from None
            raise

    def add(self, name: str, data: bytes, dtypes: dict[str, str] | None = None) -> None:
        """Add member ``name``; ``dtypes`` (a JSON member's parameter dtypes) go in its header."""
        if type(data) is not bytes:  # written later (gathered): a caller's buffer may change meanwhile
            data = bytes(data)
        note = f"{_CRC_KEY}={zlib.crc32(data)}"
        if dtypes is not None:
            note += f" {_DTYPES_KEY}={json.dumps(dtypes, sort_keys=True)}"
        with self.guard():
            self._emit(block_tar.member(name, len(data), {_NOTE_KEY: note}), data, block_tar.padding(len(data)))

    def _emit(self, *parts: bytes) -> None:
        """Append ``parts`` to the tar: gathered, then written by one ``os.writev`` once
        ``GATHER_BYTES`` are waiting (a pair's members in one system call instead of ten)."""
        for part in parts:
            if part:
                self._parts.append(part)
                self._gathered += len(part)
                self._size += len(part)
        if self._gathered >= GATHER_BYTES or len(self._parts) >= GATHER_PARTS:
            self._flush()

    def _flush(self) -> None:
        parts, self._parts, self._gathered = self._parts, [], 0
        while parts:
            written = os.writev(self._fd, parts)
            if written == 0:  # nothing taken and no error: treated as a full disk, never a loop for ever
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.tmp)
            while parts and written >= len(parts[0]):  # a short write (rare on a file): the rest again
                written -= len(parts[0])
                parts.pop(0)
            if written:
                parts[0] = memoryview(parts[0])[written:]

    def _close_fd(self) -> None:
        close_descriptor(self, "_fd")

    def __del__(self) -> None:
        # A writer dropped without close() (an error raised between its calls): its file is closed
        # and, never finished, removed (close() lets go of the descriptor before the commit).
        try:
            if getattr(self, "_fd", -1) >= 0:
                self._close_fd()
                os.unlink(self.tmp)
        except Exception:  # noqa: BLE001, S110 -- gone already, or modules gone at interpreter exit
            pass

    def close(self) -> tuple[str, str]:
        with self.guard():
            self._emit(block_tar.end_of_archive(self._size))
            self._flush()
            fd, self._fd = self._fd, -1
            os.close(fd)
        return self.tmp, self.final


class FileBlockWriter(BlockTarWriter):
    """A block tar whose members go, where ``place(kind, key)`` names a path (relative to
    ``output``), straight into the output being built, each as a file renamed into place when
    whole; the tar keeps the other members and, for each file, a receipt (its size and CRC-32, no
    data) that ``read_block_tar`` checks the file against on ``--resume``. The folders and LMDB
    sinks use it so the driver does not write every image a second time.

    ``output`` is opened once, when the block starts, and every folder, file and rename is made
    relative to that handle: a late duplicate of the block (a Dask task still running after its
    run was interrupted and replaced) writes into its own run's folder, gone or set aside, never
    into a newer run's output under the same path."""

    def __init__(self, folder: str, start: int, count: int, stamp: dict[str, Any], output: str,
                 place: Callable[[str, str], str | None]) -> None:
        try:
            self._dir = os.open(output, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PartsError(f"{output} is gone: its run was replaced or discarded") from None
        try:
            super().__init__(folder, start, count, stamp)
        except BaseException:
            self._close_dir()  # guard() may have closed it already (a full disk at the create)
            raise
        self.place = place
        self._folders: set[str] = set()

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        try:
            with super().guard():
                yield
        except BaseException:
            self._close_dir()
            raise

    def _close_dir(self) -> None:
        close_descriptor(self, "_dir")

    def __del__(self) -> None:
        super().__del__()
        try:
            self._close_dir()
        except Exception:  # noqa: BLE001, S110 -- modules gone at interpreter exit
            pass

    def close(self) -> tuple[str, str]:
        try:
            return super().close()
        finally:
            self._close_dir()

    def _make_folders(self, relative: str) -> None:
        parts = relative.split(os.sep)
        for depth in range(1, len(parts) + 1):
            folder = os.path.join(*parts[:depth])
            if folder not in self._folders:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, dir_fd=self._dir)
                self._folders.add(folder)

    def add(self, name: str, data: bytes, dtypes: dict[str, str] | None = None) -> None:
        key, kind = name.split(".", 1)
        relative = self.place(kind, key)
        if relative is None:
            return super().add(name, data, dtypes)
        folder, base = os.path.split(relative)
        # In the file's own folder (not the run folder, whose fsyncs would stall every create); a
        # killed write's temporary is removed when the output is finished (remove_file_temporaries).
        tmp = os.path.join(folder, f"{FILE_TEMPORARY_PREFIX}{secrets.token_hex(6)}-{base}")
        with self.guard():
            try:
                if folder:
                    self._make_folders(folder)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644, dir_fd=self._dir)
                with open(fd, "wb") as handle:
                    handle.write(data)
                # a late duplicate of the block never shows a part-written file
                os.replace(tmp, relative, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=self._dir)
                raise
            # No blurgen.crc32 on a receipt: a reader that knows no receipts refuses the block
            # (and remakes it) instead of taking it for an empty file.
            self._emit(block_tar.member(name, 0, {_FILE_KEY: f"{len(data)}:{zlib.crc32(data)}"}))


def remove_file_temporaries(output: str) -> None:
    """Delete the temporaries that a killed worker (``FileBlockWriter``) or a killed finalize
    (``atomic_file``) left in ``output``."""
    for folder, _, names in os.walk(output):
        for name in names:
            if name.startswith(FILE_TEMPORARY_PREFIX) or is_temporary(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


def check_files(output: str, receipts: dict[str, tuple[str, int, int]], block: str) -> None:
    """``BlockFileError`` unless every receipted file (``name -> (relative path, size, CRC-32)``)
    is in ``output``, whole and unchanged (read back: a file written before a power loss may be
    empty while its block's tar survived)."""
    for name, (relative, size, crc) in receipts.items():
        path = os.path.join(output, relative)
        try:
            with open(path, "rb") as handle:
                data = handle.read(size + 1)
        except OSError as exc:
            raise BlockFileError(f"{block}: {name} is missing from the output ({exc.strerror})") from None
        if len(data) != size or zlib.crc32(data) != crc:
            raise BlockFileError(f"{block}: {relative} is damaged (size or CRC-32 mismatch)")


def add_block(writer: BlockTarWriter, block: dict, start: int, level: int, encoder: str = "opencv",
              members: Callable[..., list[tuple[str, bytes]]] = sample_members) -> None:
    """Append the samples of ``block`` (the first is sample ``start``) to an open block tar;
    ``members`` encodes one sample (``sample_members``, or a clip's: ``blurgen.runs.clip_sinks``)."""
    dtypes = param_dtypes(block)
    for i in range(int(block["blurred"].shape[0])):
        with writer.guard():
            encoded = members(block, i, start + i, level, encoder)
        for name, data in encoded:
            writer.add(name, data, dtypes if name.endswith(".json") else None)


def member_checks(pax: dict[str, str]) -> tuple[str | None, str | None]:
    """``(CRC-32, dtypes JSON)`` that a block tar member's pax headers record (None where they do
    not): from its ``comment``, or from the keywords of blurgen 0.1's tars.

    >>> member_checks({"comment": 'blurgen.crc32=12 blurgen.dtypes={"a": "int16"}'})
    ('12', '{"a": "int16"}')
    >>> member_checks({"blurgen.crc32": "12"}), member_checks({"comment": "a user's note"})
    (('12', None), (None, None))
    """
    note = pax.get(_NOTE_KEY, "")
    if not note.startswith(f"{_CRC_KEY}="):
        return pax.get(_CRC_KEY), pax.get(_DTYPES_KEY)
    crc, _, rest = note[len(_CRC_KEY) + 1:].partition(" ")
    dtypes = rest[len(_DTYPES_KEY) + 1:] if rest.startswith(f"{_DTYPES_KEY}=") else None
    return crc, dtypes


def write_block_tar(folder: str, block: dict, start: int, stamp: dict[str, Any], level: int,
                    encoder: str = "opencv") -> tuple[str, str]:
    """Stage ``block`` (samples ``start``...) as a tar in ``folder``: ``(temporary, final)``."""
    writer = BlockTarWriter(folder, start, int(block["blurred"].shape[0]), stamp)
    add_block(writer, block, start, level, encoder)
    return writer.close()


def read_block_tar(path: str, start: int, count: int, stamp: dict[str, Any], *, verify: bool = True,
                   receipts: dict[str, tuple[int, int]] | None = None) -> Iterator[tuple[str, bytes, Any]]:
    """Yield ``(member name, bytes, parameter dtypes or None)`` of block tar ``path`` after checking it records samples
    ``[start, start + count)`` of the run with ``stamp``; with ``verify`` each member's CRC-32 is
    checked as it is read (a block this run's worker just committed needs no second check).
    ``BlockFileError`` otherwise (also for a tar missing a sample). Members written as files
    (``FileBlockWriter``) are not yielded: their ``(size, CRC-32)`` go into ``receipts``."""
    if not os.path.isfile(path):  # a FIFO would block the read for ever, a folder is no block
        raise BlockFileError(f"{path}: not a regular file")
    expected = json.loads(json.dumps({"start": int(start), "count": int(count), **stamp}))
    keys: set[str] = set()
    try:
        with open(path, "rb") as handle:
            recorded: dict[str, str] = {}
            for name, data, pax in block_tar.read_members(handle, recorded):
                if not keys and json.loads(recorded.get(_STAMP_KEY, "{}")) != expected:
                    raise BlockFileError(f"{path}: not a block of this run (records "
                                         f"{json.loads(recorded.get(_STAMP_KEY, '{}'))}, expected {expected})")
                keys.add(name.split(".", 1)[0])
                if _FILE_KEY in pax:
                    if receipts is not None:
                        size, crc = pax[_FILE_KEY].split(":")
                        receipts[name] = int(size), int(crc)
                    continue
                crc, dtypes = member_checks(pax)
                if verify and str(zlib.crc32(data)) != crc:
                    raise BlockFileError(f"{path}: {name} is damaged (CRC-32 mismatch)")
                yield name, data, (json.loads(dtypes) if dtypes else None)
    except (OSError, ValueError) as exc:
        raise BlockFileError(f"{path}: unreadable block ({exc})") from None
    if keys != {sample_name(i) for i in range(start, start + count)}:
        raise BlockFileError(f"{path}: holds {len(keys)} samples, expected {count}")


def check_block_tar(path: str, start: int, count: int, stamp: dict[str, Any],
                    receipts: dict[str, tuple[int, int]] | None = None) -> None:
    """``BlockFileError`` unless ``path`` is an intact block tar of this run (reads it whole);
    the receipts of its file members go into ``receipts`` (``read_block_tar``)."""
    for _ in read_block_tar(path, start, count, stamp, receipts=receipts):
        pass
