"""Transfer curves: sRGB (IEC 61966-2-1) or a pure 2.2 power, uint8 codes <-> linear light."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from blurgen.blur import _curves_jit as jit

GAMMAS = ("srgb", "2.2")
#: The inverse (linear -> sRGB) table is indexed by sqrt(linear) quantised to this many steps:
#: the square root spreads the dark end, where both curves are steep (a pure 2.2 power has
#: infinite slope at 0 and code 1 is 5e-6 linear), so every step is < 0.02 of a code value.
ENCODE_STEPS = 65536


def decode_curve(v: np.ndarray, gamma: str) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light, exact (float64 in, float64 out). The
    branch ``np.where`` does not pick is computed on values it cannot turn into NaN."""
    if gamma == "2.2":
        return v ** 2.2
    return np.where(v <= 0.04045, v / 12.92, ((np.maximum(v, 0.04045) + 0.055) / 1.055) ** 2.4)


def encode_curve(x: np.ndarray, gamma: str) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1], exact (inverse of ``decode_curve``)."""
    if gamma == "2.2":
        return x ** (1 / 2.2)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)


def check_gamma(gamma: str) -> str:
    """``gamma`` if it names a transfer curve (``GAMMAS``), else ``ValueError``."""
    if gamma not in GAMMAS:
        raise ValueError(f"gamma must be one of {GAMMAS}, got {gamma!r}")
    return gamma


@functools.lru_cache(maxsize=None)
def decode_lut(gamma: str = "srgb") -> np.ndarray:
    """float32 (256,): linear light of each uint8 code value (read-only)."""
    lut = decode_curve(np.arange(256) / 255.0, check_gamma(gamma)).astype(np.float32)
    lut.setflags(write=False)
    return lut


@functools.lru_cache(maxsize=None)
def encode_lut(gamma: str = "srgb") -> np.ndarray:
    """uint8 (ENCODE_STEPS,): the rounded code value of linear light ``(i / (ENCODE_STEPS-1))**2``."""
    x = (np.arange(ENCODE_STEPS) / (ENCODE_STEPS - 1)) ** 2
    lut = np.round(encode_curve(x, check_gamma(gamma)) * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def srgb_to_linear(img_u8: np.ndarray, gamma: str = "srgb") -> np.ndarray:
    """uint8 sRGB image (any shape) -> float32 linear light in [0, 1], same shape (table lookup).

    Example:
        >>> srgb_to_linear(np.array([0, 255], np.uint8)).tolist()
        [0.0, 1.0]
    """
    img = np.asarray(img_u8)
    if img.dtype != np.uint8:
        raise ValueError(f"srgb_to_linear expects uint8, got {img.dtype}")
    if img.size == 0:
        return np.zeros(img.shape, np.float32)
    # cv2.LUT on a flat view: 2-4x faster than np.take (measured), any shape.
    flat = np.ascontiguousarray(img).reshape(1, -1)
    return cv2.LUT(flat, decode_lut(gamma)).reshape(img.shape)


def linear_to_srgb(lin: np.ndarray, gamma: str = "srgb") -> np.ndarray:
    """float linear light (any shape) -> uint8 sRGB, clipped to [0, 1] first (one fused pass).

    Within one code value of the exact curve (sqrt of linear quantised to 16 bits, then a
    table; measured max error 0.503 code values), and
    ``linear_to_srgb(srgb_to_linear(u)) == u`` for every code value u.
    """
    arr = np.ascontiguousarray(lin, dtype=np.float32)
    out = np.empty(arr.shape, np.uint8)
    jit.encode(arr.reshape(-1), encode_lut(gamma), out.reshape(-1))
    return out
