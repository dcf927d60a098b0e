"""A rotating (and optionally translating) hand-held camera: motion, local kernels, blur.

Modules: ``config`` (``CameraConfig``, ``ShakeProcess``), ``fitted`` (the process fitted on
recorded gyroscope data), ``motion`` (``random_camera_motion``, ``CameraMotion``), ``kernels``
(``local_kernels``), ``render`` (``blur_camera``, ``plan_camera_blur``), ``spectra`` (the
process's analytic spectrum), ``reference`` (brute-force oracles). Names load on first use.
"""

from __future__ import annotations

from blurgen._lazy import lazy_exports

_LAZY = {
    "CameraConfig": "blurgen.camera.config",
    "ShakeProcess": "blurgen.camera.config",
    "CameraMotion": "blurgen.camera.motion",
    "random_camera_motion": "blurgen.camera.motion",
    "motion_from_angular_velocity": "blurgen.camera.motion",
    "local_kernels": "blurgen.camera.kernels",
    "camera_kernels_with_params": "blurgen.camera.kernels",
    "CameraBlurPlan": "blurgen.camera.render",
    "plan_camera_blur": "blurgen.camera.render",
    "camera_margin": "blurgen.camera.render",
    "blur_camera": "blurgen.camera.render",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
