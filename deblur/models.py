"""DeblurGAN networks (Kupyn et al., CVPR 2018): the ResNet generator and the PatchGAN critic.

Both are small composable ``nn.Module``s in the timm manner: the normalisation and activation
layers are arguments (a registered name or a factory), and a tiny registry maps generator names
to classes so a checkpoint can rebuild its generator from a plain config dict.

Tensors are float32 ``(B, C, H, W)`` images in ``[-1, 1]`` (RGB, ``2 * u8 / 255 - 1``).

>>> import torch
>>> g = build_generator("resnet", width=8, n_blocks=2)
>>> g(torch.zeros(1, 3, 37, 50)).shape
torch.Size([1, 3, 37, 50])
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Union

import torch
import torch.nn.functional as F
from torch import nn

LayerFactory = Callable[[int], nn.Module]

# Norm name -> factory(num_channels). InstanceNorm without affine parameters is the paper's
# choice (pix2pix/DeblurGAN code); "none" keeps the convolution biases as the only shift.
NORMS: dict[str, LayerFactory] = {
    "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    "instance_affine": functools.partial(nn.InstanceNorm2d, affine=True, track_running_stats=False),
    "batch": nn.BatchNorm2d,
    "none": lambda channels: nn.Identity(),
}

# Activation name -> factory(). In-place ops are avoided: the gradient penalty differentiates
# through the critic twice and in-place activations make that fragile.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": functools.partial(nn.LeakyReLU, 0.2),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}

NormArg = Union[str, LayerFactory]
ActArg = Union[str, Callable[[], nn.Module]]


def _resolve(value: Any, table: dict[str, Any], kind: str) -> Callable[..., nn.Module]:
    if isinstance(value, str):
        try:
            return table[value]
        except KeyError:
            raise ValueError(f"{kind}={value!r} is not one of {sorted(table)}") from None
    if callable(value):
        return value
    raise ValueError(f"{kind} must be a name in {sorted(table)} or a callable, got {value!r}")


def _norm_has_shift(norm: LayerFactory) -> bool:
    """True when the norm layer learns its own bias, which makes a conv bias before it redundant."""
    return any(name == "bias" for name, _ in norm(4).named_parameters())


class ResidualBlock(nn.Module):
    """``x + (pad-conv3x3-norm-act-dropout-pad-conv3x3-norm)(x)``; shape ``(B, C, H, W)`` kept.

    Reflection padding (not zero padding) as in the reference, so that borders look like content.
    """

    def __init__(self, channels: int, norm: LayerFactory, act: Callable[[], nn.Module],
                 dropout: float = 0.5, bias: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm(channels), act(),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm(channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """DeblurGAN generator: predicts a residual and adds it to the blurred input.

    Layout: 7x7 conv -> two stride-2 3x3 convs (width, 2*width, 4*width channels) ->
    ``n_blocks`` residual blocks at 4*width -> two stride-2 transposed convs -> 7x7 conv -> tanh;
    output ``clamp(x + residual, -1, 1)`` (the paper's global skip, "ResOut").
    At the defaults it has 11,378,179 parameters (the paper's "~11.4 M").

    Args:
        in_ch, out_ch: image channels (3, RGB). The global skip needs ``in_ch == out_ch``.
        width: channels of the first conv ("ngf", 64 in the paper).
        n_blocks: residual blocks (9 in the paper).
        norm: ``"instance"`` (paper), ``"instance_affine"``, ``"batch"``, ``"none"`` or a
            factory ``channels -> nn.Module``.
        dropout: dropout probability inside each residual block (0.5 in the paper; 0 disables).
        act: ``"relu"`` (paper) or another name in ``ACTIVATIONS``, or a factory.

    Shapes: input float32 ``(B, in_ch, H, W)`` in ``[-1, 1]``, any ``H, W >= 1``; output
    ``(B, out_ch, H, W)`` in ``[-1, 1]``. Sides that are not multiples of 4 are padded (reflect)
    before the network and cropped back after it, so odd sizes round-trip exactly.
    """

    #: Bounds far above any useful network (the paper: 64 and 9), so that a damaged or crafted
    #: config cannot ask for terabytes of weights.
    MAX_WIDTH = 4096
    MAX_BLOCKS = 1024

    def __init__(self, in_ch: int = 3, out_ch: int = 3, width: int = 64, n_blocks: int = 9,
                 norm: NormArg = "instance", dropout: float = 0.5, act: ActArg = "relu") -> None:
        super().__init__()
        if in_ch != out_ch:
            raise ValueError(f"in_ch={in_ch} must equal out_ch={out_ch} for the global skip")
        if not 1 <= width <= self.MAX_WIDTH:
            raise ValueError(f"width={width} must be in [1, {self.MAX_WIDTH}]")
        if not 0 <= n_blocks <= self.MAX_BLOCKS:
            raise ValueError(f"n_blocks={n_blocks} must be in [0, {self.MAX_BLOCKS}]")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        norm_f = _resolve(norm, NORMS, "norm")
        act_f = _resolve(act, ACTIVATIONS, "act")
        # A conv followed by a norm that learns its own shift needs no bias (BatchNorm,
        # affine InstanceNorm); the paper's affine-free InstanceNorm keeps the conv biases.
        bias = not _norm_has_shift(norm_f)
        self._config = {"name": "resnet", "in_ch": in_ch, "out_ch": out_ch, "width": width,
                        "n_blocks": n_blocks, "norm": norm if isinstance(norm, str) else None,
                        "dropout": dropout, "act": act if isinstance(act, str) else None}

        w = width
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_ch, w, 7, bias=bias), norm_f(w), act_f())
        self.down = nn.Sequential(
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=bias), norm_f(2 * w), act_f(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1, bias=bias), norm_f(4 * w), act_f(),
        )
        self.blocks = nn.Sequential(*[ResidualBlock(4 * w, norm_f, act_f, dropout, bias) for _ in range(n_blocks)])
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 3, stride=2, padding=1, output_padding=1, bias=bias), norm_f(2 * w), act_f(),
            nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1, bias=bias), norm_f(w), act_f(),
        )
        self.tail = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(w, out_ch, 7), nn.Tanh())

    # The whole network downsamples by 4; the smallest padded side is 8 so that the 2x2
    # bottleneck still admits the residual blocks' reflection padding of 1.
    MULTIPLE = 4
    MIN_SIDE = 8

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The tanh residual in ``[-1, 1]`` for an input whose sides are already padded
        (multiples of 4, >= 8): ``(B, C, H, W) -> (B, C, H, W)``."""
        return self.tail(self.up(self.blocks(self.down(self.head(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_ch, H, W)`` in ``[-1, 1]`` -> deblurred ``(B, out_ch, H, W)`` in ``[-1, 1]``."""
        if x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.MULTIPLE, self.MIN_SIDE)
        out = torch.clamp(padded + self.residual(padded), -1.0, 1.0)
        return out[..., :h, :w]


def pad_to_multiple(x: torch.Tensor, multiple: int = 4, min_side: int = 8) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom/right to sides that are multiples of ``multiple`` and at
    least ``min_side``. Reflection where the image is large enough (no hard edge for the
    convolutions to see), replication otherwise (reflect needs the pad to be smaller than the side).
    Crop back with ``out[..., :H, :W]``."""
    h, w = x.shape[-2:]
    ph = max(-(-h // multiple) * multiple, min_side) - h
    pw = max(-(-w // multiple) * multiple, min_side) - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class PatchCritic(nn.Module):
    """PatchGAN critic (pix2pix/DeblurGAN ``NLayerDiscriminator``) for WGAN-GP: no sigmoid.

    ``n_layers`` stride-2 4x4 convs (channels ndf, 2ndf, 4ndf, ... capped at 8ndf), one stride-1
    4x4 conv, then a 4x4 conv to one channel; LeakyReLU 0.2 between, no norm on the first layer.
    With ``n_layers=3`` each output value scores a 70x70 patch.

    Args:
        in_ch: image channels. ndf: channels of the first conv (64). n_layers: stride-2 convs (3).
        norm: name or factory as for ``ResnetGenerator``. ``"instance"`` is the default: WGAN-GP
            penalises each sample's gradient on its own, which BatchNorm (mixing samples) breaks.
        act: ``"leaky_relu"`` (0.2) or another activation name/factory.

    Shapes: ``(B, in_ch, H, W)`` in ``[-1, 1]`` (H, W >= 16 so InstanceNorm sees more than one
    value per channel) -> float32 ``(B, 1, H', W')`` unbounded scores; higher means "more real".
    """

    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3, norm: NormArg = "instance",
                 act: ActArg = "leaky_relu") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers} must be >= 1")
        norm_f = _resolve(norm, NORMS, "norm")
        act_f = _resolve(act, ACTIVATIONS, "act")
        bias = not _norm_has_shift(norm_f)
        # Padding 2 with a 4x4 kernel follows the DeblurGAN code (padw = ceil((4 - 1) / 2)).
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, stride=2, padding=2), act_f()]
        channels = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(channels, out, 4, stride=stride, padding=2, bias=bias), norm_f(out), act_f()]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=2))
        self.net = nn.Sequential(*layers)
        self._config = {"in_ch": in_ch, "ndf": ndf, "n_layers": n_layers,
                        "norm": norm if isinstance(norm, str) else None,
                        "act": act if isinstance(act, str) else None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> patch scores ``(B, 1, H', W')``."""
        return self.net(x)


GENERATORS: dict[str, type[nn.Module]] = {"resnet": ResnetGenerator}


def build_generator(name: str = "resnet", **kwargs: Any) -> nn.Module:
    """Build a registered generator by name; ``kwargs`` go to its constructor.

    >>> build_generator("resnet", width=4, n_blocks=1).__class__.__name__
    'ResnetGenerator'
    """
    try:
        cls = GENERATORS[name]
    except KeyError:
        raise ValueError(f"generator name={name!r} is not one of {sorted(GENERATORS)}") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. n_blocks=2.5 from an edited checkpoint
        raise ValueError(f"generator settings {kwargs} do not build a {name} generator ({exc})") from None


def generator_config(generator: nn.Module) -> dict[str, Any]:
    """The plain dict (JSON- and ``weights_only``-safe) that rebuilds ``generator``:
    ``build_generator(**generator_config(g))``. Unwraps DDP/compile wrappers.

    Raises ``ValueError`` when the generator was built with a custom norm/activation factory,
    which a name cannot describe.
    """
    module = getattr(generator, "module", generator)  # DistributedDataParallel
    module = getattr(module, "_orig_mod", module)  # torch.compile
    config = getattr(module, "_config", None)
    if config is None:
        raise ValueError(f"{type(module).__name__} is not a registered generator")
    unnamed = [k for k in ("norm", "act") if config.get(k) is None]
    if unnamed:
        raise ValueError(f"generator built with custom {', '.join(unnamed)} factory; "
                         "only registered names can be stored in a config")
    return dict(config)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
