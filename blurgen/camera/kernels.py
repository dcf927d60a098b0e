"""Local blur kernels of a camera motion: at given frame positions, or one random kernel per sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from blurgen.camera import _motion_jit as jit
from blurgen.camera import _project_jit as pj
from blurgen.camera.config import CameraConfig
from blurgen.camera.motion import (
    CameraMotion,
    model_tuple,
    params_dict,
    raise_unfitted,
    resolve_config,
)
from blurgen.core._rng import wrapping_uint64
from blurgen.core.config import MAX_SIDE, check_kernel_size, check_samples

#: Largest |coordinate| of a position kernels are computed at (a window may reach past the frame).
MAX_POSITION_PX = 2 * MAX_SIDE


def _positions(motion: CameraMotion, positions: np.ndarray) -> np.ndarray:
    """Validated float64 positions ``(n, P, 2)`` for ``motion``'s n samples."""
    if not isinstance(motion, CameraMotion):
        raise ValueError(f"motion must be a CameraMotion, got {type(motion).__name__}")
    pos = np.asarray(positions, dtype=np.float64)
    n = len(motion)
    if pos.ndim == 2:
        pos = np.broadcast_to(pos, (n, *pos.shape))
    if pos.ndim != 3 or pos.shape[0] != n or pos.shape[2] != 2 or pos.shape[1] < 1 or not np.isfinite(pos).all():
        raise ValueError(f"positions must be finite (P, 2) or ({n}, P, 2), got shape {np.shape(positions)}")
    if np.abs(pos).max() > MAX_POSITION_PX:
        raise ValueError(f"positions must lie within {MAX_POSITION_PX} px of the frame's corner, got "
                         f"{np.abs(pos).max():.6g}")
    return np.ascontiguousarray(pos)


def _pose_arrays(motion: CameraMotion) -> tuple:
    width, height = motion.frame_size
    return (motion.rotation.astype(np.float64), motion.translation.astype(np.float64),
            motion.focal_px.astype(np.float64), 1.0 / motion.depth_m.astype(np.float64),
            (width - 1.0) / 2.0, (height - 1.0) / 2.0)


def local_kernels(motion: CameraMotion, positions: np.ndarray, size: int = 65) -> np.ndarray:
    """The blur kernel (PSF) of each sample of ``motion`` at frame pixel positions.

    Args:
        motion: ``CameraMotion`` of n samples.
        positions: ``(P, 2)`` frame coordinates (x, y) for every sample, or ``(n, P, 2)``, px
            (pixel centres on integers; the frame's centre is ``((W-1)/2, (H-1)/2)``).
        size: odd kernel side >= 3.

    Returns:
        float32 ``(n, P, size, size)``: non-negative, each summing to 1 with its weighted centroid
        on the centre pixel; true convolution orientation (row = y, column = x): the blurred
        image near (x, y) is the sharp image convolved with it.

    Raises:
        ValueError: a kernel does not fit ``size`` (it is never clipped), or bad arguments.

    Example:
        >>> from blurgen.camera.motion import random_camera_motion
        >>> motion, _ = random_camera_motion(2, seed=0)
        >>> k = local_kernels(motion, [[0, 0], [639.5, 359.5]], size=65)
        >>> k.shape, bool(abs(k.sum(axis=(2, 3)) - 1).max() < 1e-5)
        ((2, 2, 65, 65), True)
    """
    pos = _positions(motion, positions)
    size = check_kernel_size(size)
    psf = np.zeros((len(motion), pos.shape[1], size, size), np.float32)
    need = pj.kernels_at_positions(*_pose_arrays(motion), pos, psf)
    if need.max() > (size - 1) // 2:
        i, p = np.unravel_index(int(np.argmax(need)), need.shape)
        raise ValueError(f"the kernel of sample {i} at ({pos[i, p, 0]:g}, {pos[i, p, 1]:g}) needs size >= "
                         f"{2 * int(need[i, p]) + 1}, got size={size}")
    return psf


def local_paths(motion: CameraMotion, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blur paths whose splats are ``local_kernels``: per sample and position, the knots'
    offsets ``x - s_k`` centred on their time mean (the path runs straight between knots).

    Returns:
        ``paths``: float64 ``(n, P, S, 2)``, px, (x, y); ``radius``: int64 ``(n, P)``, the
        half-size of the smallest kernel that holds each (``size >= 2 * radius + 1``).
    """
    pos = _positions(motion, positions)
    paths = np.empty((len(motion), pos.shape[1], motion.steps, 2))
    need = pj.paths_at_positions(*_pose_arrays(motion), pos, paths)
    return paths, need


def camera_kernels_with_params(n: int, size: int | None = None, seed: int = 0, start: int = 0,
                               config: CameraConfig | None = None, **overrides: Any
                               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``random_kernels`` for a ``CameraConfig``: per sample the local kernel at a position drawn
    uniformly over the frame's pixel centres (``params["position_x"]``, ``["position_y"]``),
    centred on its centroid; samples whose kernels do not fit ``size`` anywhere are redrawn."""
    config = resolve_config(config)
    if size is not None:
        overrides = {**overrides, "size": size}
    if overrides:
        config = config.replace(**overrides)
    n, seed, start = check_samples(n, seed, start)
    psf = np.zeros((n, config.size, config.size), np.float32)
    with wrapping_uint64():
        raw, fitted = jit.kernels_batch(np.int64(seed), np.int64(start), model_tuple(config), psf)
    raise_unfitted(fitted, config, start)
    params = params_dict(raw, start, config)
    # float64: exactly the position the kernel was computed at (local_kernels reproduces it).
    params["position_x"] = raw[:, jit.P_POS_X].copy()
    params["position_y"] = raw[:, jit.P_POS_Y].copy()
    return psf, params
