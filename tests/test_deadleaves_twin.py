"""The dead-leaves painter against a numpy twin written from the model's description (disk by
disk, front to back): the same bytes for full pictures and windows and three radius laws. Small
pictures, so ``tests/test_nojit.py`` runs this file again with ``NUMBA_DISABLE_JIT=1``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blurgen import deadleaves
from blurgen.deadleaves import dead_leaves, power_law_radii

U64 = np.uint64
GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


def mix64(z):
    """SplitMix64's finaliser in numpy uint64 (arrays or scalars), written from its definition."""
    z = np.asarray(z, dtype=U64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


def hashed(key: int, counter) -> np.ndarray:
    """mix64(key + counter * golden), wrapping at 64 bits."""
    with np.errstate(over="ignore"):
        return mix64(U64(key) + np.asarray(counter, dtype=U64) * U64(GOLDEN))


def key_of(seed: int) -> int:
    return int(np.random.default_rng(seed).integers(0, 2**63, dtype=np.int64))

def u16(h, j: int) -> float:
    return (float((int(h) >> (16 * j)) & 0xFFFF) + 0.5) / 65536.0


def radius(u: float, r_min: float, r_max: float, exponent: float) -> float:
    """Inverse CDF of p(r) ~ r**-exponent on [r_min, r_max]."""
    if exponent == 3.0:
        return 1.0 / math.sqrt(r_min ** -2 + u * (r_max ** -2 - r_min ** -2))
    if exponent == 1.0:
        return r_min * (r_max / r_min) ** u
    e = 1.0 - exponent
    return (r_min ** e + u * (r_max ** e - r_min ** e)) ** (1.0 / e)


def disk_look(key: int, d: int) -> dict:
    """Colour and texture of disk d, from hashes 4d+2 .. 4d+4 of the picture's stream."""
    h1, h2, h3 = (int(hashed(key, 4 * d + k)) for k in (2, 3, 4))
    grey, saturation = u16(h1, 0), u16(h1, 1) ** 2
    look = {"rgb": [grey + saturation * (u16(h, j) - grey) for h, j in ((h1, 2), (h1, 3), (h2, 0))],
            "shade": ((u16(h2, 1) - 0.5) * 2.0 * deadleaves.SHADE_MAX, (u16(h2, 2) - 0.5) * 2.0 * deadleaves.SHADE_MAX),
            "grating": 0.0, "grain": 0.0}
    if u16(h2, 3) < deadleaves.GRATING_PROB:
        look["grating"] = deadleaves.GRATING_MAX * u16(h3, 0)
    if look["grating"] > 0.0:
        angle, freq = 2.0 * math.pi * u16(h3, 1), 2.0 * math.pi * (0.02 + 0.2 * u16(h3, 2))
        look["wave"] = (freq * math.cos(angle), freq * math.sin(angle), 2.0 * math.pi * u16(h3, 3))
    elif u16(h3, 3) < deadleaves.GRAIN_PROB:
        look["grain"] = deadleaves.GRAIN_MAX * u16(h3, 3) / deadleaves.GRAIN_PROB
    return look


def texture(look: dict, key: int, d: int, dx, dy, gx, gy, r: float) -> np.ndarray:
    """The disk's brightness factor at pixels (dx, dy) from its centre, (gx, gy) in the picture."""
    m = (1.0 + look["shade"][1] / r * dy) + look["shade"][0] / r * dx
    if look["grating"] > 0.0:
        freq_x, freq_y, phase = look["wave"]
        steps = deadleaves.SINE_STEPS / (2.0 * math.pi)
        table = np.sin(2 * np.pi * np.arange(deadleaves.SINE_STEPS) / deadleaves.SINE_STEPS).astype(np.float32)
        index = ((freq_y * gy + phase) * steps + freq_x * steps * gx).astype(np.int64) & (deadleaves.SINE_STEPS - 1)
        m = m + look["grating"] * table[index]
    if look["grain"] > 0.0:
        disk_key = int(mix64(U64(key ^ (((d + 1) * GOLDEN) & MASK64))))
        h = mix64(U64(disk_key) ^ (gy.astype(U64) * U64(0x100000001B3) + gx.astype(U64)))
        m = m + look["grain"] * ((h >> U64(40)).astype(np.float64) / 8388608.0 - 1.0)
    return m


def paint_twin(height, width, seed, r_min=2.0, exponent=3.0, window=None) -> np.ndarray:
    """The dead-leaves picture (or a window) in numpy, disk by disk, front to back: each disk
    adds its colour times the transmittance still open at a pixel (pixels whose transmittance
    fell below COVERED are closed), and what light is left shows the background colour."""
    wy, wx, h, w = (0, 0, height, width) if window is None else window
    r_max = max(0.5 * max(height, width), r_min)
    margin = 0.1 * max(height, width)
    mean_area = deadleaves.mean_disk_area(r_min, r_max, exponent)
    area = (height + 2 * margin) * (width + 2 * margin)
    n_disks = int(math.ceil(deadleaves.MAX_DEPTH * area / mean_area))
    key = key_of(seed)
    rgb, t = np.zeros((h, w, 3), np.float32), np.ones((h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    for d in range(n_disks):
        place = int(hashed(key, 4 * d + 1))
        cx = -margin + u16(place, 0) * (width + 2 * margin) - wx
        cy = -margin + u16(place, 1) * (height + 2 * margin) - wy
        r = radius(u16(place, 2), r_min, r_max, exponent)
        outer = r + 0.5
        dy, dx = ys - cy, xs - cx
        half = np.sqrt(np.maximum(outer * outer - dy * dy, 0.0))
        rows = (ys >= math.ceil(cy - outer)) & (ys <= math.floor(cy + outer))
        inside = rows & (xs >= np.ceil(cx - half)) & (xs <= np.floor(cx + half)) & (t >= deadleaves.COVERED)
        d2 = dx * dx + dy * dy
        alpha = np.where(d2 <= max(r - 0.5, 0.0) ** 2, 1.0, np.clip(outer - np.sqrt(d2), 0.0, 1.0))
        paint = inside & (alpha > 0)
        if not paint.any():
            continue
        look = disk_look(key, d)
        m = texture(look, key, d, dx[paint], dy[paint], xs[paint] + wx, ys[paint] + wy, r)
        weight = t[paint] * alpha[paint]
        for c in range(3):
            rgb[:, :, c][paint] += (weight * np.clip(look["rgb"][c] * m, 0.0, 1.0)).astype(np.float32)
        t[paint] = (t[paint] - weight).astype(np.float32)
    background = disk_look(key, n_disks)["rgb"]
    light = rgb + t[:, :, None] * np.array(background)
    return (np.clip(light, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("height, width, exponent, window", [
    (24, 32, 3.0, None), (40, 30, 3.0, (7, 5, 20, 22)), (32, 32, 1.0, None), (28, 36, 2.5, (0, 9, 28, 20)),
])
def test_dead_leaves_equals_the_numpy_painter(height, width, exponent, window):
    got = dead_leaves(height, width, np.random.default_rng(height + width), exponent=exponent, window=window)
    assert np.array_equal(got, paint_twin(height, width, height + width, exponent=exponent, window=window))


def test_dead_leaves_picture_is_covered_and_varied():
    """Properties that hold whatever the implementation: every pixel covered by some leaf
    (MAX_DEPTH leaves deep on average), several distinct colours, edges present."""
    img = dead_leaves(40, 48, np.random.default_rng(3))
    assert img.shape == (40, 48, 3) and len(np.unique(img.reshape(-1, 3), axis=0)) > 20
    assert np.abs(np.diff(img.astype(int), axis=1)).max() > 40


@pytest.mark.parametrize("exponent", [3.0, 1.0, 2.5])
def test_power_law_radii_equal_the_inverse_cdf(exponent):
    u = np.linspace(0.0, 1.0, 17)
    got = power_law_radii(u, 2.0, 16.0, exponent)
    assert np.array_equal(got, [radius(float(v), 2.0, 16.0, exponent) for v in u])
    assert got[0] == pytest.approx(2.0) and got[-1] == pytest.approx(16.0)


# ---------------------------------------------------------------- the same without the JIT
