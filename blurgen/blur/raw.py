"""The camera pipeline's stages on NumPy images, and one dataset sample through them.

Per sample (settings and sources of the numbers: ``blurgen.blur.isp``):

1. sharp sRGB -> linear light (inverse tone curve, inverse transfer curve);
2. unprocess: linear sRGB -> camera RGB (colour matrix), divided by the white-balance and digital
   gains; pixels at or above the sample's light threshold (light sources, specular highlights)
   are multiplied by its light boost: scene radiance above the sensor's clip;
3. blur in linear camera RGB (any motion model's blur step);
4. Bayer mosaic, clip to the full well (1), so a blurred light becomes a saturated streak;
   Poisson-Gaussian noise (variance ``shot * x + read``), clip, quantisation to the bit depth;
5. process: white balance and digital gain, clip, bilinear demosaicing (``demosaic``), inverse
   colour matrix, clip, transfer curve and tone curve, uint8; optional JPEG round trip.

The sharp image takes steps 1, 2 and 5 without blur, mosaic and noise (clipped at the full well
as well), so only the blur and the noise differ between the two.

Demosaicing is bilinear interpolation, each colour from its own pixels in the 3x3 neighbourhood
(green: the 4-neighbours, weights 1/4; red and blue: 2 or 4 neighbours, 1/2 or 1/4), with the
RAW reflect-padded by one pixel (mirroring keeps the colour filter layout). Exact on flat fields
everywhere and on linear ramps away from the border (tests/blur/test_isp.py). It is our own loop, not
OpenCV's ``cvtColor(COLOR_Bayer*)``, which reads 8/16-bit input only and whose code names count
the layout from the second row and column (OpenCV's ``BayerBG`` is ``RGGB`` here); the two agree
away from the border (tested).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from blurgen.blur import _isp_jit as jit
from blurgen.blur._curves_jit import encode
from blurgen.blur.isp import (
    N_UNIFORMS,
    PATTERN_CHANNELS,
    IspConfig,
    camera_decode,
    camera_decode_lut,
    camera_encode_lut,
    draw_isp_params,
    gains_of,
    matrices_of,
)
from blurgen.blur.model import BlurConfig, jpeg_round_trip

_EMPTY = np.empty(0, np.float32)
#: Bilinear demosaicing kernels: green from the 4-neighbours, red and blue from the 8-neighbours.
_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
_RED_BLUE = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4


@functools.lru_cache(maxsize=None)
def bilinear_weights(pattern: int) -> np.ndarray:
    """float32 (4, 3, 3, 3): the 3x3 weights of each colour at each of the four pixel parities
    (p = 2 (y % 2) + x % 2) of Bayer pattern ``pattern`` (an index into ``PATTERN_NAMES``)."""
    layout = PATTERN_CHANNELS[pattern]
    out = np.zeros((4, 3, 3, 3), np.float32)
    for p in range(4):
        py, px = divmod(p, 2)
        for c in range(3):
            kernel = _GREEN if c == 1 else _RED_BLUE
            for dy in range(3):
                for dx in range(3):
                    if layout[(py + dy - 1) % 2, (px + dx - 1) % 2] == c:
                        out[p, c, dy, dx] = kernel[dy, dx]
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)
def bilinear_kinds(pattern: int) -> np.ndarray:
    """int64 (4, 3): ``bilinear_weights`` as the kind of mean (``_isp_jit.OWN`` .. ``DIAGONALS``)
    each colour takes at each pixel parity."""
    weights = bilinear_weights(pattern)
    kinds = np.zeros((4, 3), np.int64)
    for p in range(4):
        for c in range(3):
            w = weights[p, c]
            if w[1, 1]:
                kinds[p, c] = jit.OWN
            elif w[1, 0]:
                kinds[p, c] = jit.SIDES if w[0, 1] else jit.ROW_PAIR
            else:
                kinds[p, c] = jit.COLUMN_PAIR if w[0, 1] else jit.DIAGONALS
    kinds.setflags(write=False)
    return kinds


def _image(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img, np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must be float (H, W, 3), got shape {img.shape}")
    return img


def unprocess_image(lin: np.ndarray, to_raw: np.ndarray, light_level: float = np.inf,
                    boost: float = 1.0) -> tuple[np.ndarray, int]:
    """Linear sRGB ``(H, W, 3)`` -> camera RAW RGB: ``to_raw @ pixel``, times ``boost`` where the
    largest channel is >= ``light_level``; returns (float32 RAW RGB, number of light pixels)."""
    lin = _image(lin, "lin")
    out = np.empty_like(lin)
    lights = jit.unprocess(lin, np.asarray(to_raw, np.float32), np.float32(light_level), np.float32(boost), out)
    return out, int(lights)


def mosaic_image(raw: np.ndarray, pattern: int, shot: float = 0.0, read: float = 0.0,
                 normals: np.ndarray | None = None, bit_depth: int = 0) -> tuple[np.ndarray, int]:
    """RAW RGB ``(H, W, 3)`` -> the Bayer plane float32 ``(H, W)``: each pixel's own colour, clipped
    to [0, 1], plus noise ``sqrt(shot v + read) * normals`` (standard normals, ``H * W``; none
    if ``None``) clipped again, quantised to ``bit_depth`` bits (0: not quantised). Returns (plane,
    number of pixels where some channel exceeded the clip).

    Example:
        >>> plane, clipped = mosaic_image(np.full((2, 2, 3), [0.1, 0.5, 2.0], np.float32), 0)
        >>> plane.tolist(), clipped
        ([[0.10000000149011612, 0.5], [0.5, 1.0]], 4)
    """
    raw = _image(raw, "raw")
    z = _EMPTY if normals is None else np.ascontiguousarray(normals, np.float32).reshape(-1)
    if z.size not in (0, raw.shape[0] * raw.shape[1]):
        raise ValueError(f"normals must hold H * W = {raw.shape[0] * raw.shape[1]} values, got {z.size}")
    plane = np.empty(raw.shape[:2], np.float32)
    levels = np.float32(2 ** bit_depth - 1 if bit_depth else 0)
    clipped = jit.mosaic(raw, PATTERN_CHANNELS[pattern], np.float32(shot), np.float32(read), z, levels, plane)
    return plane, int(clipped)


def demosaic(plane: np.ndarray, pattern: int, gains: np.ndarray | None = None) -> np.ndarray:
    """Bilinear demosaicing of a Bayer plane float ``(H, W)`` (H, W >= 2) laid out as
    ``PATTERN_NAMES[pattern]``; with ``gains`` (3,), each pixel is first multiplied by its
    colour's gain and clipped at 1 (white balance). Returns float32 ``(H, W, 3)``.

    Example:
        >>> flat = np.full((4, 6), 0.25, np.float32)
        >>> bool(np.allclose(demosaic(flat, 2), 0.25))
        True
    """
    plane = np.asarray(plane, np.float32)
    if plane.ndim != 2 or min(plane.shape) < 2:
        raise ValueError(f"plane must be (H, W) with H, W >= 2, got shape {plane.shape}")
    if gains is None:  # no white balance and no clip: numpy's "reflect" is the same padding
        pad = np.pad(plane, 1, mode="reflect")
    else:
        pad = np.empty((plane.shape[0] + 2, plane.shape[1] + 2), np.float32)
        jit.balance_pad(plane, PATTERN_CHANNELS[pattern], np.asarray(gains, np.float32), pad)
    out = np.empty((*plane.shape, 3), np.float32)
    jit.demosaic_pad(np.ascontiguousarray(pad, np.float32), bilinear_kinds(pattern), out)
    return out


def develop_image(rgb: np.ndarray, gains: np.ndarray, to_rgb: np.ndarray) -> np.ndarray:
    """Camera RGB ``(H, W, 3)`` -> linear sRGB float32 in [0, 1]: clip, times ``gains``, clip at 1,
    ``to_rgb @ pixel``, clip."""
    rgb = _image(rgb, "rgb")
    out = np.empty_like(rgb)
    jit.develop(rgb, np.asarray(gains, np.float32), np.asarray(to_rgb, np.float32), _EMPTY, out)
    return out


def encode_u8(lin: np.ndarray, gamma: str = "srgb") -> np.ndarray:
    """Linear light in [0, 1] -> uint8 output codes (transfer curve and tone curve, one table)."""
    flat = np.ascontiguousarray(lin, np.float32)
    out = np.empty(flat.shape, np.uint8)
    encode(flat.reshape(-1), camera_encode_lut(gamma), out.reshape(-1))
    return out


def _raw_noise(raw: np.ndarray, params: dict, rng: np.random.Generator, blur: BlurConfig,
               isp: IspConfig) -> tuple[np.ndarray, int]:
    """Stage 4 on the blurred RAW RGB: the noisy, quantised Bayer plane and the clipped count."""
    pattern, shot, read = int(params["bayer_pattern"][0]), params["noise_a"][0], params["noise_b"][0]
    h, w = raw.shape[:2]
    if blur.noise == "gaussian":
        return mosaic_image(raw, pattern, shot, read, rng.standard_normal(h * w, np.float32), isp.bit_depth)
    if blur.noise == "off":
        return mosaic_image(raw, pattern, bit_depth=isp.bit_depth)
    plane, clipped = mosaic_image(raw, pattern)  # exact Poisson shot noise, Gaussian read noise
    shot_part = rng.poisson(plane / shot) * shot if shot > 0 else plane
    noisy = np.clip(shot_part + rng.normal(0.0, np.sqrt(read), plane.shape), 0.0, 1.0)
    levels = 2 ** isp.bit_depth - 1
    return (np.round(noisy * levels) / levels).astype(np.float32), clipped


def _flat_params(p: dict, lights: int, crop_pixels: int, clipped: int, out_pixels: int) -> dict:
    """The recorded per-sample values (all scalars): 9 colour-matrix columns and the rest."""
    values = {f"ccm_{k}": float(v) for k, v in enumerate(p["ccm"][0].reshape(-1))}
    values.update({name: float(p[name][0]) for name in ("wb_red", "wb_blue", "digital_gain", "noise_a",
                                                        "noise_b", "light_threshold", "light_boost")})
    values.update(gain=1.0, bayer_pattern=int(p["bayer_pattern"][0]), jpeg_quality=int(p["jpeg_quality"][0]),
                  light_share=lights / crop_pixels, clipped_share=clipped / out_pixels)
    return values


def render_camera_sample(sharp_u8: np.ndarray, margin: int, blur_step: Callable[[np.ndarray], np.ndarray],
                         rng: np.random.Generator, blur: BlurConfig | None = None, isp: IspConfig | None = None
                         ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Make one aligned blurred/sharp pair through the camera pipeline (module docstring).

    Args:
        sharp_u8: uint8 sRGB ``(H + 2 margin, W + 2 margin, 3)``.
        margin: pixels on each side that only the blur reads.
        blur_step: maps the camera-RGB crop (float32, the shape of ``sharp_u8``) to the blurred
            ``(H, W, 3)``, aligned with the crop's centre (``blurgen.blur.render_sample``'s).
        rng: the sample's own generator (draws the camera values, then the noise).
        blur: ``gamma``, ``saturation`` (lights on/off), ``noise`` and ``jpeg_quality_range`` apply;
            the sRGB pipeline's gain and noise ranges do not.
        isp: the camera settings (default ``IspConfig()``).

    Returns:
        ``blurred``, ``sharp`` uint8 ``(H, W, 3)``; ``params``: the drawn and measured values
        (``ccm_0`` .. ``ccm_8``: the rgb -> camera matrix row by row, ``wb_red``, ``wb_blue``,
        ``digital_gain``, ``bayer_pattern``, ``noise_a``/``noise_b`` (shot/read variances, RAW
        units), ``light_threshold``, ``light_boost``, ``light_share`` (of the crop's pixels),
        ``clipped_share`` (of the output's pixels: saturated streaks), ``gain`` (1), ``jpeg_quality``).
    """
    camera = CameraSensor(rng, BlurConfig() if blur is None else blur, IspConfig() if isp is None else isp)
    raw = camera.unprocess(sharp_u8)
    blurred = camera.develop_blurred(blur_step(raw), rng)
    sharp = camera.develop_sharp(raw[margin:raw.shape[0] - margin, margin:raw.shape[1] - margin])
    return blurred, sharp, camera.params()


class CameraSensor:
    """One camera's drawn values (the sample's first draws from ``rng``) and the stages around the
    blur, for one exposure (``render_camera_sample``) or many (a clip's frames, each with its own
    noise, drawn from ``rng`` in order): ``unprocess`` codes into RAW RGB, ``develop_blurred`` a
    blurred RAW image through mosaic, noise and development, ``develop_sharp`` the sharp one;
    ``params()`` the recorded values (``light_share`` over every pixel unprocessed for the blur,
    ``clipped_share`` over every blurred pixel developed)."""

    def __init__(self, rng: np.random.Generator, blur: BlurConfig, isp: IspConfig) -> None:
        self.blur, self.isp = blur, isp
        self.p = p = draw_isp_params(rng.random(N_UNIFORMS)[None], blur, isp)
        self.to_raw, self.to_rgb = matrices_of(p, 0)
        self.gains = gains_of(p, 0)
        threshold = float(p["light_threshold"][0])
        self.level = np.float32(camera_decode(threshold, blur.gamma)) if threshold <= 1.0 else np.inf
        self.pattern = int(p["bayer_pattern"][0])
        self.lut = camera_encode_lut(blur.gamma)
        self.lights = self.unprocessed = self.clipped = self.developed = 0

    def unprocess(self, codes_u8: np.ndarray, count: bool = True) -> np.ndarray:
        """uint8 sRGB codes ``(H, W, 3)`` -> float32 camera RAW RGB (lights boosted); ``count``:
        the pixels count towards ``light_share``."""
        crop = np.ascontiguousarray(codes_u8)
        raw = np.empty(crop.shape, np.float32)
        lights = jit.unprocess_codes(crop, camera_decode_lut(self.blur.gamma), self.to_raw, self.level,
                                     np.float32(self.p["light_boost"][0]), raw)
        if count:
            self.lights += int(lights)
            self.unprocessed += raw.shape[0] * raw.shape[1]
        return raw

    def develop_blurred(self, raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Blurred RAW RGB -> uint8: mosaic, clip, noise (from ``rng``), development, JPEG."""
        plane, clipped = _raw_noise(raw, self.p, rng, self.blur, self.isp)
        self.clipped += clipped
        self.developed += plane.size
        pad = np.empty((plane.shape[0] + 2, plane.shape[1] + 2), np.float32)
        jit.balance_pad(plane, PATTERN_CHANNELS[self.pattern], self.gains, pad)
        blurred = np.empty((*plane.shape, 3), np.uint8)
        jit.develop_bayer_codes(pad, bilinear_kinds(self.pattern), self.to_rgb, self.lut, blurred)
        if self.p["jpeg_quality"][0] >= 0:
            blurred = jpeg_round_trip(blurred, int(self.p["jpeg_quality"][0]))
        return blurred

    def develop_sharp(self, raw: np.ndarray) -> np.ndarray:
        """Sharp RAW RGB -> uint8 (no mosaic, no noise)."""
        sharp = np.empty(raw.shape, np.uint8)
        jit.develop_codes(raw, self.gains, self.to_rgb, self.lut, sharp)
        return sharp

    def params(self) -> dict:
        return _flat_params(self.p, self.lights, self.unprocessed, self.clipped, self.developed)
