"""The disk space a run still needs (``RunFolder``'s share: ``blurgen.runs.folder``)."""

from __future__ import annotations

import contextlib
import os

from blurgen.core.common import DatasetError, free_bytes
from blurgen.store.assembly import reserved_bytes
from blurgen.store.parts import PART_METADATA_BOUND, PART_OVERHEAD_BYTES, PART_SPACE_MARGIN_BYTES

#: The folder a folders/LMDB sink builds its output in, inside the run folder
#: (``blurgen.runs.format_sinks``): kept between runs, it holds the finished blocks' files.
STAGING_NAME = ".output"


class NotEnoughSpace(DatasetError):
    """The run cannot fit on the disk; found before any sample was made."""


def _tree_bytes(folder: str, skip_suffix: str) -> int:
    """Bytes of the files under ``folder`` (0 if absent), not counting folders ending ``skip_suffix``."""
    total = 0
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.endswith(skip_suffix)]
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class RunSpace:
    """Disk-space estimates of a run folder (mixed into ``RunFolder``: ``path``, ``out``,
    ``manifest`` and ``complete_parts`` come from it)."""

    def _bytes_per_sample(self, done: dict[int, str]) -> int:
        """Mean stored bytes per sample of the complete parts (with the files their workers wrote
        into the output being built: folders, LMDB), or the raw size without any."""
        counts = dict(self.manifest.blocks)
        sizes = [(os.path.getsize(path), counts[start]) for start, path in done.items()
                 if os.path.exists(path)]
        if sizes:
            staged = _tree_bytes(os.path.join(self.path, STAGING_NAME), skip_suffix=".lmdb")
            return -(-(sum(b for b, _ in sizes) + staged) // sum(n for _, n in sizes))
        return self.manifest.raw_bytes_per_sample()

    def _assembly_bytes(self, per_sample: int) -> int:
        """What finishing the output takes beyond the parts: HDF5 assembles a file (its
        reservation: the raw arrays and HDF5's allowance); LMDB copies the images into its
        databases (at most a sample's stored size each); folders and WebDataset only rename."""
        if self.manifest.output_format == "hdf5":
            return reserved_bytes(self.manifest.n_planned, self.manifest.raw_bytes_per_sample())
        return per_sample * self.manifest.n_planned if self.manifest.output_format == "lmdb" else 0

    def bytes_needed(self, stored_fraction: float = 1.0) -> int:
        """Free bytes the run needs at its peak (parts and the assembled file coexist until the
        end): the blocks still to make, with what a part's write checks for beyond its final size
        (its raw reservation, trimmed once written, and the free-space margin), plus what the
        file being assembled reserves (``store.assembly.reserved_bytes``: the raw arrays,
        whatever the compression, and HDF5's allowance). ``stored_fraction`` scales the raw size
        of a part before any exists to measure (compressed images take less)."""
        done = self.complete_parts() if os.path.isdir(self.path) else {}
        counts = dict(self.manifest.blocks)
        n_done = sum(counts[start] for start in done)
        n_planned = self.manifest.n_planned
        raw = self.manifest.raw_bytes_per_sample()
        if done:  # measured: parts' own metadata included
            per_sample = self._bytes_per_sample(done)
        else:
            per_sample = int(raw * stored_fraction) + -(-len(counts) * PART_OVERHEAD_BYTES // max(n_planned, 1))
        parts = per_sample * (n_planned - n_done)
        writing = max(counts.values(), default=0) * raw + PART_METADATA_BOUND + PART_SPACE_MARGIN_BYTES
        return parts + writing + self._assembly_bytes(per_sample)

    def _free(self) -> int | None:
        try:
            return free_bytes(os.path.dirname(os.path.abspath(self.out)))
        except OSError:
            return None

    def mb_more_needed(self) -> int:
        """MB to free before a rerun (at least 1): what the run still writes less the space free."""
        return max(1, -(-(self.bytes_needed() - (self._free() or 0)) // 10**6))

    def check_space(self, resume: bool) -> None:
        """Refuse (``NotEnoughSpace``) a run that cannot fit on the disk, before any sample is
        made (called holding the lock, after a killed run's temporaries are gone). With compression
        the parts' raw estimate is halved, so only a run that surely cannot fit is refused (the
        writes' own checks catch the rest)."""
        free = self._free()
        if free is None:
            return  # no measure: the writes' own checks decide
        compressed = self.manifest.compression.get("blurred", (None,))[0] is not None
        if self.bytes_needed(stored_fraction=0.5 if compressed else 1.0) > free:
            needed = self.bytes_needed()  # what to free: the full estimate, not the lenient one
            rerun = "rerun with --resume" if resume else "run again"
            raise NotEnoughSpace(f"not enough disk space for {self.manifest.n_planned} pairs: need "
                                 f"~{-(-(needed - free) // 10**6)} MB more on the disk of {self.out} "
                                 f"(parts, then the assembled file); free space and {rerun}")
