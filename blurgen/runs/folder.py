"""The folder ``OUT.parts/`` that holds a run's finished work until ``OUT`` is assembled.

``RunFolder`` owns everything about it:

* ``manifest.json`` -- the run's settings (config, seed, sample range, block size, compression),
  written atomically before any work, so ``--resume`` can refuse different settings;
* ``block-<start>-<count>.h5`` -- one complete part file per block of samples
  (``blurgen.store.parts``); a name that exists is a complete block, whatever moment the process
  was killed at;
* ``.lock`` -- held (``flock``) by the running process, released by the kernel even on SIGKILL;
* ``assembly.h5.tmp`` -- the final file while it is being assembled;
* the block plan, which blocks are complete, the disk space the run still needs, and the
  folder's removal (renamed aside to ``OUT.parts.done-<pid>-<hex>``, then deleted).

Sample ``i`` depends only on ``(seed, i)``, so blocks are independent: any worker may make any
block, in any order, and the block size never changes the arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

from blurgen.core.common import DatasetError, atomic_file, flocked, is_flocked, remove_temporaries
from blurgen.runs.outputs import Output
from blurgen.runs.space import NotEnoughSpace, RunSpace  # noqa: F401 (NotEnoughSpace: API)
from blurgen.store.parts import (
    PartsError,
    parse_part_name,
    part_files,
    part_stamp,
)
from blurgen.store.schema import PairsFileError, file_settings, is_complete, open_checked, reading

PARTS_FORMAT = "blurgen-parts"
PARTS_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
ASSEMBLY_NAME = "assembly.h5.tmp"
#: Where a sink moves an output it replaces (deleted with the temporaries). The folder it builds
#: its output in, ``.output`` (``blurgen.runs.format_sinks``), is kept: it holds the files the
#: workers wrote for the finished blocks.
STAGING_DIRS = (".replaced",)
TRASH_SUFFIX = ".done-"
_TRASH_TAIL_RE = re.compile(r"^\d+-[0-9a-f]{8}$")
MAX_BLOCK_SAMPLES = 64
#: Raw bytes of one block's images we aim under, so huge images get smaller blocks (and a worker's
#: memory stays bounded) while small ones keep 64 samples per block.
BLOCK_TARGET_BYTES = 64 * 2**20


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


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:  # JSON turns tuples into lists: compare as lists
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat


def _check_manifest_fields(fields: dict[str, Any]) -> None:
    """PartsError for settings no run writes (an edited or damaged manifest): a block size of 0
    or -1 planned blocks for ever."""
    def whole(name: str, low: int = 0) -> int:
        value = fields[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise PartsError(f"manifest {name}={value!r} must be an integer >= {low}")
        return value
    whole("seed")
    whole("block_size", 1)
    whole("shard_count", 1)
    if not whole("sample_start") <= whole("sample_stop") <= whole("n_total"):
        raise PartsError(f"manifest samples {fields['sample_start']}..{fields['sample_stop']} are not inside "
                         f"0..{fields['n_total']}")
    if not whole("shard_index") < fields["shard_count"]:
        raise PartsError(f"manifest shard {fields['shard_index']}/{fields['shard_count']} is impossible")
    if not isinstance(fields["config"], dict) or not isinstance(fields["compression"], dict):
        raise PartsError("manifest config and compression must be JSON objects")


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
    #: The sink's format (``hdf5``, ``folders``, ``lmdb``, ``webdataset``): a resume keeps it.
    output_format: str = "hdf5"

    @property
    def n_planned(self) -> int:
        return self.sample_stop - self.sample_start

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """The run's blocks ``(first sample, count)``."""
        return plan_blocks(self.sample_start, self.sample_stop, self.block_size)

    @property
    def stamp(self) -> dict[str, Any]:
        """What each of this run's part files records (``store.parts.part_stamp``)."""
        return part_stamp(self.config, self.seed)

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
        _check_manifest_fields(fields)
        fields["compression"] = {k: tuple(v) for k, v in fields["compression"].items()}
        return cls(**fields)

    def settings(self) -> dict[str, Any]:
        """What fixes the arrays, as a finished file records it (``schema.file_settings``)."""
        return {"config": json.loads(json.dumps(self.config)), "seed": self.seed,
                "n_total": self.n_total, "sample_start": self.sample_start,
                "sample_stop": self.sample_stop}

    def output_settings(self) -> dict[str, Any]:
        """``settings()`` and how the output stores them: its format, the images' compression and
        the samples per WebDataset tar (``--tar-mb``; a tar is a block); a finished output is
        compared on what it records."""
        return {**self.settings(), "format": self.output_format,
                "compression": json.loads(json.dumps(self.compression)), "samples_per_tar": self.block_size}

    def differences(self, other: "Manifest") -> list[str]:
        """Human-readable list of the settings that differ, e.g. ``['seed: 1 != 0']``."""
        mine, theirs = _flatten(self.to_dict()), _flatten(other.to_dict())
        return [f"{key}: {mine.get(key)!r} (now) != {theirs.get(key)!r} (interrupted run)"
                for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]

    def raw_bytes_per_sample(self) -> int:
        """Uncompressed bytes of one sample (both images, the kernel, a margin for params); of a
        clip, its frames'."""
        k = int(self.config.get("kernel", {}).get("size", 65))
        frames = int(self.config.get("clips", {}).get("frames", 1))
        return frames * (2 * 3 * int(self.config.get("width", 256)) * int(self.config.get("height", 256)) + 4 * k * k) + 128


class HDF5Output(Output):
    """A pairs file ``out`` (the default output of a run)."""

    def settings(self) -> tuple[dict[str, Any], bool]:
        """``(settings, complete)`` of the existing file (``PairsFileError`` if not a pairs file):
        what fixes the arrays and the filters of its image and kernel datasets."""
        with open_checked(self.label) as h5, reading(self.label, "unreadable root attributes"):
            settings = file_settings(h5)
            if all(name in h5 for name in ("blurred", "sharp", "kernel")):
                settings["compression"] = {name: [h5[name].compression, h5[name].compression_opts]
                                           for name in ("blurred", "sharp", "kernel")}
            return settings, is_complete(h5)

    def finished_with(self, settings: dict[str, Any]) -> bool:
        return os.path.isfile(self.label) and super().finished_with(settings)


def delete_in_background(folder: str) -> None:
    """Delete a renamed-aside parts folder without waiting: freeing gigabytes of parts took
    ~2.5 s at the end of a 10,000-pair run (ext4 mounted with discard). ``rm`` runs detached
    (``sh`` exits at once, so no zombie is left); a kill midway leaves a trash folder that the
    next run on this output clears. Falls back to deleting here."""
    try:
        subprocess.run(["sh", "-c", 'rm -rf -- "$1" &', "sh", folder], check=True, timeout=10,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(folder, ignore_errors=True)


def _named_differences(key: str, mine: dict, theirs: dict) -> list[str]:
    """``key: now != file`` for a setting, field by field inside a config (JSON or dict)."""
    def flat(value):
        if isinstance(value, str) and value.startswith("{"):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        return _flatten(value, key + ".") if isinstance(value, dict) else {key: value}

    now, then = flat(mine[key]), flat(theirs[key])
    names = sorted(name for name in set(now) | set(then) if now.get(name) != then.get(name))
    return [f"{name}: {now.get(name)!r} (now) != {then.get(name)!r} (file)" for name in names] or [key]


class RunFolder(RunSpace):
    """``OUT.parts/``: one run's manifest, lock, finished blocks, assembly file and space needs.

    Args:
        out: the pairs file the run writes.
        manifest: the run's settings; if None, read from the folder when first needed
            (``PartsError`` if it has none or it is damaged).
    """

    def __init__(self, out: str, manifest: Manifest | None = None) -> None:
        self.out = os.fspath(out)
        self.path = parts_dir_for(self.out)
        #: What the output is on disk (exists, settings of a finished one): a pairs file unless
        #: the sink says otherwise (``blurgen.runs.outputs``).
        self.output = HDF5Output(self.out)
        if manifest is not None:
            self.manifest = manifest

    @classmethod
    def at(cls, folder: str) -> "RunFolder":
        """The run folder ``folder`` itself (``inspect`` accepts a parts folder by any name)."""
        folder = os.fspath(folder).rstrip(os.sep)
        run = cls(folder[:-len(".parts")] if folder.endswith(".parts") else folder)
        run.path = folder
        return run

    # ------------------------------------------------------------------------ settings
    @cached_property
    def manifest(self) -> Manifest:
        path = os.path.join(self.path, MANIFEST_NAME)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise PartsError(f"{self.path}: no {MANIFEST_NAME} (not a blurgen parts folder)") from None
        except (OSError, ValueError) as exc:
            raise PartsError(f"{path}: unreadable manifest: {exc}") from None
        if not isinstance(data, dict):
            raise PartsError(f"{path}: unreadable manifest: not a JSON object")
        try:
            return Manifest.from_dict(data)
        except PartsError as exc:
            raise PartsError(f"{path}: {exc}") from None

    def has_manifest(self) -> bool:
        return os.path.exists(os.path.join(self.path, MANIFEST_NAME))

    def _write_manifest(self) -> None:
        with atomic_file(os.path.join(self.path, MANIFEST_NAME), "w", encoding="utf-8") as fh:
            json.dump(self.manifest.to_dict(), fh, indent=1, sort_keys=True)

    def check_or_write_manifest(self) -> None:
        """Under the lock: a new folder gets the manifest; an existing one must match it.

        Blocks without a manifest are refused, not adopted nor deleted: nothing says which settings
        made them (the manifest is written before any block, so a blurgen run never leaves them).
        """
        if not self.has_manifest():
            orphans = part_files(self.path)
            if orphans:
                raise DatasetError(f"{self.path} holds {len(orphans)} block file(s) but no "
                                   f"{MANIFEST_NAME}, so their settings are unknown; start again "
                                   "with --overwrite")
            self._write_manifest()  # killed before the first write: start afresh
            return
        differences = self.manifest.differences(RunFolder(self.out).manifest)
        if differences:
            more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
            raise DatasetError(f"--resume: settings differ from the interrupted run in {self.path}: "
                               f"{differences[0]}{more}; use --overwrite to start again")

    # ------------------------------------------------------------------------ the lock
    @property
    def lock_path(self) -> str:
        return os.path.join(self.path, LOCK_NAME)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run lock; PartsError if another process holds it (a run in progress)."""
        busy = f"{self.path} is in use by another blurgen make (wait for it, or stop it first)"
        with flocked(self.lock_path, busy, error=PartsError):
            yield

    def is_locked(self) -> bool:
        """Whether a running process holds the lock (an in-progress run)."""
        return is_flocked(self.lock_path)

    # ------------------------------------------------------------------------ blocks
    def complete_parts(self) -> dict[int, str]:
        """Planned blocks that have a complete part file: first sample -> path.

        Files that match no planned block are ignored (they cannot come from a run with the same
        manifest, which ``--resume`` checks first). A name is not proof of origin: assembly checks
        each kept part's checksum and attributes.
        """
        planned = dict(self.manifest.blocks)
        found: dict[int, str] = {}
        for name in part_files(self.path):
            start, count = parse_part_name(name)
            if planned.get(start) == count:
                found[start] = os.path.join(self.path, name)
        return found

    def samples_done(self) -> int:
        sizes = dict(self.manifest.blocks)
        return sum(sizes[start] for start in self.complete_parts())

    @property
    def assembly_path(self) -> str:
        return os.path.join(self.path, ASSEMBLY_NAME)

    def remove_temporaries(self) -> int:
        """Delete what killed writers left (only call while holding the lock): part temporaries
        ``.tmp-<host>-<pid>-<id>-block-...``, the assembly file, the manifest's temporaries."""
        removed = remove_temporaries(self.path)
        for name in os.listdir(self.path):
            path = os.path.join(self.path, name)
            if name in STAGING_DIRS and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)  # a replaced output being deleted
                removed += 1
            elif name.startswith(".tmp-") or name == ASSEMBLY_NAME:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
        return removed

    # ------------------------------------------------------------------------ life cycle
    def prepare(self, resume: bool, overwrite: bool) -> bool:
        """Check what exists and create the folder; True when ``out`` is already complete with
        these settings (``resume``). Refusals are DatasetError."""
        has_parts = os.path.isdir(self.path)
        if not resume and not overwrite:
            if has_parts and self.is_locked():
                raise DatasetError(f"{self.out} is being made by another blurgen make right now "
                                   f"({self.path} is locked)")
            if has_parts:
                raise DatasetError(f"{self.path} holds an interrupted run; continue it with --resume "
                                   "or start again with --overwrite")
            found = self.output.existing()
            if found is not None:
                raise DatasetError(f"{found} exists; use --overwrite to replace it")
        if has_parts and (overwrite or (resume and self.output.finished_with(self.manifest.output_settings()))):
            self.discard()
            has_parts = False
        if overwrite:
            self.output.forget_for_overwrite()
        if resume and not has_parts and self.output.exists():
            return self._existing_output_matches()
        try:
            os.makedirs(self.path, exist_ok=resume)
        except FileExistsError:
            raise DatasetError(f"{self.path} appeared meanwhile: another blurgen make is writing {self.out}") from None
        return False

    def _existing_output_matches(self) -> bool:
        """Whether complete file ``out`` is what the manifest would make (for ``--resume``)."""
        try:
            theirs, complete = self.output.settings()
        except PairsFileError as exc:
            raise DatasetError(f"--resume: {exc}") from None
        mine = self.manifest.output_settings()
        differing = [item for key in theirs if mine[key] != theirs[key] for item in _named_differences(key, mine, theirs)]
        if differing:
            shown = "; ".join(differing[:3]) + (f"; and {len(differing) - 3} more" if len(differing) > 3 else "")
            raise DatasetError(f"--resume: {self.out} was made with different settings ({shown}); "
                               "use --overwrite to replace it")
        return complete

    def rename_aside(self) -> str:
        """Rename the folder to a fresh trash name before deleting it (a kill during the deletion
        then leaves a folder no one mistakes for an interrupted run; the next run on this output
        clears it); returns the new name."""
        trash = f"{self.path}{TRASH_SUFFIX}{os.getpid()}-{os.urandom(4).hex()}"
        os.replace(self.path, trash)
        return trash

    def discard(self) -> None:
        """Delete a folder no run is using: renamed aside (atomic) under its lock, then deleted,
        so a kill midway never leaves blocks without their manifest under the parts name."""
        with self.locked():  # refuse to delete a folder another run is writing to
            trash = self.rename_aside()
        shutil.rmtree(trash, ignore_errors=True)

    def discard_if_nothing_made(self) -> None:
        """After a refusal before work: leave no run that only ``--resume`` could continue."""
        if os.path.isdir(self.path) and not self.complete_parts():
            with contextlib.suppress(PartsError, OSError):  # e.g. another run took the folder meanwhile
                self.discard()

    def leftovers(self) -> list[str]:
        """Folders that ``rename_aside`` named for this output, and nothing else: a prefix glob
        also matched e.g. a user's ``pairs.h5.parts.done-backup`` or the parts folder of an output
        called ``pairs.h5.parts.done-x.h5``, which the next run then deleted."""
        prefix = self.path + TRASH_SUFFIX
        return [path for path in glob.glob(glob.escape(prefix) + "*")
                if _TRASH_TAIL_RE.match(path[len(prefix):]) and os.path.isdir(path)
                and not os.path.islink(path)]

    def clear_leftovers(self) -> None:
        for leftover in self.leftovers():
            shutil.rmtree(leftover, ignore_errors=True)
