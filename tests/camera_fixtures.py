"""Shared helpers of the camera tests: hand-built motions and kernel moments."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from test_kernels import moments as covariance  # noqa: F401  (weighted 2x2 covariance of a kernel)

from blurgen.camera.config import CameraConfig
from blurgen.camera.motion import CameraMotion

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROPERTY = settings(max_examples=4 if NOJIT else 30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Knots of the configurations the property tests draw (fewer without the JIT: pure Python).
STEPS = 24 if NOJIT else 128


def motion_of(rotation, focal_px: float, frame_size=(320, 240), translation=None, depth_m=np.inf,
              anchor=(0.5, 0.5), exposure_s=0.05) -> CameraMotion:
    """A one-sample motion from rotation vectors (S, 3) (and camera centres (S, 3), m)."""
    rot = np.asarray(rotation, np.float32)[None]
    trans = np.zeros_like(rot) if translation is None else np.asarray(translation, np.float32)[None]
    return CameraMotion(rot, trans, [focal_px], [depth_m], [anchor], [exposure_s], frame_size)


def centroid(kernel: np.ndarray) -> tuple[float, float]:
    """Weighted centroid (x, y) of a kernel relative to its centre pixel."""
    k = kernel.astype(np.float64)
    rows, cols = np.indices(k.shape)
    c = (k.shape[0] - 1) / 2
    return float((k * cols).sum() / k.sum() - c), float((k * rows).sum() / k.sum() - c)


@st.composite
def camera_configs(draw, translation: bool = True):
    """Cameras over wide ranges whose kernels fit 65 px (short exposures for long lenses).
    Frames are between 1:2 and 2:1 like a camera's: a frame 10x taller than wide with a 10 mm
    lens sees nearly 180 degrees up and down, and kernels near its top stretch past any size."""
    width = draw(st.integers(32, 800))
    height = min(600, max(32, round(width * draw(st.floats(0.5, 2.0)))))
    focal = draw(st.floats(10.0, 200.0))
    exposure_hi = max(1e-4, draw(st.floats(1e-4, 0.4)) * min(1.0, 24.0 / focal) * min(1.0, 640.0 / width))
    return CameraConfig(
        frame_size=(width, height), focal_35mm=(focal, focal * draw(st.floats(1.0, 2.0))),
        exposure_s=(max(1e-5, exposure_hi * draw(st.floats(0.05, 1.0))), exposure_hi),
        shake_scale=draw(st.floats(0.0, 2.0)), roll_scale=draw(st.floats(0.0, 3.0)),
        translation_mps=draw(st.floats(0.0, 0.05)) if translation else 0.0,
        depth_m=(0.3, 5.0), steps=draw(st.integers(2, STEPS)), size=65)
