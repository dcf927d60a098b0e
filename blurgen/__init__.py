"""blurgen: synthetic camera-shake motion blur for training and testing deblurring models.

``import blurgen`` is light: it never imports torch, and heavier modules load on first use.

>>> import blurgen
>>> blurgen.random_kernels(2, size=31, seed=0, length_px=20.0).shape
(2, 31, 31)
"""

from __future__ import annotations

from blurgen._lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first attribute access (PEP 562) so that
# `import blurgen` stays fast and `blurgen kernels` never loads OpenCV or h5py.
_LAZY = {
    "KernelConfig": "blurgen.config",
    "random_trajectories": "blurgen.kernels",
    "rasterize": "blurgen.kernels",
    "random_kernels": "blurgen.kernels",
    "random_kernels_with_params": "blurgen.kernels",
    "crop_to_support": "blurgen.kernels",
    "blur_linear": "blurgen.blur",
    "srgb_to_linear": "blurgen.blur",
    "linear_to_srgb": "blurgen.blur",
    "BlurConfig": "blurgen.blur",
    "CameraConfig": "blurgen.camera.config",
    "random_camera_motion": "blurgen.camera.motion",
    "local_kernels": "blurgen.camera.kernels",
    "blur_camera": "blurgen.camera.render",
    "read_pairs": "blurgen.store.reader",
    "PairsFile": "blurgen.store.reader",
    "KernelBank": "blurgen.kernel_bank",
    "KernelBankError": "blurgen.kernel_bank",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
