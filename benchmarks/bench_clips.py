"""Clips (hand-held video): speed against camera3d pairs, and the inter-frame rotation statistic.

    python benchmarks/bench_clips.py                          # appends to benchmarks/RESULTS.md
    python benchmarks/bench_clips.py --gyro gyro_train.txt    # beside the recorded gyroscope data
    python benchmarks/bench_clips.py --quick --no-append

Speed, one core (Numba and OpenCV one thread; CPU seconds of this process), interleaved rounds:
``make_clip_block`` of 8-frame 256x256 clips from a dead-leaves still against camera3d
``make_block`` pairs at 256x256. Target: clips/s >= 0.5 x (pairs/s / 8).

Inter-frame statistic: the angle of the rotation between consecutive frames' time-mean poses at
30 fps, 180 degrees, from ``random_camera_clip`` (default camera, 8-frame clips); with ``--gyro``
the same statistic of the recording (``timestamp_ns wx wy wz`` lines, rad/s), computed by the
same code on the recording's rates (``clip_grid`` + ``integrate_grid`` + ``frame_poses``), at
starts every 0.1 s. ``--self-check`` writes a 180 s recording of the model's own rates at 210 Hz
and runs the recording path on it (it must agree with the model's clips).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import cv2
import numba
import numpy as np

from blurgen.camera import _clip_jit as cj
from blurgen.camera.clip import clip_grid, random_camera_clip
from blurgen.camera.config import CameraConfig
from blurgen.camera.motion import simulate_angular_velocity
from blurgen.pairs.clips import ClipsConfig, make_clip_block
from blurgen.pairs.pipeline import PairsConfig, make_block

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(__file__))
from report import append_results, markdown_table  # noqa: E402

from tools.gyro_data import load_recording  # noqa: E402

FPS, SHUTTER, STEPS = 30.0, 180.0, 64


def speed(rounds: int, clips: int, pairs: int) -> tuple[float, float]:
    """(clips/s, pairs/s) in CPU time, interleaved rounds, fresh samples each round."""
    pair_config = PairsConfig(width=256, height=256, motion="camera3d")
    clip_config = ClipsConfig(pair_config, frames=8)
    make_block(pair_config, 0, 0, 1), make_clip_block(clip_config, 0, 0, 1)  # compile / warm caches
    clip_s = pair_s = 0.0
    for r in range(rounds):
        began = time.process_time()
        make_clip_block(clip_config, 1, 1 + r * clips, clips)
        clip_s += time.process_time() - began
        began = time.process_time()
        make_block(pair_config, 1, 1 + r * pairs, pairs)
        pair_s += time.process_time() - began
    return rounds * clips / clip_s, rounds * pairs / pair_s


def angles_between_means(frame_rotation: np.ndarray) -> np.ndarray:
    """Angles (rad) of the rotations between consecutive frames' mean poses, (n, T, 3) -> (n*(T-1),)."""
    out = []
    for clip in frame_rotation.astype(np.float64):
        mats = [cv2.Rodrigues(v)[0] for v in clip]
        out += [np.linalg.norm(cv2.Rodrigues(a.T @ b)[0]) for a, b in zip(mats[:-1], mats[1:])]
    return np.array(out)


def model_statistic(n: int) -> np.ndarray:
    clip, _ = random_camera_clip(n, 8, FPS, SHUTTER, CameraConfig(steps=STEPS), seed=0)
    return angles_between_means(clip.frame_rotation)


def recording_statistic(path: str, hop_s: float = 0.1) -> np.ndarray:
    """The same statistic of a recording: its rates resampled onto a 2-frame clip grid per start."""
    rec = load_recording(path)
    times, knots, _ = clip_grid(2, FPS, SHUTTER, STEPS, 0.0)
    knots = knots[:2]
    out = []
    for t, w in rec.pieces:
        for t0 in np.arange(t[0], t[-1] - times[-1], hop_s):
            rates = np.zeros((len(times), 6))
            for a in range(3):
                rates[:, a] = np.interp(t0 + times, t, w[:, a])
            mats, centre = np.empty((len(times), 3, 3)), np.empty((len(times), 3))
            cj.integrate_grid(times, rates, mats, centre, np.empty((3, 3)))
            rot, trans = np.empty((2, knots.shape[1], 3)), np.empty((2, knots.shape[1], 3))
            fr, ft = np.empty((2, 3)), np.empty((2, 3))
            cj.frame_poses(mats, centre, knots, STEPS, rot, trans, fr, ft, np.empty((2, 4, 3)))
            out.append(np.linalg.norm(fr[1]))
    return np.array(out)


def self_check_recording(folder: str, seconds: float = 180.0, rate_hz: float = 210.0) -> str:
    """A recording file of the model's own rates (camera axes turned back into the phone's)."""
    steps = int(seconds * rate_hz) + 1
    omega = simulate_angular_velocity(1, CameraConfig(steps=steps), seconds, seed=9)[0]
    stamps = np.arange(steps) / rate_hz * 1e9
    path = os.path.join(folder, "model_recording.txt")
    np.savetxt(path, np.column_stack([stamps, omega * np.array([1.0, -1.0, -1.0])]), fmt="%.0f %.9g %.9g %.9g")
    return path


def _row(name: str, values: np.ndarray) -> list[str]:
    q = np.percentile(values, [5, 50, 95]) * 1e3
    return [name, str(len(values)), f"{q[0]:.1f}", f"{q[1]:.1f}", f"{q[2]:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gyro", help="recorded gyroscope file (timestamp_ns wx wy wz per line)")
    parser.add_argument("--self-check", action="store_true", help="also run the recording path on the model's rates")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    numba.set_num_threads(1)
    cv2.setNumThreads(1)
    rounds, clips, pairs = (2, 1, 8) if args.quick else (4, 3, 24)
    clip_rate, pair_rate = speed(rounds, clips, pairs)
    ratio = clip_rate / (pair_rate / 8)
    speed_table = markdown_table(["what", "rate (CPU time, one core)", "ratio to pairs/s / 8 (target >= 0.5)"],
                                 [["camera3d pairs 256x256", f"{pair_rate:.2f} pairs/s", ""],
                                  ["clips 8 x 256x256 from a still", f"{clip_rate:.3f} clips/s", f"{ratio:.2f}"]])
    rows = [_row("model (random_camera_clip, default CameraConfig)", model_statistic(300 if args.quick else 2000))]
    notes = "The recorded gyroscope data was not given (--gyro): not on this machine."
    if args.self_check:
        with tempfile.TemporaryDirectory() as folder:
            rows.append(_row("recording path on the model's own rates (self-check)",
                             recording_statistic(self_check_recording(folder))))
    if args.gyro:
        rows.append(_row(f"recorded gyroscope data ({os.path.basename(args.gyro)})", recording_statistic(args.gyro)))
        notes = ""
    stat_table = markdown_table(["rotation between consecutive frames' mean poses, 30 fps, 180 deg", "pairs of frames",
                                 "5 % mrad", "median mrad", "95 % mrad"], rows)
    print(speed_table + "\n\n" + stat_table + ("\n\n" + notes if notes else ""))
    if not args.no_append:
        append_results("Clips: speed and inter-frame rotation (bench_clips.py)", speed_table + "\n\n" + stat_table,
                       ("numpy", "numba", "opencv-python-headless", "h5py"), notes)


if __name__ == "__main__":
    main()
