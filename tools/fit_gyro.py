"""Fit the camera-shake process to recorded hand-held gyroscope data; judge it on a held-out recording.

    python tools/fit_gyro.py --train gyro_train.txt --test gyro_test.txt --write
    python tools/fit_gyro.py --train gyro_train.txt --test gyro_test.txt --no-append  # report only

Fit (train file only):
1. spectrum: the process's analytic PSD (OU drift + damped oscillators; pitch and yaw share one
   shape, roll has its own amplitudes) is fitted to the Welch PSD of the recording by least squares
   on log power in log-spaced bands from 0.15 to 60 Hz;
2. amplitude spread: the log-normal sd of the per-exposure amplitude is what the recording's spread
   of log RMS over 1 s windows has beyond the stationary model's own spread (simulated);
3. anisotropy: the largest pitch/yaw minor/major ratio is the grid value whose simulated
   rotation-path thinness quantiles (windows of 1/50 .. 1/4 s) are closest to the recording's.
``--write`` stores the numbers in blurgen/camera/fitted.py. The report (printed, and appended to
benchmarks/RESULTS.md) sets train, held-out test and model statistics side by side. The data files
are read from the given paths and never copied.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import os
import sys

import numpy as np
from scipy import optimize

from blurgen.camera.config import CameraConfig, ShakeProcess
from blurgen.camera.motion import simulate_angular_velocity
from blurgen.camera.spectra import axis_psd, channel_psd

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))  # report.py
from gyro_data import AXES, excursion_stats, load_recording, welch_psd, window_rms, windows  # noqa: E402
from report import append_results, markdown_table  # noqa: E402

FITTED = os.path.join(os.path.dirname(__file__), "..", "blurgen", "camera", "fitted.py")
BANDS_HZ = np.geomspace(0.15, 60.0, 41)
WINDOWS_S = (1 / 50, 1 / 20, 1 / 10, 1 / 4)
QUANTILES = (5, 25, 50, 75, 95)
KNOTS = 64
SIM_WINDOWS = 3000


def band_average(freq: np.ndarray, psd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean PSD in each non-empty band of BANDS_HZ: (band centres, (B, ...))."""
    centres, values = [], []
    for lo, hi in zip(BANDS_HZ[:-1], BANDS_HZ[1:]):
        m = (freq >= lo) & (freq < hi)
        if m.any():
            centres.append(np.sqrt(lo * hi))
            values.append(psd[m].mean(axis=0))
    return np.asarray(centres), np.asarray(values)


#: Initial oscillator frequencies (Hz): slow sway, voluntary shake, physiological tremor.
START_HZ = (1.0, 3.3, 9.0)


def unpack(x: np.ndarray, k: int) -> ShakeProcess:
    """Parameters (log tau, log f_j, log(Q_j - 0.51), log sigma_py (k+1), log sigma_roll (k+1))."""
    e = np.exp(x)
    return ShakeProcess(drift_tau_s=float(e[0]), osc_freq_hz=tuple(float(v) for v in e[1:1 + k]),
                        osc_q=tuple(0.51 + float(v) for v in e[1 + k:1 + 2 * k]),
                        sigma_pitch_yaw=tuple(float(v) for v in e[1 + 2 * k:2 + 3 * k]),
                        sigma_roll=tuple(float(v) for v in e[2 + 3 * k:3 + 4 * k]))


def fit_spectrum(freq: np.ndarray, psd: np.ndarray, k: int) -> tuple[ShakeProcess, float]:
    """Least squares on log band power (pitch and yaw pooled), then each group's amplitudes scaled
    so its total variance (0.15-60 Hz) is the recording's: a log fit sits below the peaks, and the
    variance is what sets the blur. Returns the process and the rms log10 band error."""
    centres, bands = band_average(freq, psd)
    target_py = np.log(0.5 * (bands[:, 0] + bands[:, 1]))
    target_roll = np.log(bands[:, 2])

    def residual(x):
        p = unpack(x, k)
        return np.concatenate([np.log(channel_psd(centres, p, p.sigma_pitch_yaw)) - target_py,
                               np.log(channel_psd(centres, p, p.sigma_roll)) - target_roll])

    freqs = START_HZ[-k:] if k <= len(START_HZ) else np.geomspace(0.5, 12.0, k)
    x0 = np.log([0.5, *freqs, *([2.0] * k), *([0.2] * (k + 1)), *([0.1] * (k + 1))])
    lo = np.log([0.01] + [0.3] * k + [0.01] * k + [1e-4] * (2 * k + 2))
    hi = np.log([10.0] + [30.0] * k + [30.0] * k + [10.0] * (2 * k + 2))
    best = optimize.least_squares(residual, x0, bounds=(lo, hi), max_nfev=20000)
    process = unpack(best.x, k)
    # A component pinned at its lower bound carries no power: store it as exactly zero.
    process = process.replace(sigma_pitch_yaw=_zero_floor(process.sigma_pitch_yaw), sigma_roll=_zero_floor(process.sigma_roll))
    band = (freq >= BANDS_HZ[0]) & (freq < BANDS_HZ[-1])
    grid = freq[band]
    scales = []
    for data, sigmas in ((0.5 * (psd[band, 0] + psd[band, 1]), process.sigma_pitch_yaw),
                         (psd[band, 2], process.sigma_roll)):
        scales.append(np.sqrt(np.trapezoid(data, grid) / np.trapezoid(channel_psd(grid, process, sigmas), grid)))
    process = process.replace(sigma_pitch_yaw=tuple(v * scales[0] for v in process.sigma_pitch_yaw),
                              sigma_roll=tuple(v * scales[1] for v in process.sigma_roll))
    rms = float(np.sqrt(np.mean(residual(np.log(np.maximum(_pack(process), 1e-300))) ** 2)) / np.log(10))
    return process, rms


def _zero_floor(sigmas: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(0.0 if v <= 1.01e-4 else v for v in sigmas)


def _pack(p: ShakeProcess) -> np.ndarray:
    return np.array([p.drift_tau_s, *p.osc_freq_hz, *(q - 0.51 for q in p.osc_q), *p.sigma_pitch_yaw, *p.sigma_roll])


def simulated(config: CameraConfig, seconds: float, n: int = SIM_WINDOWS, seed: int = 7) -> np.ndarray:
    return simulate_angular_velocity(n, config.replace(steps=KNOTS if seconds < 1 else 211), seconds, seed=seed)


def fit_amplitude_sd(rec, process: ShakeProcess) -> float:
    data = np.log(window_rms(windows(rec, 1.0, 211)))
    model = np.log(window_rms(simulated(CameraConfig(process=process.replace(amplitude_log_sd=0.0)), 1.0)))
    return float(np.sqrt(max(0.0, data.var() - model.var())))


def thinness_distance(rec_stats: dict, process: ShakeProcess) -> float:
    total = 0.0
    for seconds in WINDOWS_S:
        model = excursion_stats(simulated(CameraConfig(process=process), seconds), seconds)["thinness"]
        q = np.linspace(10, 90, 9)
        total += float(np.sum((np.percentile(model, q) - np.percentile(rec_stats[seconds], q)) ** 2))
    return total


def fit_anisotropy(rec, process: ShakeProcess) -> float:
    data = {s: excursion_stats(windows(rec, s, KNOTS), s)["thinness"] for s in WINDOWS_S}
    grid = np.round(np.linspace(0.0, 1.0, 11), 2)
    scores = [thinness_distance(data, process.replace(anisotropy_max=float(k))) for k in grid]
    return float(grid[int(np.argmin(scores))])


def fit(rec, k: int) -> tuple[ShakeProcess, float]:
    freq, psd = welch_psd(rec)
    process, rms = fit_spectrum(freq, psd, k)
    process = process.replace(anisotropy_max=1.0)
    for _ in range(2):  # the spread and the anisotropy interact a little: alternate twice
        process = process.replace(amplitude_log_sd=fit_amplitude_sd(rec, process))
        process = process.replace(anisotropy_max=fit_anisotropy(rec, process))
    return process, rms


def write_fitted(process: ShakeProcess, rms: float, path: str, train_path: str, rec) -> None:
    digest = hashlib.sha256(open(train_path, "rb").read()).hexdigest()[:16]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    r = lambda values: "(" + ", ".join(f"{v:.6g}" for v in values) + ("," if len(values) == 1 else "") + ")"
    text = f'''"""Hand-shake process fitted on recorded gyroscope data by tools/fit_gyro.py (generated).

Source: {os.path.basename(train_path)} (sha256 {digest}..., {rec.seconds:.1f} s at {rec.rate_hz:.1f} Hz),
fitted {stamp}; rms error of the log10 band PSD: {rms:.3f}. Units: s, Hz, rad/s.
"""

DRIFT_TAU_S = {process.drift_tau_s:.6g}
OSC_FREQ_HZ = {r(process.osc_freq_hz)}
OSC_Q = {r(process.osc_q)}
SIGMA_PITCH_YAW = {r(process.sigma_pitch_yaw)}
SIGMA_ROLL = {r(process.sigma_roll)}
AMPLITUDE_LOG_SD = {process.amplitude_log_sd:.6g}
ANISOTROPY_MAX = {process.anisotropy_max:.6g}
'''
    with open(path, "w") as f:
        f.write(text)


def band_rows(recs: dict, process: ShakeProcess) -> list[list[str]]:
    """RMS angular velocity (rad/s) per axis in octave bands: each recording and the model."""
    edges = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 60.0)
    grid = np.linspace(1e-3, 60.0, 60000)
    model_psd = axis_psd(grid, process)
    rows = []
    for a, axis in enumerate(AXES):
        for name, (freq, psd) in recs.items():
            cells = [np.sqrt(np.trapezoid(psd[(freq >= lo) & (freq < hi), a], freq[(freq >= lo) & (freq < hi)]))
                     for lo, hi in zip(edges[:-1], edges[1:])]
            rows.append([axis, name] + [f"{c:.3f}" for c in cells])
        cells = [np.sqrt(np.trapezoid(model_psd[(grid >= lo) & (grid < hi), a], grid[(grid >= lo) & (grid < hi)]))
                 for lo, hi in zip(edges[:-1], edges[1:])]
        rows.append([axis, "model"] + [f"{c:.3f}" for c in cells])
    return rows


def quantile_cells(values: np.ndarray, scale: float = 1.0, fmt: str = "{:.1f}") -> list[str]:
    return [fmt.format(v * scale) for v in np.percentile(values, QUANTILES)]


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance."""
    grid = np.sort(np.concatenate([a, b]))
    return float(np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a)
                        - np.searchsorted(np.sort(b), grid, "right") / len(b)).max())


def excursion_rows(train, test, process: ShakeProcess) -> list[list[str]]:
    rows = []
    for seconds in WINDOWS_S:
        stats = {"train": excursion_stats(windows(train, seconds, KNOTS), seconds),
                 "test": excursion_stats(windows(test, seconds, KNOTS), seconds),
                 "model": excursion_stats(simulated(CameraConfig(process=process), seconds, seed=11), seconds)}
        for key, label, scale, fmt in (("tilt", "pitch/yaw mrad", 1e3, "{:.1f}"), ("roll", "roll mrad", 1e3, "{:.1f}"),
                                       ("thinness", "minor/major", 1.0, "{:.2f}")):
            for name, s in stats.items():
                extra = "" if name == "test" else f"{ks(s[key], stats['test'][key]):.2f}"
                rows.append([f"1/{round(1 / seconds)} s", label, name] + quantile_cells(s[key], scale, fmt) + [extra])
    return rows


def rms_rows(train, test, process: ShakeProcess) -> list[list[str]]:
    model = window_rms(simulated(CameraConfig(process=process), 1.0))
    values = {"train": window_rms(windows(train, 1.0, 211)), "test": window_rms(windows(test, 1.0, 211)), "model": model}
    return [[name] + quantile_cells(v, 1.0, "{:.3f}") for name, v in values.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="gyroscope recording to fit on")
    parser.add_argument("--test", required=True, help="held-out recording to judge on (never fitted)")
    parser.add_argument("--oscillators", type=int, default=3, help="damped oscillators per channel")
    parser.add_argument("--write", action="store_true", help="store the fit in blurgen/camera/fitted.py")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    train, test = load_recording(args.train), load_recording(args.test)
    process, rms = fit(train, args.oscillators)
    # Judge exactly the numbers that are written (6 significant digits).
    process = ShakeProcess.from_dict({k: (float(f"{v:.6g}") if isinstance(v, float) else tuple(float(f"{x:.6g}") for x in v))
                                      for k, v in process.to_dict().items()})
    print(process)
    if args.write:
        write_fitted(process, rms, FITTED, args.train, train)
    recs = {"train": welch_psd(train), "test": welch_psd(test)}
    bands = markdown_table(["axis", "data", "0-1 Hz", "1-2", "2-4", "4-8", "8-16", "16-60"], band_rows(recs, process))
    exc = markdown_table(["window", "statistic", "data"] + [f"{q} %" for q in QUANTILES] + ["KS vs test"],
                         excursion_rows(train, test, process))
    rms_table = markdown_table(["data"] + [f"{q} %" for q in QUANTILES], rms_rows(train, test, process))
    fitted_line = (f"Fitted on {os.path.basename(args.train)} ({train.seconds:.0f} s): drift tau "
                   f"{process.drift_tau_s:.3g} s; oscillators {', '.join(f'{f:.2f} Hz Q {q:.2f}' for f, q in zip(process.osc_freq_hz, process.osc_q))}; "
                   f"sigma pitch/yaw {', '.join(f'{v:.3f}' for v in process.sigma_pitch_yaw)} rad/s; "
                   f"sigma roll {', '.join(f'{v:.3f}' for v in process.sigma_roll)} rad/s (drift, oscillators); "
                   f"amplitude log-sd {process.amplitude_log_sd:.3f}; anisotropy max {process.anisotropy_max:.2f}; "
                   f"rms error of the log10 band PSD {rms:.3f}. Held out: {os.path.basename(args.test)} ({test.seconds:.0f} s).")
    table = ("RMS angular velocity (rad/s) per band:\n\n" + bands + "\n\nRotation over exposure windows "
             "(largest angle from the mean pose; minor/major = thinness of the pitch/yaw path):\n\n" + exc
             + "\n\nRMS angular speed over 1 s windows (rad/s):\n\n" + rms_table)
    print(table)
    print(fitted_line)
    if not args.no_append:
        append_results("Camera shake: gyroscope fit (fit_gyro.py)", table, ("numpy", "scipy", "numba"), fitted_line)


if __name__ == "__main__":
    main()
