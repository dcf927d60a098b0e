"""Images per second of ``blurgen.transforms.RandomCameraShake`` vs kornia's ``RandomMotionBlur``.

Batch 16 of 3x256x256 float32 in [0, 1], 65x65 kernels, torch (and Numba) limited to 2 threads;
every call draws new kernels (the counter advances), as in training. Rows, all in the same run:

- RandomCameraShake, default model (65x65 random camera shake), linear light (sRGB), no noise:
  the issue's target of >= 200 images/s on the CPU;
- the same with sensor noise, without linear light, and forced onto the FFT convolution (the
  measurement behind ``blurgen.blur.convolve.DIRECT_MAX_TAPS``);
- a dense grouped ``conv2d`` with the same per-image kernels (the other batched convolution);
- the baseline: kornia ``RandomMotionBlur(kernel_size=65)`` (a straight line per image), or, if
  kornia is not installed, a pure-torch line kernel by grouped ``conv2d``.

    python benchmarks/bench_transforms.py                # appends to benchmarks/RESULTS.md
    python benchmarks/bench_transforms.py --quick --no-append
    python benchmarks/bench_transforms.py --device cuda  # GPU figures
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from blurgen.transforms import RandomCameraShake, _common_size

sys.path.insert(0, os.path.dirname(__file__))
from report import append_results, markdown_table  # noqa: E402

BATCH, CHANNELS, SIDE, KERNEL = 16, 3, 256, 65
TARGET = 200.0  # images/s on the CPU, issue 13


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(step, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(best, median) images per second of ``step(x)`` over ``repeats`` timed calls (one
    untimed call first: compilation, caches, allocator)."""
    step(x)
    _sync(x.device)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        with torch.no_grad():
            step(x)
        _sync(x.device)
        times.append(time.perf_counter() - began)
    return x.shape[0] / min(times), x.shape[0] / statistics.median(times)


def grouped_conv(shake: RandomCameraShake):
    """The same per-image kernels, dense, as one grouped conv2d with reflect padding."""
    def step(x: torch.Tensor) -> torch.Tensor:
        kernels = torch.from_numpy(_common_size(shake.kernels_for(shake.next_indices(len(x)))[0]))
        radius = kernels.shape[-1] // 2
        weight = kernels.flip(-1, -2)[:, None].repeat_interleave(x.shape[1], 0).to(x.device)
        padded = F.pad(x, (radius,) * 4, mode="reflect").reshape(1, -1, *(s + 2 * radius for s in x.shape[2:]))
        return F.conv2d(padded, weight, groups=weight.shape[0]).reshape(x.shape)
    return step


def line_baseline():
    """kornia RandomMotionBlur(65), or a pure-torch random line kernel per image."""
    try:
        from kornia.augmentation import RandomMotionBlur
    except ImportError:
        RandomMotionBlur = None  # noqa: N806
    if RandomMotionBlur is not None:
        return "kornia RandomMotionBlur(kernel_size=65)", RandomMotionBlur(KERNEL, 35.0, 0.5, p=1.0)

    def step(x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        angle = torch.rand(n) * math.pi
        t = torch.linspace(-1, 1, KERNEL)
        yy, xx = torch.meshgrid(t, t, indexing="ij")
        dist = (xx[None] * torch.sin(angle)[:, None, None] - yy[None] * torch.cos(angle)[:, None, None]).abs()
        k = (dist < 1.0 / KERNEL).float()
        k = (k / k.sum((1, 2), keepdim=True))[:, None].repeat_interleave(c, 0).to(x.device)
        padded = F.pad(x, (KERNEL // 2,) * 4, mode="reflect").reshape(1, n * c, *(s + KERNEL - 1 for s in x.shape[2:]))
        return F.conv2d(padded, k, groups=n * c).reshape(x.shape)
    return "pure-torch line kernel (grouped conv2d), 65x65", step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and Numba threads")
    parser.add_argument("--repeats", type=int, default=10, help="timed batches per row")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="repeats=3, slow rows 1 repeat")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 3 if args.quick else args.repeats
    x = torch.rand(BATCH, CHANNELS, SIDE, SIDE, generator=torch.Generator().manual_seed(0)).to(device)
    baseline_name, baseline = line_baseline()
    rows, ours = [], None
    cases = [
        ("RandomCameraShake, linear light, no noise (default)", RandomCameraShake(p=1.0, seed=0), repeats),
        ("RandomCameraShake, linear light, sensor noise", RandomCameraShake(p=1.0, seed=0, noise=True), repeats),
        ("RandomCameraShake, gamma=None", RandomCameraShake(p=1.0, seed=0, gamma=None), repeats),
        ("RandomCameraShake, method='fft'", RandomCameraShake(p=1.0, seed=0, method="fft"), max(1, repeats // 3)),
        ("same kernels, dense grouped conv2d", grouped_conv(RandomCameraShake(seed=0)), 1 if args.quick else 3),
        (baseline_name, baseline, 1 if args.quick else 3),
    ]
    for name, step, count in cases:
        best, median = rate(step, x, count)
        ours = ours or best
        rows.append([name, f"{best:,.1f}", f"{median:,.1f}", f"{ours / best:.1f}x"])
        print(rows[-1], flush=True)
    met = "met" if ours >= TARGET else "not met"
    baseline_rate = float(rows[-1][1].replace(",", ""))
    table = markdown_table(["transform", "images/s (best)", "images/s (median)", "default vs this"], rows)
    notes = (f"Batch {BATCH} of {CHANNELS}x{SIDE}x{SIDE} float32 on {device}, {args.threads} threads "
             f"(torch.set_num_threads; Numba follows), 65x65 kernels, new kernels every batch; "
             f"{repeats} timed batches per row (fewer for the slow ones), after one untimed batch. "
             f"Target >= {TARGET:.0f} images/s for the default on the CPU: {met} ({ours:,.1f}). Ratio to "
             f"the baseline ({baseline_name}) in the same run: {ours / baseline_rate:.1f}x. "
             "The machine may be shared.")
    print(table)
    print(notes)
    if not args.no_append:
        append_results("Transforms (bench_transforms.py)", table, ("torch", "kornia", "numba", "numpy"), notes)


if __name__ == "__main__":
    main()
