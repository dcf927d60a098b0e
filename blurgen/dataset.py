"""Make a pairs dataset: plan blocks, run workers, keep finished work safe, assemble the file.

``make_dataset`` writes ``out`` through ``out.parts/`` (see ``blurgen.parts``): each block of
samples is made by a worker process and stored as its own atomically renamed part file; the main
process copies finished parts into a temporary final file as they arrive (compressed chunks as
they are) and renames it onto ``out`` when every block is in. A run killed at any moment loses at
most the blocks in flight; ``resume=True`` skips complete parts and ends with the same arrays as an
uninterrupted run.

Worker processes use the spawn start method (forking after numba's threads start is unsafe), one
numba and one OpenCV thread each; workers never share state, so any worker count gives the same
arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import os
import queue
import re
import shutil
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from blurgen import __version__
from blurgen.assemble import Assembler, file_settings, finished_with, is_complete, now_iso, open_checked
from blurgen.config import MAX_PAIRS, check_index
from blurgen.pairs_file import PairsFileError, reading
from blurgen.parts import (DEFAULT_COMPRESSION, MANIFEST_NAME, Compression, DiskFullError, Manifest,
                           PartsError, auto_block_size, commit_part, complete_parts, free_bytes,
                           is_disk_full, is_locked, locked, part_files, part_stamp, parts_dir_for,
                           plan_blocks, read_manifest, remove_stale_tmp, shard_range,
                           write_manifest, write_part_tmp)

log = logging.getLogger(__name__)

ASSEMBLY_NAME = "assembly.h5.tmp"
TRASH_SUFFIX = ".done-"
#: Environment that keeps each worker on one core: set before the worker imports numba/OpenCV.
SINGLE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1"}


class DatasetError(Exception):
    """A run that cannot go on: existing output, different settings on resume, a worker failure.
    The message is one line for the user."""


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


class PipelineMaker:
    """The default block maker: ``blurgen.pipeline.make_block`` with the sharp-image source opened
    once per process. Pickles without its source, so each worker opens its own, and checks that
    it found the same files as the parent (``source_files_digest``)."""

    def __init__(self) -> None:
        self._source = None
        self._digest: str | None = None
        self._expected: str | None = None  # a worker's copy: the parent's digest

    def __getstate__(self) -> dict:
        return {"digest": self._digest}

    def __setstate__(self, state: dict) -> None:
        self._source = None
        self._digest = None
        self._expected = state["digest"]

    def prepare(self, config: Any) -> None:
        """Check the kernel model and open the source now: a kernel too small for its paths
        (``ValueError``) or an empty or unreadable source fails before any work starts."""
        from blurgen.kernels import check_kernel_fits

        check_kernel_fits(config.kernel)
        self._open_source(config)

    def _open_source(self, config: Any) -> None:
        if config.source == "deadleaves":
            return  # procedural: nothing to check, and each process opens its own
        from blurgen.pipeline import open_config_source

        self._source = open_config_source(config)
        digest = self._source.fingerprint()
        if self._expected is not None and digest != self._expected:
            raise DatasetError(f"the files of source {config.source} changed while the run was "
                               "starting; rerun with --resume")
        self._digest = digest

    def source_files_digest(self, config: Any) -> str:
        """``Source.fingerprint()`` of the source ``prepare`` opened ("" for dead leaves)."""
        return self._digest or ""

    def __call__(self, config: Any, seed: int, start: int, count: int) -> dict:
        from blurgen.pipeline import make_block

        if self._source is None:
            self._open_source(config)
        return make_block(config, seed, start, count, source=self._source)


def limit_threads_here() -> None:
    """One numba and one OpenCV thread in this process (a worker, or ``workers=1``)."""
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(1)
    with contextlib.suppress(ImportError, ValueError):
        import numba

        numba.set_num_threads(1)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies, so a killed run leaves no orphans
    writing into the parts folder."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _committed_parts(maker, config, seed, parts_dir, compression, durable, stamp, jobs):
    """Make and write ``jobs`` in this process; yield ``(start, count, part path)`` as each part
    is committed. Commits (fsync + rename) run in a background thread, overlapping the next block's
    computation; a part is reported only once it is renamed, i.e. complete on disk."""
    from concurrent.futures import ThreadPoolExecutor

    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit") as committer:
        for start, count in jobs:
            try:
                block = maker(config, seed, start, count)
                tmp, final = write_part_tmp(parts_dir, block, start, compression, stamp)
            except DiskFullError:
                raise
            except Exception as exc:
                raise DatasetError(f"making samples {start}..{start + count - 1}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            del block  # the next block's arrays may reuse this memory
            pending.append((start, count, committer.submit(commit_part, tmp, final, durable)))
            while pending and pending[0][2].done():
                first, n, future = pending.popleft()
                yield first, n, future.result()
        while pending:
            first, n, future = pending.popleft()
            yield first, n, future.result()


def _worker_main(maker, config, seed, parts_dir, compression, durable, stamp, parent_pid, tasks,
                 results):
    """Worker process: make blocks from ``tasks`` and write each as a part; report to ``results``."""
    _die_with_parent()
    limit_threads_here()

    def jobs():
        while True:
            job = tasks.get()
            if job is None or os.getppid() != parent_pid:
                return
            yield job

    try:
        for start, count, path in _committed_parts(maker, config, seed, parts_dir, compression,
                                                   durable, stamp, jobs()):
            results.put(("done", start, count, path))
    except Exception as exc:  # reported to the parent, which stops the run with one line
        results.put(_failure_message(exc, parts_dir))


def _failure_message(exc: Exception, parts_dir: str) -> tuple[str, str]:
    """What a worker tells the parent about ``exc``: ``("disk_full", path)`` or ``("error", text)``."""
    if is_disk_full(exc):
        return "disk_full", getattr(exc, "path", parts_dir)
    if isinstance(exc, DatasetError):
        return "error", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _worker_pool(n_workers: int, args: tuple, jobs: list[tuple[int, int]]):
    """Start ``n_workers`` spawn processes fed with ``jobs``; yield ``(results queue, processes)``.

    Workers start with SIGINT ignored (Ctrl-C is the parent's to handle: it stops them, and they
    print nothing) and with the single-thread environment; both are set only around ``start()``.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for job in jobs:
        tasks.put(job)
    for _ in range(n_workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker_main, args=(*args, os.getpid(), tasks, results), daemon=True)
             for _ in range(n_workers)]
    saved_env = {key: os.environ.get(key) for key in SINGLE_THREAD_ENV}
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal() needs it
    old_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        os.environ.update(SINGLE_THREAD_ENV)
        for proc in procs:
            proc.start()
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, old_sigint)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield results, procs
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        tasks.cancel_join_thread()
        results.cancel_join_thread()


class DeferredInterrupt:
    """Ctrl-C as a flag that the run checks at safe points, raising KeyboardInterrupt there.

    An interrupt raised at an arbitrary moment can land inside h5py (e.g. in a weakref callback,
    where Python drops it) and leave h5py's global lock held: the process then hangs instead of
    stopping. A second Ctrl-C still stops at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt here if Ctrl-C was pressed."""
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _pooled_parts(n_workers: int, args: tuple, jobs: list[tuple[int, int]], gate: DeferredInterrupt):
    """Yield ``(start, count, part path)`` as workers finish blocks (in completion order)."""
    with _worker_pool(n_workers, args, jobs) as (results, procs):
        remaining = len(jobs)
        while remaining:
            gate.check()
            try:
                message = results.get(timeout=0.2)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise DatasetError(f"a worker process died (exit code {dead[0].exitcode}); "
                                       "finished blocks are kept, rerun with --resume") from None
                if all(p.exitcode is not None for p in procs):
                    raise DatasetError(f"the workers stopped with {remaining} block(s) not made; "
                                       "rerun with --resume") from None
                continue
            if message[0] == "disk_full":
                raise DiskFullError(message[1])
            if message[0] == "error":
                raise DatasetError(message[1])
            remaining -= 1
            yield message[1:]


def _inline_parts(maker, config, seed, parts_dir, compression, durable, stamp, jobs):
    """The ``workers=1`` path: make blocks in this process (one compute thread)."""
    limit_threads_here()
    yield from _committed_parts(maker, config, seed, parts_dir, compression, durable, stamp, jobs)


# --------------------------------------------------------------------------------- run set-up
def build_manifest(config: Any, n_total: int, seed: int, shard: tuple[int, int],
                   block_size: int | None, compression: Compression = DEFAULT_COMPRESSION) -> Manifest:
    start, stop = shard_range(n_total, *shard)
    block_size = block_size or auto_block_size(config.width, config.height)
    return Manifest(config=config.to_dict(), seed=int(seed), n_total=int(n_total),
                    sample_start=start, sample_stop=stop, shard_index=shard[0],
                    shard_count=shard[1], block_size=int(block_size),
                    compression={k: tuple(v) for k, v in compression.items()},
                    blurgen_version=__version__)


def _existing_output_matches(out: str, manifest: Manifest) -> bool:
    """Whether complete file ``out`` is what ``manifest`` would make (for ``--resume``)."""
    try:
        with open_checked(out) as h5, reading(out, "unreadable root attributes"):
            theirs, complete = file_settings(h5), is_complete(h5)
    except PairsFileError as exc:
        raise DatasetError(f"--resume: {exc}") from None
    mine = manifest.settings()
    differing = [key for key in mine if mine[key] != theirs[key]]
    if differing:
        raise DatasetError(f"--resume: {out} was made with different settings ({', '.join(differing)} "
                           "differ); use --overwrite to replace it")
    return complete


def _remove_parts_dir(parts_dir: str) -> None:
    """Delete a parts folder no run is using: rename aside (atomic), then delete, so a kill
    midway never leaves blocks without their manifest under the parts name."""
    with locked(parts_dir):  # refuse to delete a folder another run is writing to
        trash = _rename_aside(parts_dir)
    shutil.rmtree(trash, ignore_errors=True)


def _prepare_parts_dir(out: str, manifest: Manifest, resume: bool, overwrite: bool) -> bool:
    """Check what exists and create ``out.parts``; True when ``out`` is already complete (resume)."""
    parts_dir = parts_dir_for(out)
    has_parts = os.path.isdir(parts_dir)
    if not resume and not overwrite:
        if has_parts and is_locked(parts_dir):
            raise DatasetError(f"{out} is being made by another blurgen make right now "
                               f"({parts_dir} is locked)")
        if has_parts:
            raise DatasetError(f"{parts_dir} holds an interrupted run; continue it with --resume "
                               "or start again with --overwrite")
        if os.path.lexists(out):
            raise DatasetError(f"{out} exists; use --overwrite to replace it")
    if has_parts and (overwrite or (resume and finished_with(out, manifest.settings()))):
        _remove_parts_dir(parts_dir)
        has_parts = False
    if resume and not has_parts and os.path.exists(out):
        return _existing_output_matches(out, manifest)
    try:
        os.makedirs(parts_dir, exist_ok=resume)
    except FileExistsError:
        raise DatasetError(f"{parts_dir} appeared meanwhile: another blurgen make is writing {out}") from None
    return False


def _delete_in_background(folder: str) -> None:
    """Delete a renamed-aside parts folder without waiting: freeing gigabytes of parts took
    ~2.5 s at the end of a 10,000-pair run (ext4 mounted with discard). ``rm`` runs detached
    (``sh`` exits at once, so no zombie is left); a kill midway leaves a trash folder that the
    next run on this output clears. Falls back to deleting here."""
    import subprocess

    try:
        subprocess.run(["sh", "-c", 'rm -rf -- "$1" &', "sh", folder], check=True, timeout=10,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(folder, ignore_errors=True)


def _rename_aside(parts_dir: str) -> str:
    """Rename a parts folder to a fresh trash name before deleting it (a kill during the deletion
    then leaves a folder no one mistakes for an interrupted run; the next run on this output
    clears it); returns the new name."""
    trash = f"{parts_dir}{TRASH_SUFFIX}{os.getpid()}-{os.urandom(4).hex()}"
    os.replace(parts_dir, trash)
    return trash


_TRASH_TAIL_RE = re.compile(r"^\d+-[0-9a-f]{8}$")


def _trash_leftovers(out: str) -> list[str]:
    """Folders that ``_rename_aside`` named for ``out``'s parts folder, and nothing else: a prefix
    glob also matched e.g. a user's ``pairs.h5.parts.done-backup`` or the parts folder of an
    output called ``pairs.h5.parts.done-x.h5``, which the next run then deleted."""
    prefix = parts_dir_for(out) + TRASH_SUFFIX
    return [path for path in glob.glob(glob.escape(prefix) + "*")
            if _TRASH_TAIL_RE.match(path[len(prefix):]) and os.path.isdir(path)
            and not os.path.islink(path)]


def _check_or_write_manifest(parts_dir: str, manifest: Manifest) -> None:
    """Under the lock: a new folder gets the manifest; an existing one must match it.

    Blocks without a manifest are refused, not adopted nor deleted: nothing says which settings
    made them (the manifest is written before any block, so a blurgen run never leaves them).
    """
    if not os.path.exists(os.path.join(parts_dir, MANIFEST_NAME)):
        orphans = part_files(parts_dir)
        if orphans:
            raise DatasetError(f"{parts_dir} holds {len(orphans)} block file(s) but no "
                               f"{MANIFEST_NAME}, so their settings are unknown; start again "
                               "with --overwrite")
        write_manifest(parts_dir, manifest)  # killed before the first write: start afresh
        return
    differences = manifest.differences(read_manifest(parts_dir))
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise DatasetError(f"--resume: settings differ from the interrupted run in {parts_dir}: "
                           f"{differences[0]}{more}; use --overwrite to start again")


def _final_attrs(config: Any, manifest: Manifest, command: str) -> dict[str, Any]:
    return {"blurgen_version": __version__, "created": now_iso(), "command": command,
            "config": config.to_json(), "seed": manifest.seed, "n_total": manifest.n_total,
            "sample_start": manifest.sample_start, "sample_stop": manifest.sample_stop,
            "shard_index": manifest.shard_index, "shard_count": manifest.shard_count}


# ---------------------------------------------------------------------------------------- run
def make_dataset(out: str, config: Any, n: int, seed: int = 0, *, workers: int | None = None,
                 shard: tuple[int, int] = (0, 1), block_size: int | None = None,
                 resume: bool = False, overwrite: bool = False, command: str = "",
                 maker: Callable | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 compression: Compression = DEFAULT_COMPRESSION,
                 durable: bool = True) -> MakeResult:
    """Make samples ``[start, stop)`` of an ``n``-sample dataset (``shard`` i of N) into ``out``.

    Args:
        out: the pairs file to write (schema 1: /blurred, /sharp uint8 (N, H, W, 3), /kernel
            float32 (N, k, k), /params/<name> (N,)); it appears only when complete.
        config: a ``PairsConfig`` (``width``, ``height``, ``to_dict()``, ``to_json()``).
        n: samples in the whole dataset (all shards).
        seed: sample i depends only on ``(seed, i)``.
        workers: processes (default: all cores); 1 runs in this process.
        shard: ``(i, N)``: make the i-th of N contiguous sample ranges.
        block_size: samples per part file (default: 64, fewer for large images); arrays do not
            depend on it.
        resume, overwrite: continue an interrupted run / replace existing output.
        command: recorded in the ``command`` attribute.
        maker: ``maker(config, seed, start, count) -> block dict`` (default: ``PipelineMaker``);
            must pickle (workers get a copy); ``maker.prepare(config)`` if present runs first.
        progress: called ``progress(samples_done, samples_planned)`` as blocks finish.
        durable: fsync parts and the final file (off only for benchmarks of the rest).

    Raises:
        DatasetError: existing output, different settings on resume, a worker failure, a locked run.
        ValueError: bad arguments.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    n = check_index("n", n, 1, MAX_PAIRS)
    maker = maker if maker is not None else PipelineMaker()
    workers = workers or len(os.sched_getaffinity(0))
    manifest = build_manifest(config, n, seed, shard, block_size, compression)
    if hasattr(maker, "prepare"):
        maker.prepare(config)  # a bad source fails here, before anything is created
    if hasattr(maker, "source_files_digest"):
        # Pins the image files of a folder source: --resume with other files is refused.
        manifest = dataclasses.replace(manifest, source_files_digest=maker.source_files_digest(config))
    began = time.perf_counter()
    for leftover in _trash_leftovers(out):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        if _prepare_parts_dir(out, manifest, resume, overwrite):
            return MakeResult(out, manifest.n_planned, 0, manifest.n_planned, 0.0, True)
        parts_dir = parts_dir_for(out)
        with locked(parts_dir), DeferredInterrupt() as gate:
            remove_stale_tmp(parts_dir)  # a killed run's assembly file too: its space counts as free
            _check_space_before_work(out, manifest, resume)  # before the manifest: a refusal writes nothing
            _check_or_write_manifest(parts_dir, manifest)
            made, reused, make_seconds = _run_blocks(out, parts_dir, config, manifest, workers, maker,
                                                     progress, _final_attrs(config, manifest, command),
                                                     durable, gate)
            trash = _rename_aside(parts_dir)
        _delete_in_background(trash)
    except NotEnoughSpace:
        parts_dir = parts_dir_for(out)
        blocks = plan_blocks(manifest.sample_start, manifest.sample_stop, manifest.block_size)
        if not complete_parts(parts_dir, blocks):  # nothing made: leave no run only --resume could continue
            with contextlib.suppress(PartsError, OSError):  # e.g. another run took the folder meanwhile
                _remove_parts_dir(parts_dir)
        raise
    except Exception as exc:
        raise _as_dataset_error(exc, out, manifest) from None
    return MakeResult(out, manifest.n_planned, made, reused, time.perf_counter() - began,
                      make_seconds=make_seconds)


def _as_dataset_error(exc: Exception, out: str, manifest: Manifest) -> Exception:
    """The one-line DatasetError for a failed run (a full disk, a parts problem), else ``exc``."""
    if is_disk_full(exc):
        path = getattr(exc, "path", None) or parts_dir_for(out)
        return DatasetError(f"disk full while writing {path} (need ~{_more_mb_needed(out, manifest)} "
                            "MB more); free space and rerun with --resume")
    if isinstance(exc, PartsError):
        return DatasetError(str(exc))
    return exc


def _bytes_needed(out: str, manifest: Manifest, stored_fraction: float = 1.0) -> int:
    """Estimated bytes the run still writes: the blocks still to make plus a whole assembled file
    (parts and file coexist until the end). ``stored_fraction`` scales the raw size used before
    any part exists to measure (compressed images take less)."""
    blocks = plan_blocks(manifest.sample_start, manifest.sample_stop, manifest.block_size)
    counts = dict(blocks)
    done = complete_parts(parts_dir_for(out), blocks)
    n_done = sum(counts[start] for start in done)
    per_sample = _bytes_per_sample(manifest, [(path, counts[start]) for start, path in done.items()])
    if not done:
        per_sample = int(per_sample * stored_fraction)
    return per_sample * (manifest.n_planned - n_done + manifest.n_planned) + 2**20


def _more_mb_needed(out: str, manifest: Manifest) -> int:
    """MB to free before a rerun (at least 1): what the run still writes less the space free now."""
    try:
        free = free_bytes(os.path.dirname(os.path.abspath(out)))
    except OSError:
        free = 0
    return max(1, -(-(_bytes_needed(out, manifest) - free) // 10**6))


class NotEnoughSpace(DatasetError):
    """The run cannot fit on the disk; found before any sample was made."""


def _check_space_before_work(out: str, manifest: Manifest, resume: bool) -> None:
    """Refuse a run that cannot fit on the disk before any sample is made (called holding the
    run lock, after a killed run's temporaries are gone). With compression the raw estimate is
    halved, so only a run that surely cannot fit is refused (the parts' own checks catch the
    rest)."""
    try:
        free = free_bytes(os.path.dirname(os.path.abspath(out)))
    except OSError:
        return  # no measure: the writes' own checks decide
    compressed = manifest.compression.get("blurred", (None,))[0] is not None
    needed = _bytes_needed(out, manifest, stored_fraction=0.5 if compressed else 1.0)
    if needed > free:
        rerun = "rerun with --resume" if resume else "run again"
        raise NotEnoughSpace(f"not enough disk space for {manifest.n_planned} pairs: need ~{-(-(needed - free) // 10**6)} "
                             f"MB more on the disk of {out} (parts, then the assembled file); free space and {rerun}")


def _bytes_per_sample(manifest: Manifest, parts: list[tuple[str, int]]) -> int:
    """Mean stored bytes per sample of the complete parts ``(path, samples)``, or the raw size
    when there are none."""
    sizes = [(os.path.getsize(path), count) for path, count in parts if os.path.exists(path)]
    if sizes:
        return -(-sum(b for b, _ in sizes) // sum(n for _, n in sizes))
    config = manifest.config
    k = int(config.get("kernel", {}).get("size", 65))
    return 2 * 3 * int(config.get("width", 256)) * int(config.get("height", 256)) + 4 * k * k + 128


def _run_blocks(out, parts_dir, config, manifest, workers, maker, progress, attrs, durable, gate):
    """Assemble complete parts, make the missing ones, rename the result onto ``out``.
    Returns ``(samples made, samples reused, seconds spent making them)``."""
    compression = manifest.compression
    blocks = plan_blocks(manifest.sample_start, manifest.sample_stop, manifest.block_size)
    sizes = dict(blocks)
    done = complete_parts(parts_dir, blocks)
    stamp = part_stamp(manifest.config, manifest.seed)
    assembler = Assembler(os.path.join(parts_dir, ASSEMBLY_NAME), manifest.n_planned, attrs, compression,
                          space_lock_dir=parts_dir)
    report = progress or (lambda done_, total: None)
    try:
        for start in sorted(done):
            gate.check()
            try:
                assembler.add_file(done[start], start - manifest.sample_start, sizes[start],
                                   part_of=(start, stamp))
            except DiskFullError:
                raise
            except PartsError as exc:  # a damaged or stray part: make it again
                log.warning("remaking block at %d: %s", start, exc)
                os.unlink(done.pop(start))
        reused = sum(sizes[s] for s in done)
        report(reused, manifest.n_planned)
        jobs = [block for block in blocks if block[0] not in done]
        making_began = time.perf_counter()
        args = (maker, config, manifest.seed, parts_dir, compression, durable, stamp)
        if workers <= 1 or len(jobs) <= 1:
            finished = _inline_parts(*args, jobs)
        else:
            finished = _pooled_parts(min(workers, len(jobs)), args, jobs, gate)
        made = 0
        with contextlib.closing(finished):  # stops the workers at once on Ctrl-C or an error
            for start, count, path in finished:
                gate.check()
                assembler.add_file(path, start - manifest.sample_start, count, part_of=(start, stamp))
                if durable:
                    assembler.sync_if_due()
                made += count
                report(reused + made, manifest.n_planned)
        finishing = time.perf_counter()
        make_seconds = finishing - making_began if made else 0.0
        assembler.finish(out, durable=durable)
        log.info("made %d pairs, reused %d; final flush and rename took %.2f s; main process "
                 "CPU %.1f s", made, reused, time.perf_counter() - finishing, time.process_time())
    finally:
        assembler.close()
        # Workers stopped mid-write leave temporaries; on a full disk the rerun needs their space.
        remove_stale_tmp(parts_dir)
    return made, reused, make_seconds
