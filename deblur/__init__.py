"""DeblurGAN (Kupyn et al., CVPR 2018) for blurgen pairs: ``blurgen.deblur`` (needs torch).

Modules, in the BasicSR split: ``models`` (generator, critic), ``losses`` (WGAN-GP, VGG19
perceptual), ``metrics`` (PSNR/SSIM on uint8), ``inference`` (checkpoint loading, whole-image and
tiled deblurring), ``data`` and ``train``. Public names load on first attribute access, so
``import blurgen.deblur`` itself is cheap and the submodules import torch only when used.
"""

from __future__ import annotations

from blurgen.core._lazy import lazy_exports

_LAZY = {
    "blurgen.deblur.models": "ResnetGenerator PatchCritic GENERATORS build_generator generator_config",
    "blurgen.deblur.losses": "gradient_penalty critic_loss generator_adv_loss PerceptualLoss",
    "blurgen.deblur.metrics": "psnr ssim",
    "blurgen.deblur.inference": "load_generator deblur_image",
    "blurgen.deblur.data": "PairsDataset GoProPairs",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
