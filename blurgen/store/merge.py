"""Merge the shards of one dataset (``blurgen make --shard i/N`` files) into one pairs file."""

from __future__ import annotations

import json
import os
from typing import Any

from blurgen.core.common import DiskFullError
from blurgen.store.assembly import Assembler
from blurgen.store.parts import PartsError
from blurgen.store.schema import (
    PairsFileError,
    attr,
    is_complete,
    now_iso,
    open_checked,
    per_sample_datasets,
    reading,
    sample_range,
    source_file_names,
)


def _shard_key(h5: Any) -> dict[str, Any]:
    """What every shard of one dataset shares (raises h5py's errors if an attribute is damaged)."""
    return {"config": json.loads(attr(h5, "config")), "seed": attr(h5, "seed"),
            "n_total": sample_range(h5)[2], "blurgen_version": attr(h5, "blurgen_version"),
            "inputs_fingerprint": attr(h5, "inputs_fingerprint", "")}


def _difference(name: str, value: Any, first: Any) -> str:
    """What differs, briefly: for configs the keys that differ, not two whole configs."""
    if isinstance(value, dict) and isinstance(first, dict):
        keys = sorted(k for k in {*value, *first} if value.get(k) != first.get(k))
        return f"{name} differs in {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
    if name == "inputs_fingerprint":
        return "made from other inputs (a different kernel bank or source files)"
    return f"{name} differs ({str(value)[:80]!s} != {str(first)[:80]!s})"


def _check_shards_compatible(files: list[tuple[str, Any]]) -> None:
    """PairsFileError unless all shards share settings and tile ``[0, n_total)`` exactly."""
    first_path, first = files[0]
    first_key = _shard_key(first)
    for path, h5 in files:
        if not is_complete(h5):
            raise PairsFileError(f"{path}: incomplete ({attr(h5, 'n_written')}/{attr(h5, 'n_planned')} "
                                 "samples); finish it with blurgen make --resume first")
        key = _shard_key(h5)
        for name, value in key.items():
            if value != first_key[name]:
                raise PairsFileError(f"{path}: {_difference(name, value, first_key[name])} from {first_path}; "
                                     "not shards of one dataset, so make the missing shards with its settings")
    expected = 0
    for path, h5 in sorted(files, key=lambda item: sample_range(item[1])[0]):
        start, stop, _ = sample_range(h5)
        if start > expected:
            raise PairsFileError(f"samples {expected}..{start} are missing (no shard covers them; "
                                 f"next is {path})")
        if start < expected:
            raise PairsFileError(f"{path}: samples {start}..{min(stop, expected)} overlap another shard")
        expected = stop
    if expected != first_key["n_total"]:
        raise PairsFileError(f"samples {expected}..{first_key['n_total']} are missing (no shard covers them)")


def _refuse_bad_motion(paths: list[str]) -> None:
    from blurgen.store.motion_check import motion_problem

    for path in paths:
        problem = motion_problem(path)
        if problem:
            raise PairsFileError(f"{path}: {problem}; this shard cannot be merged, make it again")


def _copy_shards(assembler: Assembler, files: list[tuple[str, Any]]) -> None:
    for path, h5 in files:
        start, stop, _ = sample_range(h5)
        try:
            with assembler.copying(path):
                assembler.add(h5, start, stop - start, path)
        except PartsError as exc:
            raise PairsFileError(str(exc)) from None


def _merged_attrs(first: Any, command: str, n_total: int) -> dict[str, Any]:
    return {"blurgen_version": attr(first, "blurgen_version"), "created": now_iso(),
            "command": command, "config": attr(first, "config"), "seed": attr(first, "seed"),
            "n_total": n_total, "sample_start": 0, "sample_stop": n_total,
            "shard_index": 0, "shard_count": 1,
            **({"inputs_fingerprint": attr(first, "inputs_fingerprint")} if "inputs_fingerprint" in first.attrs else {})}


def merge_files(paths: list[str], tmp_path: str, final_path: str, command: str,
                compression: dict[str, tuple[str | None, int | None]] | None = None,
                virtual: bool = False) -> int:
    """Merge complete shards into one pairs file; returns its length.

    Checks that the shards come from one dataset (same config, seed, size, version) and cover
    ``[0, n_total)`` without gaps or overlaps; raises PairsFileError naming the file otherwise.
    The result equals an unsharded run array for array. ``virtual``: write an HDF5 virtual
    dataset file referencing the shards (``blurgen.store.virtual``) instead of copying them.
    """
    from blurgen.store.virtual import shard_count_fits, write_virtual

    shard_count_fits(len(paths), virtual)  # before opening: not "Too many open files" as "foreign"
    files: list[tuple[str, Any]] = []
    try:
        for path in paths:
            files.append((path, open_checked(path)))
            with reading(path, "unreadable root attributes"):
                _shard_key(files[-1][1])  # fail here, naming the file, not mid-comparison
        _check_shards_compatible(files)
        _refuse_bad_motion(paths)
        first = files[0][1]
        n_total = sample_range(first)[2]
        if virtual:
            attrs = {**_merged_attrs(first, command, n_total), "n_planned": n_total, "n_written": n_total}
            write_virtual(files, [sample_range(h5)[:2] for _, h5 in files], tmp_path, final_path, attrs,
                          source_file_names(first))
            return n_total
        compression = compression or {name: (first[name].compression, first[name].compression_opts)
                                      for name in per_sample_datasets(first)}
        assembler = Assembler(tmp_path, n_total, _merged_attrs(first, command, n_total), compression,
                              source_files=source_file_names(first))
        try:
            _copy_shards(assembler, files)
            assembler.finish(final_path)
        except DiskFullError as exc:  # the file reserves its whole (raw) size before copying
            need = -(-(assembler.reserve_bytes or sum(os.path.getsize(p) for p in paths)) // 10**6)
            raise PairsFileError(f"{exc} (need ~{need} MB free); free space and merge again") from None
        finally:
            assembler.close()
        return n_total
    finally:
        for _, h5 in files:
            h5.close()
