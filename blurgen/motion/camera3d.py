"""``camera3d``: a rotating (and optionally translating) hand-held camera (``blurgen.camera``); the
blur varies across the image, rendered exactly from local kernels. A sample's output is a window of
the camera's frame placed by its anchor; its stored kernel is the local kernel at the window centre.

Example:
    >>> from blurgen.camera.config import CameraConfig
    >>> kernels, params = MODEL.kernels(CameraConfig(size=33), 2, seed=0)
    >>> kernels.shape, "position_x" in params
    ((2, 33, 33), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blurgen.camera.config import CameraConfig
from blurgen.camera.kernels import camera_kernels_with_params, local_kernels
from blurgen.camera.motion import random_camera_motion
from blurgen.camera.render import plan_camera_blur
from blurgen.core.config import is_off
from blurgen.motion.fit import check_kernel_fits
from blurgen.motion.registry import MotionModel, Samples, Step

#: Command-line option -> CameraConfig field.
CAMERA_OPTIONS = {"frame_size": "frame_size", "focal_35mm": "focal_35mm", "exposure_s": "exposure_s",
                  "shake_scale": "shake_scale", "roll_scale": "roll_scale", "translation_mps": "translation_mps",
                  "depth_m": "depth_m", "camera_steps": "steps", "blur_length_px": "blur_length_px"}
#: Where the kernels sheet shows each sample's local kernels: these fractions of the frame.
GRID_FRACTIONS = (0.0, 0.5, 1.0)


class CameraSamples(Samples):
    """The camera motions of a block; each sample is rendered by the grid-of-local-kernels renderer."""

    def __init__(self, pairs: Any, seed: int, start: int, count: int) -> None:
        self.pairs, self.camera = pairs, pairs.camera
        self.size = self.camera.size
        self.motion_draws, self.params = random_camera_motion(count, self.camera, seed=seed, start=start)
        self.kernels = np.zeros((count, self.size, self.size), np.float32)
        for name in ("window_x", "window_y", "window_margin_px"):
            self.params[name] = np.empty(count, np.int32)
        # The poses per sample; the per-sample numbers (focal_px, depth_m, exposure_s, anchor_x,
        # anchor_y) are in params already.
        self.motion = {name: getattr(self.motion_draws, name) for name in ("rotation", "translation")}

    def sample(self, m: int) -> tuple[int, Step]:
        plan = plan_camera_blur(self.motion_draws, self.pairs.width, self.pairs.height, index=m)
        if plan.margin > (self.size - 1) // 2:  # the motion's redraw rule bounds it; never seen
            raise ValueError(f"sample {int(self.params['seed_index'][m])}: the blur needs a {plan.margin} px "
                             f"margin, more than the kernel size {self.size} allows; use a larger --kernel-size")
        self.kernels[m] = local_kernels(self.motion_draws[m], np.array([plan.centre]), self.size)[0, 0]
        self.params["window_x"][m], self.params["window_y"][m] = plan.origin
        self.params["window_margin_px"][m] = plan.margin
        return plan.margin, lambda lin: plan.render(lin)[0]


class Camera3D(MotionModel):
    name = "camera3d"
    config_type = CameraConfig
    config_field = "camera"
    cli_options = tuple(CAMERA_OPTIONS)
    #: make's blur lengths (unless lengths or exposures are given) and the exposure range searched
    #: for any blur length (unless exposures are given): the downstream benchmark's choice on its
    #: tuning scenes. CameraConfig itself keeps the fitted exposure range.
    MAKE_BLUR_LENGTH, MAKE_EXPOSURE = "1,16", "0.0005,1"

    def make_options(self, options: dict[str, Any], given: set[str]) -> dict[str, Any]:
        options = dict(options)
        if not given & {"blur_length_px", "exposure_s"}:
            options["blur_length_px"] = self.MAKE_BLUR_LENGTH
        length = options.get("blur_length_px")
        if "exposure_s" not in given and length is not None and not is_off(length):
            options["exposure_s"] = self.MAKE_EXPOSURE
        return options

    def check_config(self, config: Any) -> None:
        check_kernel_fits(config, random_camera_motion, "this camera's shake (exposure, focal length, shake scale)",
                          "shorter exposures or less shake")

    def draw(self, pairs: Any, seed: int, start: int, count: int) -> Samples:
        return CameraSamples(pairs, seed, start, count)

    def kernels(self, config: Any, n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, dict]:
        return camera_kernels_with_params(n, seed=seed, start=start, config=config)

    def config_from_options(self, size: int, options: dict[str, Any]) -> CameraConfig:
        config = CameraConfig(size=size, **{field: options[name] for name, field in CAMERA_OPTIONS.items()
                                            if name in options})
        self.check_config(config)
        return config

    def sheet_tiles(self, config: Any, n: int) -> int:
        return n * len(GRID_FRACTIONS) ** 2

    def sheet(self, config: Any, n: int, seed: int, start: int, scale: int) -> tuple[list[np.ndarray], int]:
        """Per sample, a 3x3 block of its local kernels at the corners, edge centres and centre."""
        from blurgen.inspect.preview import caption, grid, kernel_tile

        motion, _ = random_camera_motion(n, config, seed=seed, start=start)
        width, height = config.frame_size
        positions = np.array([(fx * (width - 1), fy * (height - 1)) for fy in GRID_FRACTIONS for fx in GRID_FRACTIONS])
        blocks = local_kernels(motion, positions, config.size)  # (n, 9, k, k)
        side = len(GRID_FRACTIONS)
        pictures = [caption(grid([kernel_tile(k, scale) for k in block], columns=side, gap=1, background=24),
                            f"#{start + i}") for i, block in enumerate(blocks)]
        return pictures, int(np.ceil(np.sqrt(n)))

    def sheet_title(self, config: Any) -> str:
        w, h = config.frame_size
        return f"camera3d: local kernels at the corners, edge midpoints and centre of the {w}x{h} frame"


MODEL = Camera3D()
