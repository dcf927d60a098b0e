"""The camera pipeline's settings, numbers and per-sample draws (``--pipeline camera``).

The pipeline follows Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019):
an sRGB image is *unprocessed* (inverse tone curve, inverse sRGB curve, inverse colour matrix,
inverse white balance and digital gain) into a camera's linear RAW space, blurred there with light
sources above the sensor's clip (RSBlur's saturation recipe, Rim et al., ECCV 2022), mosaicked,
given Poisson-Gaussian sensor noise and quantised, then *processed* again (white balance,
bilinear demosaicing, colour matrix, sRGB curve, tone curve). ``blurgen.blur.raw`` runs the
stages, ``blurgen.blur.torch_isp`` holds their torch twins.

Sources of every number in this module:

* ``XYZ_TO_CAMERA``: the four XYZ -> camera matrices Brooks et al. sample (their released code,
  google-research ``unprocessing/unprocess.py``, ``random_ccm``). Three are dcraw's
  ``adobe_coeff`` entries (Adobe DNG Converter colour matrices, divided by 10000): Sony ILCE-7R
  (4913, -541, -202, ...), Olympus E-M10 / E-P5 / E-PL6 (8380, -2630, -639, ...), Sony DSC-RX100
  M2-M4 (6596, -2079, -562, ...). The first (1.0234, -0.2969, ...) is given there without a
  camera name; the paper samples the cameras of the Darmstadt Noise Dataset, whose fourth camera
  is a Huawei Nexus 6P.
* ``RGB_TO_XYZ``: linear sRGB (D65) -> XYZ of IEC 61966-2-1, as in the same code.
* White balance, digital gain and noise: ``random_gains`` and ``random_noise_levels`` of that code:
  red gain U(1.9, 2.4), blue gain U(1.5, 1.9), digital gain 1 / N(0.8, 0.1); shot noise
  log-uniform in [1e-4, 1.2e-2], log(read) = 2.18 log(shot) + 1.20 + N(0, 0.26) (their fit to the
  Darmstadt cameras' calibrated noise; variances in RAW units, clip = 1).
* Tone curve: the smoothstep ``3 y^2 - 2 y^3`` and its closed-form inverse, as in that code.

Example:
    >>> p = draw_isp_params(np.full((1, N_UNIFORMS), 0.5), BlurConfig(), IspConfig())
    >>> round(float(p["wb_red"][0]), 4), round(float(p["wb_blue"][0]), 4), PATTERN_NAMES[p["bayer_pattern"][0]]
    (2.15, 1.7, 'GRBG')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from blurgen.blur.curves import check_gamma, decode_curve, encode_curve
from blurgen.blur.model import BlurConfig
from blurgen.core.config import ConfigMixin, check_index, check_pair

PIPELINES = ("srgb", "camera")

XYZ_TO_CAMERA = np.array([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.5181]],
])
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])

#: Bayer patterns by recorded index (``/params/bayer_pattern``); the letters read the 2x2 tile
#: row by row from the top-left pixel. ``PATTERN_CHANNELS[i][y % 2, x % 2]`` is the colour
#: (0 R, 1 G, 2 B) of pixel (y, x).
PATTERN_NAMES = ("RGGB", "BGGR", "GRBG", "GBRG")
PATTERN_CHANNELS = np.array([[["RGB".index(c) for c in name[:2]], ["RGB".index(c) for c in name[2:]]]
                             for name in PATTERN_NAMES], np.int64)

WB_RED_RANGE = (1.9, 2.4)
WB_BLUE_RANGE = (1.5, 1.9)
DIGITAL_GAIN_INVERSE = (0.8, 0.1)  # mean, std of 1 / digital gain
#: The normal draws (digital gain, read-noise scatter) are cut at this many standard deviations,
#: so a gain never reaches 1 / 0 (Brooks et al. leave them uncut).
NORMAL_CUT = 3.0
READ_NOISE_LINE = (2.18, 1.20, 0.26)  # slope, intercept, std of log(read) against log(shot)

#: Uniforms one sample draws (``draw_isp_params``), always all of them, in this order: 4 colour
#: matrix weights, digital gain, red gain, blue gain, Bayer pattern, shot noise, read-noise
#: scatter, light threshold, light boost, JPEG quality.
N_UNIFORMS = 13


@dataclass(frozen=True)
class IspConfig(ConfigMixin):
    """Settings of the camera pipeline (``PairsConfig(pipeline="camera", isp=...)``).

    Attributes:
        bayer_patterns: the colour filter layouts drawn from (uniformly per sample), a non-empty
            subset of ``PATTERN_NAMES``.
        bit_depth: the RAW's quantisation, 8..16 bits (white level 2**bit_depth - 1).
        shot_noise_range: (low, high) of the shot-noise variance factor in RAW units, drawn
            log-uniformly, in [0, 0.1] (Brooks et al.: (1e-4, 1.2e-2)); the read-noise variance
            follows from it by their calibrated log-linear relation.
        light_threshold_range: (low, high), in [0.5, 1], of the sRGB value at or above which
            (in any channel) a sharp pixel counts as a light source; drawn uniformly per sample
            (default 1: the pixels saturated in the sharp image, RSBlur's choice).
        light_boost_range: (low, high), in [1, 1000], of the factor light sources are brighter
            than the clip, drawn log-uniformly per sample.
    """

    bayer_patterns: tuple[str, ...] = PATTERN_NAMES
    bit_depth: int = 12
    shot_noise_range: tuple[float, float] = (1e-4, 1.2e-2)
    light_threshold_range: tuple[float, float] = (1.0, 1.0)
    light_boost_range: tuple[float, float] = (2.0, 10.0)

    def __post_init__(self) -> None:
        patterns = self.bayer_patterns
        if isinstance(patterns, str) or not patterns or any(p not in PATTERN_NAMES for p in patterns):
            raise ValueError(f"bayer_patterns must be a non-empty sequence of {PATTERN_NAMES}, got {patterns!r}")
        object.__setattr__(self, "bayer_patterns", tuple(patterns))
        object.__setattr__(self, "bit_depth", check_index("bit_depth", self.bit_depth, 8, 16))
        shot = check_pair("shot_noise_range", self.shot_noise_range, 0.0, 0.1)
        if shot[0] <= 0:
            raise ValueError(f"shot_noise_range must be a pair with 0 < low <= high <= 0.1, got {shot!r}")
        object.__setattr__(self, "shot_noise_range", shot)
        object.__setattr__(self, "light_threshold_range",
                           check_pair("light_threshold_range", self.light_threshold_range, 0.5, 1.0))
        object.__setattr__(self, "light_boost_range",
                           check_pair("light_boost_range", self.light_boost_range, 1.0, 1000.0))


def check_pipeline(pipeline: str) -> str:
    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}")
    return pipeline


def _log_uniform(u: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.exp(np.log(low) + (np.log(high) - np.log(low)) * u)


def _normal(u: np.ndarray) -> np.ndarray:
    return np.clip(ndtri(np.clip(u, 1e-12, 1 - 1e-12)), -NORMAL_CUT, NORMAL_CUT)


def rgb_to_camera(weights: np.ndarray) -> np.ndarray:
    """float64 ``(n, 3, 3)`` linear sRGB -> camera matrices for colour-matrix ``weights`` ``(n, 4)``
    (a convex combination of ``XYZ_TO_CAMERA``, times ``RGB_TO_XYZ``, rows scaled to sum 1 so
    that white stays white, as Brooks et al.)."""
    w = weights / weights.sum(axis=1, keepdims=True)
    xyz_to_cam = np.einsum("nk,kij->nij", w, XYZ_TO_CAMERA)
    m = xyz_to_cam @ RGB_TO_XYZ
    return m / m.sum(axis=2, keepdims=True)


def draw_isp_params(u: np.ndarray, blur: BlurConfig, isp: IspConfig) -> dict[str, np.ndarray]:
    """The camera values of ``n`` samples from their uniforms ``u`` ``(n, N_UNIFORMS)`` in [0, 1):
    ``ccm`` float32 (n, 3, 3) (rgb -> camera), ``wb_red``, ``wb_blue``, ``digital_gain``,
    ``noise_a`` (shot), ``noise_b`` (read; both 0 with ``blur.noise == "off"``),
    ``light_threshold`` (2 = no lights, without ``blur.saturation``), ``light_boost`` float32,
    ``bayer_pattern`` int32 (index into ``PATTERN_NAMES``), ``jpeg_quality`` int32 (-1 = off).
    The same function serves the dataset (uniforms from its generator) and the augmentation
    (counter-based uniforms)."""
    u = np.asarray(u, np.float64)
    n = u.shape[0]
    choice = np.minimum((u[:, 7] * len(isp.bayer_patterns)).astype(np.int64), len(isp.bayer_patterns) - 1)
    log_shot = np.log(_log_uniform(u[:, 8], *isp.shot_noise_range))
    slope, intercept, scatter = READ_NOISE_LINE
    read = np.exp(slope * log_shot + intercept + scatter * _normal(u[:, 9]))
    noise_on = blur.noise != "off"
    quality = np.full(n, -1, np.int32)
    if blur.jpeg_quality_range is not None:
        q_lo, q_hi = blur.jpeg_quality_range
        quality[:] = np.minimum(q_lo + (u[:, 12] * (q_hi - q_lo + 1)).astype(np.int64), q_hi)
    t_lo, t_hi = isp.light_threshold_range
    return {
        "ccm": rgb_to_camera(u[:, :4] + 1e-8).astype(np.float32),
        "digital_gain": (1.0 / (DIGITAL_GAIN_INVERSE[0] + DIGITAL_GAIN_INVERSE[1] * _normal(u[:, 4]))
                         ).astype(np.float32),
        "wb_red": (WB_RED_RANGE[0] + (WB_RED_RANGE[1] - WB_RED_RANGE[0]) * u[:, 5]).astype(np.float32),
        "wb_blue": (WB_BLUE_RANGE[0] + (WB_BLUE_RANGE[1] - WB_BLUE_RANGE[0]) * u[:, 6]).astype(np.float32),
        "bayer_pattern": np.array([PATTERN_NAMES.index(isp.bayer_patterns[c]) for c in choice], np.int32),
        "noise_a": (np.exp(log_shot) * noise_on).astype(np.float32),
        "noise_b": (read * noise_on).astype(np.float32),
        "light_threshold": (t_lo + (t_hi - t_lo) * u[:, 10] if blur.saturation else np.full(n, 2.0)
                            ).astype(np.float32),
        "light_boost": (_log_uniform(u[:, 11], *isp.light_boost_range) if blur.saturation else np.ones(n)
                        ).astype(np.float32),
        "jpeg_quality": quality,
    }


def gains_of(params: dict, i: int) -> np.ndarray:
    """float32 (3,): sample i's per-channel RAW -> white-balanced gains (digital gain included)."""
    g = float(params["digital_gain"][i])
    return np.array([g * float(params["wb_red"][i]), g, g * float(params["wb_blue"][i])], np.float32)


def matrices_of(params: dict, i: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(to_raw, to_rgb)`` (3, 3) of sample i: linear sRGB -> RAW (colour matrix, then the
    inverse gains) and camera RGB -> linear sRGB (the inverse colour matrix)."""
    ccm = params["ccm"][i].astype(np.float64)
    to_raw = ccm / gains_of(params, i).astype(np.float64)[:, None]
    return to_raw.astype(np.float32), np.linalg.inv(ccm).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Tone curve and transfer curve together: sRGB value <-> linear light


def smoothstep(y: np.ndarray) -> np.ndarray:
    """The tone curve: ``3 y^2 - 2 y^3`` on [0, 1] (clipped first)."""
    y = np.clip(y, 0.0, 1.0)
    return y * y * (3.0 - 2.0 * y)


def inverse_smoothstep(v: np.ndarray) -> np.ndarray:
    """The inverse tone curve, ``0.5 - sin(asin(1 - 2 v) / 3)`` (clipped to [0, 1] first)."""
    v = np.clip(v, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * v) / 3.0)


def camera_decode(v: np.ndarray, gamma: str = "srgb") -> np.ndarray:
    """Output value in [0, 1] -> linear light: inverse tone curve, then the inverse transfer curve."""
    return decode_curve(inverse_smoothstep(np.asarray(v, np.float64)), gamma)


def camera_encode(x: np.ndarray, gamma: str = "srgb") -> np.ndarray:
    """Linear light -> output value in [0, 1]: transfer curve, then tone curve (clipped first)."""
    return smoothstep(encode_curve(np.clip(np.asarray(x, np.float64), 0.0, 1.0), gamma))


@functools.lru_cache(maxsize=None)
def camera_decode_lut(gamma: str = "srgb") -> np.ndarray:
    """float32 (256,): linear light of each uint8 code value (read-only)."""
    lut = camera_decode(np.arange(256) / 255.0, check_gamma(gamma)).astype(np.float32)
    lut.setflags(write=False)
    return lut


#: Steps of the encode tables, indexed by the square root of linear light (as ``curves.encode_lut``).
ENCODE_STEPS = 65536


@functools.lru_cache(maxsize=None)
def camera_encode_lut(gamma: str = "srgb") -> np.ndarray:
    """uint8 (ENCODE_STEPS,): rounded code value of linear light ``(i / (ENCODE_STEPS - 1))**2``."""
    x = (np.arange(ENCODE_STEPS) / (ENCODE_STEPS - 1)) ** 2
    lut = np.round(camera_encode(x, check_gamma(gamma)) * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@functools.lru_cache(maxsize=None)
def camera_encode_table(gamma: str = "srgb") -> np.ndarray:
    """float32 (ENCODE_STEPS + 2,): output value of linear light ``(i / ENCODE_STEPS)**2`` (one
    guard entry), for linear interpolation by the float path (the augmentation)."""
    s = np.minimum(np.arange(ENCODE_STEPS + 2) / ENCODE_STEPS, 1.0)
    table = camera_encode(s * s, check_gamma(gamma)).astype(np.float32)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=None)
def camera_decode_table(gamma: str = "srgb") -> np.ndarray:
    """float32 (ENCODE_STEPS + 2,): linear light at output values i / ENCODE_STEPS (one guard
    entry), for linear interpolation by the float path. The inverse tone curve has infinite slope
    at 0 and 1, so the interpolation error is largest there: < 5e-5 below 1e-4 and within 3e-5
    of 1 (< 1.3e-3 there), < 1e-6 elsewhere; exact at every i / 255 that falls on the grid."""
    v = np.minimum(np.arange(ENCODE_STEPS + 2) / ENCODE_STEPS, 1.0)
    table = camera_decode(v, check_gamma(gamma)).astype(np.float32)
    table.setflags(write=False)
    return table
