"""Sinks: where a run's finished blocks go.

The contract every sink keeps (what lets any executor run blocks, twice if need be):

* ``stage`` runs in the worker: it writes one block under a temporary name unique per host,
  process and call; ``commit`` (also in the worker, possibly in a background thread) makes it
  durable and renames it to its final name. A block that runs twice is harmless: either rename
  wins with identical bytes;
* ``complete_blocks`` lists the blocks already complete: the listing drives ``--resume``;
* ``open``, ``add`` and ``finalize`` run once per run, in the driver, which receives only
  metadata (start, count, path) from the workers.

``HDF5Sink`` (part files, then one assembled HDF5 file) is the first sink; the folders, LMDB and
WebDataset sinks are in ``blurgen.runs.format_sinks``. A sink may also define ``make_and_stage(work,
start, count)`` (make and stage a large block a piece at a time), ``output(out, shard)`` (its
output's paths, ``blurgen.runs.outputs``) and ``samples_per_shard`` (one block per output file).
"""

from __future__ import annotations

from typing import Any, Protocol

from blurgen.store.assembly import Assembler
from blurgen.store.parts import Compression, check_part_bytes, commit_part, write_part_tmp


class Sink(Protocol):
    """The interface of a sink (see the module docstring for the contract)."""

    def stage(self, folder: str, block: dict, start: int, stamp: dict[str, Any]) -> tuple[str, str]: ...

    def commit(self, tmp: str, final: str, durable: bool) -> str: ...

    def complete_blocks(self, run: Any) -> dict[int, str]: ...

    def check_block(self, path: str, start: int, count: int, stamp: dict[str, Any]) -> None: ...

    def open(self, run: Any, attrs: dict[str, Any], source_files: list[str]) -> None: ...

    def add(self, path: str, offset: int, count: int, part_of: tuple) -> None: ...

    def finalize(self, out: str, durable: bool) -> None: ...

    def close(self) -> None: ...


class HDF5Sink:
    """Blocks as small checksummed HDF5 part files in the run folder, copied chunk by chunk into
    one file that is renamed onto ``out`` when every block is in (``blurgen.store``)."""

    def __init__(self, compression: Compression) -> None:
        self.compression = compression
        self._assembler: Assembler | None = None

    def __getstate__(self) -> dict:
        return {"compression": self.compression}  # workers never see the driver's assembly

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["compression"])

    def stage(self, folder: str, block: dict, start: int, stamp: dict[str, Any]) -> tuple[str, str]:
        return write_part_tmp(folder, block, start, self.compression, stamp)

    def commit(self, tmp: str, final: str, durable: bool) -> str:
        return commit_part(tmp, final, durable)

    def complete_blocks(self, run: Any) -> dict[int, str]:
        return run.complete_parts()

    def check_block(self, path: str, start: int, count: int, stamp: dict[str, Any]) -> None:
        """PartsError unless a kept part holds the bytes it was written with (its CRC-32)."""
        check_part_bytes(path)

    def open(self, run: Any, attrs: dict[str, Any], source_files: list[str]) -> None:
        manifest = run.manifest
        self._assembler = Assembler(run.assembly_path, manifest.n_planned, attrs, manifest.compression,
                                    space_lock_dir=run.path, source_files=source_files)

    def add(self, path: str, offset: int, count: int, part_of: tuple) -> None:
        self._assembler.add_file(path, offset, count, part_of=part_of)

    def sync_if_due(self) -> None:
        self._assembler.sync_if_due()

    def finalize(self, out: str, durable: bool) -> None:
        self._assembler.finish(out, durable=durable)

    def close(self) -> None:
        if self._assembler is not None:
            self._assembler.close()
