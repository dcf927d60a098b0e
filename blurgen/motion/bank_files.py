"""Reading kernel files: each reader yields ``(label, array)``, the array a kernel or a stack of
kernels; every file passes ``blurgen.core.safe_files``'s guards (a regular file, sizes from headers
before decoding, no HDF5 links or storage outside the file) first.

Example:
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/k.npy"; np.save(path, np.ones((2, 3, 3)))
    >>> [(label, k.shape) for label, k in read_kernel_arrays(path)[0]]
    [('kernel 0', (3, 3)), ('kernel 1', (3, 3))]
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, Iterator

import numpy as np

from blurgen.core.common import BlurgenError
from blurgen.core.config import MAX_KERNEL_SIZE
from blurgen.core.safe_files import (
    MAX_BANK_BYTES,
    check_declared,
    check_regular,
    mat_v5_data_bytes,
    npy_header_bytes,
    npz_header_bytes,
    refuse_outside_reference,
)

#: Deepest nesting of cell arrays in a .mat file (a cell referring to itself would never end).
MAX_CELL_DEPTH = 32
_FILE_TYPES = ".npy, .npz, .mat, .png or a folder of .png files"
#: Exceptions of the readers that mean "not a readable file of this kind".
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, TypeError, NotImplementedError, MemoryError,
               UnicodeError, zipfile.BadZipFile, RuntimeError)


class KernelBankError(BlurgenError, ValueError):
    """A kernel file that cannot be used; the message names the file and the reason."""


def _split(label: str, arr: np.ndarray, matlab: bool) -> Iterator[tuple[str, np.ndarray]]:
    """2-D kernels of one array: (k, k) as is; a 3-D stack as (N, k, k), or in a .mat file as
    MATLAB's (k, k, N) (kernels along the last axis) unless only (N, k, k) has square slices."""
    if arr.ndim == 2:
        yield label, arr
        return
    if arr.ndim != 3:
        where = f"{label}: " if label else ""
        raise KernelBankError(f"{where}an array of {arr.ndim} dimension(s), expected (k, k) or a stack of kernels")
    last_axis = matlab and not (arr.shape[0] != arr.shape[1] and arr.shape[1] == arr.shape[2])
    stack = np.moveaxis(arr, 2, 0) if last_axis else arr
    for i in range(stack.shape[0]):
        yield f"{label} kernel {i}".strip(), stack[i]


def _read_npy(path: str) -> Iterator[tuple[str, np.ndarray]]:
    npy_header_bytes(path)  # sizes from the header, before anything is allocated
    yield "", np.load(path, allow_pickle=False)


def _read_npz(path: str) -> Iterator[tuple[str, np.ndarray]]:
    npz_header_bytes(path)
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            yield f"array {name!r}", archive[name]


def _mat_v5_items(label: str, value: Any) -> Iterator[tuple[str, np.ndarray]]:
    """Numeric arrays in a scipy.io.loadmat value, cell arrays walked in MATLAB (column) order;
    text and structs are skipped."""
    if hasattr(value, "toarray"):  # scipy.sparse: np.asarray would wrap it in itself for ever
        raise KernelBankError(f"{label}: a sparse matrix; save kernels as full arrays (full(k) in MATLAB)")
    arr = np.asarray(value)
    if arr.dtype == object:
        for i, item in enumerate(arr.ravel(order="F")):
            yield from _mat_v5_items(f"{label}{{{i + 1}}}", item)
    elif arr.dtype.fields is None and arr.dtype.kind in "biuf c":
        yield label, arr


def _read_mat_v5(path: str) -> Iterator[tuple[str, np.ndarray]]:
    from scipy.io import loadmat

    mat_v5_data_bytes(path)  # decompressed sizes counted before scipy allocates them
    for name, value in loadmat(path).items():
        if not name.startswith("__"):
            yield from _mat_v5_items(f"variable {name!r}", value)


def _mat_v73_items(f, label: str, node, budget: list, depth: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """Numeric datasets of a v7.3 (HDF5) MAT file; cell arrays hold object references. h5py
    sees MATLAB's column-major arrays transposed, so they are transposed back. ``budget`` holds
    the bytes read so far (each dataset's size is checked before it is read)."""
    import h5py

    if depth > MAX_CELL_DEPTH:
        raise KernelBankError(f"{label}: cell arrays nested more than {MAX_CELL_DEPTH} deep (or referring "
                              "to themselves)")
    if not isinstance(node, h5py.Dataset):
        return  # a struct (group)
    kind = node.attrs.get("MATLAB_class", b"double")
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if node.attrs.get("MATLAB_empty", 0) or kind == "char":
        return
    budget[0] += node.size * node.dtype.itemsize
    check_declared(budget[0], "its variables")
    if kind == "cell":
        refs = np.asarray(node[()]).T
        for i, ref in enumerate(refs.ravel(order="F")):
            yield from _mat_v73_items(f, f"{label}{{{i + 1}}}", f[ref], budget, depth + 1)
    else:
        yield label, np.asarray(node[()]).T


def _read_mat_v73(path: str) -> Iterator[tuple[str, np.ndarray]]:
    import h5py

    with h5py.File(path, "r") as f:
        refuse_outside_reference(f)
        budget = [0]
        for name in f:
            if not name.startswith("#"):
                yield from _mat_v73_items(f, f"variable {name!r}", f[name], budget)


def _read_png(path: str, label: str = "") -> np.ndarray:
    from blurgen.core.imageio import decode_file, probe_image  # not cv2.imread: it segfaults on a non-UTF-8 path

    where = f"{label}: " if label else ""
    check_regular(path)
    header = probe_image(path)
    if header is not None and max(header[:2]) > MAX_KERNEL_SIZE:  # before decoding: a PNG bomb
        raise KernelBankError(f"{where}a {header[1]}x{header[0]} image, larger than the largest kernel "
                              f"({MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE})")
    img = decode_file(path)
    if img is None:
        raise KernelBankError(f"{label + ': ' if label else ''}not a readable PNG image")
    if img.ndim == 3:
        if img.shape[2] not in (3, 4) or not (img[:, :, :3] == img[:, :, :1]).all():
            raise KernelBankError(f"{label + ': ' if label else ''}not grayscale ({img.shape[2]} channels that differ)")
        img = img[:, :, 0]
    return img


def _read_png_folder(path: str) -> Iterator[tuple[str, np.ndarray]]:
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(".png") and not n.startswith("."))
    if not names:
        raise KernelBankError("no .png files in the folder")
    for name in names:
        yield repr(name), _read_png(os.path.join(path, name), repr(name))


def _reader(path: str):
    """The reader for ``path`` and the name of its format (for messages)."""
    if os.path.isdir(path):
        return _read_png_folder, "a folder of PNG kernels"
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mat":
        import h5py

        return (_read_mat_v73, "a MATLAB v7.3 file") if h5py.is_hdf5(path) else (_read_mat_v5, "a MATLAB file")
    readers = {".npy": (_read_npy, "a .npy file"), ".npz": (_read_npz, "a .npz file"),
               ".png": (lambda p: iter([("", _read_png(p))]), "a PNG image")}
    if ext not in readers:
        raise KernelBankError(f"unknown kernel file type {ext or '(none)'!r}; expected {_FILE_TYPES}")
    return readers[ext]


def read_kernel_arrays(path: str) -> tuple[Iterator[tuple[str, np.ndarray]], str]:
    """The 2-D kernels of a file or folder as ``(label, array)`` (lazily) and the name of its
    format; the file guards run first (``UnsafeFileError``, ``KernelBankError``)."""
    if not os.path.isdir(path):
        check_regular(path, MAX_BANK_BYTES + 2**24)
    reader, kind = _reader(path)
    matlab = reader in (_read_mat_v5, _read_mat_v73)
    return (item for label, arr in reader(path) for item in _split(label, np.asarray(arr), matlab)), kind


def mat_read_error() -> type:
    """scipy's MatReadError (an empty or foreign .mat), without importing scipy for other files."""
    import sys

    module = sys.modules.get("scipy.io.matlab")
    return getattr(module, "MatReadError", OSError) if module else OSError
