"""Procedural sharp images: the dead-leaves model (Matheron; Lee, Mumford & Huang 2001).

Opaque disks with power-law radii ``p(r) ~ r**-exponent`` fall on the plane, each hiding what lies
under it. With exponent 3 the picture is scale invariant and its power spectrum falls as 1/f**2,
like natural images, with sharp occlusion edges everywhere: good material for a deblurring model,
and it needs no download.

Disks are drawn lazily from a counter-based hash (a small batch at a time, no upfront arrays) and
painted front to back: each pixel keeps the light it still lets through (transmittance) and a
disk only adds where that is > 0, so every pixel is shaded about once instead of once per disk on
top of it, and painting stops when the whole canvas is covered.
Coverage is tracked twice: counts of open pixels per 8 x 8 block, so a disk over covered blocks
is skipped whole, and a bitmap of open pixels per row, so a painted span visits only those.
Edges are anti-aliased by the exact pixel-centre distance (a one-pixel ramp), as a lens would.
Each disk has a colour and a texture: a linear shading, a sinusoidal grating and fine grain.
"""

from __future__ import annotations

import math

import numpy as np

from blurgen.core._jit import njit
from blurgen.core._rng import GOLDEN, mix64

#: Expected number of disks over each point when the supply runs out; painting normally stops
#: earlier, when every pixel is covered, and otherwise e**-12 of the canvas shows the background.
MAX_DEPTH = 12.0
#: A pixel counts as covered once it lets through less than this (1/512: under half a code value).
COVERED = 1.0 / 512.0
#: Side of the coverage blocks: a disk whose blocks are all covered is skipped without touching
#: its pixels, which is most of the late, small disks.
BLOCK = 8
#: Disks placed at a time (see _place_disks); a few past the last one needed are wasted.
DISK_BATCH = 64
#: Fraction of disks with a grating and with grain; the grating amplitude and grain bounds.
GRATING_PROB, GRATING_MAX = 0.3, 0.25
GRAIN_PROB, GRAIN_MAX = 0.3, 0.15
SHADE_MAX = 0.3


def _power_integral(lo: float, hi: float, power: float) -> float:
    """Integral of r**power over [lo, hi]."""
    if power == -1.0:
        return math.log(hi / lo)
    return (hi ** (power + 1) - lo ** (power + 1)) / (power + 1)


def mean_disk_area(r_min: float, r_max: float, exponent: float) -> float:
    """Expected disk area in px**2 under the radius law (closed form)."""
    if r_min == r_max:
        return math.pi * r_min ** 2
    return math.pi * _power_integral(r_min, r_max, 2.0 - exponent) / _power_integral(r_min, r_max, -exponent)


@njit(cache=True)
def _radius(u, r_min, r_max, exponent):
    """Inverse CDF of the radius law ``p(r) ~ r**-exponent`` on [r_min, r_max] at uniform u."""
    if exponent == 3.0:  # the default: a square root instead of a general power
        return 1.0 / math.sqrt(r_min ** -2 + u * (r_max ** -2 - r_min ** -2))
    if exponent == 1.0:
        return r_min * (r_max / r_min) ** u
    e = 1.0 - exponent
    return (r_min ** e + u * (r_max ** e - r_min ** e)) ** (1.0 / e)


@njit(cache=True)
def _radii(u, r_min, r_max, exponent, out):
    for i in range(u.shape[0]):
        out[i] = _radius(u[i], r_min, r_max, exponent)


def power_law_radii(u: np.ndarray, r_min: float, r_max: float, exponent: float) -> np.ndarray:
    """Inverse CDF of ``p(r) ~ r**-exponent`` on [r_min, r_max] applied to uniforms ``u``: the
    radii the painter draws (``_radius``), for arrays."""
    u = np.asarray(u, dtype=np.float64)
    out = np.empty(u.shape)
    _radii(u.reshape(-1), float(r_min), float(r_max), float(exponent), out.reshape(-1))
    return out


@njit(cache=True)
def _u16(h, j):
    """The j-th 16-bit quarter of the hash ``h`` as a uniform in (0, 1)."""
    return (np.float64((h >> np.uint64(16 * j)) & np.uint64(0xFFFF)) + 0.5) * (1.0 / 65536.0)


@njit(cache=True)
def _place_disks(key, first, geometry, origin, h, w, place, box):
    """Canvas centre and radius ``place[j] = (cx, cy, r)`` and bounding box clipped to the
    (h, w) canvas ``box[j] = (y0, y1, x0, x1)`` (empty when y0 > y1 or x0 > x1) of the disks
    ``first + j`` of the stream ``key``, for every row j of ``place``. ``geometry`` = (x0,
    span_x, y0, span_y, r_min, r_max, exponent).

    One hash places a disk, so disks landing on covered blocks cost little; a batch at a time,
    the hashes first and the arithmetic after, in a loop that vectorises (square roots,
    roundings): most disks are only placed and found covered.
    """
    for j in range(place.shape[0]):
        hashed = mix64(key + np.uint64(4 * (first + j) + 1) * GOLDEN)
        place[j, 0], place[j, 1], place[j, 2] = _u16(hashed, 0), _u16(hashed, 1), _u16(hashed, 2)
    for j in range(place.shape[0]):
        cx = geometry[0] + place[j, 0] * geometry[1] - origin[1]
        cy = geometry[2] + place[j, 1] * geometry[3] - origin[0]
        r = _radius(place[j, 2], geometry[4], geometry[5], geometry[6])
        place[j, 0], place[j, 1], place[j, 2] = cx, cy, r
        outer = r + 0.5
        box[j, 0] = max(int(math.ceil(cy - outer)), 0)
        box[j, 1] = min(int(math.floor(cy + outer)), h - 1)
        box[j, 2] = max(int(math.ceil(cx - outer)), 0)
        box[j, 3] = min(int(math.floor(cx + outer)), w - 1)


@njit(cache=True)
def _disk_look(key, d):
    """Colour and texture of disk ``d``: (red, green, blue, shading x, shading y, grating
    amplitude, angular frequency x, angular frequency y, phase, grain amplitude)."""
    h1 = mix64(key + np.uint64(4 * d + 2) * GOLDEN)
    h2 = mix64(key + np.uint64(4 * d + 3) * GOLDEN)
    h3 = mix64(key + np.uint64(4 * d + 4) * GOLDEN)
    # Colour: a grey level moved towards a random colour by a random saturation (squared, so
    # most leaves are muted, as in photographs, and a few are vivid).
    grey, saturation = _u16(h1, 0), _u16(h1, 1) ** 2
    red = grey + saturation * (_u16(h1, 2) - grey)
    green = grey + saturation * (_u16(h1, 3) - grey)
    blue = grey + saturation * (_u16(h2, 0) - grey)
    shade_x = (_u16(h2, 1) - 0.5) * 2.0 * SHADE_MAX
    shade_y = (_u16(h2, 2) - 0.5) * 2.0 * SHADE_MAX
    grating = GRATING_MAX * _u16(h3, 0) if _u16(h2, 3) < GRATING_PROB else 0.0
    freq_x = freq_y = phase = grain = 0.0
    if grating > 0.0:
        angle = 2.0 * math.pi * _u16(h3, 1)
        freq = 2.0 * math.pi * (0.02 + 0.2 * _u16(h3, 2))  # 0.02 .. 0.22 cycles/px (< Nyquist)
        freq_x = freq * math.cos(angle)
        freq_y = freq * math.sin(angle)
        phase = 2.0 * math.pi * _u16(h3, 3)
    else:
        # The same quarter decides grain, so a disk has a grating or grain or neither.
        u = _u16(h3, 3)
        grain = GRAIN_MAX * u / GRAIN_PROB if u < GRAIN_PROB else 0.0
    return red, green, blue, shade_x, shade_y, grating, freq_x, freq_y, phase, grain


@njit(cache=True)
def _grain(key, x, y):
    """Uniform in [-1, 1) from a hash of the pixel and the disk's key."""
    h = mix64(key ^ (np.uint64(y) * np.uint64(0x100000001B3) + np.uint64(x)))
    return np.float64(h >> np.uint64(40)) * (1.0 / 8388608.0) - 1.0


#: Open-pixel bitmaps: bit x % 64 of word x // 64 of a row is set while pixel x is open.
_ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)
#: Index of a word's lowest set bit by a de Bruijn multiply and a 64-entry table (Numba has no
#: count-trailing-zeros): (bit * _DE_BRUIJN) >> 58 is distinct for each of the 64 bits.
_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
_BIT_INDEX = np.zeros(64, np.int64)
_BIT_INDEX[[((1 << i) * int(_DE_BRUIJN)) % (1 << 64) >> 58 for i in range(64)]] = np.arange(64)

SINE_STEPS = 1024
_SINE = np.sin(2 * np.pi * np.arange(SINE_STEPS) / SINE_STEPS).astype(np.float32)


@njit(cache=True)
def _paint_disk(state, block_open, open_bits, key, d, cx, cy, r, y0, y1, origin, sine):
    """Composite disk ``d`` of stream ``key`` (canvas centre ``cx, cy``, radius ``r``)
    behind what the canvas already holds, updating the state (h, w, 4: accumulated rgb,
    transmittance), the open-pixel counts of the blocks and the rows' open-pixel bitmaps;
    returns the pixels it covered.

    ``origin`` (y, x) is the canvas's offset in the whole picture: textures are functions of
    whole-picture coordinates, so a window renders exactly the pixels of the full image.
    """
    w = state.shape[1]
    outer = r + 0.5
    red, green, blue, shade_x, shade_y, grating, freq_x, freq_y, phase, grain = _disk_look(key, d)
    dkey = mix64(key ^ (np.uint64(d + 1) * GOLDEN))
    inner2 = max(r - 0.5, 0.0) ** 2
    shade_x /= r
    shade_y /= r
    # A table sine: the grating's phase in table steps, linear in x (error < 0.4 code values).
    to_steps = SINE_STEPS / (2.0 * math.pi)
    phase_dx = freq_x * to_steps
    newly = 0
    for y in range(y0, y1 + 1):
        dy = y - cy
        half = math.sqrt(max(outer * outer - dy * dy, 0.0))
        sx0, sx1 = max(int(math.ceil(cx - half)), 0), min(int(math.floor(cx + half)), w - 1)
        row_shade = 1.0 + shade_y * dy
        gy = y + origin[0]
        phase_row = (freq_y * gy + phase) * to_steps
        by = y // BLOCK
        if sx0 > sx1:
            continue
        # Only the open pixels of the span, lowest bit first: covered ones cost nothing (testing
        # their transmittance cost a mispredicted branch each, ~40% of the visits).
        first_word, last_word = sx0 >> 6, sx1 >> 6
        for word_index in range(first_word, last_word + 1):
            word = open_bits[y, word_index]
            if word_index == first_word:
                word &= _ALL_BITS << np.uint64(sx0 & 63)
            if word_index == last_word:
                word &= _ALL_BITS >> np.uint64(63 - (sx1 & 63))
            while word != np.uint64(0):
                bit = word & (~word + np.uint64(1))
                word ^= bit
                x = (word_index << 6) + _BIT_INDEX[(bit * _DE_BRUIJN) >> np.uint64(58)]
                t = state[y, x, 3]
                dx = x - cx
                d2 = dx * dx + dy * dy
                alpha = 1.0 if d2 <= inner2 else min(max(outer - math.sqrt(d2), 0.0), 1.0)
                if alpha > 0.0:
                    m = row_shade + shade_x * dx
                    gx = x + origin[1]
                    if grating > 0.0:
                        m += grating * sine[np.int64(phase_row + phase_dx * gx) & (SINE_STEPS - 1)]
                    if grain > 0.0:
                        m += grain * _grain(dkey, gx, gy)
                    weight = t * alpha
                    state[y, x, 0] += np.float32(weight * min(max(red * m, 0.0), 1.0))
                    state[y, x, 1] += np.float32(weight * min(max(green * m, 0.0), 1.0))
                    state[y, x, 2] += np.float32(weight * min(max(blue * m, 0.0), 1.0))
                    t = np.float32(t - weight)
                    state[y, x, 3] = t
                    if t < COVERED:
                        open_bits[y, word_index] &= ~bit
                        block_open[by, x // BLOCK] -= 1
                        newly += 1
    return newly


@njit(cache=True, inline="always")
def _any_open(block_open, y0, y1, x0, x1):
    """Whether a block under the box rows y0..y1, columns x0..x1 still has an open pixel.

    Most disks end here, so it is inlined: a call taking an array costs a pair of atomic
    reference-count updates, which per disk measured ~10% of the whole painting.
    """
    if y0 > y1 or x0 > x1:
        return False
    for by in range(y0 // BLOCK, y1 // BLOCK + 1):
        for bx in range(x0 // BLOCK, x1 // BLOCK + 1):
            if block_open[by, bx] > 0:
                return True
    return False


@njit(cache=True)
def _paint(key, geometry, origin, max_disks, sine, out):
    """Front-to-back compositing of up to ``max_disks`` disks into uint8 ``out`` (h, w, 3), the
    window at ``origin`` (y, x) of the picture, stopping when every pixel is covered; the rest
    of the light goes to a background colour. Returns the number of disks drawn.

    A pixel's whole state (accumulated rgb and transmittance) sits in one 16-byte cell, so
    painting it touches one cache line.
    """
    h, w = out.shape[0], out.shape[1]
    state = np.empty((h, w, 4), np.float32)
    # Flat views with unsigned indices for the two whole-canvas passes: Numba guards signed
    # indices against negative values, which keeps LLVM from vectorising (measured 1.8x).
    cells, pixels = state.reshape(-1), out.reshape(-1)
    for i in range(h * w):  # rgb 0, transmittance 1
        q = np.uint64(4 * i)
        cells[q] = cells[q + np.uint64(1)] = cells[q + np.uint64(2)] = np.float32(0.0)
        cells[q + np.uint64(3)] = np.float32(1.0)
    block_open = np.empty(((h + BLOCK - 1) // BLOCK, (w + BLOCK - 1) // BLOCK), np.int64)
    for by in range(block_open.shape[0]):
        for bx in range(block_open.shape[1]):
            block_open[by, bx] = min(BLOCK, h - by * BLOCK) * min(BLOCK, w - bx * BLOCK)
    open_total = h * w
    open_bits = np.empty((h, (w + 63) // 64), np.uint64)
    open_bits[:, :] = _ALL_BITS
    open_bits[:, -1] = _ALL_BITS >> np.uint64(63 - ((w - 1) & 63))
    place = np.empty((DISK_BATCH, 3))
    box = np.empty((DISK_BATCH, 4), np.int64)
    d = 0
    while d < max_disks and open_total > 0:
        count = min(DISK_BATCH, max_disks - d)
        _place_disks(key, d, geometry, origin, h, w, place[:count], box[:count])
        for j in range(count):
            if open_total == 0:
                break
            y0, y1, x0, x1 = box[j, 0], box[j, 1], box[j, 2], box[j, 3]
            if _any_open(block_open, y0, y1, x0, x1):
                open_total -= _paint_disk(state, block_open, open_bits, key, d, place[j, 0], place[j, 1], place[j, 2],
                                          y0, y1, origin, sine)
            d += 1
    bg_red, bg_green, bg_blue = _disk_look(key, max_disks)[:3]  # its colour is the background
    for i in range(h * w):
        q, p = np.uint64(4 * i), np.uint64(3 * i)
        t = cells[q + np.uint64(3)]
        pixels[p] = np.uint8(min(max(cells[q] + t * bg_red, 0.0), 1.0) * 255.0 + 0.5)
        pixels[p + np.uint64(1)] = np.uint8(min(max(cells[q + np.uint64(1)] + t * bg_green, 0.0), 1.0) * 255.0 + 0.5)
        pixels[p + np.uint64(2)] = np.uint8(min(max(cells[q + np.uint64(2)] + t * bg_blue, 0.0), 1.0) * 255.0 + 0.5)
    return d


def dead_leaves(height: int, width: int, rng: np.random.Generator, r_min: float = 2.0,
                r_max: float | None = None, exponent: float = 3.0,
                window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """One dead-leaves image, or a window of it.

    Args:
        height, width: picture size in pixels, >= 1.
        rng: the picture's generator; one 63-bit draw keys the counter-based hash stream that
            places and colours every disk, so the picture is a function of that draw alone.
        r_min, r_max: disk radii bounds in pixels (default ``r_max``: half the longer side,
            at least ``r_min``).
        exponent: power-law exponent of the radius density (3 = scale invariant).
        window: ``(y, x, h, w)``: render only this part of the picture (the same pixels as
            slicing the full render, at the cost of the window only).

    Returns:
        uint8 sRGB ``(height, width, 3)``, or ``(h, w, 3)`` with a window.

    Example:
        >>> img = dead_leaves(64, 96, np.random.default_rng(0))
        >>> img.shape, img.dtype.name
        ((64, 96, 3), 'uint8')
        >>> part = dead_leaves(64, 96, np.random.default_rng(0), window=(10, 20, 30, 40))
        >>> bool((part == img[10:40, 20:60]).all())
        True
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    wy, wx, wh, ww = (0, 0, height, width) if window is None else (int(v) for v in window)
    if wy < 0 or wx < 0 or wh < 1 or ww < 1 or wy + wh > height or wx + ww > width:
        raise ValueError(f"window {window} is not inside the {height}x{width} picture")
    r_max = max(0.5 * max(height, width), float(r_min)) if r_max is None else float(r_max)
    if not 0 < r_min <= r_max:
        raise ValueError(f"need 0 < r_min <= r_max, got r_min={r_min}, r_max={r_max}")
    # Centres fall on the picture grown by a margin, so the borders are covered like the middle.
    margin = 0.1 * max(height, width)
    geometry = (-margin, width + 2 * margin, -margin, height + 2 * margin, float(r_min), r_max, float(exponent))
    area = (height + 2 * margin) * (width + 2 * margin)
    max_disks = int(math.ceil(MAX_DEPTH * area / mean_disk_area(float(r_min), r_max, float(exponent))))
    key = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    out = np.empty((wh, ww, 3), np.uint8)
    with np.errstate(over="ignore"):  # uint64 hash wrap-around is intended
        _paint(key, geometry, (wy, wx), np.int64(max_disks), _SINE, out)
    return out
