"""Make a pairs dataset: plan the run, make its blocks, assemble the file.

``make_dataset`` is orchestration only. The run folder ``out.parts/`` (``blurgen.runs.folder``)
holds the settings and every finished block as its own complete part file; workers
(``blurgen.runs.workers``) make blocks with a block maker (by default ``blurgen.pairs.pipeline.make_block``)
and commit them as parts; the main process copies finished parts into the file being assembled as
they arrive (``blurgen.store.assembly``) and renames it onto ``out`` when every block is in. A run
killed at any moment loses at most the blocks in flight; ``resume=True`` skips complete parts and
ends with the same arrays as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from blurgen import __version__
from blurgen.core.common import disk_full_reason, is_disk_full
from blurgen.core.config import MAX_PAIRS, check_index
from blurgen.runs.folder import (
    DatasetError,
    Manifest,
    NotEnoughSpace,
    RunFolder,
    auto_block_size,
    delete_in_background,
    shard_range,
)
from blurgen.runs.outputs import aligned_shard_range
from blurgen.runs.sinks import HDF5Sink
from blurgen.runs.workers import BlockMaker, BlockWork, DeferredInterrupt, LocalExecutor
from blurgen.store.parts import DEFAULT_COMPRESSION, Compression, PartsError
from blurgen.store.schema import now_iso, text_attr

log = logging.getLogger(__name__)

__all__ = ["BlockMaker", "DatasetError", "MakeResult", "NotEnoughSpace", "make_dataset"]


@dataclass(frozen=True)
class MakeResult:
    """What a run did: ``n_made`` samples made now, ``n_reused`` taken from an interrupted run."""

    out: str
    n_planned: int
    n_made: int
    n_reused: int
    seconds: float
    already_complete: bool = False
    #: Time spent making the ``n_made`` new samples (not assembling kept ones): the honest rate.
    make_seconds: float = 0.0


def build_manifest(config: Any, n_total: int, seed: int, shard: tuple[int, int], block_size: int | None,
                   compression: Compression = DEFAULT_COMPRESSION, source_files_digest: str = "",
                   output_format: str = "hdf5", whole_blocks: bool = False) -> Manifest:
    """The run's settings; ``whole_blocks`` cuts the shards on block edges (WebDataset: a tar is a
    block, and each tar must come from one shard)."""
    block_size = block_size or auto_block_size(config.width, config.height)
    start, stop = (tar_shard_range(n_total, shard, block_size) if whole_blocks
                   else shard_range(n_total, *shard))
    return Manifest(config=config.to_dict(), seed=int(seed), n_total=int(n_total),
                    sample_start=start, sample_stop=stop, shard_index=shard[0],
                    shard_count=shard[1], block_size=int(block_size),
                    compression={k: tuple(v) for k, v in compression.items()},
                    blurgen_version=__version__, source_files_digest=source_files_digest,
                    output_format=output_format)


def tar_shard_range(n_total: int, shard: tuple[int, int], per_tar: int) -> tuple[int, int]:
    """Samples ``[start, stop)`` of WebDataset shard ``i/N`` (whole tars of ``per_tar``);
    ``ValueError`` if it would get no tar (a tar is never split between shards)."""
    start, stop = aligned_shard_range(n_total, *shard, per_tar)
    if start >= stop:
        tars = -(-int(n_total) // int(per_tar))
        raise ValueError(f"{shard[0]}/{shard[1]} gets no WebDataset tar: the {n_total} pairs fill {tars} tar(s) of "
                         f"{per_tar}, fewer than the {shard[1]} shards (a tar is never split between shards); use "
                         "fewer shards or a smaller --tar-mb")
    return start, stop


def _final_attrs(config: Any, manifest: Manifest, command: str) -> dict[str, Any]:
    return {"blurgen_version": __version__, "created": now_iso(), "command": text_attr(command),
            "config": config.to_json(), "seed": manifest.seed, "n_total": manifest.n_total,
            "sample_start": manifest.sample_start, "sample_stop": manifest.sample_stop,
            "shard_index": manifest.shard_index, "shard_count": manifest.shard_count,
            # the inputs the run pinned (a kernel bank's fingerprint): merge refuses shards of others
            **({"inputs_fingerprint": manifest.source_files_digest} if manifest.source_files_digest else {})}


def make_dataset(out: str, config: Any, n: int, seed: int = 0, *, workers: int | None = None,
                 shard: tuple[int, int] = (0, 1), block_size: int | None = None,
                 resume: bool = False, overwrite: bool = False, command: str = "",
                 maker: BlockMaker | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 compression: Compression = DEFAULT_COMPRESSION,
                 durable: bool = True, executor: Any = None, sink: Any = None) -> MakeResult:
    """Make samples ``[start, stop)`` of an ``n``-sample dataset (``shard`` i of N) into ``out``.

    Args:
        out: the pairs file to write (schema 1: /blurred, /sharp uint8 (N, H, W, 3), /kernel
            float32 (N, k, k), /params/<name> (N,)); it appears only when complete.
        config: a ``PairsConfig`` (``width``, ``height``, ``to_dict()``, ``to_json()``).
        n: samples in the whole dataset (all shards).
        seed: sample i depends only on ``(seed, i)``.
        workers: processes (default: all cores); 1 runs in this process.
        shard: ``(i, N)``: make the i-th of N contiguous sample ranges.
        block_size: samples per part file (default: 64, fewer for large images; not in the arrays).
        resume, overwrite: continue an interrupted run / replace existing output.
        command: recorded in the ``command`` attribute.
        maker: a ``BlockMaker`` (default: ``blurgen.pairs.pipeline.PipelineMaker``).
        progress: called ``progress(samples_done, samples_planned)`` as blocks finish.
        durable: fsync parts and the final file (off only for benchmarks of the rest).
        executor: runs the blocks (default ``LocalExecutor(workers)``; ``blurgen.runs.workers``).
        sink: stores them (default ``HDF5Sink(compression)``; ``blurgen.runs.sinks``).

    Raises:
        DatasetError: existing output, other settings on resume, a failed worker, a locked run, a
            full disk (one line naming the file and the space to free). ValueError: bad arguments.
    """
    maker = _prepared_maker(config, maker, n, resume, overwrite)
    sink = sink or HDF5Sink(compression)
    run = _run_folder(out, config, n, seed, shard, block_size, maker, sink)
    manifest = run.manifest
    began = time.perf_counter()
    run.clear_leftovers()
    try:
        if run.prepare(resume, overwrite):
            return MakeResult(out, manifest.n_planned, 0, manifest.n_planned, 0.0, True)
        with run.locked(), DeferredInterrupt() as gate:
            run.remove_temporaries()  # a killed run's assembly file too: its space counts as free
            run.check_space(resume)  # before the manifest: a refusal writes nothing
            run.check_or_write_manifest()
            work = BlockWork(maker, config, manifest.seed, run.path, sink, durable, manifest.stamp)
            made, reused, make_seconds = _run_blocks(run, work, executor or LocalExecutor(workers), progress,
                                                     _final_attrs(config, manifest, command), gate,
                                                     maker.source_files())
            trash = run.rename_aside()
        delete_in_background(trash)
    except NotEnoughSpace:
        run.discard_if_nothing_made()
        raise
    except Exception as exc:
        raise _as_dataset_error(exc, run) from None
    return MakeResult(out, manifest.n_planned, made, reused, time.perf_counter() - began,
                      make_seconds=make_seconds)


def _run_folder(out: str, config: Any, n: int, seed: int, shard: tuple[int, int], block_size: int | None,
                maker: BlockMaker, sink: Any) -> RunFolder:
    """The run folder, its manifest and its output as ``sink`` lays it out (a sink with
    ``samples_per_shard`` makes one block per WebDataset shard)."""
    shard_size = getattr(sink, "samples_per_shard", None)
    manifest = build_manifest(config, n, seed, shard, shard_size or block_size, sink.compression,
                              maker.source_files_digest(), getattr(sink, "output_format", "hdf5"),
                              whole_blocks=shard_size is not None)
    output = sink.output(out, shard) if hasattr(sink, "output") else None
    run = RunFolder(output.label if output is not None else out, manifest)
    if output is not None:
        run.output = output
    run.output.plan(manifest)
    return run


def _prepared_maker(config: Any, maker: BlockMaker | None, n: Any, resume: bool, overwrite: bool) -> BlockMaker:
    """The block maker (default ``PipelineMaker``), checked against ``config`` before anything is
    created: a bad source or motion fails here."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    check_index("n", n, 1, MAX_PAIRS)
    if maker is None:
        from blurgen.pairs.pipeline import PipelineMaker
        maker = PipelineMaker()
    maker.prepare(config)
    return maker


def _as_dataset_error(exc: Exception, run: RunFolder) -> Exception:
    """The one-line DatasetError for a failed run (a full disk, a parts problem), else ``exc``."""
    if is_disk_full(exc):
        path, reason = getattr(exc, "path", None) or run.path, disk_full_reason(exc)
        if reason == "disk full":
            return DatasetError(f"disk full while writing {path} (need ~{run.mb_more_needed()} MB more); "
                                "free space and rerun with --resume")
        return DatasetError(f"{reason} while writing {path}; raise the limit (ulimit -f, quota) "
                            "and rerun with --resume")
    if isinstance(exc, PartsError):
        return DatasetError(str(exc))
    return exc


def _adopt_kept_parts(run: RunFolder, sink: Any, gate: DeferredInterrupt) -> int:
    """Copy the complete parts of an interrupted run into the assembly; a part that is damaged
    (its CRC-32), stray or of another run is deleted and made again. Returns the samples kept."""
    sizes = dict(run.manifest.blocks)
    kept = 0
    for start, path in sorted(sink.complete_blocks(run).items()):
        gate.check()
        try:
            sink.check_block(path, start, sizes[start], run.manifest.stamp)
            sink.add(path, start - run.manifest.sample_start, sizes[start], (start, run.manifest.stamp))
        except PartsError as exc:
            try:
                os.unlink(path)
            except IsADirectoryError:
                raise DatasetError(f"{path}: a folder where a block file belongs; remove it and rerun with "
                                   "--resume") from None
            log.warning("remaking block at %d: %s", start, exc)
            continue
        kept += sizes[start]
    return kept


def _run_blocks(run: RunFolder, work: BlockWork, executor: Any, progress, attrs: dict,
                gate: DeferredInterrupt, source_files: list[str]) -> tuple[int, int, float]:
    """Add complete blocks to the sink, make the missing ones, finalize onto ``out``.
    Returns ``(samples made, samples reused, seconds spent making them)``."""
    manifest, sink = run.manifest, work.sink
    sink.open(run, attrs, source_files)
    report = progress or (lambda done_, total: None)
    try:
        reused = _adopt_kept_parts(run, sink, gate)
        report(reused, manifest.n_planned)
        done = sink.complete_blocks(run)
        jobs = [block for block in manifest.blocks if block[0] not in done]
        making_began = time.perf_counter()
        made = 0
        with contextlib.closing(executor.run(work, jobs, gate)) as finished:
            for start, count, path in finished:  # closing stops the workers at once on an error
                gate.check()
                sink.add(path, start - manifest.sample_start, count, (start, manifest.stamp))
                if work.durable and hasattr(sink, "sync_if_due"):
                    sink.sync_if_due()
                made += count
                report(reused + made, manifest.n_planned)
        finishing = time.perf_counter()
        sink.finalize(run.out, work.durable)
        log.info("made %d pairs, reused %d; final flush and rename took %.2f s; main process "
                 "CPU %.1f s", made, reused, time.perf_counter() - finishing, time.process_time())
    finally:
        sink.close()
        # Workers stopped mid-write leave temporaries; on a full disk the rerun needs their space.
        run.remove_temporaries()
    return made, reused, (finishing - making_began if made else 0.0)
