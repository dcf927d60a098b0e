"""DeblurGAN training loop (Kupyn et al., CVPR 2018): WGAN-GP critic, VGG19 content loss, DDP.

One training *step* = one batch: the generator deblurs it once, the critic takes
``critic_steps`` (5) Adam steps on that batch against the (detached) output, then the generator
takes one step on ``-D(fake) + 100 * MSE(VGG19 conv3_3)`` (the DeblurGAN reference's order).
Learning rates are constant for the first half of the run and fall linearly to 0 over the second
(150 + 150 epochs in the paper; with ``max_steps`` the same halves of that many steps).

Everything random is a pure function of the seed and the step, or restored from the checkpoint:
crops/flips come from the sample's global position (``deblur.data``), the penalty's interpolation
weights from ``(seed, step, critic iteration)`` drawn for the whole global batch (each rank takes
its slice, so DDP matches one process), and dropout from the torch RNG whose state (per rank) is
saved. So ``resume`` continues exactly, with the same weights as an uninterrupted run.

Run folder: ``config.json``, ``log.csv`` (step, losses, lr, it/s), ``val.csv`` (PSNR/SSIM of the
model and of the blurred inputs on held-out samples), ``last.pt`` and ``step_NNNNNNN.pt``, and
``.train.lock``, flocked by the process training there (a second trainer is refused).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import sys
import time
from typing import Any, Callable

import numpy as np
import torch

from blurgen.deblur import distributed as dist_utils
from blurgen.deblur.checkpoint import (TRAINING_KEYS, CheckpointError, atomic_file, capture_host_rng, capture_torch_rng,
                                       first_line, load_checkpoint, lock_run_folder, remove_stale_temporaries,
                                       restore_rng, save_checkpoint)
from blurgen.deblur.data import (DataError, GoProPairs, MixedPairs, MixingSampler, PairsDataset,
                                 make_loader, normalize, to_uint8)
from blurgen.deblur.distributed import DistContext, average_gradients, average_tensor
from blurgen.deblur.losses import PerceptualLoss, critic_loss, generator_adv_loss
from blurgen.deblur.models import PatchCritic, build_generator, generator_config

log = logging.getLogger(__name__)

SOURCE_NAMES = ("synthetic", "gopro")
# Settings that change the arithmetic of training: a resume must use the same ones, or it
# would not continue the same run. Logging, validation, checkpoint cadence, workers and the
# device may change freely.
RESUME_KEYS = ("data", "gopro", "ratio", "gopro_blur", "epochs", "max_steps", "crop", "batch_size",
               "width", "blocks", "dropout", "critic_width", "critic_layers", "lr", "beta1", "beta2",
               "critic_steps", "gp_weight", "content_weight", "seed", "val_count", "world_size",
               "content_mode", "train_sizes")
LOG_FIELDS = ("step", "epoch", "loss_d", "wasserstein", "gp", "loss_g", "loss_adv", "loss_content",
              "lr", "it_per_s", "elapsed_s")
VAL_FIELDS = ("step", "source", "psnr", "ssim", "blurred_psnr", "blurred_ssim", "n")


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/inf; ``step`` is the 1-based step at which it happened."""

    def __init__(self, step: int, which: str, value: float) -> None:
        super().__init__(f"non-finite {which} loss ({value}) at step {step}")
        self.step = step


#: Largest share of ``ratio`` (a cycle of the mixing sampler holds sum(ratio) slots).
MAX_RATIO_SHARE = 1000


class ResumeMismatchError(CheckpointError):
    """``--resume`` with settings that differ from the run's checkpoint."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the paper's. ``ValueError`` names a bad field.

    ``ratio`` = shares of (synthetic HDF5, GoPro). ``val_count`` samples at the end of each
    source are held out for validation (centre crops of ``val_crop``, default ``crop``).
    ``random_vgg`` (tests) allows a randomly initialised VGG19; ``inject_nan_step`` (tests)
    poisons the critic loss at that 1-based step.
    """

    out: str
    data: str | None = None
    gopro: str | None = None
    ratio: tuple[int, int] = (2, 1)
    gopro_blur: str = "blur"
    epochs: int = 300
    max_steps: int | None = None
    crop: int = 256
    batch_size: int = 1
    width: int = 64
    blocks: int = 9
    dropout: float = 0.5
    critic_width: int = 64
    critic_layers: int = 3
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    critic_steps: int = 5
    gp_weight: float = 10.0
    content_weight: float = 100.0
    vgg_weights: str | None = None
    random_vgg: bool = False
    seed: int = 0
    workers: int = 2
    val_every: int = 1000
    val_count: int = 16
    val_crop: int | None = None
    ckpt_every: int = 1000
    keep_every: int = 10000
    log_every: int = 50
    device: str = "auto"
    inject_nan_step: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", tuple(int(r) for r in self.ratio))
        if self.data is None and self.gopro is None:
            raise ValueError("data/gopro: at least one training source is needed")
        if len(self.ratio) != 2 or min(self.ratio) < 0 or sum(self.ratio) == 0:
            raise ValueError(f"ratio={self.ratio} must be two non-negative shares, not both 0")
        for name, given in (("data", self.data), ("gopro", self.gopro)):
            if given is None and self.ratio[0 if name == "data" else 1] > 0:
                raise ValueError(f"ratio={self.ratio} gives a share to {name}, which was not given")
        if self.gopro_blur not in ("blur", "blur_gamma"):
            raise ValueError(f"gopro_blur={self.gopro_blur!r} must be 'blur' or 'blur_gamma'")
        positive = ("epochs", "crop", "batch_size", "width", "critic_width", "critic_layers",
                    "critic_steps", "val_every", "ckpt_every", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("blocks", "workers", "val_count", "keep_every", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps} must be >= 1")
        if self.crop < 16:
            raise ValueError(f"crop={self.crop} must be >= 16 (the critic's InstanceNorm needs it)")
        if not (math.isfinite(self.lr) and self.lr > 0) or not 0 <= self.dropout < 1:
            raise ValueError(f"lr={self.lr} must be a finite number > 0 and dropout={self.dropout} in [0, 1)")
        for name in ("gp_weight", "content_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name}={getattr(self, name)} must be a finite number >= 0")
        if max(self.ratio) > MAX_RATIO_SHARE:
            raise ValueError(f"ratio={self.ratio}: each share must be at most {MAX_RATIO_SHARE}")


class LinearDecaySchedule:
    """Learning-rate factor: 1 for steps ``< decay_start``, then linearly to 0 at ``total_steps``.
    Its whole state is three numbers, saved in the checkpoint."""

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


def _derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (for torch.Generator.manual_seed)."""
    words = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def _holds_checkpoints(folder: str) -> bool:
    try:
        return any(n == "last.pt" or (n.startswith("step_") and n.endswith(".pt")) for n in os.listdir(folder))
    except FileNotFoundError:
        return False


def _split(n: int, val_count: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    if n <= val_count:
        raise DataError(f"{name}: {n} samples, need more than the {val_count} held out for validation")
    return np.arange(n - val_count), np.arange(n - val_count, n)


class Trainer:
    """Builds data, models and optimisers from a ``TrainConfig`` and runs the loop.

    ``ctx`` says which rank this process is (default: a single process on ``config.device``).
    ``report`` receives one-line human progress messages (default: ``logging.info``).
    Only rank 0 writes files and reports.
    """

    def __init__(self, config: TrainConfig, ctx: DistContext | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.ctx = ctx or DistContext(device=dist_utils.resolve_device(config.device))
        self._report = report or log.info
        self._bar = None
        self.step = 0
        self.last_saved_step: int | None = None
        self._build_data()
        self._build_models()

    # ---- construction ----------------------------------------------------------------------

    def _build_data(self) -> None:
        c = self.config
        val_crop = c.val_crop or c.crop
        train, val = [None, None], [None, None]
        if c.data is not None:
            full = PairsDataset(c.data, crop=c.crop, seed=c.seed)
            tr, va = _split(len(full), c.val_count, c.data)
            train[0] = PairsDataset(c.data, crop=c.crop, flip=True, indices=tr, seed=c.seed, as_uint8=True)
            if c.val_count:
                w, h = full.image_size
                val[0] = PairsDataset(c.data, crop=min(val_crop, w, h), flip=False, indices=va)
        if c.gopro is not None:
            # One min_side for every view, so that they leave out the same frames and share indices.
            side = max(c.crop, val_crop) if c.val_count else c.crop
            full = GoProPairs(c.gopro, "train", c.gopro_blur, crop=c.crop, seed=c.seed, min_side=side)
            tr, va = _split(len(full), c.val_count, c.gopro)
            train[1] = GoProPairs(c.gopro, "train", c.gopro_blur, crop=c.crop, indices=tr, seed=c.seed,
                                  as_uint8=True, min_side=side)
            if c.val_count:
                val[1] = GoProPairs(c.gopro, "train", c.gopro_blur, crop=val_crop, flip=False, indices=va,
                                    min_side=side)
        self.train_set = MixedPairs(train)
        self.val_sets = {SOURCE_NAMES[i]: v for i, v in enumerate(val) if v is not None and c.ratio[i] > 0}
        self.sizes = [len(s) if s is not None else 0 for s in train]
        self.global_batch = c.batch_size * self.ctx.world_size
        used = sum(n for n, r in zip(self.sizes, c.ratio) if r > 0)
        self.steps_per_epoch = max(1, used // self.global_batch)
        self.total_steps = c.max_steps or c.epochs * self.steps_per_epoch

    def _build_models(self) -> None:
        c, ctx = self.config, self.ctx
        # Same seed on every rank, so the initial weights agree before the broadcast too.
        torch.manual_seed(c.seed)
        self.generator = build_generator("resnet", width=c.width, n_blocks=c.blocks, dropout=c.dropout)
        self.critic = PatchCritic(ndf=c.critic_width, n_layers=c.critic_layers)
        self.content_loss = PerceptualLoss(c.vgg_weights, weight=c.content_weight, allow_random=c.random_vgg)
        for module in (self.generator, self.critic, self.content_loss):
            module.to(ctx.device)
        dist_utils.broadcast_module(self.critic, ctx)
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.generator_train = DistributedDataParallel(self.generator, device_ids=ids)
        else:
            self.generator_train = self.generator
        betas = (c.beta1, c.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=c.lr, betas=betas)
        self.schedule = LinearDecaySchedule(self.total_steps)
        # Dropout masks differ between ranks, as independent samples should.
        torch.manual_seed(_derived_seed(c.seed, ctx.rank, 0xD50))
        np.random.seed(_derived_seed(c.seed, ctx.rank) % 2**32)

    # ---- configuration record ----------------------------------------------------------------

    def config_record(self) -> dict[str, Any]:
        """The settings stored in checkpoints and ``config.json`` (JSON- and weights_only-safe)."""
        record = dataclasses.asdict(self.config)
        for key in ("data", "gopro", "vgg_weights"):
            if record[key] is not None:
                record[key] = os.path.abspath(record[key])
        record["ratio"] = list(record["ratio"])
        record.update(world_size=self.ctx.world_size, content_mode=self.content_loss.mode,
                      total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                      train_sizes=list(self.sizes))
        return record

    def _path(self, name: str) -> str:
        return os.path.join(self.config.out, name)

    # ---- checkpoints -------------------------------------------------------------------------

    def save(self, name: str = "last.pt") -> None:
        """Write a checkpoint of the current step (collective: every rank must call it)."""
        torch_states = dist_utils.gather_objects(capture_torch_rng(), self.ctx)
        if not self.ctx.is_main:
            # Every rank tracks it: the loop's closing save is a collective call, taken or
            # skipped by all ranks alike.
            self.last_saved_step = self.step
            return
        rng = {**torch_states[0], **capture_host_rng(), "per_rank": torch_states}
        save_checkpoint(self._path(name), {
            "generator": self.generator.state_dict(), "generator_config": generator_config(self.generator),
            "critic": self.critic.state_dict(), "critic_config": dict(self.critic._config),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "scheduler": self.schedule.state_dict(), "rng": rng, "train_config": self.config_record(),
            "step": self.step, "epoch": self.step // self.steps_per_epoch,
            "data_position": {"step": self.step, "position": self.step * self.global_batch,
                              "global_batch": self.global_batch, "seed": self.config.seed,
                              "sizes": list(self.sizes), "ratio": list(self.config.ratio)},
        })
        self.last_saved_step = self.step

    def check_same_settings(self, stored: dict[str, Any], where: str) -> None:
        """``ResumeMismatchError`` naming each setting of ``RESUME_KEYS`` that differs between
        ``stored`` (a checkpoint's or config.json's record) and this trainer."""
        current = self.config_record()
        diffs = [f"{k} {stored.get(k)!r} -> {current.get(k)!r}" for k in RESUME_KEYS if stored.get(k) != current.get(k)]
        if diffs:
            raise ResumeMismatchError(f"{where}: settings differ from the run being resumed: {'; '.join(diffs)}")

    def resume(self, path: str | None = None) -> int:
        """Load ``path`` (default ``OUT/last.pt``) and continue from its step; returns the step.
        ``ResumeMismatchError`` if it was trained with different settings."""
        path = path or self._path("last.pt")
        ckpt = load_checkpoint(path, map_location="cpu", required=TRAINING_KEYS)
        self.check_same_settings(ckpt.get("train_config", {}), path)
        try:
            self.generator.load_state_dict(ckpt["generator"])
            self.critic.load_state_dict(ckpt["critic"])
            self.opt_g.load_state_dict(ckpt["opt_g"])
            self.opt_d.load_state_dict(ckpt["opt_d"])
            self.schedule.load_state_dict(ckpt["scheduler"])
            per_rank = ckpt["rng"].get("per_rank") or [ckpt["rng"]]
            restore_rng(ckpt["rng"], per_rank[self.ctx.rank] if len(per_rank) == self.ctx.world_size else None)
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: incompatible checkpoint ({first_line(exc)})") from None
        self.step = self.last_saved_step = int(ckpt["step"])
        return self.step

    # ---- one step --------------------------------------------------------------------------

    def _alpha(self, critic_iter: int) -> torch.Tensor:
        """This rank's slice of the global batch's interpolation weights for the penalty."""
        gen = torch.Generator().manual_seed(_derived_seed(self.config.seed, self.step, critic_iter, 0xA1F))
        alpha = torch.rand(self.global_batch, generator=gen)
        first = self.ctx.rank * self.config.batch_size
        return alpha[first:first + self.config.batch_size].to(self.ctx.device)

    def train_step(self, blurred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
        """One step on this rank's batch (``(B, 3, crop, crop)``, uint8 as the loader gives it or
        float in [-1, 1]; scaled on the device); returns the
        losses averaged over ranks. ``NonFiniteLossError`` before any optimiser step is taken
        on a non-finite loss, so the weights stay the last good ones."""
        c, ctx, number = self.config, self.ctx, self.step + 1
        factor = self.schedule.factor(self.step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = c.lr * factor
        blurred = normalize(blurred.to(ctx.device, non_blocking=True))
        sharp = normalize(sharp.to(ctx.device, non_blocking=True))
        fake = self.generator_train(blurred)

        for i in range(c.critic_steps):
            self.opt_d.zero_grad(set_to_none=True)
            loss_d, stats = critic_loss(self.critic, sharp, fake, c.gp_weight, alpha=self._alpha(i))
            if c.inject_nan_step == number:
                loss_d = loss_d * float("nan")
            loss_d.backward()
            # Averaging the loss with the gradients makes a NaN on any rank a NaN on all.
            d_values = average_gradients(self.critic.parameters(), ctx,
                                         extra=torch.stack([loss_d.detach(), stats["wasserstein"], stats["gp"]]))
            if not bool(torch.isfinite(d_values).all()):
                raise NonFiniteLossError(number, "critic", float(d_values[0]))
            self.opt_d.step()

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
        g_values = average_tensor(torch.stack([loss_g.detach(), loss_adv.detach(), loss_content.detach()]), ctx)
        if not bool(torch.isfinite(g_values).all()):
            raise NonFiniteLossError(number, "generator", float(g_values[0]))
        self.opt_g.step()
        self.step = number
        d, g = d_values.tolist(), g_values.tolist()
        return {"loss_d": d[0], "wasserstein": d[1], "gp": d[2], "loss_g": g[0], "loss_adv": g[1],
                "loss_content": g[2], "lr": c.lr * factor}

    # ---- validation --------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, dict[str, float]]:
        """Mean PSNR/SSIM (uint8, DESIGN.md conventions) of the generator's output and of the
        blurred input against the sharp image, per held-out source. Eval mode (no dropout), so it
        draws no random numbers and does not disturb an exact resume."""
        from blurgen.deblur.metrics import PSNR_CAP_DB, psnr, ssim

        self.generator.eval()
        results = {}
        try:
            for name, dataset in self.val_sets.items():
                scores = []
                for i in range(len(dataset)):
                    blurred, sharp = dataset[i]
                    out = self.generator(blurred[None].to(self.ctx.device))[0]
                    s, b, o = to_uint8(sharp), to_uint8(blurred), to_uint8(out)
                    scores.append((psnr(o, s), ssim(o, s), psnr(b, s), ssim(b, s)))
                mean = np.mean(np.minimum(scores, PSNR_CAP_DB), axis=0)  # inf (identical) counts as the cap
                results[name] = dict(zip(("psnr", "ssim", "blurred_psnr", "blurred_ssim"), mean.tolist()))
                results[name]["n"] = len(scores)
        finally:
            self.generator.train()
        return results

    # ---- the loop ----------------------------------------------------------------------------

    def _emit(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            self._report(line)

    def _loader(self):
        c = self.config
        sampler = MixingSampler(self.sizes, c.ratio, seed=c.seed, batch_size=c.batch_size, rank=self.ctx.rank,
                                world_size=self.ctx.world_size, start_step=self.step, total_steps=self.total_steps)
        return make_loader(self.train_set, sampler, c.workers, pin_memory=self.ctx.device.type == "cuda", seed=c.seed)

    def _append_csv(self, name: str, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        path = self._path(name)
        new = not os.path.exists(path)
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def _truncate_logs(self) -> None:
        """Drop log rows past the resumed step (written after the checkpoint, before the stop).
        A log left with no rows (a start from step 0, or a header only) is removed, so the next
        append writes its header again."""
        for name in ("log.csv", "val.csv"):
            path = self._path(name)
            if not os.path.exists(path):
                continue
            kept: list[dict[str, str]] = []
            if self.step > 0:
                with open(path, newline="") as handle:
                    kept = [r for r in csv.DictReader(handle) if r.get("step", "").isdigit()
                            and int(r["step"]) <= self.step]
            if not kept:
                os.unlink(path)
                continue
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(kept[0].keys()))
                writer.writeheader()
                writer.writerows(kept)

    def _run_validation(self) -> None:
        if not self.val_sets or not self.ctx.is_main:
            return
        results = self.validate()
        self._append_csv("val.csv", VAL_FIELDS, [{"step": self.step, "source": k, **v} for k, v in results.items()])
        for name, r in results.items():
            self._emit(f"step {self.step} val {name}: PSNR {r['psnr']:.2f} dB (blurred {r['blurred_psnr']:.2f}), "
                       f"SSIM {r['ssim']:.4f} (blurred {r['blurred_ssim']:.4f})")
        self.last_validation = results

    def run(self, until_step: int | None = None) -> dict[str, Any]:
        """Train from ``self.step`` to the end (or to ``until_step``, then checkpoint and return,
        as an interruption would). Returns ``{"step", "last_validation"}``."""
        c, ctx = self.config, self.ctx
        stop = min(self.total_steps, until_step or self.total_steps)
        self.last_validation: dict[str, Any] = {}
        lock = None
        if ctx.is_main:
            os.makedirs(c.out, exist_ok=True)
            lock = lock_run_folder(c.out)  # a second trainer into this folder is refused
        try:
            if ctx.is_main:
                if self.step == 0 and self.last_saved_step is None and _holds_checkpoints(c.out):
                    # Checked again under the lock: another trainer may have finished here since
                    # the caller looked. A run from step 0 never replaces one's checkpoints.
                    raise CheckpointError(f"{c.out} already holds a run's checkpoints; resume it or choose "
                                          "another folder")
                remove_stale_temporaries(c.out)  # of a save killed midway in an earlier attempt
                with atomic_file(self._path("config.json"), "w") as handle:
                    json.dump(self.config_record(), handle, indent=2)
                self._truncate_logs()
                if self.step < stop and sys.stderr.isatty():
                    from tqdm import tqdm

                    self._bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True)
            self._loop(stop)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if lock is not None:
                os.close(lock)
        return {"step": self.step, "last_validation": self.last_validation}

    def _loop(self, stop: int) -> None:
        c, ctx = self.config, self.ctx
        started = time.perf_counter()
        mark_time, mark_step, rows = started, self.step, []
        if self.step < stop:
            for blurred, sharp in self._loader():
                values = self.train_step(blurred, sharp)
                step = self.step
                if self._bar is not None:
                    self._bar.update(1)
                if ctx.is_main and (step % c.log_every == 0 or step == stop):
                    now = time.perf_counter()
                    rate = (step - mark_step) / max(now - mark_time, 1e-9)
                    mark_time, mark_step = now, step
                    rows.append({"step": step, "epoch": step // self.steps_per_epoch, **values,
                                 "it_per_s": rate, "elapsed_s": now - started})
                    self._append_csv("log.csv", LOG_FIELDS, rows)
                    rows = []
                    line = (f"step {step}/{self.total_steps} loss_d {values['loss_d']:.4f} "
                            f"W {values['wasserstein']:.4f} gp {values['gp']:.4f} loss_g {values['loss_g']:.4f} "
                            f"content {values['loss_content']:.4f} lr {values['lr']:.3g} {rate:.2f} it/s")
                    if self._bar is not None:
                        self._bar.set_postfix_str(f"loss_g {values['loss_g']:.3f} W {values['wasserstein']:.3f}")
                    else:
                        self._emit(line)
                if step % c.val_every == 0 or step == self.total_steps:
                    self._run_validation()
                if step % c.ckpt_every == 0 or step == stop:
                    self.save("last.pt")
                if c.keep_every and step % c.keep_every == 0:
                    self.save(f"step_{step:07d}.pt")
                if step >= stop:
                    break
        if self.last_saved_step != self.step:
            self.save("last.pt")
