"""How camera-shake kernels look: shake2d (the 2-D random walk), camera3d (the rotating camera)
and recorded hand shake (gyroscope recordings rendered through the same camera), side by side.

    python benchmarks/bench_realism.py --gyro-test gyro_test.txt [--gyro-train gyro_train.txt]
    python benchmarks/bench_realism.py --gyro-test gyro_test.txt --n 500 --no-append --sheet sheet.png

Per kernel (65 x 65, centred): length = sqrt(12 * major second moment) (a straight streak of
length L has variance L^2/12), width = sqrt(12 * minor second moment) (the splat alone gives ~1),
support = pixels holding 95 % of the weight, curvature = turning of the blur path per pixel of
its length (the path resampled every 2 px of arc, so sub-pixel jitter does not count). The
recordings go through exactly the camera of camera3d: exposure, focal length and kernel position
drawn from the same ranges, windows whose kernels do not fit the frame redrawn by the same rule.
Also: the share of recorded kernels outside each model's 5-95 % range.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from blurgen import CameraConfig, KernelConfig, random_trajectories
from blurgen.camera.kernels import camera_kernels_with_params, local_kernels, local_paths
from blurgen.camera.motion import motion_from_angular_velocity, random_camera_motion
from blurgen.motion.walk import rasterize

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))  # gyro_data.py
from gyro_data import load_recording, random_windows  # noqa: E402
from report import append_results, markdown_table  # noqa: E402

QUANTILES = (5, 25, 50, 75, 95)
STATS = ("length_px", "width_px", "support_px", "curvature_rad_per_px")
ARC_PX = 2.0


def image_stats(psf: np.ndarray) -> dict[str, np.ndarray]:
    k = psf.astype(np.float64)
    k /= k.sum(axis=(1, 2), keepdims=True)
    rows, cols = np.indices(k.shape[1:])
    mx, my = (k * cols).sum(axis=(1, 2)), (k * rows).sum(axis=(1, 2))
    dx, dy = cols[None] - mx[:, None, None], rows[None] - my[:, None, None]
    cov = np.stack([np.stack([(k * dx * dx).sum(axis=(1, 2)), (k * dx * dy).sum(axis=(1, 2))], -1),
                    np.stack([(k * dx * dy).sum(axis=(1, 2)), (k * dy * dy).sum(axis=(1, 2))], -1)], -2)
    ev = np.linalg.eigvalsh(cov)
    flat = -np.sort(-k.reshape(len(k), -1), axis=1)
    support = (np.cumsum(flat, axis=1) < 0.95).sum(axis=1) + 1
    return {"length_px": np.sqrt(12 * ev[:, 1]), "width_px": np.sqrt(12 * np.clip(ev[:, 0], 0, None)),
            "support_px": support.astype(np.float64)}


def curvature(path: np.ndarray) -> float:
    """Total turning (rad) per px of a polyline (m, 2) resampled every ARC_PX of arc length."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] < 2 * ARC_PX:
        return 0.0
    s = np.arange(0.0, arc[-1], ARC_PX)
    pts = np.stack([np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])], axis=1)
    heading = np.arctan2(*np.diff(pts, axis=0).T[::-1])
    turn = np.angle(np.exp(1j * np.diff(heading)))
    return float(np.abs(turn).sum() / arc[-1])


def shake2d(n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    config = KernelConfig()
    xy, params = random_trajectories(n, config, seed=seed)
    psf = rasterize(xy, config.size, params["exposure_fraction"])
    return psf, [xy[i, :params["exposed_steps"][i]].astype(np.float64) for i in range(n)]


def camera3d(n: int, config: CameraConfig, seed: int) -> tuple[np.ndarray, list[np.ndarray], dict]:
    psf, params = camera_kernels_with_params(n, config=config, seed=seed)
    motion, _ = random_camera_motion(n, config, seed=seed)
    positions = np.stack([params["position_x"], params["position_y"]], axis=1)[:, None]
    paths, _ = local_paths(motion, positions)
    return psf, list(paths[:, 0]), params


def probes(frame: tuple[int, int]) -> np.ndarray:
    w, h = frame
    return np.array([[x, y] for y in (0, (h - 1) / 2, h - 1) for x in (0, (w - 1) / 2, w - 1)], np.float64)


def recorded(rec, n: int, config: CameraConfig, seed: int) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Kernels of recorded windows through camera3d's camera; returns the share of draws redrawn."""
    rng = np.random.default_rng(seed)
    half = (config.size - 1) // 2
    w, h = config.frame_size
    kernels, paths, examined = [], [], 0
    while len(kernels) < n:
        m = 2 * (n - len(kernels))
        lo, hi = np.log(config.exposure_s)
        exposure = np.exp(rng.uniform(lo, hi, m))
        lo, hi = np.log(config.focal_35mm)
        focal = np.exp(rng.uniform(lo, hi, m)) / 36.0 * w
        anchor = rng.random((m, 2))
        omega = random_windows(rec, exposure, config.steps, rng)
        motion = motion_from_angular_velocity(omega, exposure, focal, config.frame_size, anchor)
        positions = np.concatenate([np.broadcast_to(probes(config.frame_size), (m, 9, 2)),
                                    (anchor * [w - 1, h - 1])[:, None]], axis=1)
        path, radius = local_paths(motion, positions)
        fits = radius.max(axis=1) <= half
        for i in range(m):
            if len(kernels) == n:
                break
            examined += 1
            if fits[i]:
                kernels.append(local_kernels(motion[i], positions[i, 9:], size=config.size)[0, 0])
                paths.append(path[i, 9])
    return np.asarray(kernels), paths, 1 - n / examined


def all_stats(psf: np.ndarray, paths: list[np.ndarray]) -> dict[str, np.ndarray]:
    stats = image_stats(psf)
    stats["curvature_rad_per_px"] = np.array([curvature(p) for p in paths])
    return stats


def outside(values: np.ndarray, model: np.ndarray) -> float:
    lo, hi = np.percentile(model, [5, 95])
    return float(np.mean((values < lo) | (values > hi)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gyro-test", required=True, help="held-out gyroscope recording")
    parser.add_argument("--gyro-train", help="the recording the process was fitted on (an extra column)")
    parser.add_argument("--n", type=int, default=2000, help="kernels per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", help="also write a PNG: rows of kernels from each source")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    config = CameraConfig()
    sources = {"shake2d": shake2d(args.n, args.seed)}
    psf, paths, params = camera3d(args.n, config, args.seed)
    sources["camera3d"] = (psf, paths)
    redrawn = {"camera3d": float(np.mean(params["redraws"] > 0))}
    recordings = {"gyro test": args.gyro_test, **({"gyro train": args.gyro_train} if args.gyro_train else {})}
    for name, path in recordings.items():
        psf, paths, share = recorded(load_recording(path), args.n, config, args.seed + 1)
        sources[name] = (psf, paths)
        redrawn[name] = share
    stats = {name: all_stats(*value) for name, value in sources.items()}
    rows = []
    for stat in STATS:
        for q in QUANTILES:
            rows.append([stat, f"{q} %"] + [f"{np.percentile(s[stat], q):.3g}" for s in stats.values()])
        for model in ("shake2d", "camera3d"):
            rows.append([stat, f"gyro test outside {model} 5-95 %"] + ["" if name != "gyro test" else
                        f"{outside(stats['gyro test'][stat], stats[model][stat]):.0%}" for name in stats])
    table = markdown_table(["statistic", "quantile"] + list(stats), rows)
    notes = (f"{args.n} kernels per source, 65x65; shake2d = KernelConfig() defaults; camera3d = CameraConfig() "
             f"defaults ({config.frame_size[0]}x{config.frame_size[1]} frame, {config.focal_35mm[0]:g}-"
             f"{config.focal_35mm[1]:g} mm, {config.exposure_s[0]:.3g}-{config.exposure_s[1]:.3g} s); recordings "
             f"through the same camera. Draws redrawn because a kernel did not fit the frame: "
             + ", ".join(f"{k} {v:.0%}" for k, v in redrawn.items()) + ".")
    print(table)
    print(notes)
    if args.sheet:
        write_sheet(args.sheet, sources)
    if not args.no_append:
        append_results("Kernel realism: shake2d vs camera3d vs recorded shake (bench_realism.py)", table,
                       ("numpy", "numba"), notes)


def write_sheet(path: str, sources: dict, per_row: int = 12) -> None:
    from blurgen.core.imageio import write_png
    from blurgen.inspect.preview import grid, kernel_tile
    tiles = [kernel_tile(psf[i], scale=2) for psf, _ in sources.values() for i in range(per_row)]
    write_png(path, grid(tiles, per_row))
    print(f"sheet: {path} (rows: {', '.join(sources)})")


if __name__ == "__main__":
    main()
