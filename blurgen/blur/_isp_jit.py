"""Numba kernels of the camera pipeline (``blurgen.blur.raw``): one image per call, images as
``(H, W, 3)`` arrays of any strides (the augmentation passes transposed ``(3, H, W)`` planes), and
the batched loops the augmentation runs over a batch (one image per thread)."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from blurgen.blur._curves_jit import lerp as _lerp
from blurgen.blur._curves_jit import unit as _unit
from blurgen.core._jit import njit


@njit(cache=True, inline="always")
def _unprocess_pixel(r, g, b, to_raw, light_level, boost, out, y, x):
    """out[y, x] = to_raw @ (r, g, b), times ``boost`` if the largest channel is at least
    ``light_level``; returns 1 for a light pixel, else 0."""
    light = max(r, max(g, b)) >= light_level
    f = boost if light else np.float32(1.0)
    for c in range(3):
        out[y, x, c] = f * (to_raw[c, 0] * r + to_raw[c, 1] * g + to_raw[c, 2] * b)
    return 1 if light else 0


@njit(cache=True)
def unprocess(lin, to_raw, light_level, boost, out):
    """out = to_raw @ lin per pixel, times ``boost`` where the pixel's largest channel is at
    least ``light_level`` (a light source); returns the number of light pixels. ``lin`` and
    ``out`` (H, W, 3) may be the same array."""
    count = 0
    for y in range(lin.shape[0]):
        for x in range(lin.shape[1]):
            count += _unprocess_pixel(lin[y, x, 0], lin[y, x, 1], lin[y, x, 2], to_raw, light_level, boost, out, y, x)
    return count


@njit(cache=True)
def unprocess_codes(src, lut, to_raw, light_level, boost, out):
    """``unprocess`` of uint8 codes ``src`` (H, W, 3), decoded by the 256-entry ``lut``."""
    count = 0
    for y in range(src.shape[0]):
        for x in range(src.shape[1]):
            count += _unprocess_pixel(lut[src[y, x, 0]], lut[src[y, x, 1]], lut[src[y, x, 2]], to_raw,
                                      light_level, boost, out, y, x)
    return count


@njit(cache=True)
def unprocess_values(src, table, to_raw, light_level, boost, out):
    """``unprocess`` of output values ``src`` (H, W, 3) in [0, 1] (clipped), decoded by linear
    interpolation of ``table`` (linear light at values i / (len - 2), one guard entry)."""
    steps = np.float32(table.shape[0] - 2)
    count = 0
    for y in range(src.shape[0]):
        for x in range(src.shape[1]):
            r = _lerp(table, _unit(src[y, x, 0]) * steps)
            g = _lerp(table, _unit(src[y, x, 1]) * steps)
            b = _lerp(table, _unit(src[y, x, 2]) * steps)
            count += _unprocess_pixel(r, g, b, to_raw, light_level, boost, out, y, x)
    return count


@njit(cache=True)
def mosaic(raw, pattern, shot, read, z, levels, out):
    """out[y, x] = RAW value of pixel (y, x) through its colour filter ``pattern[y % 2, x % 2]``:
    clipped to [0, 1] (the sensor's full well), plus noise ``sqrt(shot v + read) z[y W + x]``
    (if ``z`` is not empty) clipped again, quantised to ``levels`` steps (if > 0). Returns the
    number of pixels where some channel of ``raw`` exceeds the clip (the streaks)."""
    clipped = 0
    width = out.shape[1]
    noisy = z.shape[0] > 0
    for y in range(out.shape[0]):
        for x in range(width):
            if max(raw[y, x, 0], max(raw[y, x, 1], raw[y, x, 2])) > np.float32(1.0):
                clipped += 1
            v = _unit(raw[y, x, pattern[y & 1, x & 1]])
            if noisy:
                v = _unit(v + np.float32(math.sqrt(max(shot * v + read, np.float32(0.0)))) * z[y * width + x])
            if levels > 0:
                v = np.float32(math.floor(v * levels + np.float32(0.5))) / levels
            out[y, x] = v
    return clipped


@njit(cache=True, inline="always")
def _reflect(i, n):
    """Index of padded position i in [-1, n] under reflection about the edge pixels (keeps the
    parity, so the colour filter of a mirrored pixel is right)."""
    if i < 0:
        return -i
    return 2 * (n - 1) - i if i >= n else i


@njit(cache=True)
def balance_pad(plane, pattern, gains, pad):
    """pad (H + 2, W + 2) = min(plane * gains[colour], 1), reflect-padded by one pixel."""
    h, w = plane.shape
    for i in range(h + 2):
        y = _reflect(i - 1, h)
        for j in range(w + 2):
            x = _reflect(j - 1, w)
            pad[i, j] = min(plane[y, x] * gains[pattern[y & 1, x & 1]], np.float32(1.0))


#: How a colour is interpolated at a pixel (``blurgen.blur.raw.bilinear_kinds``): its own value,
#: the mean of the left and right, of the upper and lower, of the four side or of the four
#: diagonal neighbours.
OWN, ROW_PAIR, COLUMN_PAIR, SIDES, DIAGONALS = 0, 1, 2, 3, 4


@njit(cache=True, inline="always")
def _demosaic_pixel(pad, kinds, y, x, c):
    """Bilinear value of colour c at pixel (y, x) (pad index y + 1, x + 1), by its kind at the
    pixel's parity (the same for every 2x2 cell, so the branch is predicted)."""
    kind = kinds[2 * (y & 1) + (x & 1), c]
    py, px = y + 1, x + 1
    if kind == OWN:
        return pad[py, px]
    if kind == ROW_PAIR:
        return np.float32(0.5) * (pad[py, px - 1] + pad[py, px + 1])
    if kind == COLUMN_PAIR:
        return np.float32(0.5) * (pad[py - 1, px] + pad[py + 1, px])
    if kind == SIDES:
        return np.float32(0.25) * ((pad[py - 1, px] + pad[py + 1, px]) + (pad[py, px - 1] + pad[py, px + 1]))
    return np.float32(0.25) * ((pad[py - 1, px - 1] + pad[py - 1, px + 1]) + (pad[py + 1, px - 1] + pad[py + 1, px + 1]))


@njit(cache=True)
def demosaic_pad(pad, kinds, out):
    """Bilinear demosaicing of a plane padded by one pixel (``kinds``: int64 (4, 3), how colour
    c is interpolated at pixel parity p = 2 (y % 2) + x % 2)."""
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            for c in range(3):
                out[y, x, c] = _demosaic_pixel(pad, kinds, y, x, c)


@njit(cache=True, inline="always")
def _encoded(v, table, steps, encode):
    """Value v in [0, 1] through the sqrt-indexed ``table`` (linear interpolation), if ``encode``."""
    return _lerp(table, np.float32(math.sqrt(v)) * steps) if encode else v


@njit(cache=True, inline="always")
def _code(v, lut, top):
    """uint8 code of linear v in [0, 1] by the sqrt-indexed ``lut`` (nearest entry)."""
    return lut[np.int64(np.float32(math.sqrt(v)) * top + np.float32(0.5))]


@njit(cache=True, inline="always")
def _gained(rgb, y, x, gains):
    """Pixel (y, x) of ``rgb`` clipped to [0, 1], times the white-balance gains, clipped again."""
    one = np.float32(1.0)
    return (min(_unit(rgb[y, x, 0]) * gains[0], one), min(_unit(rgb[y, x, 1]) * gains[1], one),
            min(_unit(rgb[y, x, 2]) * gains[2], one))


@njit(cache=True, inline="always")
def _demosaiced(pad, kinds, y, x):
    """The three colours of pixel (y, x) demosaiced from the padded mosaic."""
    return (_demosaic_pixel(pad, kinds, y, x, 0), _demosaic_pixel(pad, kinds, y, x, 1),
            _demosaic_pixel(pad, kinds, y, x, 2))


@njit(cache=True)
def develop(rgb, gains, to_rgb, table, out):
    """out = encode(clip(to_rgb @ min(clip(rgb) * gains, 1))) per pixel; ``table`` empty: no
    encoding (linear light out), else the encode table indexed by the square root."""
    steps = np.float32(table.shape[0] - 2)
    encode = table.shape[0] > 0
    for y in range(rgb.shape[0]):
        for x in range(rgb.shape[1]):
            r, g, b = _gained(rgb, y, x, gains)
            for c in range(3):
                v = _unit(to_rgb[c, 0] * r + to_rgb[c, 1] * g + to_rgb[c, 2] * b)
                out[y, x, c] = _encoded(v, table, steps, encode)


@njit(cache=True)
def develop_codes(rgb, gains, to_rgb, lut, out):
    """``develop`` with uint8 output codes by the sqrt-indexed uint8 ``lut``."""
    top = np.float32(lut.shape[0] - 1)
    for y in range(rgb.shape[0]):
        for x in range(rgb.shape[1]):
            r, g, b = _gained(rgb, y, x, gains)
            for c in range(3):
                out[y, x, c] = _code(_unit(to_rgb[c, 0] * r + to_rgb[c, 1] * g + to_rgb[c, 2] * b), lut, top)


@njit(cache=True)
def develop_bayer(pad, kinds, to_rgb, table, out):
    """Demosaicing (``demosaic_pad``) and ``develop`` (gains already in ``pad``) in one pass."""
    steps = np.float32(table.shape[0] - 2)
    encode = table.shape[0] > 0
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            r, g, b = _demosaiced(pad, kinds, y, x)
            for c in range(3):
                v = _unit(to_rgb[c, 0] * r + to_rgb[c, 1] * g + to_rgb[c, 2] * b)
                out[y, x, c] = _encoded(v, table, steps, encode)


@njit(cache=True)
def develop_bayer_codes(pad, kinds, to_rgb, lut, out):
    """``develop_bayer`` with uint8 output codes by the sqrt-indexed uint8 ``lut``."""
    top = np.float32(lut.shape[0] - 1)
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            r, g, b = _demosaiced(pad, kinds, y, x)
            for c in range(3):
                out[y, x, c] = _code(_unit(to_rgb[c, 0] * r + to_rgb[c, 1] * g + to_rgb[c, 2] * b), lut, top)


def _front(src, table, to_raw, light_level, boost, out, lights):
    """Per image of a batch (S, 3, H, W): decode by ``table`` and unprocess."""
    for s in prange(src.shape[0]):
        lights[s] = unprocess_values(src[s].transpose((1, 2, 0)), table, to_raw[s], light_level[s], boost[s],
                                     out[s].transpose((1, 2, 0)))


def _back(blurred, patterns, kinds, shot, read, z, levels, gains, to_rgb, table, out, clipped):
    """Per image of a batch (S, 3, H, W): mosaic + noise + quantisation, white balance,
    demosaicing, colour matrix, encoding."""
    h, w = blurred.shape[2], blurred.shape[3]
    for s in prange(blurred.shape[0]):
        plane = np.empty((h, w), np.float32)
        pad = np.empty((h + 2, w + 2), np.float32)
        clipped[s] = mosaic(blurred[s].transpose((1, 2, 0)), patterns[s], shot[s], read[s], z[s], levels, plane)
        balance_pad(plane, patterns[s], gains[s], pad)
        develop_bayer(pad, kinds[s], to_rgb[s], table, out[s].transpose((1, 2, 0)))


#: ``blurgen.core._jit.ForkSafe`` loops over a batch: ``.run(parallel, ...)``.
FRONT = njit(cache=True, parallel=True)(_front)
BACK = njit(cache=True, parallel=True)(_back)
