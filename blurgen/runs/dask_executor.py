"""Run a make's blocks as Dask tasks (``blurgen make --executor dask[:ADDRESS]``).

Each block is one task that makes, stages and commits it exactly as a local worker does
(``blurgen.runs.workers.committed_parts``) and returns only ``(start, count, path)``. What Dask
needs, and why:

* Dask's worker processes are daemonic and cannot start child processes: a task runs its block
  inline, never through the local process pool;
* a single-threaded Dask worker still lets Numba and OpenCV start their own threads: the task
  sets both to one thread (``limit_threads_here``), so the worker count is the parallelism;
* workers write the block files straight into the run folder, so it must be on a file system
  every worker sees (the folder is passed as an absolute path); the driver assembles as usual;
* a task that runs twice (a worker lost mid-task, then retried elsewhere) is harmless: blocks are
  written under temporaries unique per host, process and call and renamed onto one final name;
* arrays depend only on ``(seed, sample)``, so the result equals a local run array for array.

Without an address a ``LocalCluster`` of single-threaded worker processes (one per core) runs on
this machine for the duration of the run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from typing import Any, Iterator

from blurgen.core.common import DatasetError, one_line
from blurgen.runs.workers import BlockWork, Job, committed_parts, limit_threads_here

#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT_S = 30


def check_address(address: str) -> str:
    """``address`` if Dask can parse it (``ValueError`` otherwise); the port defaults to 8786."""
    from distributed.comm.addressing import parse_address, parse_host_port

    parse_host_port(parse_address(address)[1], 8786)
    return address


def run_block(work: BlockWork, start: int, count: int) -> tuple[int, int, str]:
    """One Dask task: make, stage and commit block ``(start, count)``; returns its metadata."""
    limit_threads_here()
    for done in committed_parts(work, iter([(start, count)])):
        return done
    raise RuntimeError(f"block {start} was not made")


class DaskExecutor:
    """Blocks as tasks on a Dask cluster at ``address`` (``tcp://host:8786``), or on a
    ``LocalCluster`` of ``workers`` single-threaded processes here when ``address`` is None.
    ``retries``: how often a task lost with its worker is run again."""

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = 3) -> None:
        import distributed  # noqa: F401  (fail now, with ImportError, if dask.distributed is missing)

        self.address = address
        self.workers = workers
        self.retries = retries

    def _client(self):
        from distributed import Client, LocalCluster

        if self.address:
            try:
                return Client(self.address, timeout=CONNECT_TIMEOUT_S), None
            except Exception as exc:  # noqa: BLE001 -- OSError, TimeoutError, garbage from a non-Dask peer
                raise DatasetError(f"cannot use the Dask scheduler at {self.address}: {one_line(exc)}; check that "
                                   "it runs and the address (tcp://HOST:PORT)") from None
        cluster = LocalCluster(n_workers=self.workers or len(os.sched_getaffinity(0)), threads_per_worker=1,
                               processes=True, dashboard_address=None, silence_logs=logging.ERROR)
        return Client(cluster), cluster

    def run(self, work: BlockWork, jobs: list[Job], gate: Any) -> Iterator[tuple[int, int, str]]:
        """Yield ``(start, count, path)`` as tasks finish; closing it cancels the rest."""
        from distributed import as_completed

        work = dataclasses.replace(work, folder=os.path.abspath(work.folder))
        client, cluster = self._client()
        token = secrets.token_hex(4)
        futures = []
        try:
            futures = [client.submit(run_block, work, start, count, key=f"blurgen-block-{start}-{token}",
                                     retries=self.retries, pure=False) for start, count in jobs]
            for future in as_completed(futures):
                gate.check()
                yield future.result()
        finally:
            if futures:
                client.cancel(futures)
            client.close()
            if cluster is not None:
                cluster.close()
