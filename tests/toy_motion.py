"""A toy motion model for the plug-in tests: a horizontal box kernel of ``length_px`` pixels (odd,
at least 1), the same for every sample. It lives in the test suite, not in blurgen: registering it
needs no edit of library code."""

from __future__ import annotations

from typing import Any

import numpy as np

from blurgen.core.config import KernelConfig
from blurgen.motion.registry import MotionModel
from blurgen.motion.shake2d import KernelSamples


def box_kernel(size: int, width: int) -> np.ndarray:
    kernel = np.zeros((size, size), np.float32)
    half = width // 2
    kernel[size // 2, size // 2 - half:size // 2 + half + 1] = 1.0 / (2 * half + 1)
    return kernel


class BoxModel(MotionModel):
    name = "box"
    config_type = KernelConfig
    config_field = "kernel"
    cli_options = ("length_px",)

    def kernels(self, config: Any, n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, dict]:
        width = max(1, int(config.length_px)) | 1
        kernels = np.repeat(box_kernel(config.size, min(width, config.size))[None], n, axis=0)
        return kernels, {"seed_index": np.arange(start, start + n, dtype=np.int64),
                         "box_width_px": np.full(n, width, np.int32)}

    def draw(self, pairs: Any, seed: int, start: int, count: int) -> KernelSamples:
        return KernelSamples(*self.kernels(pairs.kernel, count, seed, start))


BOX = BoxModel()
