"""Spatially varying camera-shake blur of whole images, exact to a stated tolerance.

The blurred image is the time average over the exposure of the sharp image seen through the
moving camera (``H(t) = K R(t) K^-1`` plus the plane-induced translation term), in linear light:
output pixel x averages the sharp image along its path ``s_t(x)``, bilinearly interpolated. Each
pixel's path is centred on its time mean (the first-order mean is already zero: the reference
pose is the time-mean pose; centring removes the second-order rest, at most a fraction of a pixel
for realistic shake), so blurred and sharp stay aligned everywhere in the frame.

Method (chosen by measurement, see benchmarks/bench_camera.py): the local kernels are computed
exactly at a grid of nodes and interpolated bilinearly between them (Nagy & O'Leary 1998). The grid
is as fine as the motion needs: neighbouring node paths differ by at most ``2 * tolerance_px``
(a single node along an axis where the whole window's kernels differ by less than that), so every
interpolated kernel is within ``tolerance_px`` of the exact one. Against a brute-force renderer
(every pixel's own path re-projected at 8 instants per knot interval) on a hard camera (18 mm lens,
0.06-0.1 s, three times the recorded roll) the default tolerance measured a mean absolute error of
0.06-0.07/255 in linear light (largest pixel 1.8/255); tests/camera/test_camera_render.py holds it to
0.5/255. Dense warp-and-accumulate (``cv2.remap`` per time step) was 10x more exact and 12x slower
on 120x90 windows, and grows with the pixel count times the path length (benchmarks/bench_camera.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from blurgen.camera import _project_jit as pj
from blurgen.camera import _render_jit as rj
from blurgen.camera.motion import CameraMotion
from blurgen.core.config import MAX_KERNEL_SIZE, MAX_SIDE, check_index, check_number

#: Default largest deviation (px) of an interpolated kernel's path from the exact one.
TOLERANCE_PX = 0.25
#: Probe grid (per side) measuring how fast the kernels change across a window.
SLOPE_PROBES = 5
#: Largest blur margin (kernel half-size) a plan accepts: the largest kernel blurgen makes.
MAX_MARGIN = MAX_KERNEL_SIZE // 2
#: Most grid nodes per side (beyond, a window is blurred too unevenly for this method).
MAX_NODES = 512


@dataclass(frozen=True)
class CameraBlurPlan:
    """How one sample's motion blurs one output window: grid nodes, their kernels, the margin.

    Attributes:
        width, height: output size, px.
        origin: frame coordinates (x, y) of the output's top-left pixel.
        node_x: float64 ``(nx,)`` node columns in output pixels; ``node_y`` ``(ny,)`` rows.
        kernels: float32 ``(ny, nx, k, k)`` local kernels at the nodes (sum 1, centred).
        margin: pixels the sharp crop needs on every side: the largest kernel half-size.
    """

    width: int
    height: int
    origin: tuple[int, int]
    node_x: np.ndarray
    node_y: np.ndarray
    kernels: np.ndarray
    margin: int

    @property
    def centre(self) -> tuple[float, float]:
        """Frame coordinates (x, y) of the output's centre (where a dataset's ``/kernel`` is taken:
        ``local_kernels(motion[i], [plan.centre], size)``)."""
        return self.origin[0] + (self.width - 1) / 2.0, self.origin[1] + (self.height - 1) / 2.0

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of the sharp crop ``render`` takes."""
        return self.height + 2 * self.margin, self.width + 2 * self.margin

    def render(self, crop_linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blur a sharp linear crop.

        Args:
            crop_linear: float32-compatible ``(H + 2m, W + 2m, 3)`` linear RGB, m = ``margin``
                (a larger crop is refused: its centre would be ambiguous).

        Returns:
            ``(blurred, sharp)``: float32 ``(H, W, 3)`` each; ``sharp`` is the crop's centre,
            aligned pixel for pixel with ``blurred``.
        """
        crop = np.ascontiguousarray(crop_linear, dtype=np.float32)
        if crop.shape != (*self.crop_size, 3):
            raise ValueError(f"crop must have shape {(*self.crop_size, 3)} (output {self.height}x{self.width} "
                             f"plus margin {self.margin} each side), got {crop.shape}")
        out = np.empty(self.height * self.width * 3, np.float32)
        rj.render_grid(crop.reshape(-1), np.int64(crop.shape[1] * 3), np.int64(self.margin), self.node_x,
                       self.node_y, self.kernels, out, np.int64(self.width * 3))
        m = self.margin
        return out.reshape(self.height, self.width, 3), crop[m:m + self.height, m:m + self.width].copy()


def _single(motion: CameraMotion, index: int) -> CameraMotion:
    if not isinstance(motion, CameraMotion):
        raise ValueError(f"motion must be a CameraMotion, got {type(motion).__name__}")
    return motion[check_index("index", index, 0, len(motion) - 1)]


def window_origin(motion: CameraMotion, width: int, height: int) -> tuple[int, int]:
    """Frame coordinates of the top-left pixel of a ``width`` x ``height`` window placed by the
    (single-sample) motion's anchor: uniform over the positions that fit in the frame, centred
    when the window is larger than the frame."""
    origin = []
    for frame, size, anchor in zip(motion.frame_size, (width, height), motion.anchor[0]):
        room = frame - size
        origin.append(min(int(math.floor(float(anchor) * (room + 1))), room) if room >= 0 else room // 2)
    return origin[0], origin[1]


def _pose(motion: CameraMotion) -> tuple:
    """(rot (1, S, 3), trans (1, S, 3), focal (1,), inv_depth (1,), cx, cy) float64 views of a
    single-sample motion, as the Numba kernels take them."""
    width, height = motion.frame_size
    return (motion.rotation.astype(np.float64), motion.translation.astype(np.float64),
            motion.focal_px.astype(np.float64), (1.0 / motion.depth_m.astype(np.float64)),
            (width - 1.0) / 2.0, (height - 1.0) / 2.0)


def _node_positions(length: int, slope: float, tolerance_px: float) -> np.ndarray:
    """Node coordinates along an axis of ``length`` pixels whose paths change by ``slope`` px/px:
    spaced so neighbours differ by <= 2 * tolerance (mid-way mixes are then within tolerance),
    or one node at the centre when the whole axis differs by <= 2 * tolerance."""
    if not math.isfinite(slope):
        raise ValueError("the motion's blur cannot be measured across the window (its paths are not finite); "
                         "check the motion's focal_px, translation and depth_m")
    gaps = int(math.ceil((length - 1) * slope / (2.0 * tolerance_px) - 1e-12))
    if gaps <= 1:
        return np.array([(length - 1) / 2.0])
    if gaps + 1 > MAX_NODES:
        raise ValueError(f"the blur changes too fast across the window for {MAX_NODES} kernel nodes per side "
                         f"(slope {slope:.3g} px/px); use a larger tolerance_px")
    return np.linspace(0.0, length - 1.0, gaps + 1)


def plan_camera_blur(motion: CameraMotion, width: int, height: int, index: int = 0,
                     origin: tuple[int, int] | None = None, tolerance_px: float = TOLERANCE_PX) -> CameraBlurPlan:
    """Plan the blur of a ``width`` x ``height`` output window by sample ``index`` of ``motion``.

    Args:
        motion: the camera motion (``random_camera_motion`` or read from a dataset).
        width, height: output size, px.
        index: which sample of ``motion``.
        origin: frame coordinates (x, y) of the output's top-left pixel (default: placed by the
            sample's anchor, ``window_origin``).
        tolerance_px: largest deviation of an interpolated kernel's path from the exact one, px.

    Returns:
        ``CameraBlurPlan``; its ``margin`` says how large a sharp crop ``render`` needs.
    """
    width = check_index("width", width, 1, MAX_SIDE)
    height = check_index("height", height, 1, MAX_SIDE)
    tolerance_px = check_number("tolerance_px", tolerance_px, 1e-3, 100.0)
    one = _single(motion, index)
    if origin is None:
        origin = window_origin(one, width, height)
    ox, oy = (check_index("origin x", origin[0], -MAX_SIDE, MAX_SIDE), check_index("origin y", origin[1], -MAX_SIDE, MAX_SIDE))
    rot, trans, focal, inv_depth, cx, cy = _pose(one)
    steps = one.steps
    mats = np.empty((steps, 3, 3))
    for k in range(steps):
        pj.exp_rot(rot[0, k], mats[k])
    sx, sy = pj.window_slopes(mats, trans[0], inv_depth[0], focal[0], cx, cy, float(ox), float(oy), float(width),
                              float(height), SLOPE_PROBES, np.empty((steps, 2)), np.empty((steps, 2)),
                              np.empty((SLOPE_PROBES, SLOPE_PROBES, steps, 2)))
    node_x = _node_positions(width, sx, tolerance_px)
    node_y = _node_positions(height, sy, tolerance_px)
    grid = np.stack(np.meshgrid(node_x + ox, node_y + oy), axis=-1).reshape(1, -1, 2)
    need = pj.kernels_at_positions(rot, trans, focal, inv_depth, cx, cy, grid, np.zeros((1, grid.shape[1], 1, 1), np.float32))
    margin = int(need.max())
    if margin > MAX_MARGIN:
        raise ValueError(f"the motion blurs the window by more than {MAX_MARGIN} px (its kernels would be wider "
                         f"than {2 * MAX_MARGIN + 1} px); check the motion's focal_px, translation and depth_m")
    kernels = np.zeros((1, grid.shape[1], 2 * margin + 1, 2 * margin + 1), np.float32)
    pj.kernels_at_positions(rot, trans, focal, inv_depth, cx, cy, grid, kernels)
    kernels = kernels.reshape(len(node_y), len(node_x), 2 * margin + 1, 2 * margin + 1)
    return CameraBlurPlan(width, height, (ox, oy), node_x, node_y, kernels, margin)


def camera_margin(motion: CameraMotion, width: int, height: int, index: int = 0,
                  origin: tuple[int, int] | None = None, tolerance_px: float = TOLERANCE_PX) -> int:
    """Pixels of sharp margin (each side) sample ``index`` needs to blur a ``width`` x ``height``
    window: ``plan_camera_blur(...).margin``."""
    return plan_camera_blur(motion, width, height, index, origin, tolerance_px).margin


def blur_camera(image_linear: np.ndarray, motion: CameraMotion, index: int = 0, margin: int | None = None,
                origin: tuple[int, int] | None = None, tolerance_px: float = TOLERANCE_PX
                ) -> tuple[np.ndarray, np.ndarray]:
    """Blur a linear image by a rotating (and translating) camera; valid region only.

    Args:
        image_linear: float32-compatible ``(H', W', 3)`` linear RGB: the sharp scene with a
            margin on every side (no border is invented).
        motion: the camera motion; sample ``index`` is used.
        margin: pixels cut from each side; default: the smallest margin the motion needs for
            this image (the output is then as large as it can be).
        origin: frame coordinates (x, y) of the output's top-left pixel (default: the anchor's).
        tolerance_px: see ``plan_camera_blur``.

    Returns:
        ``(blurred, sharp)``: float32 ``(H' - 2m, W' - 2m, 3)`` each, aligned pixel for pixel.

    Raises:
        ValueError: the image is too small for the margin the motion needs, or bad arguments.

    Example:
        >>> from blurgen.camera.motion import random_camera_motion
        >>> motion, _ = random_camera_motion(1, seed=3)
        >>> blurred, sharp = blur_camera(np.full((200, 300, 3), 0.5, np.float32), motion)
        >>> blurred.shape == sharp.shape, bool(np.allclose(blurred, 0.5, atol=1e-5))
        (True, True)
    """
    image = np.asarray(image_linear)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image_linear must have shape (H, W, 3), got {image.shape}")
    height, width = image.shape[:2]
    if margin is None:
        # The full image bounds the margin any window inside it needs.
        margin = camera_margin(motion, width, height, index, origin, tolerance_px)
    margin = check_index("margin", margin, 0, MAX_SIDE)
    out_w, out_h = width - 2 * margin, height - 2 * margin
    if out_w < 1 or out_h < 1:
        raise ValueError(f"image {width}x{height} is too small for a blur margin of {margin} px per side")
    plan = plan_camera_blur(motion, out_w, out_h, index, origin, tolerance_px)
    if plan.margin > margin:
        raise ValueError(f"the motion needs a margin of {plan.margin} px for a {out_w}x{out_h} output, got {margin}")
    inset = margin - plan.margin
    crop = image[inset:height - inset, inset:width - inset]
    return plan.render(crop)
