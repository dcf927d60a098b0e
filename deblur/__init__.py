"""DeblurGAN (Kupyn et al., CVPR 2018) for blurgen pairs: ``blurgen.deblur`` (needs torch).

Modules, in the BasicSR split: ``models`` (generator, critic), ``losses`` (WGAN-GP, VGG19
perceptual), ``metrics`` (PSNR/SSIM on uint8), ``inference`` (checkpoint loading, whole-image and
tiled deblurring), ``data`` and ``train``. Public names load on first attribute access, so
``import blurgen.deblur`` itself is cheap and the submodules import torch only when used.
"""

from __future__ import annotations

from blurgen._lazy import lazy_exports

_LAZY = {
    "ResnetGenerator": "blurgen.deblur.models",
    "PatchCritic": "blurgen.deblur.models",
    "GENERATORS": "blurgen.deblur.models",
    "build_generator": "blurgen.deblur.models",
    "generator_config": "blurgen.deblur.models",
    "gradient_penalty": "blurgen.deblur.losses",
    "critic_loss": "blurgen.deblur.losses",
    "generator_adv_loss": "blurgen.deblur.losses",
    "PerceptualLoss": "blurgen.deblur.losses",
    "psnr": "blurgen.deblur.metrics",
    "ssim": "blurgen.deblur.metrics",
    "load_generator": "blurgen.deblur.inference",
    "PairsDataset": "blurgen.deblur.data",
    "GoProPairs": "blurgen.deblur.data",
    "deblur_image": "blurgen.deblur.inference",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
