"""Deblurring with a trained generator: checkpoint loading, whole-image and tiled inference.

Test-time mode. The DeblurGAN paper keeps pix2pix's habit of running the generator as in
training (dropout active at test time); most reimplementations evaluate in eval mode. We run the
generator in **eval mode**: dropout off, so the output is a deterministic function of the input
and a checkpoint reports one PSNR, not a distribution. InstanceNorm (affine-free, no running
statistics) normalises with the input's own statistics in both modes, so eval mode changes
nothing else.

Tiling. InstanceNorm normalises each channel by statistics of the whole input, so a tile does
not see the same statistics as the whole image and tiled output differs from whole-image output.
Large tiles make their statistics close to the image's; overlapping tiles blended with a
raised-cosine window hide the remaining seams. Device memory is bounded by the tile (the
network's activations for one ``tile x tile`` input); the blended result accumulates on the CPU.
``global_norm=True`` removes that difference by normalising every tile with the whole image's
statistics, found tile by tile in extra sweeps. Measured agreement is stated in
``deblur_image``'s docstring and pinned by tests.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator, Optional, Union

import numpy as np
import torch
from torch import nn

from blurgen.core.common import one_line
from blurgen.deblur.checkpoint import CheckpointError, load_checkpoint
from blurgen.deblur.data import normalize, to_uint8
from blurgen.deblur.models import ResnetGenerator, build_generator, pad_to_multiple

Device = Union[str, torch.device]

def load_generator(path: Union[str, os.PathLike], device: Device = "cpu") -> nn.Module:
    """Rebuild the generator stored in a checkpoint, on ``device``, in eval mode.

    The generator is built from ``checkpoint["generator_config"]`` (``build_generator(**config)``)
    and its weights loaded strictly; a ``module.`` prefix left by DistributedDataParallel is
    accepted. Raises ``CheckpointError`` (one line naming the file) when anything does not fit.
    """
    path = os.fspath(path)
    checkpoint = load_checkpoint(path, map_location="cpu")
    config = dict(checkpoint["generator_config"])
    state = checkpoint["generator"]
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    _check_size(path, config, state)
    try:
        generator = build_generator(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incompatible generator_config {config}: {one_line(exc)}") from None
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise CheckpointError(f"{path}: generator weights do not match generator_config "
                              f"{config}: {detail[:300]}") from None
    return generator.to(device).eval()


def _check_size(path: str, config: dict, state: dict) -> None:
    """Refuse a generator_config whose network would not hold exactly the stored weights, before
    allocating it: the network is first built on the meta device (no memory), so a damaged or
    crafted config (width 1e5, 1e7 blocks) is one line, not minutes and gigabytes."""
    try:
        with torch.device("meta"):
            expected = sum(t.numel() for t in build_generator(**config).state_dict().values())
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incompatible generator_config {config}: {one_line(exc)}") from None
    stored = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
    if expected != stored:
        raise CheckpointError(f"{path}: generator weights do not match generator_config {config} "
                              f"(it needs {expected:,} weights, the checkpoint holds {stored:,})")


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` in eval mode inside the block and restore its previous mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def image_to_tensor(image: np.ndarray, device: Device = "cpu") -> torch.Tensor:
    """uint8 ``(H, W, 3)`` RGB -> float32 ``(1, 3, H, W)`` in ``[-1, 1]`` on ``device``."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    return normalize(torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).unsqueeze(0))


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """float ``(1, 3, H, W)`` or ``(3, H, W)`` in ``[-1, 1]`` -> uint8 ``(H, W, 3)`` (rounded)."""
    return to_uint8(tensor.reshape(-1, *tensor.shape[-2:]))


def tile_starts(length: int, tile: int, overlap: int, align: int = 4) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)`` with neighbours
    overlapping by at least ``overlap``: evenly spaced, the first at 0, the last flush with the
    end, every start a multiple of ``align``. One tile at 0 when ``length <= tile``.

    ``length`` and ``tile`` must be multiples of ``align``. Aligning to the generator's total
    stride (4) keeps each tile's stride-2 sampling grid on the whole image's grid; an odd offset
    would sample the downscaled features half a pixel off and the tile's output would differ
    from the whole image's everywhere, not only near its border.
    """
    if length % align or tile % align:
        raise ValueError(f"length={length} and tile={tile} must be multiples of align={align}")
    if length <= tile:
        return [0]
    span, step = (length - tile) // align, (tile - overlap) // align
    if step < 1:
        raise ValueError(f"overlap={overlap} leaves no stride for tile={tile}")
    n = 1 + math.ceil(span / step)
    return [align * round(i * span / (n - 1)) for i in range(n)]


def feather_ramp(overlap: int) -> np.ndarray:
    """Raised-cosine ramp rising from ~0 to ~1 over ``overlap`` samples, float32, strictly
    positive (so every pixel has weight) and symmetric: ``r[i] + r[overlap - 1 - i] == 1``,
    which makes two neighbours' ramps over the same pixels a partition of unity."""
    i = np.arange(overlap, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / overlap)).astype(np.float32)


def tile_window(length: int, start: int, tile: int, overlap: int) -> np.ndarray:
    """1-D blend weights of one tile along one axis, float32 ``(min(tile, length),)``: 1 inside,
    raised-cosine ramps over ``overlap`` pixels on sides that have a neighbour, none on image
    borders (nothing to blend with there)."""
    size = min(tile, length)
    w = np.ones(size, np.float32)
    if overlap > 0:
        ramp = feather_ramp(overlap)
        if start > 0:
            w[:overlap] = ramp
        if start + size < length:
            w[size - overlap:] = ramp[::-1]
    return w


#: Bytes of memory whole-image inference needs per input pixel and per unit of generator width
#: (``ngf``). Measured: the peak resident memory of a width-64, 9-block generator on the CPU grew
#: by 876 MB for a 1280x720 image (950 B/px, 14.8 B/px per width) and 287 MB for 640x360.
BYTES_PER_PIXEL_PER_WIDTH = 16
#: Memory whole-image inference may use on the CPU; CUDA uses 80% of the device's free memory.
CPU_MEMORY_BUDGET = 4 * 2**30


def whole_image_budget(generator: nn.Module, device: Device = "cpu") -> int:
    """The most pixels (H x W) an image may have for whole-image inference on ``device``:
    ``CPU_MEMORY_BUDGET`` (4 GiB) on the CPU, 80% of the free memory on a CUDA device, divided
    by ``BYTES_PER_PIXEL_PER_WIDTH * width`` (4.2 MP for the paper's width 64 on the CPU: 1920x1080
    runs whole, 4K frames are tiled).
    Larger images are tiled (``choose_tile``)."""
    device = torch.device(device)
    width = (getattr(generator, "_config", None) or {}).get("width", 64)
    memory = CPU_MEMORY_BUDGET
    if device.type == "cuda":
        memory = int(0.8 * torch.cuda.mem_get_info(device)[0])
    return int(memory // (BYTES_PER_PIXEL_PER_WIDTH * max(1, int(width))))


def choose_tile(shape: tuple[int, ...], tile: Optional[int], budget: int, auto_tile: int = 512) -> Optional[int]:
    """The ``tile`` argument of ``deblur_image`` for an image of ``shape`` (H, W, ...):
    ``tile`` ``None`` (auto) -> ``None`` (whole image) when ``H * W <= budget``, else
    ``auto_tile``; ``0`` -> ``None``; anything else as given."""
    if tile is None:
        return None if shape[0] * shape[1] <= budget else auto_tile
    return tile or None


def _check_device(generator: nn.Module, device: Optional[Device]) -> torch.device:
    param = next(generator.parameters(), None)
    own = param.device if param is not None else torch.device("cpu")
    if device is None:
        return own
    device = torch.device(device)
    if device.type != own.type or (device.index is not None and own.index is not None and device.index != own.index):
        raise ValueError(f"generator lives on {own}, not on device={device}; move it first "
                         "(load_generator(path, device))")
    return own


class _StopForward(Exception):
    """Raised by a statistics hook to end a forward pass once the layer it measures is done."""


class _SharedNormStats:
    """Makes every ``InstanceNorm2d`` of a generator normalise tiles with statistics of the
    whole image instead of each tile's own.

    A layer's whole-image statistics depend on the layers before it, so they are found layer by
    layer: sweep ``k`` runs every tile only up to norm layer ``k`` (the earlier layers already
    using their pooled statistics), sums that layer's input over the pixels each tile *owns*
    (the tiles partition the image, so every pixel counts once) and stops the forward pass
    there. After one sweep per norm layer the network sees, inside each tile, the same
    normalisation as the whole image; what remains is the tile border's own padding, which the
    feathered blend hides. Cost: about half a full sweep per norm layer.
    """

    def __init__(self, generator: nn.Module) -> None:
        # modules() lists children in registration order, which is forward order here.
        self.norms = [m for m in generator.modules()
                      if isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats]
        self.stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self.measuring: Optional[nn.Module] = None
        self.sums: list = []
        self.owned: Optional[tuple[int, int, int, int, int, int]] = None
        self.handles = [m.register_forward_hook(self._hook) for m in self.norms]

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def start_layer(self, module: nn.Module) -> None:
        self.measuring, self.sums = module, []

    def end_layer(self) -> None:
        s1, s2, n = (sum(v) for v in zip(*self.sums))
        mean = s1 / n
        var = (s2 / n - mean * mean).clamp_min(0.0)  # biased, as InstanceNorm's
        self.stats[self.measuring] = (mean.float().view(1, -1, 1, 1), var.float().view(1, -1, 1, 1))
        self.measuring = None

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        if module is self.measuring:
            oy0, oy1, ox0, ox1, tile_h, tile_w = self.owned
            fy, fx = x.shape[-2] / tile_h, x.shape[-1] / tile_w  # 1, 1/2 or 1/4 in the generator
            core = x[..., round(oy0 * fy):round(oy1 * fy), round(ox0 * fx):round(ox1 * fx)].double()
            self.sums.append((core.sum(dim=(0, 2, 3)), (core * core).sum(dim=(0, 2, 3)),
                              core.shape[0] * core.shape[2] * core.shape[3]))
            raise _StopForward
        mean, var = self.stats[module]
        y = (x - mean) / torch.sqrt(var + module.eps)
        if module.affine:
            y = y * module.weight.view(1, -1, 1, 1) + module.bias.view(1, -1, 1, 1)
        return y


def _owned_ranges(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """Split ``[0, length)`` among tiles: each owns up to the middle of its overlaps."""
    bounds = [0] + [(starts[i] + tile + starts[i + 1]) // 2 for i in range(len(starts) - 1)] + [length]
    return [(bounds[i] - s, bounds[i + 1] - s) for i, s in enumerate(starts)]


def deblur_image(generator: nn.Module, image: np.ndarray, tile: Optional[int] = None,
                 overlap: Optional[int] = None, device: Optional[Device] = None,
                 global_norm: bool = False) -> np.ndarray:
    """Deblur one uint8 ``(H, W, 3)`` RGB image of any size; returns uint8 ``(H, W, 3)``.

    Args:
        generator: e.g. from ``load_generator``; run in eval mode (its mode is restored after).
        image: uint8 ``(H, W, 3)`` RGB.
        tile: ``None`` for one whole-image pass; otherwise images with a side above ``tile`` are
            cut into ``tile x tile`` tiles (>= 32) whose outputs are blended. Device memory then
            scales with ``tile**2``, not with the image.
        overlap: minimum overlap of neighbouring tiles, feathered with a raised-cosine window;
            default ``tile // 4``; at most ``tile // 2``.
        device: where the generator runs (default: where its parameters are); it must already
            be there.
        global_norm: normalise every tile with the whole image's InstanceNorm statistics,
            found by extra sweeps over the tiles (one per norm layer, each stopping at that
            layer; ``_SharedNormStats``). Makes tiled output match whole-image output closely
            at several times the cost; off, each tile uses its own statistics.

    Agreement with whole-image output (PSNR of one against the other), measured on 1280x720
    images with a random-weight generator (width 8, 2 blocks; tests/deblur/test_inference.py):
    with per-tile statistics 17-23 dB at tile 512 / overlap 128 (17-19 dB at tile 256-768 on
    another image), because a random network's output is dominated by its InstanceNorm
    statistics (the output is itself only 16-17 dB from its input); with ``global_norm=True``
    52 dB at tile 256 and 67-68 dB at tile 512, i.e. whole-image output up to rounding, for 4-5x
    the time. A trained generator, whose residual is small, should disagree far less with
    per-tile statistics (not measured: no trained checkpoint yet).
    """
    device = _check_device(generator, device)
    h, w = image.shape[:2]
    x = image_to_tensor(image, "cpu")
    with eval_mode(generator), torch.inference_mode():
        if tile is None or (h <= tile and w <= tile):
            return tensor_to_image(generator(x.to(device)))
        if tile < 32:
            raise ValueError(f"tile={tile} must be >= 32 (or None for whole-image inference)")
        tile -= tile % ResnetGenerator.MULTIPLE
        overlap = tile // 4 if overlap is None else int(overlap)
        if not 0 <= overlap <= tile // 2:
            raise ValueError(f"overlap={overlap} must be in [0, tile // 2 = {tile // 2}]")
        # Pad once, as whole-image inference does, so that every tile side and start is a
        # multiple of 4 and tiles sample the same grids as the whole image.
        x = pad_to_multiple(x, ResnetGenerator.MULTIPLE, ResnetGenerator.MIN_SIDE)
        hp, wp = x.shape[-2:]
        ys, xs = tile_starts(hp, min(tile, hp), overlap), tile_starts(wp, min(tile, wp), overlap)
        shared = _SharedNormStats(generator) if global_norm else None
        try:
            for layer in shared.norms if shared is not None else ():
                shared.start_layer(layer)
                _run_tiles(generator, x, ys, xs, tile, overlap, device, shared, blend=False)
                shared.end_layer()
            out = _run_tiles(generator, x, ys, xs, tile, overlap, device, shared, blend=True)
        finally:
            if shared is not None:
                shared.close()
        return tensor_to_image(out[:, :h, :w])


def _run_tiles(generator: nn.Module, x: torch.Tensor, ys: list[int], xs: list[int], tile: int,
               overlap: int, device: torch.device, shared: Optional[_SharedNormStats],
               blend: bool) -> Optional[torch.Tensor]:
    """One sweep over the tiles of ``x`` (1, 3, H, W) (sides multiples of 4) kept on the CPU;
    returns the feathered blend (3, H, W) when ``blend``, else only feeds ``shared``."""
    h, w = x.shape[-2:]
    th, tw = min(tile, h), min(tile, w)
    acc = torch.zeros(3, h, w, dtype=torch.float32) if blend else None
    weight_sum = torch.zeros(h, w, dtype=torch.float32) if blend else None
    own_y, own_x = _owned_ranges(ys, th, h), _owned_ranges(xs, tw, w)
    for y0, (oy0, oy1) in zip(ys, own_y):
        wy = torch.from_numpy(tile_window(h, y0, th, overlap))
        for x0, (ox0, ox1) in zip(xs, own_x):
            if shared is not None:
                shared.owned = (oy0, oy1, ox0, ox1, th, tw)
            try:
                out = generator(x[..., y0:y0 + th, x0:x0 + tw].contiguous().to(device))
            except _StopForward:
                continue
            if blend:
                weight = wy[:, None] * torch.from_numpy(tile_window(w, x0, tw, overlap))[None, :]
                acc[:, y0:y0 + th, x0:x0 + tw] += out[0].float().cpu() * weight
                weight_sum[y0:y0 + th, x0:x0 + tw] += weight
    return acc / weight_sum if blend else None
