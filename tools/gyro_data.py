"""Recorded gyroscope data (``timestamp_ns wx wy wz`` per line, rad/s) for fitting and checking
the camera-shake model, and the statistics both the data and the model are judged by.

The files are read from paths given on the command line and never copied into the repository.
The phone's gyroscope axes (x right, y up, z out of the screen) are turned into the back camera's
(x right, y down, z forward): pitch = wx, yaw = -wy, roll = -wz. Signs do not change any statistic
used here (all are invariant under mirroring), only the pairing of axes matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from blurgen.camera.motion import motion_from_angular_velocity

#: A pause between samples longer than this many median periods splits a recording.
GAP_PERIODS = 3.0
AXES = ("pitch", "yaw", "roll")


@dataclass(frozen=True)
class Recording:
    """Continuous pieces of a gyroscope recording: times (s) and angular velocity (rad/s, camera axes)."""

    pieces: list[tuple[np.ndarray, np.ndarray]]
    rate_hz: float

    @property
    def seconds(self) -> float:
        return float(sum(t[-1] - t[0] for t, _ in self.pieces))


def load_recording(path: str) -> Recording:
    data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if data.ndim != 2 or data.shape[1] != 4 or len(data) < 100:
        raise SystemExit(f"{path}: expected lines 'timestamp_ns wx wy wz', got shape {data.shape}")
    t = (data[:, 0] - data[0, 0]) * 1e-9
    omega = data[:, 1:] * np.array([1.0, -1.0, -1.0])
    dt = np.diff(t)
    period = float(np.median(dt))
    cuts = np.flatnonzero((dt > GAP_PERIODS * period) | (dt <= 0)) + 1
    pieces = [(tt, ww) for tt, ww in zip(np.split(t, cuts), np.split(omega, cuts)) if len(tt) > 10]
    return Recording(pieces, 1.0 / period)


def welch_psd(rec: Recording, nperseg: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """One-sided PSD (rad/s)^2/Hz per axis, pieces averaged by length: (freq, (F, 3))."""
    total, weight, freq = 0.0, 0, None
    for _, w in rec.pieces:
        if len(w) < nperseg:
            continue
        freq, p = signal.welch(w, fs=rec.rate_hz, nperseg=nperseg, axis=0)
        total = total + p * len(w)
        weight += len(w)
    return freq, total / weight


def windows(rec: Recording, seconds: float, steps: int, hop: float = 0.5) -> np.ndarray:
    """Angular velocity of every exposure window of ``seconds`` (start every ``hop`` of a window),
    linearly resampled to ``steps`` knots: (n, steps, 3) rad/s."""
    out = []
    for t, w in rec.pieces:
        starts = np.arange(t[0], t[-1] - seconds, seconds * hop)
        for t0 in starts:
            knots = t0 + np.linspace(0.0, seconds, steps)
            out.append(np.stack([np.interp(knots, t, w[:, a]) for a in range(3)], axis=1))
    return np.asarray(out)


def excursion_stats(omega: np.ndarray, seconds: float) -> dict[str, np.ndarray]:
    """Per window: largest pitch/yaw rotation from the mean pose (rad), largest roll (rad), and the
    minor/major axis ratio of the pitch/yaw rotation path (second moments): how thin a blur is."""
    motion = motion_from_angular_velocity(omega, np.full(len(omega), seconds), np.ones(len(omega)), (64, 64))
    rot = motion.rotation.astype(np.float64)
    tilt = np.linalg.norm(rot[:, :, :2], axis=2).max(axis=1)
    roll = np.abs(rot[:, :, 2]).max(axis=1)
    p = rot[:, :, :2] - rot[:, :, :2].mean(axis=1, keepdims=True)
    cov = np.einsum("nsi,nsj->nij", p, p) / p.shape[1]
    ev = np.linalg.eigvalsh(cov)
    ratio = np.sqrt(np.clip(ev[:, 0], 0, None) / np.maximum(ev[:, 1], 1e-30))
    return {"tilt": tilt, "roll": roll, "thinness": ratio}


def window_rms(omega: np.ndarray) -> np.ndarray:
    """RMS angular speed |w| per window (rad/s)."""
    return np.sqrt((omega ** 2).sum(axis=2).mean(axis=1))


def random_windows(rec: Recording, seconds: np.ndarray, steps: int, rng: np.random.Generator) -> np.ndarray:
    """One window per entry of ``seconds`` at a uniformly drawn start in the recording (pieces
    weighted by the starts they offer), resampled to ``steps`` knots: (n, steps, 3) rad/s."""
    out = np.empty((len(seconds), steps, 3))
    for i, length in enumerate(seconds):
        room = np.array([max(0.0, t[-1] - t[0] - length) for t, _ in rec.pieces])
        piece = rng.choice(len(rec.pieces), p=room / room.sum())
        t, w = rec.pieces[piece]
        knots = t[0] + rng.uniform(0.0, room[piece]) + np.linspace(0.0, length, steps)
        out[i] = np.stack([np.interp(knots, t, w[:, a]) for a in range(3)], axis=1)
    return out
