"""Progress for long commands: a bar on a terminal, plain lines elsewhere (CI, nohup, SLURM logs).

Standard library and tqdm only.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Callable


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1h02m'``, ``75`` -> ``'1m15s'``, ``9`` -> ``'9s'``; ``'?'`` if unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """``progress(done, total)``: a tqdm bar (rate, ETA) on stderr when it is a terminal; otherwise
    one line on stdout (where logs of CI, nohup and SLURM collect, and stderr stays for errors)
    every ``every`` seconds and at the end, e.g. ``make: 1200/10000 pairs (12%), 250.0 pairs/s,
    ETA 35s``. The rate counts only what this process did (a resumed run's kept work is not in
    it), and only after its first piece of work: that one carries the start-up (a first run's JIT
    compilation, 10-60 s), which made the first ETA read an hour for a one-minute job."""

    def __init__(self, label: str, unit: str, stream: IO | None = None, tty: bool | None = None,
                 every: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 first: Callable[[int, int], None] | None = None) -> None:
        self.label, self.unit, self.every, self.clock = label, unit, every, clock
        self.first = first  # called once, before the first report is drawn (a note on the run)
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.stream = stream or (sys.stderr if self.tty else sys.stdout)
        self.bar = None
        self._start: tuple[float, int] | None = None
        self._warm: tuple[float, int] | None = None  # when the first new work arrived
        self._last_line = -math.inf

    def __call__(self, done: int, total: int) -> None:
        if self.first is not None:
            first, self.first = self.first, None
            first(done, total)
        if self.tty:
            self._bar(done, total)
            return
        now = self.clock()
        if self._start is None:  # the first report: what a resumed run kept; nothing made yet
            self._start, self._last_line = (now, done), now
        elif self._warm is None and done > self._start[1]:
            self._warm = (now, done)
        if done < total and now - self._last_line < self.every:
            return
        self._last_line = now
        rate = self._rate(now, done)
        eta = (total - done) / rate if rate > 0 else (0.0 if done >= total else math.inf)
        speed = f"{rate:.1f} {self.unit}/s" if math.isfinite(rate) else f"- {self.unit}/s"
        print(f"{self.label}: {done}/{total} {self.unit} ({100 * done / max(total, 1):.0f}%), {speed}, "
              f"ETA {format_duration(eta)}", file=self.stream, flush=True)

    def _rate(self, now: float, done: int) -> float:
        """Items per second since the first new work (since the start if that is all there is)."""
        for mark in (self._warm, self._start):
            if mark is not None and now > mark[0] and done > mark[1]:
                return (done - mark[1]) / (now - mark[0])
        return math.nan

    def _bar(self, done: int, total: int) -> None:
        if self.bar is None and self._start is None:  # the first report: a resumed run's kept work
            self._start = (self.clock(), done)
            if done < total:
                return  # the bar starts with the first new work, so start-up time skews no ETA
        if self.bar is None:  # created at the first new work, so the rate counts new work only
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit=self.unit, dynamic_ncols=True, smoothing=0.1,
                            file=self.stream)
        else:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
