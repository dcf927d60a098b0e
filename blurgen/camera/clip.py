"""Hand-held video: one continuous camera-shake trajectory per clip (``random_camera_clip``).

A clip of ``frames`` frames at ``fps`` with shutter angle ``s`` exposes frame j over
``[j / fps, j / fps + e]``, ``e = s / 360 / fps``. Its camera motion comes from the camera3d shake
process (the same fitted model, ``CameraConfig.process``), drawn once per clip (focal length,
anchor, amplitude, direction, anisotropy) and stepped in time order through the whole clip, gaps
between exposures included (``_clip_jit``). Frame j of clip i of seed s depends on (s, i) alone,
never on the clip length: a longer clip extends a shorter one bit for bit.

Each frame is an ordinary ``CameraMotion`` exposure (rotations about the frame's own time-mean
pose, so its kernels are centred) plus that mean pose relative to frame 0's (``frame_rotation``,
``frame_translation``): how the image content moves from frame to frame. ``config.exposure_s`` does
not apply (the exposure is the shutter's); ``config.steps`` knots span each exposure. With a
rolling shutter (``readout_s`` > 0: the sensor's rows are read over ``readout_s``), each frame
carries ``ceil(readout_s / knot spacing)`` more knots past its exposure, which row r reads shifted
by ``r / H * readout_s``; ``readout_s = 0`` is the global shutter (the same arrays bit for bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from blurgen.camera import _clip_jit as jit
from blurgen.camera.config import CameraConfig
from blurgen.camera.motion import CameraMotion, model_tuple, resolve_config
from blurgen.core._rng import wrapping_uint64
from blurgen.core.config import check_index, check_number, check_samples

#: Most frames per clip, frames per second, and seconds of rolling-shutter readout.
MAX_FRAMES, MAX_FPS, MAX_READOUT_S = 10_000, 10_000.0, 1.0
#: Shortest exposure a clip may have (as ``CameraConfig.exposure_s``), s.
MIN_EXPOSURE_S = 1e-5
#: The longest frame exposure, s: the camera model's exposure range (``CameraConfig.exposure_s``).
MAX_CLIP_EXPOSURE_S = 10.0
#: Longest grid step in the gaps between exposures, s: the rotation is integrated through them
#: (trapezoid; relative error ~ (2 pi f h)^2 / 12 < 1e-5 at the fitted 9.3 Hz tremor).
GAP_STEP_S = 5e-4
#: Grid times closer than this are one time (frame j's last knot is frame j+1's first at 360 degrees).
MERGE_S = 1e-12
#: Most knots that continue an exposure into the gap before the next frame.
MAX_GAP_KNOTS = 4096


def check_clip_settings(frames: int, fps: float, shutter_angle: float, readout_s: float = 0.0) -> tuple:
    """Validated ``(frames, fps, shutter_angle, readout_s)``; ``ValueError`` naming the value."""
    frames = check_index("frames", frames, 1, MAX_FRAMES)
    fps = check_number("fps", fps, 0.0, MAX_FPS, lo_open=True)
    shutter_angle = check_number("shutter_angle", shutter_angle, 0.0, 360.0, lo_open=True)
    readout_s = check_number("readout_s", readout_s, 0.0, MAX_READOUT_S)
    if shutter_angle / 360.0 / fps < MIN_EXPOSURE_S:
        raise ValueError(f"shutter_angle {shutter_angle:g} at fps {fps:g} exposes {shutter_angle / 360 / fps:.3g} s, "
                         f"shorter than {MIN_EXPOSURE_S:g} s")
    if shutter_angle / 360.0 / fps > MAX_CLIP_EXPOSURE_S:  # fps 1e-300 exposed 1e300 s: NaN poses
        raise ValueError(f"shutter_angle {shutter_angle:g} at fps {fps:g} exposes {shutter_angle / 360 / fps:.3g} s, "
                         f"longer than {MAX_CLIP_EXPOSURE_S:g} s; raise the fps or lower the shutter angle")
    return frames, fps, shutter_angle, readout_s


def clip_grid(frames: int, fps: float, shutter_angle: float, steps: int, readout_s: float
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """The time grid of a clip: ``times`` (G,) s, ``knots`` (T', K) int64 grid index of every
    frame's knots (T' >= frames: later frames whose knots fall before the clip's last knot, so the
    grid up to it is the same for any longer clip), and the knots past each exposure (readout).

    After each exposure the knots continue at the same spacing until the next frame starts (at
    most ``MAX_GAP_KNOTS``, then steps of ``GAP_STEP_S``), so a rolling shutter's late knots are
    points of the same grid: the trajectory does not depend on ``readout_s``."""
    exposure = shutter_angle / 360.0 / fps
    dt = exposure / (steps - 1)
    extra = int(math.ceil(readout_s / dt - 1e-9)) if readout_s > 0 else 0
    follow = min(int(math.floor((1.0 / fps - exposure) / dt + 1e-9)), MAX_GAP_KNOTS)
    reach = exposure + extra * dt  # last knot of a frame, after its start
    total = frames + max(0, int(math.ceil(reach * fps)) - 1)
    k = np.arange(steps + max(extra, follow), dtype=np.float64)
    knot_times = np.arange(total, dtype=np.float64)[:, None] / fps + exposure * (k / (steps - 1))
    knot_times[:, steps - 1] = np.arange(total) / fps + exposure  # the exposure's end, exactly
    times = np.sort(knot_times.ravel())
    times = times[np.concatenate([[True], np.diff(times) > MERGE_S])]
    gaps = np.diff(times)
    fill = np.maximum(np.ceil(gaps / max(dt, GAP_STEP_S) - 1e-9).astype(np.int64), 1)
    # Gap i gets fill[i] - 1 evenly spaced points; sub-step 0 is the kept time itself, exactly.
    gap = np.repeat(np.arange(len(gaps)), fill)
    sub = np.arange(len(gap)) - np.repeat(np.cumsum(fill) - fill, fill)
    grid = np.append(times[gap] + gaps[gap] * (sub / fill[gap]), times[-1])
    knots = np.searchsorted(grid, knot_times[:, :steps + extra] - MERGE_S).astype(np.int64)
    return grid, knots, extra


@dataclass(frozen=True, eq=False)
class CameraClip:
    """The camera motion of ``n`` clips of ``T`` frames.

    Attributes:
        rotation: float32 ``(n, T, K, 3)``, rad: per frame, rotation vectors taking the camera at
            each knot to the frame's time-mean pose; the first ``steps`` knots span the exposure,
            the rest (``K - steps``) continue at the same spacing for a rolling shutter's readout.
        translation: float32 ``(n, T, K, 3)``, m: camera centre in the frame's mean pose.
        frame_rotation: float32 ``(n, T, 3)``: frame j's mean pose to frame 0's (rotation vector;
            frame 0 is exactly 0).
        frame_translation: float32 ``(n, T, 3)``, m: frame j's mean centre in frame 0's pose.
        focal_px, depth_m: float32 ``(n,)``; anchor float32 ``(n, 2)``: as ``CameraMotion``.
        exposure_s: the exposure of every frame, s; fps, shutter_angle, readout_s: the settings.
        steps: knots per exposure; frame_size: ``(width, height)``.
    """

    rotation: np.ndarray
    translation: np.ndarray
    frame_rotation: np.ndarray
    frame_translation: np.ndarray
    focal_px: np.ndarray
    depth_m: np.ndarray
    anchor: np.ndarray
    fps: float
    shutter_angle: float
    readout_s: float
    steps: int
    frame_size: tuple[int, int]

    def __len__(self) -> int:
        return self.rotation.shape[0]

    @property
    def frames(self) -> int:
        return self.rotation.shape[1]

    @property
    def exposure_s(self) -> float:
        return self.shutter_angle / 360.0 / self.fps

    def frame_motion(self, clip: int) -> CameraMotion:
        """The ``T`` exposures of clip ``clip`` as a ``CameraMotion`` of T samples (global shutter:
        the exposure knots), for ``local_kernels`` and ``plan_camera_blur``."""
        i = check_index("clip", clip, 0, len(self) - 1)
        t = self.frames
        return CameraMotion(self.rotation[i, :, :self.steps], self.translation[i, :, :self.steps],
                            np.full(t, self.focal_px[i]), np.full(t, self.depth_m[i]),
                            np.repeat(self.anchor[i:i + 1], t, axis=0), np.full(t, self.exposure_s, np.float32),
                            self.frame_size)

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-clip arrays a dataset stores under ``/motion``."""
        return {"rotation": self.rotation, "translation": self.translation,
                "frame_rotation": self.frame_rotation, "frame_translation": self.frame_translation}


def random_camera_clip(n: int, frames: int, fps: float, shutter_angle: float, config: CameraConfig | None = None,
                       seed: int = 0, start: int = 0, readout_s: float = 0.0, draws: np.ndarray | None = None
                       ) -> tuple[CameraClip, dict[str, np.ndarray]]:
    """Draw ``n`` hand-held clips, clips ``start .. start + n - 1`` of ``seed``.

    Args:
        n: clips, >= 1.
        frames: frames per clip, in [1, 10000].
        fps: frames per second, in (0, 10000].
        shutter_angle: degrees in (0, 360]; each frame is exposed ``shutter_angle / 360 / fps`` s
            (360: consecutive exposures tile the clip).
        config: the camera (default ``CameraConfig()``); its ``exposure_s`` does not apply.
        seed: non-negative int; clip i depends only on (seed, i), frame j not on ``frames``.
        start: index of the first clip.
        readout_s: rolling-shutter readout of the whole frame height, s (0: global shutter).
        draws: ``(n,)`` draw numbers (default 0): a dataset redraws a clip that outgrows its
            margins as draw 1, 2, ... of the same clip. Clips are never redrawn here: a frame's
            local kernels may outgrow ``config.size`` (``params["frame_kernel_radius_px"]``).

    Returns:
        ``motion``: ``CameraClip``; ``params``: dict of arrays, per clip ``(n,)``: ``focal_35mm``,
        ``focal_px``, ``anchor_x``, ``anchor_y``, ``shake_amplitude``, ``shake_direction_rad``,
        ``shake_anisotropy``, ``depth_m``, ``exposure_s``, ``seed_index``, ``redraws``; per frame
        ``(n, T)``: ``frame_kernel_radius_px`` (largest local kernel half-size over the frame's
        corners, edge midpoints and centre), ``max_angle_rad`` (largest rotation from the frame's
        mean pose), ``drift_rad`` (angle of the frame's mean pose from frame 0's).

    Example:
        >>> clip, params = random_camera_clip(2, frames=4, fps=30, shutter_angle=180, seed=1)
        >>> clip.rotation.shape, clip.frame_rotation.shape, float(clip.frame_rotation[0, 0].max())
        ((2, 4, 256, 3), (2, 4, 3), 0.0)
        >>> short, _ = random_camera_clip(1, frames=2, fps=30, shutter_angle=180, seed=1, start=1)
        >>> bool((short.rotation[0] == clip.rotation[1, :2]).all())
        True
    """
    config = resolve_config(config)
    if config.blur_length_px is not None:
        raise ValueError("blur_length_px does not apply to clips: each frame's exposure is shutter_angle / 360 / fps")
    frames, fps, shutter_angle, readout_s = check_clip_settings(frames, fps, shutter_angle, readout_s)
    n, seed, start = check_samples(n, seed, start)
    draws = np.zeros(n, np.int64) if draws is None else np.ascontiguousarray(draws, np.int64)
    if draws.shape != (n,) or (draws < 0).any():
        raise ValueError(f"draws must be ({n},) non-negative integers, got shape {draws.shape}")
    times, knots, extra = clip_grid(frames, fps, shutter_angle, config.steps, readout_s)
    k_all = config.steps + extra
    rot = np.empty((n, frames, k_all, 3), np.float32)
    trans = np.empty((n, frames, k_all, 3), np.float32)
    frame_rot = np.empty((n, frames, 3), np.float32)
    frame_trans = np.empty((n, frames, 3), np.float32)
    with wrapping_uint64():
        q, radius = jit.clip_batch(np.int64(seed), np.int64(start), draws, model_tuple(config), times, knots,
                                   rot, trans, frame_rot, frame_trans)
    params = _clip_params(q, radius, rot, frame_rot, start, draws, shutter_angle / 360.0 / fps)
    motion = CameraClip(rot, trans, frame_rot, frame_trans, params["focal_px"], params["depth_m"],
                        np.stack([params["anchor_x"], params["anchor_y"]], axis=1), fps, shutter_angle,
                        readout_s, config.steps, config.frame_size)
    return motion, params


def _clip_params(q: np.ndarray, radius: np.ndarray, rot: np.ndarray, frame_rot: np.ndarray, start: int,
                 draws: np.ndarray, exposure_s: float) -> dict[str, np.ndarray]:
    columns = {"focal_35mm": jit.Q_FOCAL35, "focal_px": jit.Q_FOCAL_PX, "anchor_x": jit.Q_ANCHOR_X,
               "anchor_y": jit.Q_ANCHOR_Y, "shake_amplitude": jit.Q_AMPLITUDE,
               "shake_direction_rad": jit.Q_DIRECTION, "shake_anisotropy": jit.Q_ANISOTROPY,
               "depth_m": jit.Q_DEPTH}
    params = {name: q[:, col].astype(np.float32) for name, col in columns.items()}
    n = q.shape[0]
    params["exposure_s"] = np.full(n, exposure_s, np.float32)
    params["seed_index"] = np.arange(start, start + n, dtype=np.int64)
    params["redraws"] = draws.astype(np.int32)
    params["frame_kernel_radius_px"] = radius.astype(np.int32)
    params["max_angle_rad"] = np.linalg.norm(rot, axis=3).max(axis=2).astype(np.float32)
    params["drift_rad"] = np.linalg.norm(frame_rot, axis=2).astype(np.float32)
    return params
