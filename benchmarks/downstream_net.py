"""The downstream benchmark's fixed restorer and its fixed training: only the pairs differ.

A small U-Net (three scales, two 3x3 convolutions per scale, ``width`` channels at full scale,
~0.3 M parameters at width 16) predicts a residual added to its input; its last convolution starts
at zero, so at initialisation the restorer is exactly the identity (a network that learns
nothing scores as the blurred input). Training: L1 loss, Adam, a fixed number of steps; the crop
positions of step t come from ``default_rng([seed, t, CROP_STREAM])``, independent of the pairs,
so every recipe trains on the same sharp pixels in the same order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Stream id of the training crop positions.
CROP_STREAM = 19
#: Input sides must be multiples of this (three 2x downsamplings).
MULTIPLE = 8


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.1),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1))


class TinyUNet(nn.Module):
    """``(B, 3, H, W)`` float in [0, 1] -> same shape, ``x + residual(x)``; H, W multiples of 8.

    Example:
        >>> net = TinyUNet(width=8)
        >>> x = torch.rand(1, 3, 16, 16)
        >>> bool(torch.equal(net(x), x))  # the identity at initialisation
        True
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = (width, 2 * width, 4 * width, 4 * width)
        self.enc = nn.ModuleList([_block(3, w[0]), _block(w[0], w[1]), _block(w[1], w[2])])
        self.mid = _block(w[2], w[3])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[3], w[2], 2, stride=2), nn.ConvTranspose2d(w[2], w[1], 2, stride=2),
                                 nn.ConvTranspose2d(w[1], w[0], 2, stride=2)])
        self.dec = nn.ModuleList([_block(2 * w[2], w[2]), _block(2 * w[1], w[1]), _block(2 * w[0], w[0])])
        self.out = nn.Conv2d(w[0], 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for enc in self.enc:
            h = enc(h)
            skips.append(h)
            h = nn.functional.avg_pool2d(h, 2)
        h = self.mid(h)
        for up, dec in zip(self.up, self.dec):
            h = dec(torch.cat([up(h), skips.pop()], dim=1))
        return x + self.out(h)


def crop_plan(seed: int, steps: int, batch: int, n_pairs: int, side: int, crop: int) -> np.ndarray:
    """int64 ``(steps, batch, 3)``: (pair index, y, x) of every training crop; depends on the
    seed and the sizes only, never on the pairs' contents."""
    plan = np.empty((steps, batch, 3), np.int64)
    for t in range(steps):
        rng = np.random.default_rng([seed, t, CROP_STREAM])
        plan[t, :, 0] = rng.integers(0, n_pairs, batch)
        plan[t, :, 1:] = rng.integers(0, side - crop + 1, (batch, 2))
    return plan


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> float32 ``(B, 3, H, W)`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float().div_(255.0)


def train(blurred: np.ndarray, sharp: np.ndarray, seed: int, steps: int, batch: int = 8, crop: int = 64,
          width: int = 16, lr: float = 1e-3) -> TinyUNet:
    """Train a fresh ``TinyUNet`` (initialised from ``seed``) for ``steps`` L1 steps on crops of
    the uint8 pairs ``(N, S, S, 3)``; the learning rate decays as a cosine to 0."""
    torch.manual_seed(seed)
    net = TinyUNet(width)
    optim = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)
    plan = crop_plan(seed, steps, batch, len(blurred), blurred.shape[1], crop)
    for t in range(steps):
        idx, ys, xs = plan[t, :, 0], plan[t, :, 1], plan[t, :, 2]
        x = to_tensor(np.stack([blurred[i, y:y + crop, x_:x_ + crop] for i, y, x_ in zip(idx, ys, xs)]))
        y = to_tensor(np.stack([sharp[i, y:y + crop, x_:x_ + crop] for i, y, x_ in zip(idx, ys, xs)]))
        loss = (net(x) - y).abs().mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        schedule.step()
    return net.eval()


@torch.no_grad()
def restore(net: TinyUNet, image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` (sides multiples of 8) -> restored uint8 image of the same shape."""
    out = net(to_tensor(image[None]))[0].clamp(0, 1).mul(255).round()
    return out.permute(1, 2, 0).numpy().astype(np.uint8)
