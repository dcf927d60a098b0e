"""Random hand-held camera motion: rotations (and translations) over each exposure.

``random_camera_motion(n, config, seed, start)`` draws samples ``start .. start + n - 1``; sample
i depends only on ``(seed, i)``. The poses are stored as ``CameraMotion`` (float32 arrays, exactly
what a dataset records), and every consumer (local kernels, rendering) reads them from there, so a
motion read back from a file renders the same arrays as the one drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blurgen.camera import _motion_jit as jit
from blurgen.camera.config import FILM_WIDTH_MM, CameraConfig
from blurgen.core._rng import wrapping_uint64
from blurgen.core.config import MAX_DRAWS, MAX_SIDE, MIN_SIDE, check_index, check_samples

#: Columns of the sampler's parameter rows: float32 ones, then int32 ones.
_FLOAT_PARAMS = {"exposure_s": jit.P_EXPOSURE, "focal_35mm": jit.P_FOCAL35, "focal_px": jit.P_FOCAL_PX,
                 "anchor_x": jit.P_ANCHOR_X, "anchor_y": jit.P_ANCHOR_Y, "shake_amplitude": jit.P_AMPLITUDE,
                 "shake_direction_rad": jit.P_DIRECTION, "shake_anisotropy": jit.P_ANISOTROPY,
                 "depth_m": jit.P_DEPTH, "max_angle_rad": jit.P_MAX_ANGLE}
_INT_PARAMS = {"frame_kernel_radius_px": jit.P_RADIUS, "redraws": jit.P_REDRAWS}
#: Bounds a motion's arrays must keep (far beyond any camera, within what the renderer measures):
#: a focal length up to 1e7 px (2000 mm on a 16384 px frame is 9.1e5), translations up to 1e4 m,
#: exposures up to 1e3 s.
MAX_FOCAL_PX, MAX_TRANSLATION_M, MAX_EXPOSURE_S = 1e7, 1e4, 1e3
_PARAM_COLUMNS = {**{name: (col, np.float32) for name, col in _FLOAT_PARAMS.items()},
                  **{name: (col, np.int32) for name, col in _INT_PARAMS.items()}}


@dataclass(frozen=True, eq=False)
class CameraMotion:
    """Poses of ``n`` exposures, each sampled at ``S`` knots evenly spread over the exposure.

    Attributes:
        rotation: float32 ``(n, S, 3)``, rad: rotation vectors (axis x angle; camera x right,
            y down, z forward) taking the camera at each knot to its time-mean pose.
        translation: float32 ``(n, S, 3)``, m: camera centre in the mean pose's frame, time mean 0.
        focal_px: float32 ``(n,)``, focal length in pixels of the frame.
        depth_m: float32 ``(n,)``, distance of the fronto-parallel scene plane (inf: at infinity).
        anchor: float32 ``(n, 2)`` in [0, 1]: where an output window (or a sample's kernel) sits
            in the frame, as a fraction of the free room along x and y.
        exposure_s: float32 ``(n,)``, exposure time, s (the knots are ``exposure_s / (S-1)`` apart).
        frame_size: ``(width, height)`` of the frame in pixels; the principal point is its centre.
    """

    rotation: np.ndarray
    translation: np.ndarray
    focal_px: np.ndarray
    depth_m: np.ndarray
    anchor: np.ndarray
    exposure_s: np.ndarray
    frame_size: tuple[int, int]

    def __post_init__(self) -> None:
        rot = _array("rotation", self.rotation, None)
        if rot.ndim != 3 or rot.shape[2] != 3 or rot.shape[0] < 1 or rot.shape[1] < 2:
            raise ValueError(f"rotation must have shape (n, steps >= 2, 3), got {np.shape(self.rotation)}")
        n = rot.shape[0]
        if not np.isfinite(rot).all() or np.linalg.norm(rot, axis=2).max() >= 3.0:
            raise ValueError("rotation must be finite rotation vectors with angles below 3 rad")
        object.__setattr__(self, "rotation", rot)
        object.__setattr__(self, "translation", _array("translation", self.translation, rot.shape,
                                                       lo=-MAX_TRANSLATION_M, hi=MAX_TRANSLATION_M))
        object.__setattr__(self, "focal_px", _array("focal_px", self.focal_px, (n,), lo=1e-3, hi=MAX_FOCAL_PX))
        object.__setattr__(self, "depth_m", _array("depth_m", self.depth_m, (n,), lo=1e-6, inf=True))
        object.__setattr__(self, "anchor", _array("anchor", self.anchor, (n, 2), lo=0.0, hi=1.0))
        object.__setattr__(self, "exposure_s", _array("exposure_s", self.exposure_s, (n,), lo=0.0, hi=MAX_EXPOSURE_S))
        try:
            width, height = self.frame_size
        except (TypeError, ValueError):
            raise ValueError(f"frame_size must be (width, height), got {self.frame_size!r}") from None
        object.__setattr__(self, "frame_size", (check_index("frame width", width, MIN_SIDE, MAX_SIDE),
                                                check_index("frame height", height, MIN_SIDE, MAX_SIDE)))

    def __len__(self) -> int:
        return self.rotation.shape[0]

    @property
    def steps(self) -> int:
        """Knots per exposure, S."""
        return self.rotation.shape[1]

    def __getitem__(self, index: int | slice) -> CameraMotion:
        """Sample ``index`` (an int gives a motion of one sample) or a slice of samples."""
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"sample {index} out of range for {len(self)} samples")
            index = slice(int(index) % len(self), int(index) % len(self) + 1)
        if not isinstance(index, slice):
            raise TypeError(f"CameraMotion indices are ints or slices, got {type(index).__name__}")
        return CameraMotion(**{name: value[index] for name, value in self.arrays().items()},
                            frame_size=self.frame_size)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-sample arrays by field name (what a dataset stores; ``frame_size`` aside)."""
        return {name: getattr(self, name) for name in
                ("rotation", "translation", "focal_px", "depth_m", "anchor", "exposure_s")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], frame_size: tuple[int, int]) -> CameraMotion:
        """Inverse of ``arrays()``; missing ``translation`` means zeros, missing ``depth_m`` inf."""
        rot = np.asarray(arrays["rotation"])
        n = rot.shape[0] if rot.ndim == 3 else 0
        values = {"translation": np.zeros(rot.shape, np.float32), "depth_m": np.full(n, np.inf, np.float32),
                  **arrays}
        return cls(**values, frame_size=frame_size)


def _array(name: str, value: Any, shape: tuple | None, lo: float = -np.inf, hi: float = np.inf,
           inf: bool = False) -> np.ndarray:
    try:
        arr = np.ascontiguousarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a real float array of shape {shape}, got {type(value).__name__}") from None
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    ok = (np.isfinite(arr) | (inf & np.isposinf(arr))) & (arr >= lo) & (arr <= hi)
    if not ok.all():
        raise ValueError(f"{name} must be finite and in [{lo}, {hi}]{' (or inf)' if inf else ''}, "
                         f"got {float(arr[~ok].flat[0])!r}")
    return arr


def model_tuple(config: CameraConfig) -> tuple:
    """The model tuple the Numba samplers take (fixed dtypes: one compilation)."""
    cam = np.zeros(jit.N_CAM)
    p = config.process
    cam[jit.C_FRAME_W], cam[jit.C_FRAME_H] = config.frame_size
    cam[jit.C_F35_LO], cam[jit.C_F35_HI] = config.focal_35mm
    cam[jit.C_EXP_LO], cam[jit.C_EXP_HI] = config.exposure_s
    cam[jit.C_SHAKE], cam[jit.C_ROLL] = config.shake_scale, config.roll_scale
    cam[jit.C_AMP_SD], cam[jit.C_ANISO], cam[jit.C_TAU] = p.amplitude_log_sd, p.anisotropy_max, p.drift_tau_s
    cam[jit.C_TRANS] = config.translation_mps
    cam[jit.C_DEPTH_LO], cam[jit.C_DEPTH_HI] = config.depth_m
    if config.blur_length_px is not None:
        cam[jit.C_BLUR_LO], cam[jit.C_BLUR_HI] = config.blur_length_px
    assert FILM_WIDTH_MM == 36.0  # the Numba sampler divides by the same constant
    return (cam, np.asarray(p.osc_freq_hz, np.float64), np.asarray(p.osc_q, np.float64),
            np.asarray(p.sigma_pitch_yaw, np.float64), np.asarray(p.sigma_roll, np.float64),
            np.int64(config.steps), np.int64(config.size), np.int64(MAX_DRAWS))


def resolve_config(config: CameraConfig | None) -> CameraConfig:
    if config is None:
        return CameraConfig()
    if not isinstance(config, CameraConfig):
        raise ValueError(f"config must be a CameraConfig, got {type(config).__name__}")
    return config


def params_dict(raw: np.ndarray, start: int, config: CameraConfig) -> dict[str, np.ndarray]:
    """Named 1-D parameter arrays from the samplers' raw (n, N_PARAMS) output (the blur-length
    columns only when ``config.blur_length_px`` is set)."""
    params = {name: raw[:, col].astype(dtype) for name, (col, dtype) in _PARAM_COLUMNS.items()}
    if config.blur_length_px is not None:
        params["blur_length_px"] = raw[:, jit.P_BLUR_TARGET].astype(np.float32)
        params["path_length_px"] = raw[:, jit.P_BLUR_MADE].astype(np.float32)
    params["seed_index"] = np.arange(start, start + raw.shape[0], dtype=np.int64)
    return params


def raise_unfitted(fitted: np.ndarray, config: CameraConfig, start: int) -> None:
    if not fitted.all():
        bad = int(np.flatnonzero(~fitted)[0])
        raise ValueError(f"size={config.size} is too small for this camera: no motion of sample {start + bad} "
                         f"kept its local kernels within it after {MAX_DRAWS} draws; use a larger size, "
                         f"shorter exposure_s (or blur_length_px), shorter focal_35mm or a smaller shake_scale")


def random_camera_motion(n: int, config: CameraConfig | None = None, seed: int = 0, start: int = 0
                         ) -> tuple[CameraMotion, dict[str, np.ndarray]]:
    """Draw ``n`` hand-held exposures, samples ``start .. start + n - 1`` of ``seed``.

    Args:
        n: number of samples, >= 1.
        config: the camera (default ``CameraConfig()``).
        seed: non-negative int; sample i depends only on (seed, i).
        start: index of the first sample.

    Returns:
        ``motion``: ``CameraMotion`` of n samples with ``config.steps`` knots each;
        ``params``: dict of 1-D arrays, one value per sample: ``exposure_s``, ``focal_35mm``,
        ``focal_px``, ``anchor_x``, ``anchor_y``, ``shake_amplitude``, ``shake_direction_rad``,
        ``shake_anisotropy``, ``depth_m`` (inf without translation), ``max_angle_rad`` (largest
        rotation from the mean pose), ``frame_kernel_radius_px`` (largest local kernel half-size
        over the frame's corners, edge midpoints and centre), ``redraws``, ``seed_index``.

    Example:
        >>> motion, params = random_camera_motion(2, seed=1)
        >>> motion.rotation.shape, motion.rotation.dtype.name, len(motion)
        ((2, 256, 3), 'float32', 2)
    """
    config = resolve_config(config)
    n, seed, start = check_samples(n, seed, start)
    rot = np.empty((n, config.steps, 3), np.float32)
    trans = np.empty((n, config.steps, 3), np.float32)
    with wrapping_uint64():
        raw, fitted = jit.motion_batch(np.int64(seed), np.int64(start), model_tuple(config), rot, trans)
    raise_unfitted(fitted, config, start)
    params = params_dict(raw, start, config)
    motion = CameraMotion(rot, trans, params["focal_px"], params["depth_m"],
                          np.stack([params["anchor_x"], params["anchor_y"]], axis=1), params["exposure_s"],
                          config.frame_size)
    return motion, params


def motion_from_angular_velocity(omega: np.ndarray, exposure_s: np.ndarray, focal_px: np.ndarray,
                                 frame_size: tuple[int, int], anchor: np.ndarray | None = None) -> CameraMotion:
    """A rotation-only ``CameraMotion`` from body angular velocities (e.g. gyroscope samples).

    Args:
        omega: ``(n, S, 3)`` rad/s about the camera's x (pitch), y (yaw), z (roll) axes, at S
            knots evenly spread over each exposure.
        exposure_s: ``(n,)`` exposure times, s.
        focal_px: ``(n,)`` focal lengths, px.
        frame_size: (width, height) of the frame.
        anchor: ``(n, 2)`` in [0, 1] (default: the centre, 0.5).
    """
    w = np.ascontiguousarray(omega, dtype=np.float64)
    if w.ndim != 3 or w.shape[2] != 3 or w.shape[1] < 2 or not np.isfinite(w).all():
        raise ValueError(f"omega must be finite with shape (n, steps >= 2, 3), got {np.shape(omega)}")
    n = w.shape[0]
    exposure = np.broadcast_to(np.asarray(exposure_s, np.float32), (n,)).astype(np.float64)
    rot = np.empty(w.shape, np.float32)
    jit.poses_batch(w, exposure, rot)
    anchor = np.full((n, 2), 0.5, np.float32) if anchor is None else anchor
    return CameraMotion(rot, np.zeros_like(rot), np.broadcast_to(focal_px, (n,)), np.full(n, np.inf),
                        anchor, exposure, frame_size)


def simulate_angular_velocity(n: int, process_config: CameraConfig, exposure_s: float, seed: int = 0,
                              start: int = 0) -> np.ndarray:
    """Angular velocity alone, float64 ``(n, steps, 3)`` rad/s over an exposure of
    ``exposure_s`` seconds, from ``process_config``'s process, shake and roll scales (samples
    keyed like the motion's; for fitting and checking the process)."""
    config = resolve_config(process_config)
    n, seed, start = check_samples(n, seed, start)
    cam, osc_hz, osc_q, sig_py, sig_roll = model_tuple(config)[:5]
    omega = np.empty((n, config.steps, 3))
    with wrapping_uint64():
        jit.omega_batch(np.int64(seed), np.int64(start), cam, osc_hz, osc_q, sig_py, sig_roll,
                        float(exposure_s) / (config.steps - 1), omega)
    return omega
