"""blurgen: synthetic camera-shake motion blur for training and testing deblurring models.

``import blurgen`` is light: it never imports torch, and heavier modules load on first use.

>>> import blurgen
>>> blurgen.random_kernels(2, size=31, seed=0, length_px=20.0).shape
(2, 31, 31)
"""

from __future__ import annotations

from blurgen.core._lazy import lazy_exports

__version__ = "0.1.0"

# Module -> the public names it defines, imported on first attribute access (PEP 562) so that
# `import blurgen` stays fast and `blurgen kernels` never loads OpenCV or h5py.
_LAZY = {
    "blurgen.core.config": "KernelConfig",
    "blurgen.motion.walk": "random_trajectories rasterize",
    "blurgen.motion.api": "random_kernels random_kernels_with_params",
    "blurgen.core.kernel_shape": "crop_to_support",
    "blurgen.blur": "blur_linear srgb_to_linear linear_to_srgb BlurConfig",
    "blurgen.camera.config": "CameraConfig",
    "blurgen.camera.motion": "random_camera_motion CameraMotion",
    "blurgen.camera.clip": "random_camera_clip CameraClip",
    "blurgen.camera.kernels": "local_kernels",
    "blurgen.camera.render": "blur_camera",
    "blurgen.store.reader": "read_pairs PairsFile",
    "blurgen.motion.bank": "KernelBank KernelBankError",
    "blurgen.motion.registry": "MotionModel",
}

__all__ = ["__version__", *" ".join(_LAZY.values()).split()]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
