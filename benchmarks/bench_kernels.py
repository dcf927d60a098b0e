"""Kernels per second: Numba batch API vs the plain-Python per-sample baseline, same run.

The baseline is blurgen.reference.walk: the same algorithm as a Python loop
over the steps and the splats, one sample at a time, as the DeblurGAN reference code works.

    python benchmarks/bench_kernels.py            # full run, appends to benchmarks/RESULTS.md
    python benchmarks/bench_kernels.py --quick --no-append
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

from blurgen import KernelConfig, random_kernels
from blurgen.reference.walk import reference_kernel

sys.path.insert(0, os.path.dirname(__file__))
from report import append_results, markdown_table  # noqa: E402

# Size 31 cannot hold the default 60 px path once centred; it gets a 25 px path (same steps).
CASES = {31: KernelConfig(size=31, length_px=25.0), 65: KernelConfig()}
BATCH = 2048  # kernels per call, as a dataset writer asks for them


def numba_rate(config: KernelConfig, n: int, threads: int, repeats: int) -> float:
    numba.set_num_threads(threads)
    random_kernels(8, config=config)  # compile or load the cache outside the timing
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            random_kernels(min(BATCH, n - start), seed=r, start=start, config=config)
        best = min(best, time.perf_counter() - t0)
    return n / best


def baseline_rate(config: KernelConfig, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        reference_kernel(0, i, config)
    return n / (time.perf_counter() - t0)


def _median_run(code: str, env: dict | None = None, runs: int = 3) -> float:
    """Median of what a fresh interpreter running ``code`` prints (seconds)."""
    return float(np.median([float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                                 text=True, check=True, env=env).stdout)
                            for _ in range(runs)]))


def first_kernel_seconds() -> tuple[float, float]:
    """Fresh interpreter, JIT cache warm: seconds from ``import blurgen`` to the first kernel, and
    numba's own floor: ``import numba`` plus the first call of a trivial cached function (numba's
    start-up, which any cached Numba code pays on its first call)."""
    kernel = ("import time; t = time.perf_counter(); import blurgen; blurgen.random_kernels(1); "
              "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "trivial_jit.py"), "w") as fh:
            fh.write("from numba import njit\n\n\n@njit(cache=True)\ndef one(x):\n    return x + 1\n")
        env = {**os.environ, "PYTHONPATH": folder}
        floor = ("import time; t = time.perf_counter(); import trivial_jit; trivial_jit.one(1); "
                 "print(time.perf_counter() - t)")
        _median_run(floor, env, runs=1)  # compile into the cache
        return _median_run(kernel), _median_run(floor, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="kernels per timed run")
    parser.add_argument("--baseline-n", type=int, default=20, help="kernels for the baseline")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    parser.add_argument("--quick", action="store_true", help="n=4096, baseline-n=5, repeats=2")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.n, args.baseline_n, args.repeats = 4096, 5, 2
    cores = numba.config.NUMBA_NUM_THREADS
    rows = []
    for size, config in CASES.items():
        base = baseline_rate(config, args.baseline_n)
        for threads in sorted({1, cores}):
            rate = numba_rate(config, args.n, threads, args.repeats)
            rows.append([f"{size}x{size}", f"{config.length_px:g}", threads, f"{rate:,.0f}",
                         f"{base:,.1f}", f"{rate / base:,.0f}x"])
            print(rows[-1], flush=True)
    first, numba_floor = first_kernel_seconds()
    table = markdown_table(["kernel", "length_px", "threads", "kernels/s", "baseline kernels/s",
                            "ratio"], rows)
    notes = (f"Defaults otherwise (2000 steps, DeblurGAN anxiety set, exposure 1). Best of "
             f"{args.repeats} runs of {args.n} kernels in batches of {BATCH}; baseline: "
             f"{args.baseline_n} kernels of blurgen.reference.walk, one at a time. First kernel in a "
             f"fresh process with a warm JIT cache (import included, median of 3): {first:.2f} s, of which "
             f"numba's own start-up (import numba + first call of a trivial cached function, median "
             f"of 3): {numba_floor:.2f} s.")
    print(table)
    print(notes)
    if not args.no_append:
        append_results("Kernels (bench_kernels.py)", table, ("numpy", "numba"), notes)


if __name__ == "__main__":
    main()
