"""``shake2d``: one random-walk kernel per sample (the Markov camera shake of ``blurgen.motion.walk``,
the DeblurGAN recipe), the same blur everywhere in the image: a valid convolution.

Example:
    >>> from blurgen.core.config import KernelConfig
    >>> kernels, params = MODEL.kernels(KernelConfig(size=31, length_px=20.0), 2, seed=0, start=4)
    >>> kernels.shape, params["seed_index"].tolist()
    ((2, 31, 31), [4, 5])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blurgen.core.config import KernelConfig
from blurgen.core.kernel_shape import support_radius
from blurgen.motion.fit import check_kernel_fits
from blurgen.motion.registry import MotionModel, Samples, Step
from blurgen.motion.walk import random_trajectories, rasterize, walk_kernels

#: The walk's own command-line options.
WALK_OPTIONS = ("length_px", "steps", "exposures", "anxiety", "blur_length_px")


class KernelSamples(Samples):
    """Samples that are one kernel each, blurred by a valid convolution with it. Only the kernel's
    support matters: the centre of the full crop blurred by the symmetrically cropped kernel is
    exactly the full crop blurred by the full kernel, for less work."""

    def __init__(self, kernels: np.ndarray, params: dict[str, np.ndarray]) -> None:
        self.kernels, self.params, self.motion = kernels, params, {}
        self.params["kernel_support_px"] = np.empty(len(kernels), np.int32)

    def sample(self, m: int) -> tuple[int, Step]:
        # Imported here: random_kernels loads this module and must not load OpenCV.
        from blurgen.blur.convolve import convolve_valid

        size = self.kernels.shape[-1]
        radius = support_radius(self.kernels[m])
        inset = (size - 1) // 2 - radius
        kernel = self.kernels[m, inset:inset + 2 * radius + 1, inset:inset + 2 * radius + 1]
        self.params["kernel_support_px"][m] = 2 * radius + 1
        return radius, lambda lin: convolve_valid(lin, kernel)


class Shake2D(MotionModel):
    name = "shake2d"
    config_type = KernelConfig
    config_field = "kernel"
    cli_options = WALK_OPTIONS
    #: make's blur lengths unless a length is given: the downstream benchmark's choice (restorers
    #: trained on DeblurGAN's fixed 60 px paths did worse on real shake).
    MAKE_BLUR_LENGTH = "1,32"

    def make_options(self, options: dict[str, Any], given: set[str]) -> dict[str, Any]:
        if given & {"blur_length_px", "length_px"}:
            return options
        return {**options, "blur_length_px": self.MAKE_BLUR_LENGTH}

    def check_config(self, config: Any) -> None:
        check_kernel_fits(config, random_trajectories, f"length_px={config.length_px:g}", "a shorter length_px")

    def draw(self, pairs: Any, seed: int, start: int, count: int) -> Samples:
        return KernelSamples(*walk_kernels(count, seed=seed, start=start, config=self.settings(pairs)))

    def kernels(self, config: Any, n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, dict]:
        return walk_kernels(n, seed=seed, start=start, config=config)

    def config_from_options(self, size: int, options: dict[str, Any]) -> KernelConfig:
        config = KernelConfig(size=size, **{name: options[name] for name in WALK_OPTIONS if name in options})
        self.check_config(config)
        return config

    def sheet_tiles(self, config: Any, n: int) -> int:
        return n * len(set(config.exposures))

    def sheet(self, config: Any, n: int, seed: int, start: int, scale: int) -> tuple[list[np.ndarray], int]:
        """One strip per sample when there are several exposures (shortest first: prefixes of
        the same path), else a square grid."""
        from blurgen.inspect.preview import caption, kernel_tile

        fractions = sorted(set(config.exposures))
        if len(fractions) == 1:
            return super().sheet(config, n, seed, start, scale)
        # Fit test at the longest exposure; shorter ones are prefixes of the same path.
        xy, _ = random_trajectories(n, config.replace(exposures=(fractions[-1],)), seed=seed, start=start)
        strips = [rasterize(xy, config.size, f) for f in fractions]
        return [caption(kernel_tile(strips[j][i], scale), f"#{start + i} exposure {fractions[j]:g}")
                for i in range(n) for j in range(len(fractions))], len(fractions)

    def sheet_title(self, config: Any) -> str:
        if len(set(config.exposures)) > 1:
            return "shake2d: one path per row, exposure fractions shortest first"
        return f"shake2d: {config.length_px:g} px paths, exposure {config.exposures[0]:g}"


MODEL = Shake2D()
