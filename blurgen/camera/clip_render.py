"""Render a hand-held clip of a static scene: every frame a warp of one still, blurred over its exposure.

The still is the scene as frame 0's mean pose sees it (a window of the camera frame, with a margin
on every side). Frame j's **sharp** image is the still seen from frame j's time-mean pose (a
homography for a rotating camera, bicubic, rounded to uint8); its **blurred** image is that scene
blurred by the frame's exposure about the same pose (``plan_camera_blur``: centred local kernels),
so each pair is aligned as a single camera3d pair is, and across frames the content moves with the
camera. With a rolling shutter, row bands of the output are rendered from their own (later)
exposure windows: each band is the still seen from the band's mean pose, blurred about it; the
sharp target stays the global-shutter image at the frame's mean pose, so the blurred frame also
carries the rolling shutter's skew and wobble against it. Readout 0 is one band per frame: the
global shutter, bit for bit.

Example:
    >>> from blurgen.camera.clip import random_camera_clip
    >>> clip, _ = random_camera_clip(1, frames=3, fps=30, shutter_angle=180, seed=0)
    >>> layout = plan_clip(clip, 0, 64, 48, size=65, margin_px=300)
    >>> still = np.full((48 + 600, 64 + 600, 3), 128, np.uint8)
    >>> frames = [f for f in render_clip(still, layout, lambda u8: u8.astype(np.float32) / 255)]
    >>> frames[0][0].shape, frames[0][1].shape, len(frames)
    ((48, 64, 3), (48, 64, 3), 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from blurgen.camera import _clip_jit as jit
from blurgen.camera._so3_jit import exp_so3
from blurgen.camera.clip import CameraClip
from blurgen.camera.kernels import local_kernels
from blurgen.camera.motion import CameraMotion
from blurgen.camera.render import CameraBlurPlan, plan_camera_blur, window_origin

#: Rolling shutter: most movement (px) of a band's pose between its top and bottom rows.
BAND_TOLERANCE_PX = 0.5
#: Shifts sampled across the window to measure how far the rolling shutter moves the content.
BAND_PROBES = 17
#: Extra source pixels the bicubic warp reads beyond a mapped point.
CUBIC_REACH = 2


@dataclass(frozen=True)
class Band:
    """Rows ``[row0, row1)`` of one frame's output, their blur plan and the pose they are seen from."""

    row0: int
    row1: int
    plan: CameraBlurPlan
    pose: np.ndarray    # (3, 3) camera-to-reference rotation
    centre: np.ndarray  # (3,) m


@dataclass(frozen=True)
class ClipLayout:
    """How clip ``i`` renders into a ``width`` x ``height`` window: per frame its bands, its mean
    pose, its kernel at the window centre; where the still crop sits in frame 0's frame."""

    width: int
    height: int
    origin: tuple[int, int]
    crop_origin: tuple[int, int]
    crop_size: tuple[int, int]
    frames: list[list[Band]]
    poses: list[tuple[np.ndarray, np.ndarray]]
    kernels: np.ndarray
    margins: np.ndarray
    camera: tuple[float, float, float, float]  # inv depth, focal px, cx, cy


def _pose(rotation: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mat = np.empty((3, 3))
    exp_so3(float(rotation[0]), float(rotation[1]), float(rotation[2]), mat)
    return mat, np.asarray(centre, np.float64)


def _band_pose(clip: CameraClip, i: int, j: int, shift_s: float) -> tuple[CameraMotion, np.ndarray, np.ndarray]:
    """The exposure read ``shift_s`` late as a one-sample motion about its own mean, and that
    mean's pose relative to frame 0."""
    steps = clip.steps
    out_rot, out_trans = np.empty((steps, 3)), np.empty((steps, 3))
    ref, mean_t = np.empty((3, 3)), np.empty(3)
    dt = clip.exposure_s / (steps - 1)
    jit.shifted_exposure(clip.rotation[i, j].astype(np.float64), clip.translation[i, j].astype(np.float64), steps,
                         shift_s / dt, out_rot, out_trans, ref, mean_t)
    frame_mat, frame_c = _pose(clip.frame_rotation[i, j], clip.frame_translation[i, j])
    motion = CameraMotion(out_rot[None], out_trans[None], clip.focal_px[i:i + 1], clip.depth_m[i:i + 1],
                          clip.anchor[i:i + 1], np.array([clip.exposure_s]), clip.frame_size)
    return motion, frame_mat @ ref, frame_c + frame_mat @ mean_t


def _bands(clip: CameraClip, i: int, j: int, frame: CameraMotion, width: int, height: int,
           origin: tuple[int, int], camera: tuple) -> list[Band]:
    if clip.readout_s == 0.0:
        mat, centre = _pose(clip.frame_rotation[i, j], clip.frame_translation[i, j])
        return [Band(0, height, plan_camera_blur(frame, width, height, j, origin), mat, centre)]
    frame_h = clip.frame_size[1]
    shift = lambda row: (origin[1] + row) / frame_h * clip.readout_s  # noqa: E731
    corners = np.array([[origin[0], origin[1]], [origin[0] + width - 1, origin[1] + height - 1]], np.float64)
    seen, travel = [], 0.0
    for row in np.linspace(0, height - 1, BAND_PROBES):
        _, mat, centre = _band_pose(clip, i, j, shift(row))
        at = np.empty((2, 2))
        jit.map_points(mat, centre, *camera, corners, at)
        travel += float(np.abs(at - seen[-1]).max()) if seen else 0.0
        seen.append(at)
    count = int(min(height, max(1, math.ceil(travel / BAND_TOLERANCE_PX))))
    edges = np.linspace(0, height, count + 1).round().astype(int)
    bands = []
    for row0, row1 in zip(edges[:-1], edges[1:]):
        motion, mat, centre = _band_pose(clip, i, j, shift((row0 + row1 - 1) / 2.0))
        plan = plan_camera_blur(motion, width, int(row1 - row0), 0, (origin[0], origin[1] + int(row0)))
        bands.append(Band(int(row0), int(row1), plan, mat, centre))
    return bands


def _reach(bands: list[Band], camera: tuple) -> np.ndarray:
    """Frame-0 coordinates the bands' scene crops read: (x_min, y_min, x_max, y_max)."""
    boxes = []
    for band in bands:
        plan, m = band.plan, band.plan.margin + CUBIC_REACH
        x0, y0 = plan.origin[0] - m, plan.origin[1] - m
        x1, y1 = plan.origin[0] + plan.width - 1 + m, plan.origin[1] + plan.height - 1 + m
        at = np.empty((4, 2))
        jit.map_points(band.pose, band.centre, *camera, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], float), at)
        boxes.append([at[:, 0].min(), at[:, 1].min(), at[:, 0].max(), at[:, 1].max()])
    boxes = np.array(boxes)
    return np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()])


def plan_clip(clip: CameraClip, i: int, width: int, height: int, size: int, margin_px: int) -> ClipLayout | None:
    """Plan clip ``i`` in a ``width`` x ``height`` window placed by its anchor, from a still of
    ``(height + 2 margin_px, width + 2 margin_px)``; None when it does not fit: a frame's blur
    needs more than ``size`` allows, or the content moves further than the margin holds."""
    frames = clip.frame_motion(i)
    origin = window_origin(frames[0], width, height)
    w, h = clip.frame_size
    camera = (1.0 / float(clip.depth_m[i]), float(clip.focal_px[i]), (w - 1) / 2.0, (h - 1) / 2.0)
    half = (size - 1) // 2
    per_frame, reach, margins = [], [], []
    for j in range(clip.frames):
        bands = _bands(clip, i, j, frames, width, height, origin, camera)
        margins.append(max(b.plan.margin for b in bands))
        if margins[-1] > half:
            return None
        per_frame.append(bands)
        reach.append(_reach(bands, camera))
    reach = np.array(reach)
    # The still sits around frame 0's window whatever follows: frame j never depends on the length.
    crop_origin = (origin[0] - margin_px, origin[1] - margin_px)
    crop = (width + 2 * margin_px, height + 2 * margin_px)
    if (reach[:, :2].min(axis=0) < crop_origin).any() or (reach[:, 2:].max(axis=0) > np.add(crop_origin, crop) - 1).any():
        return None
    centre = (origin[0] + (width - 1) / 2.0, origin[1] + (height - 1) / 2.0)
    kernels = local_kernels(frames, np.array([centre]), size)[:, 0]
    poses = [_pose(clip.frame_rotation[i, j], clip.frame_translation[i, j]) for j in range(clip.frames)]
    return ClipLayout(width, height, origin, crop_origin, (crop[1], crop[0]), per_frame, poses, kernels,
                      np.array(margins, np.int32), camera)


def _warp(still: np.ndarray, layout: ClipLayout, pose: tuple, x0: int, y0: int, out_h: int, out_w: int) -> np.ndarray:
    out = np.empty((out_h, out_w, 3), np.uint8)
    jit.warp_u8(still, float(layout.crop_origin[0]), float(layout.crop_origin[1]), pose[0], pose[1],
                *layout.camera, float(x0), float(y0), out)
    return out


def render_clip(still_u8: np.ndarray, layout: ClipLayout, decode: Callable[[np.ndarray], np.ndarray]
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames of a planned clip, in order: ``(blurred, sharp)``, float32 linear ``(H, W, 3)``
    (``decode`` turns uint8 codes into linear light) and uint8 ``(H, W, 3)``.

    Args:
        still_u8: uint8 ``layout.crop_size + (3,)``: the static scene around the window; or a
            list of one such still per frame (a filmed scene: frame j is seen in still j).
    """
    stills = [np.ascontiguousarray(s) for s in (still_u8 if isinstance(still_u8, (list, tuple)) else [still_u8])]
    if len(stills) not in (1, len(layout.frames)):
        raise ValueError(f"give one still or one per frame ({len(layout.frames)}), got {len(stills)}")
    for still in stills:
        if still.shape != (*layout.crop_size, 3) or still.dtype != np.uint8:
            raise ValueError(f"still must be uint8 {(*layout.crop_size, 3)}, got {still.dtype} {still.shape}")
    ox, oy = layout.origin
    for j, bands in enumerate(layout.frames):
        still = stills[j % len(stills)]
        blurred = np.empty((layout.height, layout.width, 3), np.float32)
        sharp = None
        for band in bands:
            plan, m = band.plan, band.plan.margin
            scene = _warp(still, layout, (band.pose, band.centre), plan.origin[0] - m, plan.origin[1] - m,
                          plan.height + 2 * m, plan.width + 2 * m)
            blurred[band.row0:band.row1], centre = plan.render(decode(scene))
            pose = layout.poses[j]
            if len(bands) == 1 and np.array_equal(band.pose, pose[0]) and np.array_equal(band.centre, pose[1]):
                sharp = scene[m:m + layout.height, m:m + layout.width]  # seen from the frame's own pose
        if sharp is None:  # rolling shutter: the target is the global-shutter image
            sharp = _warp(still, layout, layout.poses[j], ox, oy, layout.height, layout.width)
        yield blurred, np.ascontiguousarray(sharp)
