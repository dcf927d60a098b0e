"""The DeblurGAN training loop: data -> ``DeblurGAN`` steps -> logs, validation, checkpoints.

Layers: ``train_config.TrainConfig`` (settings) -> ``train_data.build_data`` (the mixed stream and
the validation views) -> ``gan.DeblurGAN`` (networks, optimisers, schedule, one step) ->
``Trainer`` (this module: the loop, checkpoints, resume) writing into a ``run_folder``;
``loggers`` receive each logged step and validation (CSV, progress lines, TensorBoard, PNGs).

Everything random is a pure function of the seed and the step, or restored from the checkpoint:
crops/flips come from the sample's global position (``deblur.data``), the penalty's weights from
``(seed, step, critic iteration)``, dropout from the torch RNG whose state (per rank) is saved.
So ``resume`` continues exactly, with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable

import numpy as np
import torch

from blurgen.deblur import distributed as dist_utils
from blurgen.deblur.checkpoint import (
    TRAINING_KEYS,
    CheckpointError,
    capture_host_rng,
    capture_torch_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from blurgen.deblur.distributed import DistContext
from blurgen.deblur.gan import DeblurGAN, LinearDecaySchedule, NonFiniteLossError  # noqa: F401 (re-exported)
from blurgen.deblur.loggers import Loggers
from blurgen.deblur.run_folder import LAST, TrainRunFolder, step_checkpoint
from blurgen.deblur.stopping import StopRequested, StopSignals  # noqa: F401 (StopRequested re-exported)
from blurgen.deblur.train_config import EXTENDABLE_KEYS, RESUME_KEYS, TrainConfig  # noqa: F401 (re-exported)
from blurgen.deblur.train_data import build_data

log = logging.getLogger(__name__)


class ResumeMismatchError(CheckpointError):
    """``--resume`` with settings that differ from the run's checkpoint."""


class Trainer:
    """Runs one training run: builds data and the GAN from a ``TrainConfig``, then the loop.

    ``ctx`` says which rank this process is (default: a single process on ``config.device``).
    ``report`` receives one-line human progress messages (default: ``logging.info``). Only rank 0
    writes files and reports.
    """

    def __init__(self, config: TrainConfig, ctx: DistContext | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)  # DataLoader workers keep one each (worker_init)
        self.ctx = ctx or DistContext(device=dist_utils.resolve_device(config.device))
        self.folder = TrainRunFolder(config.out)
        self.data = build_data(config, self.ctx.world_size)
        self.total_steps = self.data.total_steps
        self.gan = DeblurGAN(config, self.ctx, self.total_steps)
        self.loggers = Loggers(self.folder, config, report or log.info, enabled=self.ctx.is_main)
        self.step = 0
        self.last_saved_step: int | None = None
        self.last_validation: dict[str, Any] = {}

    # The parts tests and callers reach for.
    generator = property(lambda self: self.gan.generator)
    critic = property(lambda self: self.gan.critic)
    opt_g = property(lambda self: self.gan.opt_g)
    opt_d = property(lambda self: self.gan.opt_d)
    schedule = property(lambda self: self.gan.schedule)
    content_loss = property(lambda self: self.gan.content_loss)
    sizes = property(lambda self: self.data.sizes)
    steps_per_epoch = property(lambda self: self.data.steps_per_epoch)
    val_sets = property(lambda self: self.data.val_sets)

    def train_step(self, blurred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
        """One step on this rank's batch (see ``DeblurGAN.train_step``); advances ``step``."""
        values = self.gan.train_step(self.step, blurred, sharp)
        self.step += 1
        return values

    def _loader(self):
        return self.data.loader(self.config, self.ctx.rank, self.ctx.world_size, self.step,
                                pin_memory=self.ctx.device.type == "cuda")

    def summary(self) -> str:
        """One line: how long, on what, where (reported when ``run`` starts)."""
        names = [f"{n} {k}" for k, n, r in zip(("synthetic", "GoPro"), self.sizes, self.config.ratio) if n and r]
        shares = self.config.ratio
        mix = f"ratio {shares[0]}:{shares[1]}" if all(shares) else f"{'synthetic' if shares[0] else 'GoPro'} only"
        return (f"training {self.total_steps} steps ({self.steps_per_epoch} per epoch) on {', '.join(names)} "
                f"samples, {mix}, {self.ctx.world_size} process(es) on {self.ctx.device}, "
                f"content loss {self.content_loss.mode}")

    # ---------------------------------------------------------------------------- settings
    def config_record(self) -> dict[str, Any]:
        """The settings stored in checkpoints and ``config.json`` (JSON- and weights_only-safe)."""
        record = dataclasses.asdict(self.config)
        for key in ("data", "gopro", "vgg_weights", "init_from"):
            if record[key] is not None:
                record[key] = os.path.abspath(record[key])
        record["ratio"] = list(record["ratio"])
        record.update(world_size=self.ctx.world_size, content_mode=self.content_loss.mode,
                      total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                      train_sizes=list(self.sizes))
        return record

    def check_same_settings(self, stored: dict[str, Any], where: str) -> None:
        """``ResumeMismatchError`` naming each setting of ``RESUME_KEYS`` that differs between
        ``stored`` (a checkpoint's or config.json's record) and this trainer; ``epochs`` and
        ``max_steps`` may differ when the run gets longer (it is extended)."""
        current = self.config_record()
        longer = int(stored.get("total_steps") or 0) <= self.total_steps
        diffs = [f"{k} {stored.get(k)!r} -> {current.get(k)!r}" for k in RESUME_KEYS
                 if stored.get(k) != current.get(k) and not (k in EXTENDABLE_KEYS and longer)]
        if diffs:
            raise ResumeMismatchError(f"{where}: settings differ from the run being resumed: {'; '.join(diffs)}")

    # ---------------------------------------------------------------------------- checkpoints
    def save(self, name: str = LAST) -> None:
        """Write a checkpoint of the current step (collective: every rank must call it)."""
        torch_states = dist_utils.gather_objects(capture_torch_rng(), self.ctx)
        self.last_saved_step = self.step  # every rank tracks it: the closing save is collective
        if not self.ctx.is_main:
            return
        rng = {**torch_states[0], **capture_host_rng(), "per_rank": torch_states}
        position = {"step": self.step, "position": self.step * self.gan.global_batch,
                    "global_batch": self.gan.global_batch, "seed": self.config.seed,
                    "sizes": list(self.sizes), "ratio": list(self.config.ratio)}
        save_checkpoint(self.folder.file(name), {
            **self.gan.state_dict(), "rng": rng, "train_config": self.config_record(), "step": self.step,
            "epoch": self.step // self.steps_per_epoch, "data_position": position})

    def resume(self, path: str | None = None) -> int:
        """Load ``path`` (default ``OUT/last.pt``) and continue from its step; returns the step.
        A longer ``epochs``/``max_steps`` than the checkpoint's extends the run: the learning-rate
        schedule becomes that of a run planned this long (constant to half of it, then linear
        decay to 0), so a finished run whose rate had reached 0 trains on at the rate that plan
        gives its step. ``ResumeMismatchError`` if it was trained with other settings."""
        path = path or self.folder.file(LAST)
        ckpt = load_checkpoint(path, map_location="cpu", required=TRAINING_KEYS)
        self.check_same_settings(ckpt.get("train_config", {}), path)
        self.gan.load_state_dict(ckpt, path, total_steps=self.total_steps)
        try:
            per_rank = ckpt["rng"].get("per_rank") or [ckpt["rng"]]
            restore_rng(ckpt["rng"], per_rank[self.ctx.rank] if len(per_rank) == self.ctx.world_size else None)
            self.step = self.last_saved_step = int(ckpt["step"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: incompatible checkpoint ({exc})") from None
        if self.step > self.total_steps:
            raise ResumeMismatchError(f"{path}: the run is at step {self.step}, past the {self.total_steps} "
                                      "steps asked for now")
        return self.step

    def init_from(self, path: str) -> None:
        """Start from the networks of checkpoint ``path`` (fine-tuning, ``--init-from``); the
        optimisers, schedule and step start afresh."""
        self.gan.load_weights(load_checkpoint(path, map_location="cpu"), path)

    # ---------------------------------------------------------------------------- validation
    def validate(self) -> dict[str, dict[str, float]]:
        """Mean PSNR/SSIM (uint8) of the generator's output and of the blurred input against the
        sharp image per held-out source, through ``deblur.evaluate`` (eval mode: no dropout, no
        random draws, so an exact resume is not disturbed). The loggers get the first pair of each
        source as pictures."""
        from blurgen.deblur.evaluate import evaluate

        results = {}
        for name, dataset in self.val_sets.items():
            pairs = ((str(i), *(t.permute(1, 2, 0).numpy() for t in dataset[i])) for i in range(len(dataset)))
            pictures: list[tuple[np.ndarray, ...]] = []

            def keep_first(_, blurred, restored, sharp, pictures=pictures):
                if not pictures:
                    pictures.append((blurred, restored, sharp))
            scores = evaluate(self.generator, name, pairs, on_output=keep_first).as_dict()
            results[name] = {"psnr": scores["model"]["psnr"], "ssim": scores["model"]["ssim"],
                             "blurred_psnr": scores["blurred"]["psnr"], "blurred_ssim": scores["blurred"]["ssim"],
                             "n": scores["n"]}
            if pictures:
                self.loggers.validation_picture(self.step, name, *pictures[0])
        return results

    def _run_validation(self) -> None:
        if not self.val_sets or not self.ctx.is_main:
            return
        self.last_validation = self.validate()
        self.loggers.validation(self.step, self.last_validation)

    # ---------------------------------------------------------------------------- the loop
    def run(self, until_step: int | None = None) -> dict[str, Any]:
        """Train from ``self.step`` to the end (or to ``until_step``, then checkpoint and return,
        as an interruption would). Returns ``{"step", "last_validation"}``.

        SIGTERM or SIGINT during the loop (main thread): the step in flight finishes, a checkpoint
        is written at it and ``StopRequested`` is raised (``resume`` then continues exactly)."""
        stop = min(self.total_steps, until_step or self.total_steps)
        self.last_validation = {}
        with self.folder.locked() if self.ctx.is_main else _nothing():  # a second trainer is refused
            if self.ctx.is_main:
                self._prepare_folder()
            try:
                self.loggers.start(self.step, self.total_steps, stop, self.summary())
                with StopSignals() as signals:
                    self._loop(stop, signals)
            finally:
                self.loggers.close()
        return {"step": self.step, "last_validation": self.last_validation}

    def _prepare_folder(self) -> None:
        if self.step == 0 and self.last_saved_step is None and self.folder.holds_checkpoints():
            # Checked again under the lock: another trainer may have finished here since the
            # caller looked. A run from step 0 never replaces one's checkpoints.
            raise CheckpointError(f"{self.config.out} already holds a run's checkpoints; resume it or "
                                  "choose another folder")
        self.folder.remove_temporaries()  # of a save killed midway in an earlier attempt
        self.folder.write_config(self.config_record())
        self.folder.truncate_logs(self.step)

    def _after_step(self, step: int, stop: int, values: dict[str, float], clock: "_Clock") -> None:
        c = self.config
        logged = step % c.log_every == 0 or step == stop
        if self.ctx.is_main and (logged or self.loggers.line_due()):  # piped: step 1, then every ~10 s
            rate, elapsed = clock.lap(step)
            eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
            self.loggers.step(step, {"epoch": step // self.steps_per_epoch, **values, "it_per_s": rate,
                                     "elapsed_s": elapsed, "eta_s": eta}, record=logged)
        else:
            self.loggers.tick(step)
        if step % c.val_every == 0 or step == self.total_steps:
            self._run_validation()
        if step % c.ckpt_every == 0 or step == stop:
            self.save(LAST)
        if c.keep_every and step % c.keep_every == 0:
            self.save(step_checkpoint(step))

    def _loop(self, stop: int, signals: StopSignals) -> None:
        clock = _Clock(self.step)
        if self.step < stop:
            for blurred, sharp in self._loader():
                values = self.train_step(blurred, sharp)
                self._after_step(self.step, stop, values, clock)
                if self.step >= stop:
                    break
                signum = signals.agreed(self.ctx)  # every rank stops at the same step
                if signum is not None:
                    if self.last_saved_step != self.step:
                        self.save(LAST)
                    raise StopRequested(signum, self.step)
        if self.last_saved_step != self.step:
            self.save(LAST)


class _Clock:
    """Steps per second since the last lap, and seconds since the start."""

    def __init__(self, step: int) -> None:
        self.started = self.mark = time.perf_counter()
        self.mark_step = step

    def lap(self, step: int) -> tuple[float, float]:
        now = time.perf_counter()
        rate = (step - self.mark_step) / max(now - self.mark, 1e-9)
        self.mark, self.mark_step = now, step
        return rate, now - self.started


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
