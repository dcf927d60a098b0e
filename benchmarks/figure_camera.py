"""The README figure of the camera pipeline (docs/camera_pipeline.png): one sharp dead-leaves crop
with a light source, blurred by the same kernel through ``--pipeline srgb`` and ``--pipeline
camera``, and the output noise variance against intensity of both (flat grey fields, the same
noise draw per pipeline's default ranges, mid-range levels). Drawn with OpenCV (no matplotlib).

    python benchmarks/figure_camera.py [--out docs/camera_pipeline.png]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from blurgen.blur import BlurConfig, blur_linear, render_sample
from blurgen.blur.isp import IspConfig
from blurgen.blur.raw import render_camera_sample
from blurgen.core.imageio import write_png
from blurgen.sources.base import open_source

SIDE, KERNEL = 192, 31


def _scene() -> tuple[np.ndarray, np.ndarray]:
    crop = open_source("deadleaves").crop_with_origin(4, 0, SIDE + KERNEL - 1, SIDE + KERNEL - 1)[0].copy()
    cv2.circle(crop, (120, 100), 5, (255, 255, 255), -1)  # a light source
    kernel = np.zeros((KERNEL, KERNEL), np.float32)
    cv2.ellipse(kernel, (15, 15), (11, 4), 30, 0, 300, 1.0, 1)
    return crop, kernel / kernel.sum()


def _row(crop, kernel, seed):
    step = lambda lin: blur_linear(lin, kernel)  # noqa: E731
    blur = BlurConfig(gain_prob=1.0, gain_max=1.5, noise_a_range=(2e-3, 2e-3), noise_b_range=(1e-5, 1e-5))
    srgb = render_sample(crop, KERNEL // 2, step, np.random.default_rng(seed), blur)[0]
    camera = render_camera_sample(crop, KERNEL // 2, step, np.random.default_rng(seed), BlurConfig(),
                                  IspConfig(shot_noise_range=(2e-3, 2e-3), light_boost_range=(8.0, 8.0)))[0]
    sharp = crop[KERNEL // 2:-(KERNEL // 2), KERNEL // 2:-(KERNEL // 2)]
    return [sharp, srgb, camera]


def _variance_points(pipeline: str, codes: np.ndarray) -> list[tuple[float, float]]:
    """(mean output code, output variance) of flat grey fields at ``codes``."""
    points = []
    for i, code in enumerate(codes):  # the camera's values come from the generator's first draws
        crop = np.full((SIDE + 2, SIDE + 2, 3), code, np.uint8)
        step = lambda lin: lin[1:-1, 1:-1].copy()  # noqa: E731
        rng = np.random.default_rng(0)  # the same camera values at every level (and the same normals)
        if pipeline == "srgb":
            out = render_sample(crop, 1, step, rng, BlurConfig(saturation=False, noise_a_range=(2e-3, 2e-3),
                                                               noise_b_range=(1e-5, 1e-5)))[0]
        else:
            out = render_camera_sample(crop, 1, step, rng, BlurConfig(saturation=False),
                                       IspConfig(shot_noise_range=(2e-3, 2e-3)))[0]
        g = out[:, :, 1].astype(np.float64)
        points.append((g.mean(), g.var()))
    return points


def _plot(series: dict, size=(SIDE, 2 * SIDE)) -> np.ndarray:
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    top = max(v for pts in series.values() for _, v in pts) * 1.1
    def xy(m, v):  # noqa: E306
        return int(20 + m / 255 * (w - 30)), int(h - 20 - v / top * (h - 40))
    cv2.line(img, (20, h - 20), (w - 10, h - 20), (0, 0, 0), 1)
    cv2.line(img, (20, h - 20), (20, 10), (0, 0, 0), 1)
    colours = {"srgb": (40, 90, 200), "camera": (200, 60, 40)}
    for name, pts in series.items():
        pixels = [xy(m, v) for m, v in pts]
        for a, b in zip(pixels, pixels[1:]):
            cv2.line(img, a, b, colours[name], 2, cv2.LINE_AA)
        for p in pixels:
            cv2.circle(img, p, 3, colours[name], -1, cv2.LINE_AA)
    for k, name in enumerate(series):
        cv2.putText(img, name, (w - 90, 24 + 16 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colours[name], 1, cv2.LINE_AA)
    cv2.putText(img, "output variance (codes^2) vs mean code", (26, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, f"0..255; top {top:.0f}", (26, h - 26), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/camera_pipeline.png")
    args = parser.parse_args()
    crop, kernel = _scene()
    tiles = _row(crop, kernel, 0)
    labels = ["sharp", "srgb pipeline", "camera pipeline"]
    for tile, label in zip(tiles, labels):
        cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    codes = np.linspace(10, 245, 12).astype(np.uint8)
    plot = _plot({name: _variance_points(name, codes) for name in ("srgb", "camera")})
    gap = np.full((SIDE, 4, 3), 255, np.uint8)
    top = np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)
    bottom = np.concatenate([plot, np.full((SIDE, top.shape[1] - plot.shape[1], 3), 255, np.uint8)], axis=1)
    write_png(args.out, np.concatenate([top, np.full((4, top.shape[1], 3), 255, np.uint8), bottom], axis=0))


if __name__ == "__main__":
    main()
