"""Guards for every file blurgen reads: a regular file of bounded size, HDF5 files without links
or storage outside themselves, and array sizes read from headers before anything is decoded.

A FIFO, a device or a socket named like a data file would block ``open`` or never end; an HDF5
external link or external raw storage would make blurgen read (or block on) another file the
user never named; a few kilobytes of compressed data can declare gigabytes. Each guard raises
``UnsafeFileError`` with the problem and the fix (the caller adds the file's name).

Example:
    >>> import tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/k.npy"; np.save(path, np.ones((4, 5, 5), np.float32))
    >>> npy_header_bytes(path)
    400
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from blurgen.core.common import BlurgenError

#: Most bytes of array data one kernel file may declare (all its arrays together, decoded).
MAX_BANK_BYTES = 512 * 2**20
#: Most HDF5 objects a walk for external links visits.
MAX_HDF5_OBJECTS = 10**6
_MAT_COMPRESSED, _MAT_MATRIX = 15, 14


class UnsafeFileError(BlurgenError, ValueError):
    """A file blurgen refuses to read: not a regular file, too large, or reaching outside itself."""


def check_regular(path: str, max_bytes: int | None = None) -> int:
    """The size of ``path`` if it is a regular file of at most ``max_bytes``; else UnsafeFileError."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnsafeFileError(f"cannot open it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError("not a regular file (a FIFO, device or socket would block or never end); "
                              "give a file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise UnsafeFileError(f"{info.st_size} bytes, more than the {max_bytes} this kind of file may have")
    return info.st_size


def check_declared(nbytes: int, what: str = "its arrays", limit: int = MAX_BANK_BYTES) -> None:
    """UnsafeFileError if a header declares more than ``limit`` bytes of data."""
    if nbytes > limit:
        raise UnsafeFileError(f"{what} declare {nbytes / 2**20:.0f} MiB of data, more than the "
                              f"{limit // 2**20} MiB a kernel file may hold; split it into smaller files")


def _npy_header(handle: Any) -> int:
    """Bytes of array data a .npy stream's header declares; refuses pickled (object) arrays."""
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(handle)
    if dtype.hasobject:
        raise UnsafeFileError("holds Python objects (pickled data), which blurgen never loads; "
                              "save the kernels as a numeric array")
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def npy_header_bytes(path: str) -> int:
    """Bytes of array data a .npy file declares (checked against ``MAX_BANK_BYTES``)."""
    with open(path, "rb") as handle:
        nbytes = _npy_header(handle)
    check_declared(nbytes)
    return nbytes


def npz_header_bytes(path: str) -> int:
    """Bytes of array data all arrays of a .npz file declare together (checked)."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            with archive.open(name) as member:
                total += _npy_header(member)
            check_declared(total)
    return total


def mat_v5_data_bytes(path: str) -> int:
    """Bytes of data a MATLAB v5 file holds once decompressed, counted by streaming (stopped at
    ``MAX_BANK_BYTES``); v4 files (no compression) are bounded by their size and give 0."""
    with open(path, "rb") as f:
        head = f.read(128)
        order = {b"IM": "<", b"MI": ">"}.get(head[126:128])
        if len(head) < 128 or order is None:
            return 0
        total = 0
        while True:
            tag = f.read(8)
            if len(tag) < 8:
                return total
            kind, nbytes = struct.unpack(order + "II", tag)
            if kind == _MAT_COMPRESSED:
                total += _inflated_bytes(f, nbytes, MAX_BANK_BYTES - total)
            else:
                total += nbytes
                f.seek(nbytes + (-nbytes % 8 if kind == _MAT_MATRIX else 0), os.SEEK_CUR)
            check_declared(total, "its variables")


def _inflated_bytes(f: Any, nbytes: int, room: int) -> int:
    """Decompressed size of the next ``nbytes`` zlib bytes of ``f``, reading no more than
    ``room + 1`` bytes of output."""
    inflate, total, left = zlib.decompressobj(), 0, nbytes
    while left > 0 and total <= room:
        chunk = f.read(min(left, 1 << 16))
        if not chunk:
            break
        left -= len(chunk)
        try:
            total += len(inflate.decompress(chunk, room + 1 - total))
            while inflate.unconsumed_tail and total <= room:
                total += len(inflate.decompress(inflate.unconsumed_tail, room + 1 - total))
        except zlib.error:
            break  # corrupt: the reader says so
    return total


def hdf5_outside_reference(h5: Any, virtual_sources: set[str] | frozenset = frozenset()) -> str | None:
    """What in an open h5py file reaches outside it: an external link, external raw storage or
    a virtual dataset (their sources are other files), described; None if nothing does. Links
    are read without being followed. A virtual dataset whose every source file is one of
    ``virtual_sources`` (paths as the file stores them, normalised) is allowed: the caller has
    declared and checked those files (blurgen's own virtual merges)."""
    import h5py

    seen, stack, count = set(), [("", h5["/"])], 0
    while stack:
        prefix, group = stack.pop()
        for key in group:
            count += 1
            if count > MAX_HDF5_OBJECTS:
                return f"more than {MAX_HDF5_OBJECTS} objects"
            name = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                return f"{name} is an external link to {link.filename}"
            if not isinstance(link, h5py.HardLink):
                continue  # a soft link names an object inside this file, reached by its hard link
            obj = group[key]
            if obj.id in seen:
                continue
            seen.add(obj.id)
            if isinstance(obj, h5py.Group):
                stack.append((name, obj))
            elif isinstance(obj, h5py.Dataset) and obj.external:
                return f"{name} keeps its data in another file"
            elif isinstance(obj, h5py.Dataset) and obj.is_virtual:
                sources = {os.path.normpath(m.file_name) for m in obj.virtual_sources()}
                if not sources <= virtual_sources:
                    return f"{name} keeps its data in another file ({sorted(sources - virtual_sources)[0]})"
    return None


def refuse_outside_reference(h5: Any) -> None:
    """UnsafeFileError if ``hdf5_outside_reference`` finds anything."""
    found = hdf5_outside_reference(h5)
    if found:
        raise UnsafeFileError(f"{found}; blurgen reads no file through another, so keep all data inside the file")
