"""Sinks for the formats trainers read: paired image folders, BasicSR's LMDB, WebDataset tars.

All three stage a block in the worker as one tar of encoded samples (``blurgen.runs.samples``:
the PNG encoding runs in the workers, in parallel) and commit it by an atomic rename into the run
folder, so crash safety, ``--resume`` and determinism work exactly as for HDF5. The folders sink
has the worker write each image straight into the output being built, renamed into place when
whole, and keep in the tar only a receipt of it (size, CRC-32: a kept block's files are read back
and checked on ``--resume``); the tar keeps the kernels (and camera motions), which the driver
writes as rows of one ``.npy`` each, the parameters and, for LMDB, the images its one writer puts
in the database. The driver then builds the output from the finished blocks:

* ``FoldersSink``: ``OUT/blur/NNNNNNNN.png``, ``OUT/sharp/NNNNNNNN.png``, ``OUT/kernel.npy`` (every
  sample's kernel, one row each; ``OUT/motion.npy`` with camera motion), ``OUT/params.csv`` and
  ``OUT/blurgen.json``;
* ``LmdbSink``: BasicSR's layout, ``OUT/blur.lmdb`` and ``OUT/sharp.lmdb`` (keys ``NNNNNNNN``,
  values PNG bytes, ``meta_info.txt`` lines ``NNNNNNNN.png (H,W,C) LEVEL``), plus the side files
  of the folders layout; one writer, in the driver;
* ``WebDatasetSink``: a block is a shard ``PREFIX-%06d.tar`` (shard k holds samples
  ``[k*m, (k+1)*m)``), renamed into place at the end, with ``PREFIX.json`` written last.

Folders and LMDB are built in ``OUT.parts/.output`` and renamed onto ``OUT`` when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct

from blurgen.core.common import DiskFullError, atomic_file, fsync_path
from blurgen.runs.outputs import META_NAME, DirectoryOutput, ShardsOutput, StackedRows, output_meta, write_params_csv
from blurgen.runs.samples import (
    DEFAULT_PNG_LEVEL,
    PNG_ENCODERS,
    BlockFileError,
    BlockTarWriter,
    FileBlockWriter,
    add_block,
    check_block_tar,
    check_files,
    read_block_tar,
    remove_file_temporaries,
    sample_members,
)
from blurgen.runs.space import STAGING_NAME
from blurgen.store.parts import PartsError, commit_part

#: Samples a worker makes at once inside one block (bounds its memory for large WebDataset shards).
SUB_BLOCK = 32
#: The per-sample arrays stored as one file each, a row per sample (``StackedRows``): one file
#: instead of one per sample (a file creation cost 0.1-0.3 ms on this project's test machine,
#: as much as writing the kernel).
SIDE_ARRAYS = ("kernel.npy", "motion.npy")
IMAGE_FOLDERS = {"blur.png": ("blur", ".png"), "sharp.png": ("sharp", ".png")}


class TarBlockSink:
    """What the three sinks share: blocks staged as tars (see the module docstring)."""

    output_format = "tar"
    #: Encodes one sample as tar members (a clip sink encodes a clip: ``blurgen.runs.clip_sinks``).
    members = staticmethod(sample_members)
    #: Samples made at once inside a large block (bounds a worker's memory).
    sub_block = SUB_BLOCK

    def __init__(self, png_level: int = DEFAULT_PNG_LEVEL, png_encoder: str = "opencv") -> None:
        if not 0 <= int(png_level) <= 9:
            raise ValueError(f"png_level must be in [0, 9], got {png_level}")
        if png_encoder not in PNG_ENCODERS:
            raise ValueError(f"png_encoder must be one of {', '.join(PNG_ENCODERS)}, got {png_encoder!r}")
        self.png_level = int(png_level)
        self.png_encoder = png_encoder

    def __getstate__(self) -> dict:
        # workers never see the driver's output state
        return {"png_level": self.png_level, "png_encoder": self.png_encoder}

    def __setstate__(self, state: dict) -> None:
        TarBlockSink.__init__(self, **state)

    @property
    def compression(self) -> dict:
        """What the manifest records (a resume with another level or encoder is refused)."""
        image = ("png", self.png_level) if self.png_encoder == "opencv" else ("png-fpng", None)
        return {"blurred": image, "sharp": image, "kernel": ("npy", None)}

    def block_writer(self, folder: str, start: int, count: int, stamp: dict) -> BlockTarWriter:
        """The writer of one block staged in run folder ``folder``."""
        return BlockTarWriter(folder, start, count, stamp)

    def stage(self, folder: str, block: dict, start: int, stamp: dict) -> tuple[str, str]:
        writer = self.block_writer(folder, start, int(block["blurred"].shape[0]), stamp)
        add_block(writer, block, start, self.png_level, self.png_encoder, self.members)
        return writer.close()

    def make_and_stage(self, work, start: int, count: int) -> tuple[str, str]:
        """Make samples ``[start, start + count)`` ``sub_block`` at a time into one block tar."""
        writer = self.block_writer(work.folder, start, count, work.stamp)
        for first in range(start, start + count, self.sub_block):
            with writer.guard():
                block = work.maker(work.config, work.seed, first, min(self.sub_block, start + count - first))
            add_block(writer, block, first, self.png_level, self.png_encoder, self.members)
        return writer.close()

    def commit(self, tmp: str, final: str, durable: bool) -> str:
        return commit_part(tmp, final, durable)

    def complete_blocks(self, run) -> dict[int, str]:
        return run.complete_parts()

    def check_block(self, path: str, start: int, count: int, stamp: dict) -> None:
        """A kept block (``--resume``) is read whole, every member with its CRC-32, before it is
        added (``add`` trusts a block this run's worker just committed)."""
        check_block_tar(path, start, count, stamp)

    def close(self) -> None:
        pass


class FoldersSink(TarBlockSink):
    """Paired image folders (BasicSR ``PairedImageDataset`` with ``io_backend: disk``, KAIR,
    Restormer), built from the finished blocks in the driver."""

    output_format = "folders"
    image_folders = IMAGE_FOLDERS

    def output(self, out: str, shard: tuple[int, int]) -> DirectoryOutput:
        return DirectoryOutput(out)

    def open(self, run, attrs: dict, source_files: list[str]) -> None:
        self.run, self.attrs, self.source_files = run, attrs, source_files
        self.staging = os.path.join(run.path, STAGING_NAME)
        os.makedirs(self.staging, exist_ok=True)  # kept: the files of the blocks already made
        self.params: dict[int, dict] = {}
        self.dtypes: dict[str, str] = {}
        self.made_folders: set[str] = set()
        self.arrays: dict[str, StackedRows] = {}
        for kind in SIDE_ARRAYS:  # an earlier blurgen's per-sample files (its blocks are made again)
            shutil.rmtree(os.path.join(self.staging, kind.split(".")[0]), ignore_errors=True)

    def block_writer(self, folder: str, start: int, count: int, stamp: dict) -> BlockTarWriter:
        return FileBlockWriter(folder, start, count, stamp, os.path.join(folder, STAGING_NAME), self.file_place)

    def file_place(self, kind: str, key: str) -> str | None:
        """Where the worker writes member ``KEY.KIND`` in the output (None: it stays in the tar,
        for the driver: the parameters and the rows of the side arrays)."""
        return None if kind == "json" or kind in SIDE_ARRAYS else self.member_path(kind, key)

    def _placed(self, member: str) -> str:
        key, kind = member.split(".", 1)
        return self.file_place(kind, key)

    def check_block(self, path: str, start: int, count: int, stamp: dict) -> None:
        """A kept block: its tar read whole with the CRC-32s, and every file it wrote read back."""
        receipts: dict[str, tuple[int, int]] = {}
        check_block_tar(path, start, count, stamp, receipts)
        places = {name: (self._placed(name), size, crc) for name, (size, crc) in receipts.items()}
        if any(place is None for place, _, _ in places.values()):  # an older blurgen's kernel files
            raise BlockFileError(f"{path}: staged for another layout")
        check_files(self.staging, places, path)

    def add(self, path: str, offset: int, count: int, part_of: tuple) -> None:
        start, stamp = part_of
        for name, data, dtypes in read_block_tar(path, start, count, stamp, verify=False):
            key, kind = name.split(".", 1)
            if kind == "json":
                self.params[int(key)] = json.loads(data)
                self.dtypes = dtypes or self.dtypes
            else:
                self.put(kind, key, data)

    def put(self, kind: str, key: str, data: bytes) -> None:
        """Store one member: a row of a side array, or a file in its folder (only a block an older
        blurgen staged, images and all, still carries file members here)."""
        if kind in SIDE_ARRAYS:
            if kind not in self.arrays:
                self.arrays[kind] = StackedRows(os.path.join(self.staging, kind), self.run.manifest.n_planned,
                                                self.run.manifest.sample_start)
            self.arrays[kind].put(int(key), data)
            return
        relative = self.member_path(kind, key)
        folder = os.path.dirname(relative)
        if folder not in self.made_folders:
            os.makedirs(os.path.join(self.staging, folder), exist_ok=True)
            self.made_folders.add(folder)
        with open(os.path.join(self.staging, relative), "wb") as handle:
            handle.write(data)

    def member_path(self, kind: str, key: str) -> str:
        """Where member ``KEY.KIND`` goes, relative to the output: ``blur/KEY.png``, ..."""
        folder, ext = self.image_folders[kind]
        return os.path.join(folder, key + ext)

    def write_side_files(self) -> None:
        """params.csv (every per-sample parameter) and blurgen.json (config and provenance)."""
        manifest = self.run.manifest
        missing = manifest.n_planned - len(self.params)
        if missing:
            raise PartsError(f"{self.staging}: {missing} samples missing at finalize")
        for name, rows in self.arrays.items():
            rows.close()
            if rows.written != manifest.n_planned:
                raise PartsError(f"{self.staging}: {manifest.n_planned - rows.written} rows of {name} missing at finalize")
        write_params_csv(os.path.join(self.staging, "params.csv"), self.params, self.dtypes)
        meta = output_meta(self.attrs, self.output_format, manifest, self.png_level, self.dtypes, self.source_files,
                           self.png_encoder)
        with atomic_file(os.path.join(self.staging, META_NAME), "w", durable=False, encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1, sort_keys=True)

    def finalize(self, out: str, durable: bool) -> None:
        self.write_side_files()
        remove_file_temporaries(self.staging)
        if durable:
            # Thousands of small files (the workers' and these): one sync instead of an fsync each.
            # A committed block whose files a power loss took is found by --resume's read-back.
            os.sync()
        if os.path.lexists(out):  # --overwrite of an earlier output
            trash = f"{self.run.path}/.replaced"
            os.replace(out, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(self.staging, out)
        if durable:
            fsync_path(os.path.dirname(os.path.abspath(out)))

    def close(self) -> None:
        for rows in getattr(self, "arrays", {}).values():
            rows.close()
        super().close()


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk."""
    return struct.unpack(">II", data[16:24])


class LmdbSink(FoldersSink):
    """BasicSR's LMDB layout (``io_backend: lmdb``), written by one writer in the driver."""

    output_format = "lmdb"
    image_folders = {}
    #: The members stored in the databases (``blur.lmdb``, ``sharp.lmdb``).
    lmdb_kinds = ("blur.png", "sharp.png")

    def open(self, run, attrs: dict, source_files: list[str]) -> None:
        import lmdb

        super().open(run, attrs, source_files)
        config = run.manifest.config
        images = run.manifest.n_planned * int(config.get("clips", {}).get("frames", 1))
        map_size = images * (int(config["width"]) * int(config["height"]) * 3 * 11 // 10 + 4096)
        self.envs, self.meta = {}, {kind: {} for kind in self.lmdb_kinds}
        for kind in self.meta:
            path = os.path.join(self.staging, kind.replace(".png", ".lmdb"))
            shutil.rmtree(path, ignore_errors=True)  # an interrupted run's: rebuilt from every block
            # sync=False: no fsync per block's transaction; a durable finalize syncs everything once
            self.envs[kind] = lmdb.open(path, map_size=map_size + 2**24, subdir=True, lock=False, readahead=False,
                                        sync=False)
        self.order = sorted(start for start, _ in run.manifest.blocks)
        self.waiting: dict[int, tuple] = {}
        self.next_block = 0  # index in order of the next block to put

    def add(self, path: str, offset: int, count: int, part_of: tuple) -> None:
        """Put the blocks in sample order: every key then goes at the end of its database (LMDB's
        append mode: no search for its place, no page split; about half the put + commit time in
        an isolated test, within the noise of a whole export). A block finished before an earlier
        one waits for it (only its path is kept)."""
        self.waiting[part_of[0]] = (path, offset, count, part_of)
        while self.next_block < len(self.order) and self.order[self.next_block] in self.waiting:
            self._put_block(*self.waiting.pop(self.order[self.next_block]))
            self.next_block += 1

    def _put_block(self, path: str, offset: int, count: int, part_of: tuple) -> None:
        import lmdb

        self.txns = {kind: env.begin(write=True) for kind, env in self.envs.items()}
        try:
            super().add(path, offset, count, part_of)
            for txn in self.txns.values():
                txn.commit()
        except BaseException as exc:  # a damaged block (remade), a full disk: never leave a write open
            for txn in self.txns.values():
                with contextlib.suppress(lmdb.Error):
                    txn.abort()
            if isinstance(exc, lmdb.Error) and ("No space" in str(exc) or "MDB_MAP_FULL" in str(exc)):
                raise DiskFullError(self.staging) from None
            raise

    def put(self, kind: str, key: str, data: bytes) -> None:
        entry = self.lmdb_entry(kind, key)
        if entry is not None:
            image_kind, name = entry
            # append mode stores nothing and returns False for a key not after the last one
            if not self.txns[image_kind].put(name.encode("ascii"), data, append=True):
                raise PartsError(f"{self.staging}: {image_kind} {name} put out of order")
            self.meta[image_kind][name] = png_size(data)
        else:
            super().put(kind, key, data)

    def lmdb_entry(self, kind: str, key: str) -> tuple[str, str] | None:
        """``(image kind, LMDB key)`` of an image member (None: a side file): ``KEY`` here."""
        return (kind, key) if kind in self.lmdb_kinds else None

    def file_place(self, kind: str, key: str) -> str | None:
        """Images stay in the tar for the LMDB writer; side files are written by the worker."""
        return None if self.lmdb_entry(kind, key) is not None else super().file_place(kind, key)

    def finalize(self, out: str, durable: bool) -> None:
        if self.waiting:
            raise PartsError(f"{self.staging}: the block at sample {self.order[self.next_block]} is missing at finalize")
        for kind, env in self.envs.items():
            lines = [f"{key}.png ({h},{w},3) {self.png_level}\n" for key, (w, h) in sorted(self.meta[kind].items())]
            with open(os.path.join(env.path(), "meta_info.txt"), "w", encoding="ascii") as handle:
                handle.writelines(lines)
            env.close()  # synced with the rest by FoldersSink.finalize's os.sync() when durable
        self.envs = {}
        super().finalize(out, durable)

    def close(self) -> None:
        for env in getattr(self, "envs", {}).values():
            env.close()
        self.envs = {}
        super().close()


class WebDatasetSink(TarBlockSink):
    """WebDataset shards: each block is shard ``PREFIX-%06d.tar`` (``samples_per_shard`` each)."""

    output_format = "webdataset"

    def __init__(self, png_level: int = DEFAULT_PNG_LEVEL, samples_per_shard: int = 1000,
                 png_encoder: str = "opencv") -> None:
        super().__init__(png_level, png_encoder)
        self.samples_per_shard = int(samples_per_shard)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "samples_per_shard": self.samples_per_shard}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def output(self, out: str, shard: tuple[int, int]) -> ShardsOutput:
        return ShardsOutput(out, shard, self.samples_per_shard)

    def complete_blocks(self, run) -> dict[int, str]:
        """Blocks in the run folder, and shards already renamed into place by a run killed while
        finishing (each is checked, with its run stamp, before it is used)."""
        found = run.complete_parts()
        for start, count in run.manifest.blocks:
            final = run.output.tar_path(start)
            if start not in found and os.path.isfile(final):
                found[start] = final
        return found

    def check_block(self, path: str, start: int, count: int, stamp: dict) -> None:
        check_block_tar(path, start, count, stamp)

    def open(self, run, attrs: dict, source_files: list[str]) -> None:
        self.run, self.attrs, self.source_files = run, attrs, source_files
        self.blocks: dict[int, str] = {}
        self.dtypes: dict[str, str] = {}

    def add(self, path: str, offset: int, count: int, part_of: tuple) -> None:
        self.blocks[part_of[0]] = path

    def finalize(self, out: str, durable: bool) -> None:
        output, manifest = self.run.output, self.run.manifest
        first = min(self.blocks)
        for _, _, dtypes in read_block_tar(self.blocks[first], first, dict(manifest.blocks)[first], manifest.stamp):
            self.dtypes = dtypes or self.dtypes
            if dtypes:
                break
        for start, path in sorted(self.blocks.items()):
            os.replace(path, output.tar_path(start))
        if durable:
            for start in self.blocks:
                with open(output.tar_path(start), "rb") as handle:
                    os.fsync(handle.fileno())
        meta = output_meta(self.attrs, self.output_format, manifest, self.png_level, self.dtypes, self.source_files,
                           self.png_encoder)
        meta["shards"] = [{"url": os.path.basename(output.tar_path(start)), "start": start, "count": count}
                          for start, count in manifest.blocks]
        meta["samples_per_shard"] = self.samples_per_shard
        with atomic_file(output.index_path, "w", durable=durable, encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1, sort_keys=True)


FORMATS = ("hdf5", "folders", "lmdb", "webdataset")
