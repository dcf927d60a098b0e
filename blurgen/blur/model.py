"""One sample of the camera model around the blur: draw its values, blur, then the sensor stages.

Stages of one sample:

1. sharp sRGB uint8 -> linear light (exact sRGB curve, or a pure 2.2 power as GoPro's blur_gamma);
2. linear x gain (both images; gain > 1 for ``gain_prob`` of the samples, so highlights saturate);
3. the blur step: valid **convolution** of the (H+k-1, W+k-1) crop with the kernel -> (H, W), or
   any other operator mapping the linear crop to the aligned blurred (H, W) image
   (``render_sample``'s ``blur_step``: a spatially varying camera model plugs in here);
4. clip both images to [0, 1] (a saturated light smears into a streak, as on a real sensor);
5. heteroscedastic sensor noise on the blurred image only, variance ``a * x + b``;
6. back to sRGB uint8; optionally a JPEG round trip of the blurred image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from blurgen.blur.convolve import convolve_valid
from blurgen.blur.curves import GAMMAS, decode_lut, linear_to_srgb, srgb_to_linear
from blurgen.blur.noise import NOISE_MODELS, add_sensor_noise, noisy_to_srgb
from blurgen.core.config import ConfigMixin, check_number, check_pair


@dataclass(frozen=True)
class BlurConfig(ConfigMixin):
    """Per-sample camera model around the blur; every drawn value is recorded with the sample.

    Attributes:
        gamma: transfer curve, ``"srgb"`` (exact IEC 61966-2-1) or ``"2.2"`` (pure power, as
            GoPro's ``blur_gamma`` frames).
        saturation: switch for stage 2; off means gain 1 for every sample.
        gain_prob: fraction of samples, in [0, 1], whose gain is drawn ``U(1, gain_max)``; the
            others get gain 1.
        gain_max: upper bound of the gain, in [1, 16].
        noise: ``"gaussian"`` (variance ``a*x + b``, the Poisson-Gaussian approximation),
            ``"poisson"`` (exact ``a * Poisson(x / a)`` + Gaussian read noise; slow) or ``"off"``.
        noise_a_range: ``a`` drawn uniformly in it (shot-noise gain, linear units, in [0, 0.1]).
            The default is a well-lit camera: ~1-3 code values of noise in mid-tones.
        noise_b_range: ``b`` drawn uniformly in it (read-noise variance, in [0, 0.01]).
        jpeg_quality_range: ``(low, high)`` in [1, 100] to JPEG-compress the blurred image at a
            quality drawn uniformly in it, or ``None`` (default) for no JPEG.
    """

    gamma: str = "srgb"
    saturation: bool = True
    gain_prob: float = 0.25
    gain_max: float = 1.5
    noise: str = "gaussian"
    noise_a_range: tuple[float, float] = (1e-4, 1e-3)
    noise_b_range: tuple[float, float] = (1e-7, 1e-6)
    jpeg_quality_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.gamma not in GAMMAS:
            raise ValueError(f"gamma must be one of {GAMMAS}, got {self.gamma!r}")
        if not isinstance(self.saturation, (bool, np.bool_)):
            raise ValueError(f"saturation must be True or False, got {self.saturation!r}")
        object.__setattr__(self, "saturation", bool(self.saturation))
        object.__setattr__(self, "gain_prob", check_number("gain_prob", self.gain_prob, 0.0, 1.0))
        object.__setattr__(self, "gain_max", check_number("gain_max", self.gain_max, 1.0, 16.0))
        if self.noise not in NOISE_MODELS:
            raise ValueError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        object.__setattr__(self, "noise_a_range", check_pair("noise_a_range", self.noise_a_range, 0.0, 0.1))
        object.__setattr__(self, "noise_b_range", check_pair("noise_b_range", self.noise_b_range, 0.0, 0.01))
        if self.jpeg_quality_range is not None:
            q = check_pair("jpeg_quality_range", self.jpeg_quality_range, 1, 100, integer=True)
            object.__setattr__(self, "jpeg_quality_range", q)


def draw_blur_params(rng: np.random.Generator, config: BlurConfig) -> dict[str, float | int]:
    """Draw one sample's camera parameters. All five draws always happen, in a fixed order, so
    switching one stage off does not change the values (or noise) of the others."""
    u_gain_choice, u_gain, u_a, u_b, u_q = rng.random(5)
    gain = 1.0 + (config.gain_max - 1.0) * u_gain if u_gain_choice < config.gain_prob else 1.0
    a_lo, a_hi = config.noise_a_range
    b_lo, b_hi = config.noise_b_range
    on = config.noise != "off"
    quality = -1
    if config.jpeg_quality_range is not None:
        q_lo, q_hi = config.jpeg_quality_range
        quality = min(q_lo + int(u_q * (q_hi - q_lo + 1)), q_hi)
    return {
        "gain": float(np.float32(gain if config.saturation else 1.0)),
        "noise_a": float(np.float32(a_lo + (a_hi - a_lo) * u_a)) if on else 0.0,
        "noise_b": float(np.float32(b_lo + (b_hi - b_lo) * u_b)) if on else 0.0,
        "jpeg_quality": quality,
    }


def jpeg_round_trip(rgb_u8: np.ndarray, quality: int) -> np.ndarray:
    """Encode uint8 RGB (H, W, 3) as JPEG at ``quality`` (1..100) with OpenCV and decode it."""
    # cvtColor swaps the channels in ~1/40 of the time of a strided copy ([:, :, ::-1]), same bytes
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb_u8), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _sharp_codes(centre: np.ndarray, gain: float, gamma: str) -> np.ndarray:
    """The sharp image's uint8 codes after the sensor gain and clipping (a 256-entry table)."""
    if gain == 1.0:
        # linear_to_srgb(srgb_to_linear(u)) == u exactly, so the round trip can be skipped.
        return centre
    return cv2.LUT(centre, linear_to_srgb(decode_lut(gamma) * np.float32(gain), gamma))


def sensor_output(blurred: np.ndarray, params: dict, rng: np.random.Generator,
                  config: BlurConfig) -> np.ndarray:
    """Stages 4-6 on a blurred linear image: gain, clip to [0, 1], sensor noise, sRGB uint8 and
    the optional JPEG round trip; ``params`` are the sample's ``draw_blur_params`` values and
    ``rng`` its generator right after drawing them (the noise is its next draw).

    Args:
        blurred: float32 ``(H, W, 3)`` linear light, before the gain; may be modified in place.

    Returns:
        uint8 ``(H, W, 3)`` sRGB.
    """
    gain = params["gain"]
    if config.noise == "gaussian":
        blurred_u8 = noisy_to_srgb(blurred, params["noise_a"], params["noise_b"], rng, config.gamma,
                                   gain=gain, clip=True)
    else:
        blurred *= np.float32(gain)
        np.clip(blurred, 0.0, 1.0, out=blurred)
        if config.noise == "poisson":
            blurred = add_sensor_noise(blurred, params["noise_a"], params["noise_b"], rng, "poisson")
        blurred_u8 = linear_to_srgb(blurred, config.gamma)
    if params["jpeg_quality"] >= 0:
        blurred_u8 = jpeg_round_trip(blurred_u8, params["jpeg_quality"])
    return blurred_u8


def render_sample(sharp_u8: np.ndarray, margin: int, blur_step: Callable[[np.ndarray], np.ndarray],
                  rng: np.random.Generator, config: BlurConfig | None = None
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Make one aligned blurred/sharp pair with any blur operator.

    Args:
        sharp_u8: uint8 sRGB ``(H + 2 margin, W + 2 margin, 3)``: the output plus the margin the
            blur needs on each side (no border is invented).
        margin: pixels on each side that only the blur reads.
        blur_step: maps the linear-light crop (float32, the shape of ``sharp_u8``) to the blurred
            linear image float32 ``(H, W, 3)``, aligned with the crop's centre ``(H, W)``. It is
            linear in light, so the gain is applied after it.
        rng: the sample's own generator (draws the camera parameters, then the noise).
        config: the camera model (default ``BlurConfig()``).

    Returns:
        ``blurred``, ``sharp``: uint8 ``(H, W, 3)``, aligned pixel for pixel (``sharp`` is the
        centre of the crop, after the same gain and clipping); ``params``: ``gain``, ``noise_a``,
        ``noise_b``, ``jpeg_quality`` (-1 = off).
    """
    config = BlurConfig() if config is None else config
    sharp_u8 = np.asarray(sharp_u8)
    if sharp_u8.dtype != np.uint8 or sharp_u8.ndim != 3:
        raise ValueError(f"sharp_u8 must be uint8 (H+2m, W+2m, C), got {sharp_u8.dtype} {sharp_u8.shape}")
    params = draw_blur_params(rng, config)
    blurred = blur_step(srgb_to_linear(sharp_u8, config.gamma))
    centre = np.ascontiguousarray(sharp_u8[margin:sharp_u8.shape[0] - margin, margin:sharp_u8.shape[1] - margin])
    return sensor_output(blurred, params, rng, config), _sharp_codes(centre, params["gain"], config.gamma), params


def blur_sample(sharp_u8: np.ndarray, kernel: np.ndarray, rng: np.random.Generator,
                config: BlurConfig | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Make one aligned blurred/sharp pair from a sharp crop and a kernel (``render_sample`` with
    the valid convolution as the blur step).

    Args:
        sharp_u8: uint8 sRGB ``(H+k-1, W+k-1, 3)``.
        kernel: float32 ``(k, k)``, k odd, sum 1, centred.
        rng: the sample's own generator (draws the camera parameters and the noise).
        config: the camera model (default ``BlurConfig()``).
    """
    kernel = np.asarray(kernel)
    # Convolution is linear, so scaling its (smaller) output by the gain equals blurring the
    # scaled input; clipping happens after both, as on the sensor.
    return render_sample(sharp_u8, (kernel.shape[0] - 1) // 2, lambda lin: convolve_valid(lin, kernel),
                         rng, config)
