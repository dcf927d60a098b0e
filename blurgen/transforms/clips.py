"""Camera shake on clips: ``RandomCameraShake`` on ``(B, T, C, H, W)`` tensors (and, through
``blurgen.transforms.v2``, on ``tv_tensors.Video``), one coherent hand-held trajectory per clip.

Clip b of a call gets the sample index ``counter + b`` (or ``indices[b]``), as an image would; its
camera motion is ``blurgen.random_camera_clip(1, T, fps, shutter_angle, config,
seed=stream_seed, start=index, draws=[d])`` with the first draw d = 0, 1, ... whose every frame's
kernel fits ``config.size`` (``redraws`` = d). The input frames are a window of the camera frame
placed by the clip's anchor (``blurgen.camera.render.window_origin``), so frame j is blurred by
the local kernel of its own exposure window at the window's centre -- the kernel a clips dataset
stores for that frame -- and the kernels of one clip are consecutive exposures of one motion.
One kernel per frame (not the spatially varying blur of ``make --clips``): across a 256-pixel
window the local kernels of realistic shake differ by a fraction of a pixel.

``clip_mode``:

- ``"blur"`` (default): each frame is blurred about its own time-mean pose; the content does
  not move, so frames stay aligned with the input (boxes and masks stay valid).
- ``"move"``: the content also moves with the camera: frame j is first warped to frame j's
  time-mean pose (the homography of the rotation between frame 0's and frame j's mean poses,
  bicubic, reflected at the borders; frame 0 is unchanged), then blurred about it, as
  ``make --clips`` renders a clip. ``return_params=True`` gives the sampling grid
  (``grid``, for ``torch.nn.functional.grid_sample(..., align_corners=True)``) so targets can be
  warped the same way; boxes and masks no longer match the frames.

Sensor values (noise levels) are drawn once per clip; the noise itself per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from blurgen.camera import _clip_jit as cj
from blurgen.camera._so3_jit import exp_so3
from blurgen.camera.clip import check_clip_settings, random_camera_clip
from blurgen.camera.config import CameraConfig
from blurgen.camera.kernels import local_kernels, local_paths
from blurgen.camera.render import window_origin
from blurgen.core.streams import sample_bits

#: What ``clip_mode`` may be.
CLIP_MODES = ("blur", "move")
#: Draws of one clip before its camera is declared too shaky for the kernel size.
MAX_DRAWS = 200
TAG_CLIP_NOISE = 0x434C4950  # "CLIP": per-frame noise keys


@dataclass(frozen=True)
class ClipSettings:
    """The clip options of ``RandomCameraShake``: ``fps`` in (0, 10000], ``shutter_angle``
    in (0, 360] degrees, ``mode`` one of ``CLIP_MODES``."""

    fps: float = 30.0
    shutter_angle: float = 180.0
    mode: str = "blur"

    def __post_init__(self) -> None:
        _, fps, angle, _ = check_clip_settings(1, self.fps, self.shutter_angle)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "shutter_angle", angle)
        if self.mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {CLIP_MODES}, got {self.mode!r}")


@dataclass
class ClipDraw:
    """One clip's camera: per-frame kernels ``(T, k, k)`` at the window centre, the window's
    ``origin`` (x, y) in the camera frame, the draw number, the ``CameraClip``."""

    kernels: np.ndarray
    origin: tuple[int, int]
    redraws: int
    clip: object


def draw_clip(config: CameraConfig, settings: ClipSettings, seed: int, index: int, frames: int,
              width: int, height: int) -> ClipDraw:
    """Clip ``index`` of ``seed`` for a ``width`` x ``height`` window of ``frames`` frames: the
    first draw whose frames' kernels at the window centre fit ``config.size``.

    Example:
        >>> d = draw_clip(CameraConfig(), ClipSettings(fps=30), seed=0, index=2, frames=3, width=64, height=48)
        >>> d.kernels.shape, bool(abs(d.kernels.sum(axis=(1, 2)) - 1).max() < 1e-5)
        ((3, 65, 65), True)
    """
    half = (config.size - 1) // 2
    for draw in range(MAX_DRAWS):
        clip, _ = random_camera_clip(1, frames, settings.fps, settings.shutter_angle, config, seed=seed,
                                     start=index, draws=np.array([draw]))
        motion = clip.frame_motion(0)
        origin = window_origin(motion[0:1], width, height)
        centre = np.array([[origin[0] + (width - 1) / 2.0, origin[1] + (height - 1) / 2.0]])
        _, need = local_paths(motion, centre)
        if int(need.max()) <= half:
            return ClipDraw(local_kernels(motion, centre, config.size)[:, 0], origin, draw, clip)
    raise ValueError(f"clip {index}: no draw in {MAX_DRAWS} kept every frame's blur within size {config.size}; "
                     "use a larger kernel size or a smaller shake_scale")


def warp_grid(draw: ClipDraw, width: int, height: int) -> np.ndarray:
    """float32 ``(T, H, W, 2)``: for each output pixel of frame j, where it samples input frame j
    (x, y normalised to [-1, 1], ``grid_sample`` with ``align_corners=True``): the content as
    frame j's mean pose sees it, frame 0's pose being the input's."""
    clip = draw.clip
    w, h = clip.frame_size
    camera = (1.0 / float(clip.depth_m[0]), float(clip.focal_px[0]), (w - 1) / 2.0, (h - 1) / 2.0)
    ys, xs = np.mgrid[0:height, 0:width]
    pts = np.stack([xs.ravel() + draw.origin[0], ys.ravel() + draw.origin[1]], axis=1).astype(np.float64)
    grid = np.empty((clip.frames, height, width, 2), np.float32)
    at, mat = np.empty_like(pts), np.empty((3, 3))
    for j in range(clip.frames):
        r = clip.frame_rotation[0, j]
        exp_so3(float(r[0]), float(r[1]), float(r[2]), mat)
        cj.map_points(mat, clip.frame_translation[0, j].astype(np.float64), *camera, pts, at)
        at -= draw.origin
        grid[j, ..., 0] = (2.0 * at[:, 0] / max(width - 1, 1) - 1.0).reshape(height, width)
        grid[j, ..., 1] = (2.0 * at[:, 1] / max(height - 1, 1) - 1.0).reshape(height, width)
    return grid


def _check(shake, x: torch.Tensor) -> None:
    """What the image checks (dtype, value range) leave to clips: sides, the model, the pipeline."""
    if min(x.shape, default=0) < 1:
        raise ValueError(f"clips must be (B, T, C, H, W) with every side >= 1, got {tuple(x.shape)}")
    if shake.bank is not None or not isinstance(shake.config, CameraConfig):
        raise ValueError(f"clips (B, T, C, H, W) need a blurgen.CameraConfig (one continuous camera trajectory "
                         f"per clip), got {type(shake.bank or shake.config).__name__}")
    if shake.pipeline != "srgb":
        raise ValueError(f"clips take pipeline='srgb', got {shake.pipeline!r}")


def _warp(frames: torch.Tensor, grid: np.ndarray, gamma) -> torch.Tensor:
    """``frames`` ``(T, C, H, W)`` sampled at ``grid`` (bicubic, reflected borders)."""
    work = frames if frames.dtype == torch.float64 else frames.float()
    if frames.dtype == torch.uint8:
        work = work / 255.0
    g = torch.from_numpy(grid).to(device=work.device, dtype=work.dtype)
    out = F.grid_sample(work, g, mode="bicubic", padding_mode="reflection", align_corners=True)
    if gamma is not None or frames.dtype == torch.uint8:
        out = out.clamp(0.0, 1.0)  # bicubic overshoot: light levels stay light levels
    if frames.dtype == torch.uint8:
        return (out * 255.0).round_().to(torch.uint8)
    return out.to(frames.dtype)


def _noise(shake, idx: np.ndarray, draws: dict, chosen: np.ndarray, frames: int):
    """Per-frame noise ``(a, b, keys)`` of the chosen clips (levels per clip), or None."""
    if not shake.noise or not chosen.size:
        return None
    bits = sample_bits(shake.stream_seed, idx[chosen], TAG_CLIP_NOISE, frames).reshape(-1)
    keys = np.stack([bits & np.uint64(0xFFFFFFFF), bits >> np.uint64(32)], axis=1)
    return (np.repeat(draws["noise_a"][chosen], frames), np.repeat(draws["noise_b"][chosen], frames), keys)


def shake_clips(shake, input: torch.Tensor, indices, return_params: bool, blur: Callable, common_size: Callable):
    """``RandomCameraShake.forward`` on ``(B, T, C, H, W)`` (see the module docstring), with the
    image path's ``blur(x, kernels, gamma, method, noise)`` and ``common_size(kernels)``."""
    _check(shake, input)
    b, t, c, h, w = input.shape
    idx = _indices(shake, b, indices)
    draws = shake.draw(idx)
    chosen = np.flatnonzero(draws["applied"])
    clips = [draw_clip(shake.config, shake.clip, shake.stream_seed, int(idx[m]), t, w, h) for m in chosen]
    out, grids = input, {}
    if chosen.size:
        kernels = common_size([k for d in clips for k in d.kernels])
        subset = input[torch.as_tensor(chosen, device=input.device)]
        if shake.clip.mode == "move":
            grids = {int(m): warp_grid(d, w, h) for m, d in zip(chosen, clips)}
            subset = torch.stack([_warp(subset[n], grids[int(m)], shake.gamma) for n, m in enumerate(chosen)])
        blurred = blur(subset.reshape(-1, c, h, w), kernels, shake.gamma, shake.method,
                        _noise(shake, idx, draws, chosen, t)).reshape(len(chosen), t, c, h, w)
        out = blurred if chosen.size == b else input.index_copy(
            0, torch.as_tensor(chosen, device=input.device), blurred)
    if not return_params:
        return out
    return out, _params(idx, draws, chosen, clips, grids, (t, h, w))


def _indices(shake, b: int, indices) -> np.ndarray:
    from blurgen.core.streams import check_indices

    if indices is None:
        return shake.next_indices(b)
    idx = check_indices(indices)
    if idx.size != b:
        raise ValueError(f"indices must give one index per clip ({b}), got {idx.size}")
    return idx


def _params(idx: np.ndarray, draws: dict, chosen: np.ndarray, clips: list[ClipDraw], grids: dict,
            shape: tuple[int, int, int]) -> dict:
    """``return_params`` for clips: per clip ``index``, ``applied``, ``redraws``, ``noise_a``,
    ``noise_b``; per frame ``kernels`` (B, T, k, k) (a delta where not applied),
    ``frame_rotation`` (B, T, 3) rad; ``grid`` (B, T, H, W, 2) with ``clip_mode="move"``."""
    t, h, w = shape
    n = len(idx)
    size = max([d.kernels.shape[-1] for d in clips], default=1)
    kernels = np.zeros((n, t, size, size), np.float32)
    kernels[:, :, size // 2, size // 2] = 1.0
    rotation = np.zeros((n, t, 3), np.float32)
    redraws = np.zeros(n, np.int64)
    for m, d in zip(chosen, clips):
        kernels[m], rotation[m], redraws[m] = d.kernels, d.clip.frame_rotation[0], d.redraws
    out = {"index": torch.from_numpy(idx), "applied": torch.from_numpy(draws["applied"]),
           "kernels": torch.from_numpy(kernels), "frame_rotation": torch.from_numpy(rotation),
           "redraws": torch.from_numpy(redraws),
           "noise_a": torch.from_numpy(draws["noise_a"] * draws["applied"]),
           "noise_b": torch.from_numpy(draws["noise_b"] * draws["applied"])}
    if grids:
        identity = np.stack(np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h)), axis=-1).astype(np.float32)
        grid = np.broadcast_to(identity, (n, t, h, w, 2)).copy()
        for m, g in grids.items():
            grid[m] = g
        out["grid"] = torch.from_numpy(grid)
    return out
