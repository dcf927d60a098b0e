"""The two motion models of a pairs dataset, behind one interface for ``pipeline.make_block``:

* ``shake2d`` -- one kernel per sample (the Markov camera shake of ``blurgen.kernels``), the same
  blur everywhere in the image: a valid convolution;
* ``camera3d`` -- a rotating (and optionally translating) hand-held camera
  (``blurgen.camera``): the blur varies across the image, rendered exactly from local kernels.

For a block of samples, each model draws what its samples need (sample i from ``(seed, i)``
alone) and then says, per sample, how much sharp margin the crop needs on each side and which
linear blur step turns the crop into the blurred image.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import numpy as np

from blurgen.blur import convolve_valid
from blurgen.kernels import random_kernels_with_params, support_radius

Step = Callable[[np.ndarray], np.ndarray]


class ShakeSamples:
    """``shake2d``: the kernels of samples ``start .. start + count - 1`` (random walks, or drawn
    from the config's kernel bank)."""

    def __init__(self, config: Any, seed: int, start: int, count: int) -> None:
        self.size = config.kernel.size
        if config.kernel_bank:
            self.kernels, self.params = load_bank(config).kernels(count, seed=seed, start=start, size=self.size)
        else:
            self.kernels, self.params = random_kernels_with_params(count, seed=seed, start=start, config=config.kernel)
        self.params["kernel_support_px"] = np.empty(count, np.int32)
        self.motion: dict[str, np.ndarray] = {}

    def sample(self, m: int) -> tuple[int, Step]:
        """Margin and blur step of sample ``m`` of the block. Only the kernel's support matters:
        the centre of the full crop blurred by the symmetrically cropped kernel is exactly the
        full crop blurred by the full kernel, for less work."""
        radius = support_radius(self.kernels[m])
        inset = (self.size - 1) // 2 - radius
        kernel = self.kernels[m, inset:inset + 2 * radius + 1, inset:inset + 2 * radius + 1]
        self.params["kernel_support_px"][m] = 2 * radius + 1
        return radius, lambda lin: convolve_valid(lin, kernel)


class CameraSamples:
    """``camera3d``: the camera motions of samples ``start .. start + count - 1``; each output is
    a window of the camera's frame placed by the sample's anchor, and ``/kernel`` is the local
    kernel at the window's centre."""

    def __init__(self, config: Any, seed: int, start: int, count: int) -> None:
        from blurgen.camera.motion import random_camera_motion

        self.config, self.camera = config, config.camera
        self.size = self.camera.size
        self.motion_draws, self.params = random_camera_motion(count, self.camera, seed=seed, start=start)
        self.kernels = np.zeros((count, self.size, self.size), np.float32)
        for name in ("window_x", "window_y", "window_margin_px"):
            self.params[name] = np.empty(count, np.int32)
        # The poses per sample; the per-sample numbers (focal_px, depth_m, exposure_s, anchor_x,
        # anchor_y) are in params already.
        self.motion = {name: getattr(self.motion_draws, name) for name in ("rotation", "translation")}

    def sample(self, m: int) -> tuple[int, Step]:
        from blurgen.camera.kernels import local_kernels
        from blurgen.camera.render import plan_camera_blur

        plan = plan_camera_blur(self.motion_draws, self.config.width, self.config.height, index=m)
        if plan.margin > (self.size - 1) // 2:  # the motion's redraw rule bounds it; never seen
            raise ValueError(f"sample {int(self.params['seed_index'][m])}: the blur needs a {plan.margin} px "
                             f"margin, more than the kernel size {self.size} allows; use a larger --kernel-size")
        self.kernels[m] = local_kernels(self.motion_draws[m], np.array([plan.centre]), self.size)[0, 0]
        self.params["window_x"][m], self.params["window_y"][m] = plan.origin
        self.params["window_margin_px"][m] = plan.margin
        return plan.margin, lambda lin: plan.render(lin)[0]


def load_bank(config: Any, fresh: bool = False):
    """The config's kernel bank (``blurgen.KernelBank``), loaded once per process and file
    version (``fresh``: read again whatever the cache holds; file times are too coarse to tell a
    file rewritten within the same few milliseconds)."""
    if fresh:
        _load_bank.cache_clear()
    path = config.kernel_bank
    try:
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (path, None, None)
    return _load_bank(key, config.bank_augment, tuple(config.bank_scale))


@functools.lru_cache(maxsize=4)
def _load_bank(key: tuple, augment: bool, scale: tuple):
    from blurgen.kernel_bank import KernelBank

    return KernelBank.from_file(key[0], augment=augment, scale_range=scale)


def samples_for(config: Any, seed: int, start: int, count: int) -> ShakeSamples | CameraSamples:
    """The motion model ``config.motion`` names, drawn for a block."""
    if config.motion == "camera3d":
        return CameraSamples(config, seed, start, count)
    return ShakeSamples(config, seed, start, count)
