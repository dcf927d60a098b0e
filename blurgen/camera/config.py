"""Validated, frozen configuration of the rotating-camera shake model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blurgen.camera import fitted
from blurgen.core.config import (
    BLUR_LENGTH_RANGE_PX,
    MAX_SIDE,
    MIN_SIDE,
    ConfigMixin,
    _check_choices,
    check_index,
    check_kernel_size,
    check_number,
    check_pair,
)

#: Most knots (pose samples) per exposure.
MAX_STEPS = 100_000
#: Width of the 35 mm film frame, mm: a 35 mm-equivalent focal length F gives F / 36 * W pixels
#: on a frame W pixels wide.
FILM_WIDTH_MM = 36.0


def _check_tuple(name: str, values: Any, lo: float, hi: float, length: int | None = None) -> tuple[float, ...]:
    """A non-empty tuple of numbers each in [lo, hi] (of ``length`` items when given)."""
    values = _check_choices(name, values, lo, hi, lo_open=False)
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} values (one per component), got {len(values)}: {values!r}")
    return values


@dataclass(frozen=True)
class ShakeProcess(ConfigMixin):
    """Angular velocity of a hand-held camera as a stationary Gaussian process per axis.

    Each channel is ``sigma[0]`` x a unit Ornstein-Uhlenbeck drift (time constant
    ``drift_tau_s``) plus ``sigma[1 + j]`` x a unit stochastic damped oscillator at
    ``osc_freq_hz[j]`` with quality ``osc_q[j]``; pitch and yaw share one channel shape and are
    mixed per exposure in a random direction with a random anisotropy, roll has its own
    amplitudes. Per exposure all three are scaled by a log-normal amplitude
    ``exp(amplitude_log_sd * N - amplitude_log_sd**2)`` (mean square 1). The defaults are the fit
    to recorded hand-held gyroscope data (``blurgen.camera.fitted``): oscillators at 1.65, 3.44 and
    9.32 Hz (sway, deliberate shake, physiological tremor), no power in the drift. That recording
    shakes hard (~0.8 rad/s rms over 1 s); calmer hands take ``CameraConfig.shake_scale`` < 1.

    Attributes:
        drift_tau_s: drift time constant, s, in [1e-3, 100].
        osc_freq_hz: oscillator frequencies, Hz, each in [0.01, 100] (at least one).
        osc_q: oscillator quality factors, each in [0.51, 100] (above 0.5: underdamped).
        sigma_pitch_yaw: rms angular velocity of each component (drift first), rad/s, each in [0, 100].
        sigma_roll: the same for roll.
        amplitude_log_sd: sd of the log amplitude across exposures, in [0, 3].
        anisotropy_max: pitch/yaw minor-to-major ratio drawn U(0, anisotropy_max), in [0, 1].
    """

    drift_tau_s: float = fitted.DRIFT_TAU_S
    osc_freq_hz: tuple[float, ...] = fitted.OSC_FREQ_HZ
    osc_q: tuple[float, ...] = fitted.OSC_Q
    sigma_pitch_yaw: tuple[float, ...] = fitted.SIGMA_PITCH_YAW
    sigma_roll: tuple[float, ...] = fitted.SIGMA_ROLL
    amplitude_log_sd: float = fitted.AMPLITUDE_LOG_SD
    anisotropy_max: float = fitted.ANISOTROPY_MAX

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "drift_tau_s", check_number("drift_tau_s", self.drift_tau_s, 1e-3, 100.0))
        set_(self, "osc_freq_hz", _check_tuple("osc_freq_hz", self.osc_freq_hz, 0.01, 100.0))
        k = len(self.osc_freq_hz)
        set_(self, "osc_q", _check_tuple("osc_q", self.osc_q, 0.51, 100.0, k))
        set_(self, "sigma_pitch_yaw", _check_tuple("sigma_pitch_yaw", self.sigma_pitch_yaw, 0.0, 100.0, k + 1))
        set_(self, "sigma_roll", _check_tuple("sigma_roll", self.sigma_roll, 0.0, 100.0, k + 1))
        set_(self, "amplitude_log_sd", check_number("amplitude_log_sd", self.amplitude_log_sd, 0.0, 3.0))
        set_(self, "anisotropy_max", check_number("anisotropy_max", self.anisotropy_max, 0.0, 1.0))


@dataclass(frozen=True)
class CameraConfig(ConfigMixin):
    """A hand-held camera whose rotation (and optionally translation) blurs the exposure.

    Per sample: exposure time and 35 mm-equivalent focal length log-uniform in their ranges, an
    anchor (where the output window or the kernel sits in the frame) uniform, the shake from
    ``process``; with ``translation_mps > 0`` also a scene depth log-uniform in ``depth_m``.
    Every drawn value is returned with the sample. A sample whose local kernel anywhere in the
    frame (checked at the corners, edge midpoints and centre) does not fit ``size`` x ``size`` is
    redrawn from its own stream (counted). The default exposures stop at 1/10 s: at the recorded
    shake level longer ones mostly outgrow a 65 px kernel on a 1280 px frame (about 17 % of the
    default draws are redrawn already); ``shake_scale`` below 1 gives steadier hands.

    Attributes:
        frame_size: (width, height) of the camera frame in pixels, each in [32, 16384]; the focal
            length refers to its width, outputs are windows of it.
        focal_35mm: (low, high) 35 mm-equivalent focal length, mm, in [4, 2000].
        exposure_s: (low, high) exposure time, s, in [1e-5, 10].
        shake_scale: multiplies the shake's amplitude, in [0, 100] (0: a still camera).
        roll_scale: multiplies the roll (rotation about the optical axis), in [0, 100].
        translation_mps: rms translation speed per axis, m/s, in [0, 10] (0: rotation only).
        depth_m: (low, high) distance of the fronto-parallel scene plane, m, in [0.01, 1e6].
        steps: pose samples (knots) per exposure, in [2, 100000].
        size: odd kernel side >= 3: the kernels ``random_kernels`` returns and the largest local
            kernel a sample may have anywhere in the frame.
        process: the angular-velocity process.
        blur_length_px: ``None`` (exposures log-uniform in ``exposure_s``) or ``(low, high)`` in
            [0.01, 1e4]: per sample a target blur length is drawn log-uniformly in it, and the
            exposure is chosen (within ``exposure_s``) so that the path the frame centre's image
            draws is that long under the sample's own shake; the shake process is unchanged, only
            which exposures are sampled. Recorded as ``params["blur_length_px"]`` (the target)
            and ``path_length_px`` (the length made: within 1 % unless ``exposure_s`` cut it).
            The length is the rotation's (small angles: focal length x the pitch/yaw angle
            travelled); a translation (``translation_mps``) adds blur on top of it, and with no
            pitch/yaw shake at all (``shake_scale`` 0) the exposure is the range's top.
    """

    frame_size: tuple[int, int] = (1280, 720)
    focal_35mm: tuple[float, float] = (24.0, 50.0)
    exposure_s: tuple[float, float] = (1.0 / 200.0, 1.0 / 10.0)
    shake_scale: float = 1.0
    roll_scale: float = 1.0
    translation_mps: float = 0.0
    depth_m: tuple[float, float] = (0.5, 10.0)
    steps: int = 256
    size: int = 65
    process: ShakeProcess = field(default_factory=ShakeProcess)
    blur_length_px: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "frame_size", _check_frame(self.frame_size))
        if self.blur_length_px is not None:
            set_(self, "blur_length_px", check_pair("blur_length_px", self.blur_length_px, *BLUR_LENGTH_RANGE_PX))
        set_(self, "focal_35mm", check_pair("focal_35mm", self.focal_35mm, 4.0, 2000.0))
        set_(self, "exposure_s", check_pair("exposure_s", self.exposure_s, 1e-5, 10.0))
        set_(self, "shake_scale", check_number("shake_scale", self.shake_scale, 0.0, 100.0))
        set_(self, "roll_scale", check_number("roll_scale", self.roll_scale, 0.0, 100.0))
        set_(self, "translation_mps", check_number("translation_mps", self.translation_mps, 0.0, 10.0))
        set_(self, "depth_m", check_pair("depth_m", self.depth_m, 0.01, 1e6))
        set_(self, "steps", check_index("steps", self.steps, 2, MAX_STEPS))
        set_(self, "size", check_kernel_size(self.size))
        if not isinstance(self.process, ShakeProcess):
            raise ValueError(f"process must be a ShakeProcess, got {type(self.process).__name__}")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.blur_length_px is None:  # unset: the dict (file attributes, manifests) it was before
            del data["blur_length_px"]
        return data


def _check_frame(value: Any) -> tuple[int, int]:
    """(width, height), each an integer in [MIN_SIDE, MAX_SIDE]."""
    try:
        width, height = value
    except (TypeError, ValueError):
        raise ValueError(f"frame_size must be (width, height), integers in [{MIN_SIDE}, {MAX_SIDE}], "
                         f"got {value!r}") from None
    return (check_index("frame_size width", width, MIN_SIDE, MAX_SIDE),
            check_index("frame_size height", height, MIN_SIDE, MAX_SIDE))
