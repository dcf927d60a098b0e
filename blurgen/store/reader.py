"""Read blurgen pairs files (h5py + numpy only; no numba, no torch)."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from blurgen.store.schema import MOTION, attr_value, is_complete, open_validated, reading, source_file_names

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]


class PairsFile:
    """A blurgen pairs file, opened lazily on first access.

    Opening lazily means a ``PairsFile`` pickles unopened to DataLoader workers, each of which then
    opens its own handle. ``len(f)`` is the number of complete samples (``n_written``);
    ``f[i]`` returns ``(blurred, sharp, kernel)``: uint8 (H, W, 3) RGB, uint8 (H, W, 3) RGB,
    float32 (k, k) (a clips file, schema 3: ``(T, H, W, 3)``, ``(T, H, W, 3)``, ``(T, k, k)``); a slice ``f[i:j]`` (or ``f[i:j:step]``) returns the same three arrays stacked,
    ``(n, H, W, 3)``, ``(n, H, W, 3)``, ``(n, k, k)``.

    Example:
        >>> with PairsFile("pairs.h5") as f:          # doctest: +SKIP
        ...     blurred, sharp, kernel = f[0]
        ...     blurred4, sharp4, kernel4 = f[0:4]
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._h5 = None
        self._n = None
        self._params: dict[str, np.ndarray] | None = None

    def _open(self):
        if self._h5 is None:
            self._h5, self._n = open_validated(self.path)  # a virtual merge's shards checked too
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

    def __getitem__(self, index: int | slice) -> Sample:
        h5 = self._open()
        if isinstance(index, slice):
            return self._read_slice(h5, index)
        index = self._checked_index(index)
        with reading(self.path, f"sample {index} is unreadable (corrupt chunk)"):
            return h5["blurred"][index], h5["sharp"][index], h5["kernel"][index]

    def _read_slice(self, h5: Any, index: slice) -> Sample:
        start, stop, step = index.indices(self._n)
        picks = range(start, stop, step)
        names = ("blurred", "sharp", "kernel")
        with reading(self.path, f"samples {start}..{stop - 1} are unreadable (corrupt chunk)"):
            if step == 1:
                return tuple(h5[name][start:max(start, stop)] for name in names)
            return tuple(np.stack([h5[name][i] for i in picks]) if len(picks) else
                         np.empty((0, *h5[name].shape[1:]), h5[name].dtype) for name in names)

    def _checked_index(self, index: Any) -> int:
        """``index`` as a plain non-negative int; bools are refused (``f[True]`` is a bug, not
        sample 1), and numpy ints are converted first so ``index + n`` cannot overflow."""
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer or a slice, got {type(index).__name__}")
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
    def frames(self) -> int | None:
        """Frames per clip of a clips file (schema 3: ``f[i]`` is ``(T, H, W, 3)`` x 2 and
        ``(T, k, k)``); None for a pairs file."""
        blurred = self._open()["blurred"]
        return int(blurred.shape[1]) if blurred.ndim == 5 else None

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
    def has_motion(self) -> bool:
        """Whether the file stores each sample's camera motion (schema 2, ``camera3d``)."""
        return MOTION in self._open()

    def motion_arrays(self, index: int | slice) -> dict[str, np.ndarray]:
        """The camera motion of sample(s) ``index`` (schema 2): ``rotation``, ``translation``
        ``(n, S, 3)``, ``focal_px``, ``depth_m``, ``exposure_s`` ``(n,)``, ``anchor`` ``(n, 2)``;
        ``blurgen.camera.CameraMotion.from_arrays(arrays, frame_size)`` renders it again
        (``frame_size`` is in ``attrs["config_dict"]["camera"]``). KeyError for a schema-1 file."""
        h5 = self._open()
        if MOTION not in h5:
            raise KeyError(f"{self.path} stores no camera motion (a shake2d dataset, schema 1)")
        picks = (list(range(*index.indices(self._n))) if isinstance(index, slice)
                 else [self._checked_index(index)])
        if not picks:
            raise IndexError(f"{index} selects no sample of {self._n}")
        with reading(self.path, "/motion is unreadable"):
            arrays = {name: np.stack([h5[MOTION][name][i] for i in picks]) for name in ("rotation", "translation")}
        stored = self.params  # read once and cached, not again per call
        params = {name: stored[name][picks] for name in ("focal_px", "depth_m", "exposure_s", "anchor_x", "anchor_y")}
        arrays.update(focal_px=params["focal_px"], depth_m=params["depth_m"], exposure_s=params["exposure_s"],
                      anchor=np.stack([params["anchor_x"], params["anchor_y"]], axis=1))
        return arrays

    @property
    def source_files(self) -> list[str]:
        """The image files ``params["source_file"]`` indexes (relative to the source folder the
        dataset was made from); [] for procedural sources."""
        h5 = self._open()
        with reading(self.path, "/source_files is unreadable"):
            return source_file_names(h5)

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes; ``config`` is decoded from JSON into ``config_dict`` as well."""
        h5 = self._open()
        with reading(self.path, "root attributes are unreadable"):
            out = {k: attr_value(v) for k, v in h5.attrs.items()}
        try:
            out["config_dict"] = json.loads(out["config"])
        except (TypeError, ValueError):
            pass
        return out

    @property
    def complete(self) -> bool:
        h5 = self._open()
        with reading(self.path, "root attributes are unreadable"):
            return is_complete(h5)

    def __repr__(self) -> str:
        state = "unopened" if self._h5 is None else f"{self._n} samples"
        return f"PairsFile({self.path!r}, {state})"


def read_pairs(path: str | os.PathLike) -> PairsFile:
    """Open a blurgen pairs file for reading (validated now; raises ``PairsFileError``)."""
    return PairsFile(path).open()
