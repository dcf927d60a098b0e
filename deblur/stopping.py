"""Stopping a training run cleanly on SIGTERM (what SLURM and most schedulers send before a kill)
and SIGINT (Ctrl-C): the signal only sets a flag; the trainer looks at it at each step boundary,
writes a checkpoint there and raises ``StopRequested``, so a preemption loses at most the step
in flight. Under DDP the ranks agree on the stop step with one tiny all-reduce per step (a
signal may reach some ranks a step before others). A second signal while the first is pending
raises ``KeyboardInterrupt`` at once (the impatient second Ctrl-C).
"""

from __future__ import annotations

import signal
import threading

import torch

from blurgen.deblur.distributed import DistContext

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(Exception):
    """Training stopped on a signal at ``step`` after writing a checkpoint there. The CLI exits
    with ``128 + signum`` (143 for SIGTERM, 130 for SIGINT), as a process killed by it would."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = int(signum), int(step)
        super().__init__(f"stopped by {signal.Signals(self.signum).name} at step {self.step}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Context manager: while inside, SIGTERM and SIGINT set ``received`` instead of ending the
    process (installed only in the main thread, where Python delivers signals); the previous
    handlers come back on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # a second signal: stop now, the last checkpoint stands
        self.received = signum

    def agreed(self, ctx: DistContext) -> int | None:
        """The signal this rank, or any rank, received (the same answer on every rank)."""
        local = self.received or 0
        if ctx.distributed:
            import torch.distributed as dist

            flag = torch.tensor([local], dtype=torch.int32, device=ctx.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            local = int(flag.item())
        return local or None
