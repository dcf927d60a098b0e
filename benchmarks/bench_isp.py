"""Speed of the camera pipeline against the sRGB one, both in the same run (issue 20 targets):

- ``make``: pairs per second of ``make_block`` at 256x256 (default kernels, dead leaves, one
  process, the work of one ``blurgen make`` worker), ``--pipeline camera`` vs ``srgb``: >= 0.6x;
- the augmentation: images per second of ``RandomCameraShake(pipeline="camera")`` vs the default
  (CPU, batch 16 of 3x256x256, 2 threads, as bench_transforms measures): >= 0.5x.

Rounds alternate the two settings so the shared machine's load hits both alike; the ratio is of
the medians.

    python benchmarks/bench_isp.py              # appends to benchmarks/RESULTS.md
    python benchmarks/bench_isp.py --no-append
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from blurgen.pairs.pipeline import PairsConfig, make_block
from blurgen.transforms import RandomCameraShake

sys.path.insert(0, os.path.dirname(__file__))
from report import append_results, markdown_table  # noqa: E402


def make_rates(rounds: int, n: int) -> dict[str, list[float]]:
    configs = {"srgb": PairsConfig(), "camera": PairsConfig(pipeline="camera")}
    for config in configs.values():
        make_block(config, 0, 0, 2)  # compile, caches
    rates = {name: [] for name in configs}
    for r in range(rounds):
        for name, config in configs.items():
            start = time.perf_counter()
            make_block(config, 0, 1000 + r * n, n)
            rates[name].append(n / (time.perf_counter() - start))
    return rates


def shake_rates(rounds: int, batches: int) -> dict[str, list[float]]:
    x = torch.rand(16, 3, 256, 256)
    shakes = {"default": RandomCameraShake(p=1.0, seed=0),
              "camera": RandomCameraShake(p=1.0, seed=0, pipeline="camera"),
              "camera, RAW noise": RandomCameraShake(p=1.0, seed=0, pipeline="camera", noise=True)}
    for shake in shakes.values():
        shake(x)
    rates = {name: [] for name in shakes}
    for _ in range(rounds):
        for name, shake in shakes.items():
            start = time.perf_counter()
            for _ in range(batches):
                shake(x)
            rates[name].append(16 * batches / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    make = make_rates(args.rounds, 32)
    base = statistics.median(make["srgb"])
    for name, values in make.items():
        ratio = statistics.median(values) / base
        target = "" if name == "srgb" else f">= 0.6 ({'met' if ratio >= 0.6 else 'MISSED'})"
        rows.append([f"make_block 256x256, --pipeline {name}", f"{statistics.median(values):.1f} pairs/s",
                     f"{ratio:.2f}", target])
    shake = shake_rates(args.rounds, 3)
    base = statistics.median(shake["default"])
    for name, values in shake.items():
        ratio = statistics.median(values) / base
        target = "" if name == "default" else f">= 0.5 ({'met' if ratio >= 0.5 else 'MISSED'})"
        rows.append([f"RandomCameraShake {name}", f"{statistics.median(values):.1f} images/s", f"{ratio:.2f}", target])
    table = markdown_table(["case", "median rate", "ratio to srgb/default (same run)", "target"], rows)
    print(table)
    if not args.no_append:
        append_results("Camera pipeline vs sRGB pipeline (issue 20)", table, ("numpy", "numba", "torch"),
                       notes=f"{args.rounds} alternating rounds; make_block in one process (one make worker's work), "
                             "32 pairs per round; augmentation batch 16 of 3x256x256 float32, 2 threads, 3 batches "
                             "per round. The machine is shared: compare the ratios.")


if __name__ == "__main__":
    main()
