"""Export a blurgen HDF5 pairs file (plain, merged or virtual) to the folders, LMDB or WebDataset
formats through the same run machinery as ``make``: blocks are read from the file by the workers,
encoded and staged by the sink, so an export is crash-safe and resumable too.

Sample ``i`` of the file is named ``i`` (8 digits) in the export; its ``seed_index`` parameter
keeps its index in the whole dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

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
    """Blocks read from pairs file ``path`` (opened lazily in each worker)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._file: PairsFile | None = None

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

    def __call__(self, config: Any, seed: int, start: int, count: int) -> dict:
        blurred, sharp, kernel = self.file[start:start + count]
        params = {name: values[start:start + count] for name, values in self.file.params.items()}
        block = {"blurred": blurred, "sharp": sharp, "kernel": kernel, "params": params}
        if self.file.has_motion:
            h5 = self.file._open()
            block["motion"] = {name: h5["motion"][name][start:start + count] for name in ("rotation", "translation")}
        return block


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
    return make_dataset(out, config, n, int(attrs["seed"]), workers=workers, resume=resume, overwrite=overwrite,
                        command=command, maker=maker, progress=progress, sink=sink, executor=executor,
                        durable=durable)
