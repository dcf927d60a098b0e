"""Where a training run reports: ``log.csv``/``val.csv``, progress on the terminal (a bar) or as
plain lines with rate and ETA (logs of CI, nohup, SLURM), validation pictures (blurred | output
| sharp PNGs) and, optionally, TensorBoard."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Callable

import numpy as np

from blurgen.core.progress import format_duration
from blurgen.deblur.run_folder import LOG, TENSORBOARD, VAL, VAL_IMAGES, TrainRunFolder
from blurgen.deblur.train_config import TrainConfig

log = logging.getLogger(__name__)

LOG_FIELDS = ("step", "epoch", "loss_d", "wasserstein", "gp", "loss_g", "loss_adv", "loss_content",
              "lr", "it_per_s", "elapsed_s", "eta_s")
VAL_FIELDS = ("step", "source", "psnr", "ssim", "blurred_psnr", "blurred_ssim", "n")


def tensorboard_writer(folder: str):
    """A TensorBoard ``SummaryWriter`` into ``folder``; ImportError naming the package to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(log_dir=folder)


class Loggers:
    """Everything one run reports, on rank 0 only (``enabled``).

    Without a terminal (piped to a log) a progress line comes after the first step of each
    ``run`` and then at least every ``every`` seconds (at step boundaries), besides the
    ``log_every`` steps, so a log never stays silent for minutes; only ``log_every`` steps go
    to ``log.csv``."""

    def __init__(self, folder: TrainRunFolder, config: TrainConfig, report: Callable[[str], None],
                 enabled: bool = True, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder, self.config, self.report, self.enabled = folder, config, report, enabled
        self.every, self.clock = every, clock
        self._bar = None
        self._board = None
        self._last_line: float | None = None
        self.total = 0

    def start(self, step: int, total: int, stop: int, summary: str | None = None) -> None:
        """A run starts at ``step`` (of ``total``) and goes to ``stop``; ``summary`` is reported
        first (before the first step, whatever the terminal)."""
        self.total = total
        self._last_line = None
        if not self.enabled:
            return
        if summary:
            self.report(summary)
        if step < stop and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True)
        if self.config.tensorboard:
            self._board = tensorboard_writer(self.folder.file(TENSORBOARD))

    def line_due(self) -> bool:
        """Whether the step just made should print a line although it is not a ``log_every``
        step: piped output, and the run's first step or ``every`` seconds since the last line."""
        if not self.enabled or self._bar is not None:
            return False
        return self._last_line is None or self.clock() - self._last_line >= self.every

    def _emit(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            self.report(line)

    def tick(self, step: int) -> None:
        """A step that is not logged (the bar still moves)."""
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def step(self, step: int, values: dict[str, Any], record: bool = True) -> None:
        """A logged step: ``values`` holds the losses, ``lr``, ``it_per_s``, ``elapsed_s``, ``eta_s``;
        ``record`` False: a progress line only (not a ``log_every`` step: no CSV row, no TensorBoard)."""
        self.tick(step)
        self._last_line = self.clock()
        if record:
            self.folder.append_csv(LOG, LOG_FIELDS, [{"step": step, **values}])
        if record and self._board is not None:
            for name in ("loss_d", "wasserstein", "gp", "loss_g", "loss_adv", "loss_content", "lr", "it_per_s"):
                self._board.add_scalar(f"train/{name}", values[name], step)
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss_g {values['loss_g']:.3f} W {values['wasserstein']:.3f}")
            return
        self._emit(f"step {step}/{self.total} loss_d {values['loss_d']:.4f} W {values['wasserstein']:.4f} "
                   f"gp {values['gp']:.4f} loss_g {values['loss_g']:.4f} content {values['loss_content']:.4f} "
                   f"lr {values['lr']:.3g} {values['it_per_s']:.2f} it/s, elapsed "
                   f"{format_duration(values['elapsed_s'])}, ETA {format_duration(values['eta_s'])}")

    def validation(self, step: int, results: dict[str, dict[str, float]]) -> None:
        self.folder.append_csv(VAL, VAL_FIELDS, [{"step": step, "source": k, **v} for k, v in results.items()])
        for name, r in results.items():
            self._emit(f"step {step} val {name}: PSNR {r['psnr']:.2f} dB (blurred {r['blurred_psnr']:.2f}), "
                       f"SSIM {r['ssim']:.4f} (blurred {r['blurred_ssim']:.4f})")
            if self._board is not None:
                for key in ("psnr", "ssim", "blurred_psnr", "blurred_ssim"):
                    self._board.add_scalar(f"val_{name}/{key}", r[key], step)

    def validation_picture(self, step: int, source: str, blurred: np.ndarray, restored: np.ndarray,
                           sharp: np.ndarray) -> None:
        """blurred | output | sharp (uint8 HWC) as ``val_images/step_NNNNNNN_<source>.png``."""
        if not self.enabled or not (self.config.val_images or self._board is not None):
            return
        gap = np.full((blurred.shape[0], 4, 3), 48, np.uint8)
        strip = np.concatenate([blurred, gap, restored, gap, sharp], axis=1)
        if self.config.val_images:
            from blurgen.core.common import atomic_path
            from blurgen.core.imageio import write_png

            os.makedirs(self.folder.file(VAL_IMAGES), exist_ok=True)
            with atomic_path(os.path.join(self.folder.file(VAL_IMAGES), f"step_{step:07d}_{source}.png"),
                             ".png") as tmp:
                write_png(tmp, strip)
        if self._board is not None:
            self._board.add_image(f"val_{source}/blurred_output_sharp", strip, step, dataformats="HWC")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._board is not None:
            self._board.close()
            self._board = None
