"""A rotating (and optionally translating) hand-held camera: motion, local kernels, blur.

Modules: ``config`` (``CameraConfig``, ``ShakeProcess``), ``fitted`` (the process fitted on
recorded gyroscope data), ``motion`` (``random_camera_motion``, ``CameraMotion``), ``kernels``
(``local_kernels``), ``render`` (``blur_camera``, ``plan_camera_blur``), ``spectra`` (the
process's analytic spectrum), ``reference`` (brute-force oracles). Names load on first use.
"""

from __future__ import annotations

from blurgen.core._lazy import lazy_exports

_LAZY = {
    "blurgen.camera.config": "CameraConfig ShakeProcess",
    "blurgen.camera.motion": "CameraMotion random_camera_motion motion_from_angular_velocity",
    "blurgen.camera.kernels": "local_kernels camera_kernels_with_params",
    "blurgen.camera.render": "CameraBlurPlan plan_camera_blur camera_margin blur_camera",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
