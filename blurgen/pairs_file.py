"""Light reader of blurgen HDF5 pairs files (h5py + numpy only; no numba, no torch).

Schema version 1::

    /blurred   uint8   (N, H, W, 3)   one sample per chunk, compressed
    /sharp     uint8   (N, H, W, 3)
    /kernel    float32 (N, k, k)
    /params/<name>  1-D, one value per sample
    root attrs: schema_version, blurgen_version, created, command, config (JSON), seed,
                n_planned, n_written

Only the first ``n_written`` samples are complete; a file whose ``n_written < n_planned`` is an
incomplete (interrupted) dataset and reads as that many samples.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator

import numpy as np

SCHEMA_VERSION = 1
IMAGE_DATASETS = ("blurred", "sharp")
REQUIRED_PARAMS = (
    "seed_index", "source_index", "exposure_fraction", "path_length_px", "anxiety",
    "centripetal", "gaussian_shake", "big_shake_prob", "gain", "noise_a", "noise_b",
    "jpeg_quality",
)
REQUIRED_ATTRS = ("schema_version", "blurgen_version", "created", "command", "config", "seed",
                  "n_planned", "n_written")


#: What h5py raises on damaged files: besides OSError, a damaged heap or B-tree surfaces as
#: RuntimeError or KeyError, an unresolvable link as None (AttributeError on use), bad attribute
#: data as ValueError or TypeError. Caught where a file is opened and where it is read.
H5_ERRORS = (RuntimeError, KeyError, OSError, ValueError, AttributeError, TypeError)


class PairsFileError(Exception):
    """A pairs file that cannot be read: missing, truncated, foreign or of another schema.

    The message names the file and the problem in one line.
    """


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (HDF5's texts may hold newlines and indentation)."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def reading(path: str, what: str) -> Iterator[None]:
    """Turn h5py errors raised inside into ``PairsFileError("<path>: <what>: <h5py text>")``."""
    try:
        yield
    except PairsFileError:
        raise
    except H5_ERRORS as exc:
        raise PairsFileError(f"{path}: {what}: {one_line(exc)}") from None


def open_validated(path: str) -> tuple[Any, int]:
    """Open ``path`` with h5py and check schema 1; returns ``(h5py.File, n_written)``.

    Every failure is a one-line PairsFileError naming the file; the handle is closed on failure.
    """
    import h5py  # local: keeps `import blurgen` light

    if not os.path.exists(path):
        raise PairsFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise PairsFileError(f"{path}: is a folder, not a pairs file")
    if not os.path.isfile(path):  # a FIFO or device: HDF5 would block or read for ever
        raise PairsFileError(f"{path}: not a regular file")
    with reading(path, "not a readable HDF5 file (truncated or foreign)"):
        h5 = h5py.File(path, "r")
    try:
        with reading(path, "damaged HDF5 structure"):
            return h5, validate_layout(h5, path)
    except BaseException:
        h5.close()
        raise


def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def validate_layout(h5: Any, path: str) -> int:
    """Check an open h5py file against schema 1; return ``n_written``. Raises PairsFileError."""
    attrs = h5.attrs
    if "schema_version" not in attrs:
        raise PairsFileError(f"{path}: not a blurgen pairs file (no schema_version attribute)")
    version = _attr_value(attrs["schema_version"])
    if version != SCHEMA_VERSION:
        raise PairsFileError(f"{path}: schema_version {version} is not supported (this blurgen reads {SCHEMA_VERSION})")
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        raise PairsFileError(f"{path}: missing root attribute(s) {', '.join(missing)}")
    for name in (*IMAGE_DATASETS, "kernel"):
        if name not in h5:
            raise PairsFileError(f"{path}: missing dataset /{name}")
    blurred, sharp, kernel = h5["blurred"], h5["sharp"], h5["kernel"]
    if blurred.ndim != 4 or blurred.shape[-1] != 3 or blurred.dtype != np.uint8:
        raise PairsFileError(f"{path}: /blurred must be uint8 (N, H, W, 3), got {blurred.dtype} {blurred.shape}")
    if sharp.shape != blurred.shape or sharp.dtype != np.uint8:
        raise PairsFileError(f"{path}: /sharp {sharp.dtype} {sharp.shape} does not match /blurred {blurred.shape}")
    if kernel.ndim != 3 or kernel.shape[0] != blurred.shape[0] or kernel.dtype != np.float32:
        raise PairsFileError(f"{path}: /kernel must be float32 (N, k, k), got {kernel.dtype} {kernel.shape}")
    n_written = int(_attr_value(attrs["n_written"]))
    if not 0 <= n_written <= blurred.shape[0]:
        raise PairsFileError(f"{path}: n_written={n_written} outside 0..{blurred.shape[0]}")
    params = h5.get("params")
    if params is None:
        raise PairsFileError(f"{path}: missing group /params")
    missing = [p for p in REQUIRED_PARAMS if p not in params]
    if missing:
        raise PairsFileError(f"{path}: missing /params/{', /params/'.join(missing)}")
    for name, ds in params.items():
        if ds is None:  # h5py gives None for a link it cannot resolve (damaged metadata)
            raise PairsFileError(f"{path}: /params/{name} is unreadable (damaged HDF5 structure)")
        if ds.ndim != 1 or ds.shape[0] != blurred.shape[0]:
            raise PairsFileError(f"{path}: /params/{name} has shape {ds.shape}, expected ({blurred.shape[0]},)")
    return n_written


class PairsFile:
    """A blurgen pairs file, opened lazily on first access.

    Opening lazily means a ``PairsFile`` pickles unopened to DataLoader workers, each of which then
    opens its own handle. ``len(f)`` is the number of complete samples (``n_written``);
    ``f[i]`` returns ``(blurred, sharp, kernel)``: uint8 (H, W, 3) RGB, uint8 (H, W, 3) RGB,
    float32 (k, k).

    Example:
        >>> with PairsFile("pairs.h5") as f:          # doctest: +SKIP
        ...     blurred, sharp, kernel = f[0]
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._h5 = None
        self._n = None
        self._params: dict[str, np.ndarray] | None = None

    def _open(self):
        if self._h5 is None:
            self._h5, self._n = open_validated(self.path)
        return self._h5

    def open(self) -> "PairsFile":
        """Open and validate now (raises ``PairsFileError``); returns self."""
        self._open()
        return self

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> "PairsFile":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __len__(self) -> int:
        self._open()
        return self._n

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h5 = self._open()
        index = self._checked_index(index)
        with reading(self.path, f"sample {index} is unreadable (corrupt chunk)"):
            return h5["blurred"][index], h5["sharp"][index], h5["kernel"][index]

    def _checked_index(self, index: Any) -> int:
        """``index`` as a plain non-negative int; bools are refused (``f[True]`` is a bug, not
        sample 1), and numpy ints are converted first so ``index + n`` cannot overflow."""
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        n = self._n
        position = int(index) + n if index < 0 else int(index)
        if not 0 <= position < n:
            raise IndexError(f"index {int(index)} out of range for {n} samples")
        return position

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of every image."""
        return tuple(self._open()["blurred"].shape[1:])

    @property
    def kernel_size(self) -> int:
        return int(self._open()["kernel"].shape[-1])

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Per-sample parameters of the complete samples: name -> 1-D array of ``len(self)``.

        The arrays are read once and shared, so they are read-only (copy to modify); the dict
        is a fresh one each time."""
        if self._params is None:
            h5 = self._open()
            with reading(self.path, "/params are unreadable"):
                params = {name: ds[: self._n] for name, ds in h5["params"].items()}
            for values in params.values():
                values.flags.writeable = False
            self._params = params
        return dict(self._params)

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes; ``config`` is decoded from JSON into ``config_dict`` as well."""
        h5 = self._open()
        with reading(self.path, "root attributes are unreadable"):
            out = {k: _attr_value(v) for k, v in h5.attrs.items()}
        try:
            out["config_dict"] = json.loads(out["config"])
        except (TypeError, ValueError):
            pass
        return out

    @property
    def complete(self) -> bool:
        attrs = self._open().attrs
        with reading(self.path, "root attributes are unreadable"):
            return int(_attr_value(attrs["n_written"])) == int(_attr_value(attrs["n_planned"]))

    def __repr__(self) -> str:
        state = "unopened" if self._h5 is None else f"{self._n} samples"
        return f"PairsFile({self.path!r}, {state})"


def read_pairs(path: str | os.PathLike) -> PairsFile:
    """Open a blurgen pairs file for reading (validated now; raises ``PairsFileError``)."""
    return PairsFile(path).open()
