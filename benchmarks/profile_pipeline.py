"""Pairs/s of ``make_block`` on ONE core, with a per-stage breakdown.

    python3 benchmarks/profile_pipeline.py [--repeats 3] [--n256 200] [--n720 12]

Each worker of ``blurgen make`` gets one core, so this pins numba, OpenCV and BLAS to one thread.
The machine is shared and noisy: each size is measured ``--repeats`` times; best and median print.
Prints a table; does not write benchmarks/RESULTS.md (bench_make.py does, end to end).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from blurgen import blur  # noqa: E402
from blurgen.core.kernel_shape import support_radius  # noqa: E402
from blurgen.motion.api import random_kernels_with_params
from blurgen.pairs.pipeline import BLUR_STREAM, PairsConfig, make_block, open_config_source  # noqa: E402


def stage_times(config: PairsConfig, n: int, seed: int = 1) -> dict[str, float]:
    """Mean CPU milliseconds per sample of each stage of make_block, timed separately."""
    source = open_config_source(config)
    totals = dict.fromkeys(("kernels", "source", "decode", "convolve", "noise+encode"), 0.0)
    t = time.process_time()
    kernels, _ = random_kernels_with_params(n, seed=seed, config=config.kernel)
    totals["kernels"] = time.process_time() - t
    half = (config.kernel.size - 1) // 2
    for m in range(n):
        r = support_radius(kernels[m])
        inset = half - r
        t0 = time.process_time()
        crop, _ = source.crop(seed, m, *config.crop_size, inset=inset)
        t1 = time.process_time()
        lin = blur.srgb_to_linear(crop)
        t2 = time.process_time()
        blurred = blur.blur_linear(lin, kernels[m, inset:inset + 2 * r + 1, inset:inset + 2 * r + 1])
        t3 = time.process_time()
        blur.noisy_to_srgb(blurred, 5e-4, 5e-7, np.random.default_rng([seed, m, BLUR_STREAM]))
        t4 = time.process_time()
        for name, dt in zip(("source", "decode", "convolve", "noise+encode"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[name] += dt
    return {name: 1e3 * total / n for name, total in totals.items()}


def rate(config: PairsConfig, n: int, repeats: int) -> tuple[list[float], list[float]]:
    """Pairs per wall second and per CPU second (the latter is what a dedicated core would do,
    roughly; on a loaded machine wall time also counts waiting for a core)."""
    source = open_config_source(config)
    make_block(config, seed=0, start=0, count=2, source=source)  # compile / warm caches
    wall, cpu = [], []
    for r in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        make_block(config, seed=r + 1, start=0, count=n, source=source)
        wall.append(n / (time.perf_counter() - t))
        cpu.append(n / (time.process_time() - c))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n256", type=int, default=200, help="pairs per measurement at 256x256")
    parser.add_argument("--n720", type=int, default=12, help="pairs per measurement at 1280x720")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"make_block on one core (cv2 {cv2.__version__}, numpy {np.__version__}); defaults, dead leaves")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'size':>10} {'pairs/s best':>13} {'median':>8} {'per CPU-s best':>15}   CPU ms/sample by stage")
    for (width, height), n in (((256, 256), args.n256), ((1280, 720), args.n720)):
        config = PairsConfig(width=width, height=height)
        wall, cpu = rate(config, n, args.repeats)
        stages = stage_times(config, max(4, n // 4))
        breakdown = "  ".join(f"{k} {v:.2f}" for k, v in stages.items())
        print(f"{width}x{height:<5} {max(wall):13.1f} {statistics.median(wall):8.1f} {max(cpu):15.1f}   {breakdown}")


if __name__ == "__main__":
    main()
