"""Merge shards in O(metadata): an HDF5 virtual dataset (VDS) file that references the shards.

Every per-sample dataset and parameter of the merged file is a virtual dataset mapping sample
range ``[start, stop)`` of each shard; the shards' paths are stored relative to the merged file
(move the folder as a whole). HDF5 reads a missing source as fill values, silently, so the file
records its shards (root attribute ``virtual_sources``) and ``PairsFile`` refuses to open it
while one is missing (``check_virtual_sources``). Chunk-level reads (``read_direct_chunk``) do not
work on virtual datasets; blurgen reads them by slicing. Each shard stays open once read, so the
shard count must stay below the open-file limit (``ulimit -n``); ``merge --copy`` writes a
standalone file instead.
"""

from __future__ import annotations

import json
import os
from typing import Any

from blurgen.store.schema import (  # noqa: F401 -- the reading side lives in schema (no import cycle)
    VIRTUAL_SOURCES,
    PairsFileError,
    check_virtual_sources,
    per_sample_datasets,
    virtual_sources,
)


def _virtual(h5: Any, name: str, pieces: list[tuple[str, Any, int, int]]) -> None:
    import h5py

    _, first, _, _ = pieces[0]
    template = first[name]
    n_total = max(stop for _, _, _, stop in pieces)
    layout = h5py.VirtualLayout(shape=(n_total, *template.shape[1:]), dtype=template.dtype)
    for relative, shard, start, stop in pieces:
        layout[start:stop] = h5py.VirtualSource(relative, name, shape=shard[name].shape, dtype=template.dtype)
    h5.create_virtual_dataset(name, layout)


def write_virtual(files: list[tuple[str, Any]], ranges: list[tuple[int, int]], tmp_path: str,
                  final_path: str, attrs: dict[str, Any], source_files: list[str]) -> None:
    """Write the virtual merge of open shards ``files`` (``(path, h5)``, covering ``ranges``) to
    ``tmp_path`` and rename it onto ``final_path``."""
    import h5py

    from blurgen.store.assembly import write_source_files

    folder = os.path.dirname(os.path.abspath(final_path))
    pieces = [(os.path.relpath(os.path.abspath(path), folder), h5, start, stop)
              for (path, h5), (start, stop) in zip(files, ranges)]
    first = files[0][1]
    try:
        with h5py.File(tmp_path, "w") as out:
            for key, value in attrs.items():
                out.attrs[key] = value
            out.attrs["schema_version"] = first.attrs["schema_version"]
            out.attrs[VIRTUAL_SOURCES] = json.dumps(sorted(piece[0] for piece in pieces))
            write_source_files(out, source_files)
            for name in [*per_sample_datasets(first), *(f"params/{p}" for p in first["params"])]:
                _virtual(out, name, pieces)
        os.replace(tmp_path, final_path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def shard_count_fits(count: int, virtual: bool = True) -> None:
    """``PairsFileError`` when ``count`` shards would not fit the open-file limit: a virtual merge's
    reader keeps each shard open once read, and merging opens them all at once."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and count > soft - 64:
        advice = "raise the limit" + (" or merge with --copy" if virtual else "") + " (ulimit -n)"
        raise PairsFileError(f"{count} shards exceed what a process can keep open (ulimit -n is {soft}); {advice}")
