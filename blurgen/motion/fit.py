"""Does a model's kernel size fit its paths? Checked once before long work.

A model whose paths do not fit its kernel size redraws them (deterministically, counted); one that
needs too many redraws would stop a long run at a sample with no fitting path, so it is refused
before any work, naming a size that works.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from blurgen.core.config import MAX_DRAWS, MAX_KERNEL_SIZE

#: A model whose paths need more redraws than this per sample on average is refused before work:
#: at 30 (a first draw fits with p ~ 1/31) a sample fails all MAX_DRAWS draws with probability
#: (1 - p)^1000 ~ 1e-14, so even 10^8 samples are safe; a run does not stop half-way.
MAX_MEAN_REDRAWS = 30
#: The private stream the fit check draws from (not any dataset's seed: it only measures).
FIT_CHECK_SEED = 0x0F17_C4EC

#: ``draw(n, config, seed=, start=) -> (paths or motions, params with "redraws")``.
Draw = Callable[..., tuple[Any, dict]]


#: Called with a one-line note when the check takes long (the CLI prints it; None: quiet).
notify: Callable[[str], None] | None = None
#: Seconds of checking after which ``notify`` hears what is going on.
NOTIFY_AFTER_S = 2.0
#: Path steps times draws beyond which ``notify`` hears of the check before it starts.
SLOW_WORK = 2 * 10**7


def mean_redraws(config: Any, draw: Draw, samples: int = 64) -> float:
    """Mean redraws per sample of ``config`` (how often a path does not fit ``config.size``),
    measured on ``samples`` samples of a fixed private stream; stops early, returning a value over
    ``MAX_MEAN_REDRAWS``, once the model is clearly too tight, and returns ``MAX_DRAWS`` when a
    sample fits in none of its draws. The first batch is one sample: a model that does not fit at
    all costs one sample's draws, not eight."""
    total = drawn = 0
    while drawn < samples:
        batch = 1 if drawn == 0 else min(8, samples - drawn)
        try:
            _, params = draw(batch, config, seed=FIT_CHECK_SEED, start=drawn)
        except ValueError:  # some sample found no fitting path in MAX_DRAWS draws
            return float(MAX_DRAWS)
        total += int(params["redraws"].sum())
        drawn += batch
        if (drawn >= 16 or total > MAX_DRAWS // 2) and total / drawn > 2 * MAX_MEAN_REDRAWS:
            break
    return total / drawn


def _fits(config: Any, draw: Draw, size: int, began: float, what: str) -> bool:
    if notify is not None and time.monotonic() - began > NOTIFY_AFTER_S:
        notify(f"checking which kernel size fits {what or 'its paths'} (trying size={size})")
    return mean_redraws(config.replace(size=size), draw) <= MAX_MEAN_REDRAWS


def check_kernel_fits(config: Any, draw: Draw, what: str = "", shorter: str = "") -> None:
    """Raise ``ValueError`` (naming a size that works) when ``config.size`` is so small for the
    paths ``draw`` makes that a long run would stop at a sample with no fitting path in
    ``MAX_DRAWS`` draws; ``what`` names the paths' cause and ``shorter`` the other remedy in the
    message. It costs a few milliseconds for a workable model; a model that does not fit is
    bisected over sizes (about ten checks), with ``notify`` told while it runs."""
    began = time.monotonic()
    if notify is not None and getattr(config, "steps", 0) * MAX_DRAWS > SLOW_WORK:
        notify(f"checking that size={config.size} fits {what or 'its paths'} ({config.steps} steps per path)")
    mean = mean_redraws(config, draw)
    if mean <= MAX_MEAN_REDRAWS:
        return
    cause = what or "its paths"
    if config.size >= MAX_KERNEL_SIZE or not _fits(config, draw, MAX_KERNEL_SIZE, began, what):
        raise ValueError(f"size={config.size} is too small for {cause}, and so is every size up to the largest, "
                         f"{MAX_KERNEL_SIZE}: its paths needed {mean:.0f} redraws each on average to fit; "
                         f"use {shorter or 'shorter paths'}")
    low, high = config.size, MAX_KERNEL_SIZE  # low does not fit, high does
    while high - low > 2 * max(1, low // 8):
        mid = (low + high) // 4 * 2 + 1  # odd
        if _fits(config, draw, mid, began, what):
            high = mid
        else:
            low = mid
    raise ValueError(f"size={config.size} is too small for {cause}: its paths needed {mean:.0f} redraws each "
                     f"on average to fit (a run stops at a sample with no fit in {MAX_DRAWS} draws); use "
                     f"size >= {high}" + (f" or {shorter}" if shorter else ""))
