"""The local executor: make blocks of samples in worker processes (or in this one) and store each
through the run's sink (``blurgen.runs.sinks``).

An executor takes the run's ``BlockWork`` and the blocks still to make and yields
``(start, count, path)`` as each block is complete in the sink, in any order; it returns only such
metadata to the driver. ``LocalExecutor`` (spawned processes on this machine) is the first; another
(a cluster engine) is a class with the same ``run`` method, passed to ``make_dataset(executor=...)``.

Worker processes use the spawn start method (forking after numba's threads start is unsafe), one
numba and one OpenCV thread each; workers never share state, so any worker count gives the same
arrays. A worker reports each block only once its part file is renamed into place (complete on
disk); the parent assembles them as they come.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

from blurgen.core.common import BlurgenError, DatasetError, DiskFullError, disk_full_reason, is_disk_full

#: Environment that keeps each worker on one core: set before the worker imports numba/OpenCV.
SINGLE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1"}
Job = tuple[int, int]  # (first sample, count)


class BlockMaker:
    """Makes blocks of samples for ``make_dataset``; must pickle (each worker gets a copy).

    Subclasses implement ``__call__(config, seed, start, count) -> block dict`` (``blurred``,
    ``sharp`` uint8 (count, H, W, 3), ``kernel`` float32 (count, k, k), ``params`` name ->
    (count,)) and may override ``prepare`` (checks before any work) and ``source_files_digest``
    (pins the input files, so ``--resume`` refuses changed ones).
    """

    def prepare(self, config: Any) -> None:
        """Check ``config`` and open inputs before anything is created; raise to refuse."""

    def source_files_digest(self) -> str:
        return ""

    def source_files(self) -> list[str]:
        """The input files ``/params/source_file`` indexes (relative paths), stored in the file."""
        return []

    def __call__(self, config: Any, seed: int, start: int, count: int) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class BlockWork:
    """What every worker needs to make and store blocks of one run (pickled to each worker)."""

    maker: BlockMaker
    config: Any
    seed: int
    folder: str
    sink: Any  # a blurgen.runs.sinks.Sink
    durable: bool
    stamp: dict


def limit_threads_here(numba: bool = True) -> None:
    """One numba and one OpenCV thread in this process (a worker, or ``workers=1``).

    ``numba=False`` leaves numba alone: for a process started with ``NUMBA_NUM_THREADS=1``
    (``SINGLE_THREAD_ENV``), where importing numba only to say so again cost ~0.3 s of every
    worker's start, also when its blocks never use numba (``blurgen export``)."""
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(1)
    if numba:
        with contextlib.suppress(ImportError, ValueError):
            import numba as numba_module

            numba_module.set_num_threads(1)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies, so a killed run leaves no orphans
    writing into the parts folder."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _made_and_staged(work: BlockWork, start: int, count: int) -> tuple[str, str]:
    """Make one block and stage it in the sink: ``(temporary, final path)``."""
    make_and_stage = getattr(work.sink, "make_and_stage", None)
    if make_and_stage is not None:
        return make_and_stage(work, start, count)
    return work.sink.stage(work.folder, work.maker(work.config, work.seed, start, count), start, work.stamp)


def committed_parts(work: BlockWork, jobs: Iterator[Job],
                    gate: "DeferredInterrupt | None" = None) -> Iterator[tuple[int, int, str]]:
    """Make and write ``jobs`` in this process; yield ``(start, count, part path)`` as each part
    is committed. Commits (fsync + rename) run in a background thread, overlapping the next block's
    computation; a part is reported only once it is renamed, i.e. complete on disk. With ``gate``
    (a run in this process) Ctrl-C stops before the next block starts, however far the commits
    lag behind."""
    from concurrent.futures import ThreadPoolExecutor

    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit") as committer:
        for start, count in jobs:
            if gate is not None:
                gate.check()
            try:
                tmp, final = _made_and_staged(work, start, count)
            except DiskFullError:
                raise
            except Exception as exc:
                raise DatasetError(f"making samples {start}..{start + count - 1}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            pending.append((start, count, committer.submit(work.sink.commit, tmp, final, work.durable)))
            while pending and pending[0][2].done():
                first, n, future = pending.popleft()
                yield first, n, future.result()
        while pending:
            first, n, future = pending.popleft()
            yield first, n, future.result()


def _failure_message(exc: Exception, folder: str) -> tuple[str, ...]:
    """What a worker tells the parent about ``exc``: ``("disk_full", path, reason)`` or
    ``("error", text)``."""
    if is_disk_full(exc):
        return "disk_full", getattr(exc, "path", folder), disk_full_reason(exc)
    if isinstance(exc, BlurgenError):
        return "error", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


def _worker_main(work: BlockWork, parent_pid: int, tasks, results) -> None:
    """Worker process: make blocks from ``tasks`` and write each as a part; report to ``results``."""
    _die_with_parent()
    limit_threads_here(numba=False)  # NUMBA_NUM_THREADS=1 came with the environment (_worker_pool)

    def jobs():
        while True:
            job = tasks.get()
            if job is None or os.getppid() != parent_pid:
                return
            yield job

    try:
        for start, count, path in committed_parts(work, jobs()):
            results.put(("done", start, count, path))
    except Exception as exc:  # reported to the parent, which stops the run with one line
        results.put(_failure_message(exc, work.folder))


@contextlib.contextmanager
def _single_thread_env() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in SINGLE_THREAD_ENV}
    try:
        os.environ.update(SINGLE_THREAD_ENV)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _worker_pool(n_workers: int, work: BlockWork, jobs: list[Job]):
    """Start ``n_workers`` spawn processes fed with ``jobs``; yield ``(results queue, processes)``.

    Workers start with SIGINT ignored (Ctrl-C is the parent's to handle: it stops them, and they
    print nothing) and with the single-thread environment; both are set only around ``start()``.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for job in [*jobs, *[None] * n_workers]:
        tasks.put(job)
    procs = [ctx.Process(target=_worker_main, args=(work, os.getpid(), tasks, results), daemon=True)
             for _ in range(n_workers)]
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal() needs it
    old_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        with _single_thread_env():
            for proc in procs:
                proc.start()
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, old_sigint)
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


def _next_message(results, procs, remaining: int) -> tuple | None:
    """The next worker message, or None after a short wait; DatasetError if the workers died."""
    try:
        return results.get(timeout=0.2)
    except queue.Empty:
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise DatasetError(f"a worker process died (exit code {dead[0].exitcode}); "
                              "finished blocks are kept, rerun with --resume") from None
        if all(p.exitcode is not None for p in procs):
            raise DatasetError(f"the workers stopped with {remaining} block(s) not made; "
                              "rerun with --resume") from None
        return None


def _pooled_parts(n_workers: int, work: BlockWork, jobs: list[Job], gate: DeferredInterrupt):
    """Yield ``(start, count, part path)`` as workers finish blocks (in completion order)."""
    with _worker_pool(n_workers, work, jobs) as (results, procs):
        remaining = len(jobs)
        while remaining:
            gate.check()
            message = _next_message(results, procs, remaining)
            if message is None:
                continue
            if message[0] == "disk_full":
                raise DiskFullError(message[1], message[2])
            if message[0] == "error":
                raise DatasetError(message[1])
            remaining -= 1
            yield message[1:]


def _inline_parts(work: BlockWork, jobs: list[Job], gate: DeferredInterrupt):
    """The ``workers=1`` path: make blocks in this process (one compute thread)."""
    limit_threads_here()
    yield from committed_parts(work, iter(jobs), gate)


def made_parts(work: BlockWork, jobs: list[Job], workers: int, gate: DeferredInterrupt):
    """Make ``jobs`` with ``workers`` processes (in this one if 1); yields ``(start, count, part
    path)`` as each block's part is complete on disk. Close it to stop the workers at once."""
    if workers <= 1 or len(jobs) <= 1:
        return _inline_parts(work, jobs, gate)
    return _pooled_parts(min(workers, len(jobs)), work, jobs, gate)


class LocalExecutor:
    """Blocks made by ``workers`` spawned processes on this machine (in this process if 1)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or len(os.sched_getaffinity(0))

    def run(self, work: BlockWork, jobs: list[Job], gate: DeferredInterrupt):
        """Yield ``(start, count, path)`` as each block is complete; close it to stop at once."""
        return made_parts(work, jobs, self.workers, gate)
