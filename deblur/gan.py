"""The DeblurGAN itself (Kupyn et al., CVPR 2018): networks, optimisers, learning-rate schedule and
one training step, with its whole state as a dict for checkpoints.

One training *step* = one batch: the generator deblurs it once, the critic takes
``critic_steps`` (5) Adam steps on that batch against the (detached) output, then the generator
takes one step on ``-D(fake) + 100 * MSE(VGG19 conv3_3)`` (the DeblurGAN reference's order).
Learning rates are constant for the first half of the run and fall linearly to 0 over the second.

The penalty's interpolation weights come from ``(seed, step, critic iteration)`` drawn for the
whole global batch (each rank takes its slice, so DDP matches one process); dropout comes from the
torch RNG, whose state the checkpoint keeps per rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from blurgen.core.common import one_line
from blurgen.deblur import distributed as dist_utils
from blurgen.deblur.checkpoint import CheckpointError
from blurgen.deblur.data import normalize
from blurgen.deblur.distributed import DistContext, average_gradients, average_tensor
from blurgen.deblur.losses import PerceptualLoss, critic_loss, generator_adv_loss
from blurgen.deblur.models import PatchCritic, build_generator, generator_config
from blurgen.deblur.train_config import TrainConfig


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/inf; ``step`` is the 1-based step at which it happened."""

    def __init__(self, step: int, which: str, value: float) -> None:
        super().__init__(f"non-finite {which} loss ({value}) at step {step}")
        self.step = step


class LinearDecaySchedule:
    """Learning-rate factor: 1 for steps ``< decay_start``, then linearly to 0 at ``total_steps``.
    Its whole state is two numbers, saved in the checkpoint."""

    def __init__(self, total_steps: int, decay_start: int | None = None) -> None:
        self.total_steps = int(total_steps)
        self.decay_start = self.total_steps // 2 if decay_start is None else int(decay_start)

    def factor(self, step: int) -> float:
        if step < self.decay_start:
            return 1.0
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.decay_start))

    def state_dict(self) -> dict[str, int]:
        return {"total_steps": self.total_steps, "decay_start": self.decay_start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.total_steps, self.decay_start = int(state["total_steps"]), int(state["decay_start"])


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (for torch.Generator.manual_seed)."""
    words = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class DeblurGAN:
    """Generator, critic, content loss, both Adam optimisers and the schedule of one run.

    Args:
        config: the run's settings.
        ctx: this process's rank and device.
        total_steps: the run's length (for the schedule).
    """

    def __init__(self, config: TrainConfig, ctx: DistContext, total_steps: int) -> None:
        self.config, self.ctx = config, ctx
        self.global_batch = config.batch_size * ctx.world_size
        # Same seed on every rank, so the initial weights agree before the broadcast too.
        torch.manual_seed(config.seed)
        self.generator = build_generator("resnet", width=config.width, n_blocks=config.blocks, dropout=config.dropout)
        self.critic = PatchCritic(ndf=config.critic_width, n_layers=config.critic_layers)
        self.content_loss = PerceptualLoss(config.vgg_weights, weight=config.content_weight,
                                           allow_random=config.random_vgg, warn=ctx.is_main)
        for module in (self.generator, self.critic, self.content_loss):
            module.to(ctx.device)
        dist_utils.broadcast_module(self.critic, ctx)
        self.generator_train = self._wrapped_generator()
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=config.lr, betas=betas)
        self.schedule = LinearDecaySchedule(total_steps)
        # Dropout masks differ between ranks, as independent samples should.
        torch.manual_seed(derived_seed(config.seed, ctx.rank, 0xD50))
        np.random.seed(derived_seed(config.seed, ctx.rank) % 2**32)

    def _wrapped_generator(self) -> torch.nn.Module:
        if not self.ctx.distributed:
            return self.generator
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DistributedDataParallel(self.generator, device_ids=ids)

    # ---------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimisers and schedule (what a checkpoint needs besides RNG and position)."""
        return {"generator": self.generator.state_dict(), "generator_config": generator_config(self.generator),
                "critic": self.critic.state_dict(), "critic_config": dict(self.critic._config),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "scheduler": self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any], where: str, total_steps: int | None = None) -> None:
        """Restore ``state_dict()``; ``total_steps`` longer than the saved schedule's extends
        the run (the schedule becomes that of a run planned this long: constant to half of it,
        then linear decay to 0). ``CheckpointError`` if the state does not fit."""
        try:
            self.generator.load_state_dict(state["generator"])
            self.critic.load_state_dict(state["critic"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.schedule.load_state_dict(state["scheduler"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{where}: incompatible checkpoint ({one_line(exc)})") from None
        if total_steps is not None and total_steps != self.schedule.total_steps:
            self.schedule = LinearDecaySchedule(total_steps)

    def load_weights(self, state: dict[str, Any], where: str) -> None:
        """Start from another run's networks (fine-tuning): the generator's weights, and the
        critic's when they fit; optimisers and schedule stay fresh."""
        try:
            self.generator.load_state_dict(state["generator"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{where}: its generator does not fit this run's "
                                  f"(width {self.config.width}, blocks {self.config.blocks}): {one_line(exc)}") from None
        if "critic" in state:
            try:
                self.critic.load_state_dict(state["critic"])
            except (RuntimeError, ValueError, TypeError):
                pass  # another critic shape: it starts fresh, as a critic may
        dist_utils.broadcast_module(self.critic, self.ctx)

    # ---------------------------------------------------------------------------- one step
    def _alpha(self, step: int, critic_iter: int) -> torch.Tensor:
        """This rank's slice of the global batch's interpolation weights for the penalty."""
        gen = torch.Generator().manual_seed(derived_seed(self.config.seed, step, critic_iter, 0xA1F))
        alpha = torch.rand(self.global_batch, generator=gen)
        first = self.ctx.rank * self.config.batch_size
        return alpha[first:first + self.config.batch_size].to(self.ctx.device)

    def _critic_steps(self, sharp: torch.Tensor, fake: torch.Tensor, step: int, number: int) -> torch.Tensor:
        c = self.config
        for i in range(c.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            loss_d, stats = critic_loss(self.critic, sharp, fake, c.gp_weight, alpha=self._alpha(step, i))
            if c.inject_nan_step == number:
                loss_d = loss_d * float("nan")
            loss_d.backward()
            # Averaging the loss with the gradients makes a NaN on any rank a NaN on all.
            d_values = average_gradients(self.critic.parameters(), self.ctx,
                                         extra=torch.stack([loss_d.detach(), stats["wasserstein"], stats["gp"]]))
            if not bool(torch.isfinite(d_values).all()):
                raise NonFiniteLossError(number, "critic", float(d_values[0]))
            self.opt_d.step()
        return d_values

    def _generator_step(self, sharp: torch.Tensor, fake: torch.Tensor, number: int) -> torch.Tensor:
        # The critic is a fixed judge during the generator step: no gradients into it.
        self.critic.requires_grad_(False)
        try:
            loss_adv = generator_adv_loss(self.critic, fake)
            loss_content = self.content_loss(fake, sharp)
            loss_g = loss_adv + loss_content
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            self.critic.requires_grad_(True)
        g_values = average_tensor(torch.stack([loss_g.detach(), loss_adv.detach(), loss_content.detach()]), self.ctx)
        if not bool(torch.isfinite(g_values).all()):
            raise NonFiniteLossError(number, "generator", float(g_values[0]))
        self.opt_g.step()
        return g_values

    def train_step(self, step: int, blurred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
        """Step ``step + 1`` on this rank's batch (``(B, 3, crop, crop)``, uint8 as the loader gives
        it or float in [-1, 1]; scaled on the device); returns the losses averaged over ranks.
        ``NonFiniteLossError`` before any optimiser step is taken on a non-finite loss, so the
        weights stay the last good ones."""
        c, number = self.config, step + 1
        factor = self.schedule.factor(step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = c.lr * factor
        blurred = normalize(blurred.to(self.ctx.device, non_blocking=True))
        sharp = normalize(sharp.to(self.ctx.device, non_blocking=True))
        fake = self.generator_train(blurred)
        d = self._critic_steps(sharp, fake, step, number).tolist()
        g = self._generator_step(sharp, fake, number).tolist()
        return {"loss_d": d[0], "wasserstein": d[1], "gp": d[2], "loss_g": g[0], "loss_adv": g[1],
                "loss_content": g[2], "lr": c.lr * factor}
