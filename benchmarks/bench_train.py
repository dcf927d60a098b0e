"""DeblurGAN training throughput: HDF5 DataLoader crops/s, generator forward it/s, train it/s.

- loader: random aligned 256x256 crops (+ flips) of blurgen pairs through ``PairsDataset`` and
  the mixing sampler, batch 16, 2 workers (issue target >= 500 crops/s), as uint8 (what the
  trainer loads; it scales on the device) and as float32 in [-1, 1], from a schema-1 file of
  384x384 images written like ``blurgen make`` stores them (one sample per chunk, uncompressed;
  ``--compression lzf`` to measure that instead);
- generator forward: the paper's ResNet generator (width 64, 9 blocks), batch 1, 256x256, eval;
- train: full steps at the paper's defaults (batch 1, 256x256, 5 critic steps, VGG19 conv3_3
  content loss with random weights, which cost the same as real ones).

CPU always; CUDA too when present. ``--learn`` adds the "learning is real" check: a short CPU run
of a small generator on really blurred shapes, validation PSNR against the blurred inputs' PSNR.

    python benchmarks/bench_train.py                 # appends to benchmarks/RESULTS.md
    python benchmarks/bench_train.py --quick --no-append
    python benchmarks/bench_train.py --learn
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

from blurgen.deblur.data import MixedPairs, MixingSampler, PairsDataset, make_loader
from blurgen.deblur.models import build_generator
from blurgen.deblur.train import TrainConfig, Trainer

sys.path.insert(0, os.path.dirname(__file__))
from report import append_results, markdown_table  # noqa: E402


def write_bench_pairs(path: str, n: int, side: int, compression: str | None, seed: int = 0) -> str:
    """A schema-1 pairs file of smooth random images (``n`` x ``side``^2): loader cost only, the
    content does not matter. Uncompressed unless ``compression`` is given."""
    import h5py

    from blurgen.store.schema import REQUIRED_PARAMS

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h5:
        shape, chunks = (n, side, side, 3), (1, side, side, 3)
        for name in ("blurred", "sharp"):
            ds = h5.create_dataset(name, shape, np.uint8, chunks=chunks, compression=compression)
            for i in range(n):
                low = rng.integers(0, 256, (side // 16, side // 16, 3)).astype(np.uint8)
                ds[i] = np.kron(low, np.ones((16, 16, 1), np.uint8)) + rng.integers(0, 8, (side, side, 3), dtype=np.uint8)
        h5.create_dataset("kernel", data=np.full((n, 3, 3), 1 / 9, np.float32))
        for name in REQUIRED_PARAMS:
            h5.create_dataset(f"params/{name}", data=np.zeros(n, np.float32))
        h5.attrs.update(schema_version=1, blurgen_version="bench", created="", command="bench_train",
                        config="{}", seed=seed, n_planned=n, n_written=n)
    return path


def loader_rate(path: str, batch: int, workers: int, batches: int, as_uint8: bool) -> float:
    dataset = PairsDataset(path, crop=256, flip=True, as_uint8=as_uint8)
    sampler = MixingSampler([len(dataset)], [1], batch_size=batch, total_steps=batches + 3)
    loader = make_loader(MixedPairs([dataset]), sampler, workers)
    it = iter(loader)
    for _ in range(3):  # worker start-up and first file opens outside the timing
        next(it)
    t0 = time.perf_counter()
    crops = sum(len(next(it)[0]) for _ in range(batches))
    return crops / (time.perf_counter() - t0)


def forward_rate(device: torch.device, iters: int) -> float:
    torch.manual_seed(0)
    generator = build_generator("resnet").to(device).eval()
    x = torch.rand(1, 3, 256, 256, device=device) * 2 - 1
    with torch.no_grad():
        for _ in range(2):
            generator(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            generator(x)
        _sync(device)
    return iters / (time.perf_counter() - t0)


def train_rate(path: str, device: torch.device, steps: int, out: str) -> float:
    config = TrainConfig(out=out, data=path, ratio=(1, 0), random_vgg=True, workers=2, val_count=1,
                         max_steps=steps + 2, ckpt_every=10**6, keep_every=0, log_every=10**6,
                         val_every=10**6, device=str(device))
    trainer = Trainer(config, report=lambda line: None)
    batches = iter(trainer._loader())
    for _ in range(2):
        trainer.train_step(*next(batches))
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(*next(batches))
    _sync(device)
    return steps / (time.perf_counter() - t0)


def learning_check(folder: str, steps: int) -> dict:
    """Short CPU run of a small generator; returns settings and validation PSNRs."""
    tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
    sys.path.insert(0, tests)
    from deblur_fixtures import make_pairs_file

    data = str(make_pairs_file(os.path.join(folder, "learn.h5"), n=72, size=64, seed=3,
                               kernel_size=25, length_px=14.0))
    config = TrainConfig(out=os.path.join(folder, "learn"), data=data, ratio=(1, 0), crop=48, batch_size=4,
                         width=16, blocks=2, critic_width=16, critic_layers=2, critic_steps=1, dropout=0.0,
                         lr=1e-3, max_steps=steps, workers=1, val_count=8, val_crop=64, val_every=steps,
                         ckpt_every=steps, keep_every=0, log_every=max(1, steps // 4), device="cpu")
    trainer = Trainer(config, report=print)
    t0 = time.perf_counter()
    result = trainer.run()["last_validation"]["synthetic"]
    settings = {k: getattr(config, k) for k in ("crop", "batch_size", "width", "blocks", "critic_steps",
                                                "lr", "max_steps", "val_count")}
    return {**result, "seconds": time.perf_counter() - t0, "content": trainer.content_loss.mode,
            "settings": settings}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--no-append", action="store_true", help="print only")
    parser.add_argument("--compression", default=None, help="HDF5 filter for the loader file (default none)")
    parser.add_argument("--learn", action="store_true", help="also run the short learning check")
    parser.add_argument("--learn-steps", type=int, default=300)
    args = parser.parse_args()
    batches, fwd_iters, train_steps = (5, 2, 1) if args.quick else (20, 5, 3)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bench_pairs(os.path.join(tmp, "bench.h5"), n=64, side=384, compression=args.compression)
        for as_uint8, what in ((True, "uint8 crops (the trainer's path)"), (False, "float32 [-1, 1] crops")):
            rate = loader_rate(path, batch=16, workers=2, batches=batches, as_uint8=as_uint8)
            rows.append([f"HDF5 loader, random 256x256 {what}, batch 16, 2 workers", f"{rate:.0f} crops/s",
                         "target >= 500", "PASS" if rate >= 500 else "below target"])
        for device in devices:
            rows.append([f"generator forward 256x256 batch 1 ({device.type})",
                         f"{forward_rate(device, fwd_iters * (20 if device.type == 'cuda' else 1)):.2f} it/s", "", ""])
            steps = train_steps * (10 if device.type == "cuda" else 1)
            rows.append([f"train step 256x256 batch 1, 5 critic steps, VGG19 ({device.type})",
                         f"{train_rate(path, device, steps, os.path.join(tmp, f'run-{device.type}')):.3f} it/s", "", ""])
        notes = (f"threads: torch {torch.get_num_threads()}; loader file: 64 pairs of 384x384, "
                 f"compression {args.compression or 'none'}; the machine is shared, so rates are noisy.")
        if args.learn:
            learn = learning_check(tmp, args.learn_steps)
            rows.append([f"learning check: val PSNR after {args.learn_steps} CPU steps",
                         f"{learn['psnr']:.2f} dB (SSIM {learn['ssim']:.3f})",
                         f"blurred {learn['blurred_psnr']:.2f} dB (SSIM {learn['blurred_ssim']:.3f})",
                         f"gain {learn['psnr'] - learn['blurred_psnr']:+.2f} dB"])
            notes += (f"\n\nLearning check settings: {json.dumps(learn['settings'])}, content loss "
                      f"{learn['content']}, 72 pairs of 64x64 shapes blurred by random_kernels "
                      f"(25 px, path 14 px), 8 held out; {learn['seconds']:.0f} s.")
    table = markdown_table(["measurement", "result", "reference", "status"], rows)
    print(table)
    print(notes)
    if not args.no_append:
        append_results("bench_train: DeblurGAN data and training throughput", table,
                       ("torch", "torchvision", "h5py", "numpy"), notes)


if __name__ == "__main__":
    main()
