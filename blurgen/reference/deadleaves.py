"""Plain NumPy twin of the dead-leaves painter (``blurgen.sources.deadleaves``), written from the
model's description: disk by disk, front to back. Slow and obviously correct; the tests compare
the compiled painter with it byte for byte.

Example:
    >>> paint_twin(8, 8, seed=0).shape
    (8, 8, 3)
"""

from __future__ import annotations

import math

import numpy as np

from blurgen.reference.streams import GOLDEN, MASK64
from blurgen.reference.streams import mix64_array as mix64
from blurgen.sources import deadleaves  # its constants: the twin shares the model, not the code

U64 = np.uint64

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
