"""Images per second of ``blurgen.transforms.NumpyCameraShake`` on one 256x256 RGB uint8 image at a
time, one thread (torch and Numba), against albumentations' ``MotionBlur`` with the same kernel
size (``blur_limit=(63, 65)``) and, if installed, kornia's ``RandomMotionBlur(65)`` on one image,
all in the same run (the machine is shared: compare the ratios, not the absolute rates).

    NUMBA_NUM_THREADS=1 python benchmarks/bench_numpy_shake.py             # appends to RESULTS.md
    NUMBA_NUM_THREADS=1 python benchmarks/bench_numpy_shake.py --no-append
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

import blurgen
from blurgen.transforms import NumpyCameraShake

sys.path.insert(0, os.path.dirname(__file__))
from report import append_results, markdown_table  # noqa: E402

SIDE = 256


def _rate(call, image: np.ndarray, seconds: float) -> float:
    """Images per second of ``call(image)`` over about ``seconds`` (after a warm-up)."""
    for _ in range(10):
        call(image)
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        call(image)
        done += 1
    return done / (time.perf_counter() - began)


def _candidates() -> dict[str, object]:
    import albumentations as A

    rows = {"NumpyCameraShake shake2d (65x65)": NumpyCameraShake(p=1.0, seed=0),
            "NumpyCameraShake camera3d (65x65)": NumpyCameraShake(blurgen.CameraConfig(), p=1.0, seed=0),
            "albumentations MotionBlur(63-65)": lambda img, t=A.MotionBlur(blur_limit=(63, 65), p=1.0): t(image=img)}
    try:
        import kornia.augmentation as K

        kornia = K.RandomMotionBlur(65, 35.0, 0.5, p=1.0)
        rows["kornia RandomMotionBlur(65), one image"] = lambda img: kornia(
            torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
    except ImportError:
        pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    rows = _candidates()
    rates = {name: [] for name in rows}
    for _ in range(args.repeats):  # interleaved, so load changes hit every row alike
        for name, call in rows.items():
            rates[name].append(_rate(call, image, args.seconds))
    base = statistics.median(rates["albumentations MotionBlur(63-65)"])
    table = markdown_table(["per image, one thread", "images/s (median)", "range", "vs albumentations"],
                           [[name, f"{statistics.median(r):.0f}", f"{min(r):.0f}-{max(r):.0f}",
                             f"{statistics.median(r) / base:.2f}x"] for name, r in rates.items()])
    print(table)
    if not args.no_append:
        append_results("NumpyCameraShake vs albumentations MotionBlur, one image (bench_numpy_shake.py)", table,
                       ("torch", "numba", "albumentations", "kornia"),
                       f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}, torch 1 thread, "
                       f"{SIDE}x{SIDE} RGB uint8, {args.repeats} interleaved repeats of {args.seconds:g} s")


if __name__ == "__main__":
    main()
