"""What a run's output is on disk, per format: where it goes, whether it exists, which settings a
finished one was made with (for ``--resume``), and its provenance files.

``RunFolder`` asks its ``output`` these questions; ``HDF5Output`` (``blurgen.runs.folder``) answers
for pairs files, ``DirectoryOutput`` for the folders and LMDB layouts (``OUT/blurgen.json``),
``ShardsOutput`` for WebDataset shards (``PREFIX.json``).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import re
from typing import Any

import numpy as np

from blurgen.store.parts import PartsError
from blurgen.store.schema import PairsFileError

#: Provenance and config of a folders or LMDB output, inside it.
META_NAME = "blurgen.json"
SETTINGS = ("config", "seed", "n_total", "sample_start", "sample_stop")


def output_meta(attrs: dict, output_format: str, manifest: Any, png_level: int, dtypes: dict[str, str],
                source_files: list[str], png_encoder: str = "opencv") -> dict[str, Any]:
    """The JSON written beside a finished output: format, config, seed, sample range, provenance."""
    meta = {key: attrs[key] for key in ("blurgen_version", "created", "command", "seed", "n_total",
                                        "sample_start", "sample_stop", "shard_index", "shard_count")}
    meta.update(format=output_format, config=json.loads(attrs["config"]), n=manifest.n_planned,
                png_compression_level=png_level, png_encoder=png_encoder, param_dtypes=dtypes, source_files=source_files,
                compression=json.loads(json.dumps(manifest.compression)), complete=True)
    return meta


def read_meta(path: str) -> dict[str, Any]:
    """A ``blurgen.json`` / ``PREFIX.json``; ``PairsFileError`` if unreadable or not blurgen's."""
    try:
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise PairsFileError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or not all(key in meta for key in (*SETTINGS, "format", "n")):
        raise PairsFileError(f"{path}: not a blurgen output description")
    return meta


def write_params_csv(path: str, params: dict[int, dict], dtypes: dict[str, str]) -> None:
    """``params.csv``: a header ``index,<name>...`` and one row per sample, in index order; float
    values are written as the shortest text that reads back to the same float32/float64."""
    names = sorted(dtypes)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", *names])
        for index in sorted(params):
            row = params[index]
            writer.writerow([index, *(repr(row[name]) if isinstance(row[name], float) else row[name]
                                      for name in names)])


def read_params_csv(path: str, dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    """Name -> 1-D array of ``params.csv`` (``dtypes`` from ``blurgen.json``'s ``param_dtypes``);
    also ``index``.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_params_csv(folder + "/p.csv", {0: {"gain": 1.5}, 1: {"gain": 0.25}}, {"gain": "<f4"})
    >>> read_params_csv(folder + "/p.csv", {"gain": "<f4"})["gain"].tolist()
    [1.5, 0.25]
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = {"index": np.array([int(row["index"]) for row in rows], dtype=np.int64)}
    for name, dtype in dtypes.items():
        kind = np.dtype(dtype)
        parse = float if kind.kind == "f" else int
        out[name] = np.array([parse(row[name]) for row in rows], dtype=kind)
    return out


class StackedRows:
    """One ``.npy`` file holding a per-sample array of every sample of an output (``kernel.npy``:
    float32 (N, k, k)); row ``r`` is the output's sample ``first + r``. Written row by row at its
    place (``put``, from a sample's ``.npy`` member) by the output's one writer, the file made
    whole-sized at the first row: a block added again after a resume writes the same bytes at
    the same place. ``np.load(path, mmap_mode="r")`` reads it without loading it."""

    def __init__(self, path: str, rows: int, first: int) -> None:
        self.path, self.rows, self.first = path, int(rows), int(first)
        self.fd, self.header, self.descr, self.shape = -1, b"", "", ()
        self.file_header, self.row_bytes = b"", 0
        self.done = np.zeros(self.rows, bool)  # rows written (a row written twice counts once)

    @property
    def written(self) -> int:
        return int(np.count_nonzero(self.done))

    def put(self, index: int, data: bytes) -> None:
        """Row of sample ``index`` from ``data``, the ``.npy`` bytes of that sample's array."""
        from blurgen.runs.samples import load_npy

        row = int(index) - self.first
        if not 0 <= row < self.rows:
            raise PartsError(f"{self.path}: sample {index} is outside the output")
        if self.fd >= 0 and len(data) == len(self.header) + self.row_bytes and data.startswith(self.header):
            raw = memoryview(data)[len(self.header):]  # as npy_bytes wrote it: no parsing
        else:
            try:
                array = load_npy(data)
            except (OSError, ValueError, EOFError) as exc:
                raise PartsError(f"{self.path}: sample {index}'s array is unreadable ({exc})") from None
            descr, shape = np.lib.format.dtype_to_descr(array.dtype), array.shape
            if self.fd < 0:
                self._create(descr, shape)
            elif (descr, shape) != (self.descr, self.shape):
                raise PartsError(f"{self.path}: sample {index} has a {descr} {shape} array, the others {self.descr} "
                                 f"{self.shape}")
            raw = np.ascontiguousarray(array).tobytes()
        if os.pwrite(self.fd, raw, len(self.file_header) + row * self.row_bytes) != len(raw):
            raise OSError(f"{self.path}: short write")
        self.done[row] = True

    def _create(self, descr: str, shape: tuple) -> None:
        from blurgen.runs.samples import npy_header

        self.descr, self.shape = descr, shape
        self.header, self.file_header = npy_header(descr, shape), npy_header(descr, (self.rows, *shape))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        self.row_bytes = np.dtype(descr).itemsize * int(np.prod(shape, dtype=np.int64))
        os.write(self.fd, self.file_header)
        os.ftruncate(self.fd, len(self.file_header) + self.rows * self.row_bytes)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Output:
    """What every output answers when ``RunFolder`` asks (``label``: its path; ``settings``: the
    subclass's)."""

    def __init__(self, out: str) -> None:
        self.label = os.fspath(out)

    def plan(self, manifest: Any) -> None:
        """Told the run's manifest before ``existing`` is asked (``ShardsOutput`` needs its tars)."""

    def existing(self) -> str | None:
        """The path of an output already there (None: nothing is)."""
        return self.label if os.path.lexists(self.label) else None

    def exists(self) -> bool:
        return self.existing() is not None

    def forget_for_overwrite(self) -> None:
        """``--overwrite`` starts: nothing yet, a file or folder is replaced by a rename when the
        new one is complete."""

    def settings(self) -> tuple[dict[str, Any], bool]:
        raise NotImplementedError

    def finished_with(self, settings: dict[str, Any]) -> bool:
        """Whether the output is complete and made with ``settings`` (``Manifest.output_settings``),
        compared on what the output records."""
        try:
            theirs, complete = self.settings()
        except PairsFileError:
            return False
        return complete and all(settings.get(key) == value for key, value in theirs.items())


class DirectoryOutput(Output):
    """A folders or LMDB output: the folder ``out``, complete when ``out/blurgen.json`` exists."""

    @property
    def meta_path(self) -> str:
        return os.path.join(self.label, META_NAME)

    def settings(self) -> tuple[dict[str, Any], bool]:
        """``(settings, complete)`` of the existing output (``PairsFileError`` if not blurgen's):
        what fixes the arrays, the format and, where recorded, how the images are stored."""
        meta = read_meta(self.meta_path)
        return self.recorded(meta), bool(meta.get("complete"))

    def recorded(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The settings ``meta`` (its ``blurgen.json``) records."""
        settings = {key: meta[key] for key in SETTINGS}
        settings["format"] = meta["format"]
        compression = meta.get("compression") or _older_compression(meta)
        if compression is not None:
            settings["compression"] = compression
        return settings


def _older_compression(meta: dict[str, Any]) -> dict[str, list] | None:
    """The images' compression of a pairs output made before ``compression`` was recorded, from
    its PNG level and encoder (None for clips, whose layouts stored other members)."""
    if "clips" in meta.get("config", {}) or "png_compression_level" not in meta:
        return None
    fpng = meta.get("png_encoder") == "fpng"
    image = ["png-fpng", None] if fpng else ["png", meta["png_compression_level"]]
    return {"blurred": image, "sharp": image, "kernel": ["npy", None]}


class ShardsOutput(DirectoryOutput):
    """WebDataset shards ``PREFIX-%06d.tar`` (shard k holds samples ``[k*m, (k+1)*m)``) and the
    index ``PREFIX.json`` (``PREFIX.shard-i-of-N.json`` for ``--shard i/N``, whose run folder is
    ``PREFIX.shard-i-of-N.parts``: shards of one dataset share the prefix, not a run folder)."""

    def __init__(self, prefix: str, shard: tuple[int, int], samples_per_shard: int) -> None:
        self.prefix = os.fspath(prefix)
        self.shard = shard
        self.samples_per_shard = samples_per_shard
        self.label = self.prefix if shard[1] == 1 else f"{self.prefix}.shard-{shard[0]}-of-{shard[1]}"
        self.planned_tars: list[str] = []

    @property
    def meta_path(self) -> str:
        return self.label + ".json"

    index_path = meta_path

    def tar_path(self, start: int) -> str:
        return f"{self.prefix}-{start // self.samples_per_shard:06d}.tar"

    def plan(self, manifest: Any) -> None:
        self.planned_tars = [self.tar_path(start) for start, _ in manifest.blocks]

    def _tars(self) -> list[str]:
        """The tars this output owns on disk: every ``PREFIX-NNNNNN.tar`` of a whole dataset, only
        those at its own positions for ``--shard i/N`` (the others are its sibling shards')."""
        if self.shard[1] == 1:
            return sorted(glob.glob(glob.escape(self.prefix) + "-[0-9][0-9][0-9][0-9][0-9][0-9].tar"))
        return [path for path in self.planned_tars if os.path.lexists(path)]

    def existing(self) -> str | None:
        """The index, or a tar at a position this run would write (another dataset's, or an earlier
        run's: taking it over needs --overwrite)."""
        if os.path.lexists(self.meta_path):
            return self.meta_path
        tars = self._tars()
        return tars[0] if tars else None

    def forget_for_overwrite(self) -> None:
        """Tars cannot be swapped in at once like a file or a folder: the indexes go first (no
        dataset is presented as complete with tars of another), then the tars this output owns,
        so neither a killed run nor a smaller new dataset leaves old tars beside the new ones. An
        index goes if it is this output's or lists a tar about to be deleted (a whole-dataset
        ``PREFIX.json`` over a shard's tars, a shard's over the whole dataset's)."""
        doomed = self._tars()
        names = {os.path.basename(path) for path in doomed}
        for index in self._indexes():
            if index == self.meta_path or names & _listed_tars(index):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(index)
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _indexes(self) -> list[str]:
        """Every index of this prefix: ``PREFIX.json`` and ``PREFIX.shard-I-of-N.json``."""
        shard_indexes = glob.glob(glob.escape(self.prefix) + ".shard-*-of-*.json")
        return [self.meta_path, self.prefix + ".json",
                *sorted(p for p in shard_indexes if _SHARD_INDEX.fullmatch(p[len(self.prefix):]))]

    def recorded(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {**super().recorded(meta), "samples_per_tar": meta.get("samples_per_shard")}


_SHARD_INDEX = re.compile(r"\.shard-[0-9]+-of-[0-9]+\.json")


def _listed_tars(index: str) -> set[str]:
    """The tar names a WebDataset index lists (none if it is unreadable: it is then left alone)."""
    try:
        with open(index, encoding="utf-8") as handle:
            return {str(shard["url"]) for shard in json.load(handle).get("shards", [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def aligned_shard_range(n_total: int, shard_index: int, shard_count: int, unit: int) -> tuple[int, int]:
    """Samples ``[start, stop)`` of shard ``shard_index`` of ``shard_count`` cut on multiples of
    ``unit`` (whole WebDataset tars), so every tar is made by exactly one shard.

    >>> [aligned_shard_range(10, i, 2, 4) for i in range(2)]
    [(0, 4), (4, 10)]
    """
    units = -(-n_total // unit)
    start = units * shard_index // shard_count * unit
    stop = min(n_total, units * (shard_index + 1) // shard_count * unit)
    return start, stop
