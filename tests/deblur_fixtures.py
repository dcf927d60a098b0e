"""Small data builders for the DeblurGAN tests: schema-1 HDF5 pairs files and GoPro-shaped trees.

The pairs writer follows the documented schema itself (it does not use blurgen's writer), so the
trainer's tests do not depend on the pairs pipeline; the blurred images are real blur: sharp
images convolved with kernels from ``blurgen.random_kernels``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from blurgen.store.schema import REQUIRED_PARAMS


def shapes_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 (size, size, 3): a smooth background with random bright/dark rectangles and disks,
    i.e. edges a deblurring model can learn to sharpen."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(60, 190, 3)
    image = base + 40 * (xx[..., None] * rng.uniform(-1, 1, 3) + yy[..., None] * rng.uniform(-1, 1, 3))
    for _ in range(rng.integers(6, 14)):
        colour = rng.uniform(0, 255, 3)
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.04, 0.2)
        if rng.random() < 0.5:
            mask = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * rng.uniform(0.3, 1.5))
        else:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        image[mask] = colour
    return np.clip(image, 0, 255).astype(np.uint8)


def blur_image(sharp: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with ``kernel`` (reflect borders); uint8 in, uint8 out."""
    import cv2

    flipped = np.ascontiguousarray(kernel[::-1, ::-1])  # filter2D correlates
    out = cv2.filter2D(sharp.astype(np.float32), -1, flipped, borderType=cv2.BORDER_REFLECT)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def make_pairs_arrays(n: int, size: int = 48, seed: int = 0, kernel_size: int = 15,
                      length_px: float = 8.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blurred, sharp, kernels): uint8 (n, size, size, 3) x2 and float32 (n, k, k)."""
    import blurgen

    rng = np.random.default_rng(seed)
    kernels = blurgen.random_kernels(n, size=kernel_size, seed=seed, length_px=length_px)
    sharp = np.stack([shapes_image(rng, size) for _ in range(n)])
    blurred = np.stack([blur_image(s, k) for s, k in zip(sharp, kernels)])
    return blurred, sharp, kernels.astype(np.float32)


def write_pairs(path: str | Path, blurred: np.ndarray, sharp: np.ndarray,
                kernels: np.ndarray | None = None, n_written: int | None = None) -> Path:
    """Write a schema-1 blurgen pairs file from arrays; returns the path."""
    import h5py

    n = len(blurred)
    if kernels is None:
        kernels = np.zeros((n, 3, 3), np.float32)
        kernels[:, 1, 1] = 1.0
    with h5py.File(path, "w") as h5:
        chunks = (1, *blurred.shape[1:])
        h5.create_dataset("blurred", data=blurred, chunks=chunks, compression="lzf")
        h5.create_dataset("sharp", data=sharp, chunks=chunks, compression="lzf")
        h5.create_dataset("kernel", data=kernels)
        params = h5.create_group("params")
        for name in REQUIRED_PARAMS:
            params.create_dataset(name, data=np.zeros(n, np.float32))
        h5.attrs.update({"schema_version": 1, "blurgen_version": "test", "created": "2024-01-01T00:00:00",
                         "command": "tests", "config": json.dumps({}), "seed": 0, "n_planned": n,
                         "n_written": n if n_written is None else n_written})
    return Path(path)


def make_pairs_file(path: str | Path, n: int = 8, size: int = 48, seed: int = 0, **blur) -> Path:
    """A schema-1 file of ``n`` really blurred pairs (``blur``: kernel_size, length_px)."""
    blurred, sharp, kernels = make_pairs_arrays(n, size, seed, **blur)
    return write_pairs(path, blurred, sharp, kernels)


def make_gopro_tree(root: str | Path, sequences: int = 2, frames: int = 3, size: tuple[int, int] = (64, 40),
                    splits: tuple[str, ...] = ("train", "test"), seed: int = 0) -> Path:
    """``root/{split}/GOPR000k_11_00/{blur,blur_gamma,sharp}/00000j.png`` with size=(W, H)."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    for split in splits:
        for s in range(sequences):
            seq = Path(root) / split / f"GOPR{s:04d}_11_00"
            for folder in ("blur", "blur_gamma", "sharp"):
                (seq / folder).mkdir(parents=True, exist_ok=True)
            for f in range(frames):
                sharp = shapes_image(rng, max(w, h))[:h, :w]
                blurred = cv2.GaussianBlur(sharp, (5, 5), 1.5)
                name = f"{f:06d}.png"
                cv2.imwrite(str(seq / "sharp" / name), cv2.cvtColor(sharp, cv2.COLOR_RGB2BGR))
                for folder in ("blur", "blur_gamma"):
                    cv2.imwrite(str(seq / folder / name), cv2.cvtColor(blurred, cv2.COLOR_RGB2BGR))
    return Path(root)
