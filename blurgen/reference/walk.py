"""Plain-Python reference of the kernel model: the test oracle and the benchmark baseline.

A per-sample Python loop over the steps and the splats, as the DeblurGAN reference code works, with
the random stream re-implemented on Python integers (not shared with the Numba code), so agreement
with ``blurgen.motion.walk`` checks the compiled arithmetic, the stream and the algorithm together.
It is slow (tens of kernels per second) on purpose: obviously correct, not fast.
"""

from __future__ import annotations

import math

import numpy as np

from blurgen.core._rng import ZIG_RATIO, ZIG_TAIL, ZIG_X
from blurgen.core.config import KernelConfig

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_INV_2_53 = 1.0 / 9007199254740992.0
_ZIG_X = [float(v) for v in ZIG_X]
_ZIG_RATIO = [float(v) for v in ZIG_RATIO]


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class Stream:
    """The per-sample SplitMix64 stream of ``blurgen.core._rng`` on Python ints."""

    def __init__(self, seed: int, index: int) -> None:
        key = _mix64((seed * _GOLDEN + 0x5851F42D4C957F2D) & _MASK)
        self.state = _mix64(key ^ _mix64((index + 0x2545F4914F6CDD1D) & _MASK))

    def next64(self) -> int:
        self.state = (self.state + _GOLDEN) & _MASK
        return _mix64(self.state)

    def uniform(self) -> float:
        return (self.next64() >> 11) * _INV_2_53

    def normal(self) -> float:
        while True:
            z = self.next64()
            layer = z & 127
            u = 2.0 * ((z >> 11) * _INV_2_53) - 1.0
            if abs(u) < _ZIG_RATIO[layer]:
                return u * _ZIG_X[layer]
            if layer == 0:
                while True:
                    x = math.log(1.0 - self.uniform()) / ZIG_TAIL
                    y = math.log(1.0 - self.uniform())
                    if -2.0 * y >= x * x:
                        return (x - ZIG_TAIL) if u < 0.0 else (ZIG_TAIL - x)
            x = u * _ZIG_X[layer]
            f0 = math.exp(-0.5 * (_ZIG_X[layer] * _ZIG_X[layer] - x * x))
            f1 = math.exp(-0.5 * (_ZIG_X[layer + 1] * _ZIG_X[layer + 1] - x * x))
            if f1 + self.uniform() * (f0 - f1) < 1.0:
                return x


def _pick(choices: tuple[float, ...], u: float) -> float:
    return choices[min(int(u * len(choices)), len(choices) - 1)]


def _draw_params(stream: Stream, config: KernelConfig) -> dict[str, float]:
    return {
        "anxiety": _pick(config.anxiety, stream.uniform()),
        "centripetal": config.centripetal_max * stream.uniform(),
        "gaussian_shake": config.gaussian_shake_max * stream.uniform(),
        "big_shake_prob": config.big_shake_prob_max * stream.uniform(),
        "initial_angle_rad": 2.0 * math.pi * stream.uniform(),
        "exposure_fraction": _pick(config.exposures, stream.uniform()),
    }


def _walk(stream: Stream, p: dict[str, float], config: KernelConfig) -> tuple[list, int]:
    """One path as a list of (x, y) from (0, 0), and its big-shake count."""
    step_px = config.length_px / (config.steps - 1)
    anxiety = p["anxiety"]
    jitter = anxiety * p["gaussian_shake"] * step_px
    pull = anxiety * p["centripetal"] * step_px
    big_prob = p["big_shake_prob"] * anxiety
    vx = math.cos(p["initial_angle_rad"]) * anxiety
    vy = math.sin(p["initial_angle_rad"]) * anxiety
    x = y = 0.0
    path = [(0.0, 0.0)]
    big = 0
    for _ in range(config.steps - 1):
        if stream.uniform() < big_prob:
            turn = math.pi + (stream.uniform() - 0.5)
            c, s = math.cos(turn), math.sin(turn)
            vx, vy = vx + 2.0 * (vx * c - vy * s), vy + 2.0 * (vx * s + vy * c)
            big += 1
        nx = stream.normal()
        ny = stream.normal()
        vx += jitter * nx - pull * x
        vy += jitter * ny - pull * y
        scale = step_px / math.sqrt(vx * vx + vy * vy)
        vx *= scale
        vy *= scale
        x += vx
        y += vy
        path.append((x, y))
    return path, big


def exposed_samples(steps: int, exposure: float) -> int:
    """Samples t = 0 .. f on the grid k / (steps - 1)."""
    return max(1, min(steps, int(math.floor(exposure * (steps - 1) + 0.5)) + 1))


def _f32(v: float) -> float:
    return float(np.float32(v))


def reference_rasterize(path, used: int, size: int) -> np.ndarray | None:
    """Splat the first ``used`` points of ``path`` (float32-rounded, as the public API stores
    them), centred on their mean; None when they do not fit ``size`` once centred."""
    pts = [(_f32(x), _f32(y)) for x, y in path[:used]]
    centre = (size - 1) / 2.0
    dx = centre - sum(p[0] for p in pts) / used
    dy = centre - sum(p[1] for p in pts) / used
    acc = np.zeros((size, size))
    for x, y in pts:
        px, py = x + dx, y + dy
        if not (0.0 <= px < size - 1 and 0.0 <= py < size - 1):
            return None
        ix, iy = math.floor(px), math.floor(py)
        u, v = px - ix, py - iy
        acc[iy, ix] += (1.0 - u) * (1.0 - v) / used
        acc[iy, ix + 1] += u * (1.0 - v) / used
        acc[iy + 1, ix] += (1.0 - u) * v / used
        acc[iy + 1, ix + 1] += u * v / used
    return (acc / acc.sum()).astype(np.float32)


def reference_kernel(seed: int, index: int, config: KernelConfig | None = None,
                     max_draws: int = 1000) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample ``index`` of ``seed``: ``(psf float32 (k, k), path float64 (steps, 2), params)``."""
    config = config or KernelConfig()
    stream = Stream(seed, index)
    for draw in range(max_draws):
        params: dict = _draw_params(stream, config)
        used = exposed_samples(config.steps, params["exposure_fraction"])
        path, big = _walk(stream, params, config)
        psf = reference_rasterize(path, used, config.size)
        if psf is not None:
            params.update(exposed_steps=used, big_shakes=big, redraws=draw,
                          path_length_px=(used - 1) * config.length_px / (config.steps - 1))
            return psf, np.array(path), params
    raise ValueError(f"no path of sample {index} fitted size {config.size}")
