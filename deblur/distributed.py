"""The few torch.distributed pieces the trainer needs (``torchrun`` environment, gloo/nccl).

Why the critic is not wrapped in DistributedDataParallel: its WGAN-GP loss differentiates the
critic twice (``autograd.grad(create_graph=True)`` then ``backward``), and DDP documents that it
only supports gradients accumulated into ``.grad`` through a single backward per forward; the
critic also runs three forwards (real, fake, interpolate) per backward. So the critic runs
unwrapped and its gradients are averaged here by one all-reduce of a flattened buffer after the
backward. The penalty is a per-sample mean, so the average of the ranks' local gradients is the
gradient of the global-batch loss: exactly what one process computes on the same global batch
(``tests/deblur/test_ddp.py`` checks this). The generator has an ordinary single backward and uses DDP.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any, Iterable

import torch
import torch.distributed as dist

from blurgen.core.common import one_line


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` and its torch ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``"cuda"`` under
    torchrun -> ``cuda:LOCAL_RANK``; anything else as torch spells it. ``ValueError`` if absent."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    try:
        torch.empty(1, device=device)  # e.g. 'mps' or 'xla' in a build without them fails here
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"device {name!r} is not usable here: {one_line(exc)}") from None
    return device


def setup(device_name: str = "auto") -> DistContext:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE > 1``): nccl on CUDA,
    gloo on CPU. A plain ``python``/``blurgen`` run is a world of one and touches nothing."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=30))
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistContext(rank, world_size, local_rank, device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank (what DDP does at wrap time)."""
    if ctx.distributed:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter], ctx: DistContext,
                      extra: torch.Tensor | None = None) -> torch.Tensor | None:
    """Average ``.grad`` of ``params`` over ranks in one all-reduce; ``extra`` (a small 1-D
    tensor, e.g. the loss) rides along and comes back averaged too, so every rank sees the same
    loss value (and the same NaN) without a second collective. Parameters without a gradient
    count as zero. Returns the averaged ``extra``."""
    if not ctx.distributed:
        return extra
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    pieces = [p.grad.reshape(-1) for p in params]
    if extra is not None:
        pieces.append(extra.detach().reshape(-1).to(pieces[0].dtype if pieces else torch.float32))
    flat = torch.cat(pieces)
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n
    return flat[offset:] if extra is not None else None


def average_tensor(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is untouched)."""
    value = value.detach().clone()
    if ctx.distributed:
        dist.all_reduce(value)
        value /= ctx.world_size
    return value


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (a list of ``world_size``), on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
