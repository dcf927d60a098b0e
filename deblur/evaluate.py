"""PSNR/SSIM evaluation of a generator on blurgen HDF5 pairs or GoPro test frames.

Each source yields ``(name, blurred, sharp)`` uint8 ``(H, W, 3)`` RGB pairs at full size (no
crop, no flip); the generator's output and the blurred input are both scored against the sharp
image, so the gain of the model is read off one table.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np
from torch import nn

from blurgen.deblur.inference import deblur_image
from blurgen.deblur.metrics import PSNR_CAP_DB, RunningMean, psnr, ssim

Pair = tuple[str, np.ndarray, np.ndarray]


def hdf5_pairs(path: str, limit: Optional[int] = None) -> tuple[int, Iterator[Pair]]:
    """``(count, iterator)`` over the complete samples of a blurgen pairs file; raises
    ``PairsFileError`` (one line) for a missing, foreign or damaged file before iterating."""
    from blurgen.store.reader import PairsFile
    from blurgen.store.schema import PairsFileError

    reader = PairsFile(path).open()
    frames = reader.frames
    if frames is not None:
        reader.close()
        raise PairsFileError(f"{path}: a clips file (schema 3, {frames} frames per clip); eval scores image pairs")
    n = len(reader) if limit is None else min(limit, len(reader))

    def items() -> Iterator[Pair]:
        try:
            for i in range(n):
                blurred, sharp, _ = reader[i]
                yield f"{i}", blurred, sharp
        finally:
            reader.close()

    return n, items()


def gopro_pairs(root: str, split: str = "test", blur_folder: str = "blur",
                limit: Optional[int] = None) -> tuple[int, Iterator[Pair]]:
    """``(count, iterator)`` over a GOPRO_Large split; the tree is checked first
    (``blurgen.deblur.data.DataError``: no ``sharp/`` folders, unmatched frame counts, ...)."""
    from blurgen.deblur.data import DataError, read_rgb, scan_gopro

    pairs = scan_gopro(root, split, blur_folder)
    if limit is not None:
        pairs = pairs[:limit]

    def items() -> Iterator[Pair]:
        for blur_path, sharp_path in pairs:
            blurred, sharp = read_rgb(blur_path), read_rgb(sharp_path)
            if blurred.shape != sharp.shape:
                raise DataError(f"{blur_path}: {blurred.shape[1]}x{blurred.shape[0]} does not match "
                                f"its sharp frame {sharp.shape[1]}x{sharp.shape[0]}")
            yield os.path.relpath(blur_path, root), blurred, sharp

    return len(pairs), items()


@dataclass
class SourceScores:
    """Mean PSNR (dB) / SSIM of the model's output and of the blurred input over one source."""

    source: str
    n: int = 0
    model_psnr: RunningMean = field(default_factory=lambda: RunningMean(PSNR_CAP_DB))
    model_ssim: RunningMean = field(default_factory=RunningMean)
    blurred_psnr: RunningMean = field(default_factory=lambda: RunningMean(PSNR_CAP_DB))
    blurred_ssim: RunningMean = field(default_factory=RunningMean)

    def as_dict(self) -> dict:
        """JSON-ready (PSNR means count an exact reconstruction as ``PSNR_CAP_DB``; a mean that is
        still not finite, e.g. of no pairs, becomes None)."""
        def clean(v: float) -> Optional[float]:
            return v if math.isfinite(v) else None
        return {"source": self.source, "n": self.n,
                "model": {"psnr": clean(self.model_psnr.mean), "ssim": clean(self.model_ssim.mean)},
                "blurred": {"psnr": clean(self.blurred_psnr.mean), "ssim": clean(self.blurred_ssim.mean)}}


def evaluate(generator: nn.Module, source: str, pairs: Iterator[Pair], tile: Optional[int] = None,
             global_norm: bool = False, on_pair: Optional[Callable[[str], None]] = None,
             on_output: Optional[Callable[[str, np.ndarray, np.ndarray, np.ndarray], None]] = None) -> SourceScores:
    """Score ``generator`` on every pair of one source. Each image is deblurred whole unless
    ``tile`` is given (see ``deblur_image``). ``on_pair(name)`` is called after each pair
    (progress bars), ``on_output(name, blurred, restored, sharp)`` with the pictures (uint8 HWC)."""
    scores = SourceScores(source)
    for name, blurred, sharp in pairs:
        restored = deblur_image(generator, blurred, tile=tile, global_norm=global_norm)
        if on_output is not None:
            on_output(name, blurred, restored, sharp)
        scores.model_psnr.add(psnr(restored, sharp))
        scores.model_ssim.add(ssim(restored, sharp))
        scores.blurred_psnr.add(psnr(blurred, sharp))
        scores.blurred_ssim.add(ssim(blurred, sharp))
        scores.n += 1
        if on_pair is not None:
            on_pair(name)
    return scores
