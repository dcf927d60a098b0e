"""Analytic power spectra of the shake process (the law its sampler must follow, and the fit's model)."""

from __future__ import annotations

import numpy as np

from blurgen.camera.config import ShakeProcess


def ou_psd(freq_hz: np.ndarray, tau_s: float) -> np.ndarray:
    """One-sided PSD (1/Hz) of a unit-variance Ornstein-Uhlenbeck process with time constant tau."""
    f = np.asarray(freq_hz, np.float64)
    return 4.0 * tau_s / (1.0 + (2.0 * np.pi * f * tau_s) ** 2)


def oscillator_psd(freq_hz: np.ndarray, f0_hz: float, q: float) -> np.ndarray:
    """One-sided PSD (1/Hz) of a unit-variance stochastic damped oscillator at f0 with quality q:
    ``x'' + (w0/q) x' + w0^2 x = noise`` has two-sided S(w) = 4 g w0^2 / ((w0^2 - w^2)^2 + 4 g^2 w^2)
    with g = w0 / (2q), integrating (dw / 2pi) to 1."""
    w = 2.0 * np.pi * np.asarray(freq_hz, np.float64)
    w0 = 2.0 * np.pi * f0_hz
    g = w0 / (2.0 * q)
    return 2.0 * 4.0 * g * w0 ** 2 / ((w0 ** 2 - w ** 2) ** 2 + 4.0 * g ** 2 * w ** 2)


def channel_psd(freq_hz: np.ndarray, process: ShakeProcess, sigmas: tuple[float, ...]) -> np.ndarray:
    """One-sided PSD, (rad/s)^2/Hz, of a channel with component amplitudes ``sigmas`` (drift first)."""
    total = sigmas[0] ** 2 * ou_psd(freq_hz, process.drift_tau_s)
    for f0, q, sigma in zip(process.osc_freq_hz, process.osc_q, sigmas[1:]):
        total = total + sigma ** 2 * oscillator_psd(freq_hz, f0, q)
    return total


def axis_psd(freq_hz: np.ndarray, process: ShakeProcess, shake_scale: float = 1.0,
             roll_scale: float = 1.0) -> np.ndarray:
    """Population-average one-sided PSD (rad/s)^2/Hz of pitch, yaw, roll: ``(len(freq), 3)``.

    The random direction and the amplitude's unit mean square leave each of pitch and yaw with
    the pitch/yaw channel's spectrum (E[cos^2] a1^2 + E[sin^2] a2^2 = 1)."""
    py = channel_psd(freq_hz, process, process.sigma_pitch_yaw) * shake_scale ** 2
    roll = channel_psd(freq_hz, process, process.sigma_roll) * (shake_scale * roll_scale) ** 2
    return np.stack([py, py, roll], axis=-1)
