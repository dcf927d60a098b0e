"""DeblurGAN losses: WGAN-GP adversarial terms and the VGG19 conv3_3 perceptual content loss.

Images are float32 ``(B, 3, H, W)`` in ``[-1, 1]``. The total generator loss of the paper is
``generator_adv_loss(critic, fake) + PerceptualLoss()(fake, sharp)`` (the content weight 100 lives
in ``PerceptualLoss.weight``); the critic takes ``critic_loss(critic, sharp, fake)`` (λ = 10) for
several steps (5 in the paper) per generator step.
"""

from __future__ import annotations

import glob
import logging
import os
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from blurgen.core.common import one_line

log = logging.getLogger(__name__)

Critic = Callable[[torch.Tensor], torch.Tensor]


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor,
                     alpha: Optional[torch.Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """WGAN-GP penalty ``mean_b (||∇_x̂ Σ critic(x̂_b)||_2 - 1)^2`` (Gulrajani et al. 2017).

    ``x̂ = α·real + (1 - α)·fake`` with one ``α ~ U[0, 1)`` per sample. For a patch critic the
    scalar differentiated is the sum of the sample's patch scores, as in the DeblurGAN reference
    code (``grad_outputs=ones``); samples do not interact (no BatchNorm), so each sample's
    gradient is its own and the result does not depend on the batch size, which keeps it equal
    between one process and a DDP run on the same global batch. λ is applied by the caller.

    Args:
        critic: module or function ``(B, C, H, W) -> (B, ...)`` scores.
        real, fake: ``(B, C, H, W)`` float tensors; both are detached here (the penalty trains
            the critic only).
        alpha: optional ``(B,)`` or ``(B, 1, 1, 1)`` interpolation weights (tests, reproducibility).
        generator: optional ``torch.Generator`` for drawing α.

    Returns:
        0-d tensor, differentiable w.r.t. the critic's parameters (double backward).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    b = real.shape[0]
    if alpha is None:
        alpha = torch.rand(b, generator=generator, device="cpu" if generator is not None else real.device,
                           dtype=real.dtype).to(real.device)
    alpha = alpha.reshape(b, *([1] * (real.ndim - 1))).to(real)
    xhat = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(xhat)
    (grad,) = torch.autograd.grad(scores.sum(), xhat, create_graph=True)
    norms = grad.reshape(b, -1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, gp_weight: float = 10.0,
                alpha: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """WGAN-GP critic loss ``D(fake).mean() - D(real).mean() + gp_weight * gradient_penalty``.

    ``fake`` is detached (the critic step must not backpropagate into the generator).

    Returns:
        ``(loss, stats)``: ``loss`` a 0-d tensor to minimise; ``stats`` detached 0-d tensors
        ``critic_real``, ``critic_fake``, ``wasserstein`` (real - fake, the critic's estimate of
        the Wasserstein-1 distance) and ``gp`` (unweighted). They are tensors, not floats, so that
        logging does not force a GPU sync every step; call ``float()`` when printing.
    """
    fake = fake.detach()
    d_real = critic(real).mean()
    d_fake = critic(fake).mean()
    gp = gradient_penalty(critic, real, fake, alpha=alpha)
    loss = d_fake - d_real + gp_weight * gp
    stats = {"critic_real": d_real.detach(), "critic_fake": d_fake.detach(),
             "wasserstein": (d_real - d_fake).detach(), "gp": gp.detach()}
    return loss, stats


def generator_adv_loss(critic: Critic, fake: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss ``-D(fake).mean()`` (gradients flow into ``fake``); 0-d tensor."""
    return -critic(fake).mean()


# torchvision vgg19().features indices 0..14 end at conv3_3 (before its ReLU), the layer the
# DeblurGAN reference cuts at. Built here layer for layer so the state-dict keys match
# torchvision's ("features.<i>.weight") without allocating VGG19's 120 M-parameter classifier.
_VGG19_CONV3_3 = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256)]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_conv3_3() -> nn.Sequential:
    """Randomly initialised VGG19 ``features[:15]`` (conv1_1 .. conv3_3), torchvision layout."""
    layers: list[nn.Module] = []
    for item in _VGG19_CONV3_3:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(item[0], item[1], 3, padding=1), nn.ReLU(inplace=True)]
    layers.pop()  # stop at conv3_3's output, before its ReLU
    return nn.Sequential(*layers)


#: torchvision's ImageNet VGG19 weights (``VGG19_Weights.IMAGENET1K_V1``), the file the torch hub
#: cache holds once torchvision has downloaded them.
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"


def missing_vgg19_message() -> str:
    """What to do without VGG19 weights, naming the file and where it goes (one line)."""
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    return (f"no VGG19 weights: the content loss falls back to pixel MSE. For the paper's VGG19 loss, put "
            f"{VGG19_FILE} ({VGG19_URL}) in {folder}{os.sep}, or pass --vgg-weights PATH to a torchvision "
            "vgg19 state dict")


def find_cached_vgg19() -> Optional[str]:
    """Path of a VGG19 (not VGG19-BN) checkpoint in the local torch hub cache, or None.
    Looks only; never downloads."""
    pattern = os.path.join(torch.hub.get_dir(), "checkpoints", "vgg19-*.pth")
    matches = sorted(glob.glob(pattern))
    return matches[0] if matches else None


def load_vgg19_features(path: str) -> nn.Sequential:
    """VGG19 conv1_1..conv3_3 with weights from a torchvision ``vgg19`` state dict at ``path``
    (keys ``features.<i>.*``; a bare ``features`` state dict with keys ``<i>.*`` also works).
    Raises ``ValueError`` naming the file when it holds no usable VGG19 weights."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"{path}: cannot read VGG19 weights: {exc}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    features = vgg19_conv3_3()
    wanted = features.state_dict().keys()
    picked = {}
    for key in wanted:
        for candidate in (f"features.{key}", key):
            if candidate in state:
                picked[key] = state[candidate]
                break
    missing = [k for k in wanted if k not in picked]
    if missing:
        raise ValueError(f"{path}: not VGG19 weights (missing {missing[0]} and {len(missing) - 1} more)")
    try:
        features.load_state_dict(picked)
    except RuntimeError as exc:
        raise ValueError(f"{path}: VGG19 weights of the wrong shape: {one_line(exc)}") from None
    return features


class PerceptualLoss(nn.Module):
    """DeblurGAN content loss: ``weight * MSE(φ(fake), φ(sharp))`` with φ = VGG19 conv3_3.

    Inputs ``(B, 3, H, W)`` float in ``[-1, 1]`` are mapped to ``[0, 1]`` and normalised with the
    ImageNet mean/std VGG was trained with. The target's features are detached. VGG is frozen
    and always in eval mode; only ``fake`` receives gradients.

    Weights, in order: ``weights_path`` (a torchvision vgg19 state dict; unreadable -> ValueError);
    else ``torch.hub.get_dir()/checkpoints/vgg19-*.pth`` if present; else, with
    ``allow_random=True``, random VGG weights (tests only: the loss works but is meaningless);
    otherwise a logged warning (``missing_vgg19_message``: the file and the folder; ``warn=False``
    keeps it quiet, as DDP ranks other than 0 do) and the **fallback**: pixel MSE, ``weight * MSE(fake, sharp)`` on
    the ``[-1, 1]`` images (φ = identity). Nothing is ever downloaded. ``self.mode`` says which
    one is in use: ``"vgg19"``, ``"random-vgg19"`` or ``"pixel-mse"``; ``self.weights_source``
    names the file.

    >>> loss = PerceptualLoss(allow_random=True)
    >>> x = torch.zeros(1, 3, 32, 32)
    >>> float(loss(x, x))
    0.0
    """

    def __init__(self, weights_path: Optional[str] = None, weight: float = 100.0,
                 allow_random: bool = False, warn: bool = True) -> None:
        super().__init__()
        self.weight = float(weight)
        self.weights_source: Optional[str] = None
        path = os.fspath(weights_path) if weights_path is not None else find_cached_vgg19()
        if path is not None:
            self.features: Optional[nn.Sequential] = load_vgg19_features(path)
            self.mode, self.weights_source = "vgg19", path
        elif allow_random:
            self.features, self.mode = vgg19_conv3_3(), "random-vgg19"
        else:
            if warn:
                log.warning("%s", missing_vgg19_message())
            self.features, self.mode = None, "pixel-mse"
        if self.features is not None:
            for p in self.features.parameters():
                p.requires_grad_(False)
            self.features.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        if self.features is not None:
            self.features.eval()  # a fixed feature extractor, whatever the trainer's mode
        return self

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x): ``(B, 3, H, W)`` in ``[-1, 1]`` -> ``(B, 256, H/4, W/4)`` features (or x itself
        in the pixel fallback)."""
        if self.features is None:
            return x
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        return self.features(x)

    def forward(self, fake: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        """0-d tensor ``weight * mean((φ(fake) - φ(sharp))^2)``."""
        with torch.no_grad():
            target = self.extract(sharp)
        return self.weight * F.mse_loss(self.extract(fake), target)
