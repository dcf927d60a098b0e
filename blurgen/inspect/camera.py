"""Report lines on a camera-pipeline pairs file (``--pipeline camera``): how many samples have
light sources and saturated streaks, and the RAW noise levels."""

from __future__ import annotations

from typing import Any

import numpy as np


def camera_lines(params: dict[str, Any], n_written: int) -> list[str]:
    """Lines for ``blurgen inspect`` from the file's ``/params`` (datasets or arrays); none for a
    file of the sRGB pipeline (it has no ``clipped_share``).

    Example:
        >>> camera_lines({"clipped_share": np.array([0.0, 0.02]), "light_share": np.array([0.0, 0.01]),
        ...               "noise_a": np.array([1e-3, 2e-3]), "noise_b": np.array([1e-6, 4e-6])}, 2)[0]
        'camera pipeline: streaked highlights (RAW clipped after the blur) in 1 of 2 samples (50.0%)'
    """
    if "clipped_share" not in params or n_written == 0:
        return []
    clipped = np.asarray(params["clipped_share"][:n_written], np.float64)
    lights = np.asarray(params["light_share"][:n_written], np.float64)
    streaked = int((clipped > 0).sum())
    lines = [f"camera pipeline: streaked highlights (RAW clipped after the blur) in {streaked} of {n_written} "
             f"samples ({streaked / n_written:.1%})",
             f"  light sources in {int((lights > 0).sum())} samples, mean {lights.mean():.2%} of the pixels; "
             f"clipped pixels mean {clipped.mean():.2%}, max {clipped.max():.2%}"]
    shot = np.asarray(params["noise_a"][:n_written], np.float64)
    read = np.asarray(params["noise_b"][:n_written], np.float64)
    if shot.max() > 0:
        lines.append(f"  RAW noise: shot {shot.min():.3g}..{shot.max():.3g}, read {read.min():.3g}..{read.max():.3g} "
                     "(variance shot * x + read, x in [0, 1])")
    return lines
