"""Does a model's kernel size fit its paths? Checked once before long work.

A model whose paths do not fit its kernel size redraws them (deterministically, counted); one that
needs too many redraws would stop a long run at a sample with no fitting path, so it is refused
before any work, naming a size that works.
"""

from __future__ import annotations

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


def mean_redraws(config: Any, draw: Draw, samples: int = 64) -> float:
    """Mean redraws per sample of ``config`` (how often a path does not fit ``config.size``),
    measured on ``samples`` samples of a fixed private stream; stops early, returning a value over
    ``MAX_MEAN_REDRAWS``, once the model is clearly too tight, and returns ``MAX_DRAWS`` when a
    sample fits in none of its draws."""
    total = drawn = 0
    while drawn < samples:
        try:
            _, params = draw(8, config, seed=FIT_CHECK_SEED, start=drawn)
        except ValueError:  # some sample found no fitting path in MAX_DRAWS draws
            return float(MAX_DRAWS)
        total += int(params["redraws"].sum())
        drawn += 8
        if drawn >= 16 and total / drawn > 2 * MAX_MEAN_REDRAWS:
            break
    return total / drawn


def check_kernel_fits(config: Any, draw: Draw, what: str = "", shorter: str = "") -> None:
    """Raise ``ValueError`` (naming a size that works) when ``config.size`` is so small for the
    paths ``draw`` makes that a long run would stop at a sample with no fitting path in
    ``MAX_DRAWS`` draws; ``what`` names the paths' cause and ``shorter`` the other remedy in the
    message. It costs a few milliseconds for a workable model."""
    mean = mean_redraws(config, draw)
    if mean <= MAX_MEAN_REDRAWS:
        return
    size = config.size
    while size < MAX_KERNEL_SIZE:
        size = min(MAX_KERNEL_SIZE, size + 2 * max(1, size // 8))
        if mean_redraws(config.replace(size=size), draw) <= MAX_MEAN_REDRAWS:
            break
    raise ValueError(f"size={config.size} is too small for {what or 'its paths'}: its paths needed {mean:.0f} redraws each "
                     f"on average to fit (a run stops at a sample with no fit in {MAX_DRAWS} draws); use "
                     f"size >= {size}" + (f" or {shorter}" if shorter else ""))
