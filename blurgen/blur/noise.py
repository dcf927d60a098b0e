"""Sensor noise on linear light: heteroscedastic Gaussian (variance a*x + b, the Poisson-Gaussian
approximation) or exact Poisson shot noise plus Gaussian read noise."""

from __future__ import annotations

import math

import numpy as np

from blurgen.blur._noise_jit import NORMAL_BITS, gaussian_noise, noise_with_normals
from blurgen.blur.curves import encode_lut
from blurgen.core._rng import normal_table

NOISE_MODELS = ("gaussian", "poisson", "off")
#: Largest Poisson mean numpy samples (its own limit, int64 max - 10 sqrt(int64 max)); beyond
#: it add_sensor_noise adds no shot noise.
POISSON_MAX_MEAN = float(np.iinfo(np.int64).max) - 10 * math.sqrt(float(np.iinfo(np.int64).max))
_NO_LUT = np.empty(0, np.uint8)


def _noise_key(rng: np.random.Generator) -> np.uint64:
    return np.uint64(rng.integers(0, 2**63, dtype=np.int64))


def add_sensor_noise(lin: np.ndarray, a: float, b: float, rng: np.random.Generator,
                     model: str = "gaussian") -> np.ndarray:
    """Sensor noise with variance ``a * x + b`` on a linear image (x = the clean value).

    Args:
        lin: float32 linear light in [0, 1], any shape; not modified.
        a: shot-noise gain (>= 0), b: read-noise variance (>= 0).
        rng: the sample's generator; the noise is a function of its next draw (and ``lin``).
        model: ``"gaussian"`` (Poisson-Gaussian approximation), ``"poisson"`` (exact
            ``a * Poisson(x / a) + N(0, b)``) or ``"off"`` (a copy).

    Returns:
        float32, same shape, not clipped (a caller clips when it encodes).
    """
    if model not in NOISE_MODELS:
        raise ValueError(f"model must be one of {NOISE_MODELS}, got {model!r}")
    out = np.array(lin, dtype=np.float32, copy=True, order="C")
    key = _noise_key(rng)
    if model == "gaussian":
        with np.errstate(over="ignore"):  # uint64 wrap-around is intended (NUMBA_DISABLE_JIT)
            gaussian_noise(out.reshape(-1), np.float32(1.0), False, np.float32(a), np.float32(b), key,
                            normal_table(NORMAL_BITS), _NO_LUT, np.empty(0, np.uint8))
    elif model == "poisson":
        # The stream of this branch is numpy's, seeded from the same draw.
        sub = np.random.default_rng(int(key))
        clean = np.clip(out, 0.0, None)
        # A mean x / a beyond POISSON_MAX_MEAN (where numpy's sampler raises) only happens for
        # a < ~1e-18, where the shot noise (std sqrt(a * x) < 1e-8) is nothing: none is added.
        # Every a numpy can sample keeps the exact model, and the same random stream.
        with np.errstate(over="ignore"):  # inf for a tiny a: above the limit, so no shot noise
            lam = clean / a if a > 0 else None
        usable = lam is not None and not float(lam.max(initial=0.0)) > POISSON_MAX_MEAN
        shot = sub.poisson(lam) * a if usable else clean
        out = (shot + sub.normal(0.0, math.sqrt(b), out.shape)).astype(np.float32)
    return out


def noisy_to_srgb(lin: np.ndarray, a: float, b: float, rng: np.random.Generator,
                  gamma: str = "srgb", gain: float = 1.0, clip: bool = False) -> np.ndarray:
    """``linear_to_srgb(add_sensor_noise(lin, a, b, rng, "gaussian"), gamma)`` in one pass.

    Args:
        lin: float32 linear light (any shape, C-contiguous is fastest); not modified.
        gain, clip: the clean value is ``lin * float32(gain)``, clipped to [0, 1] if ``clip``
            (the sensor's gain and saturation, fused into the same pass).

    Returns:
        uint8 sRGB, same shape; bit-identical to the two-step version (tested).
    """
    flat = np.ascontiguousarray(lin, dtype=np.float32)
    out = np.empty(flat.shape, np.uint8)
    with np.errstate(over="ignore"):
        gaussian_noise(flat.reshape(-1), np.float32(gain), bool(clip), np.float32(a), np.float32(b),
                        _noise_key(rng), normal_table(NORMAL_BITS), encode_lut(gamma), out.reshape(-1))
    return out


def add_noise_with(lin: np.ndarray, a: float, b: float, z: np.ndarray) -> np.ndarray:
    """``lin + sqrt(max(a lin + b, 0)) z``, float32: the noise step of ``add_sensor_noise`` given
    its standard normals ``z`` (same shape), by the same compiled formula."""
    out = np.array(lin, dtype=np.float32, copy=True, order="C")
    noise_with_normals(out.reshape(-1), np.float32(a), np.float32(b),
                       np.ascontiguousarray(z, np.float32).reshape(-1))
    return out
