"""A training run's folder, in one place for the trainer and ``blurgen train``:

``config.json`` (the run's settings), ``log.csv`` (step, losses, lr, rate, ETA), ``val.csv``
(PSNR/SSIM of the model and of the blurred inputs on held-out samples), ``val_images/``
(blurred | output | sharp per validation), ``tensorboard/`` (optional), the checkpoints
``last.pt`` and ``step_NNNNNNN.pt``, and ``.train.lock``, flocked by the process training there
(a second trainer is refused; the lock dies with its process).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from typing import Any, Iterator

from blurgen.core.common import BlurgenError, atomic_file, flocked, is_flocked, is_temporary, remove_temporaries
from blurgen.deblur.train_config import RESUME_KEYS

CONFIG = "config.json"
LAST = "last.pt"
LOCK = ".train.lock"
LOG = "log.csv"
VAL = "val.csv"
VAL_IMAGES = "val_images"
TENSORBOARD = "tensorboard"
#: What a run writes before its first checkpoint (killed writes' temporaries aside).
PRE_CHECKPOINT = (CONFIG, LOG, VAL, LOCK, VAL_IMAGES, TENSORBOARD)


def is_our_temporary(name: str) -> bool:
    """A temporary of one of the run's own files (a killed atomic write), not a user's file."""
    return is_temporary(name) and (any(name.startswith(f".{ours}.") for ours in (CONFIG, LAST, LOG, VAL))
                                   or name.startswith(".step_"))


class RunFolderError(BlurgenError):
    """A run folder that cannot be used as asked (exists, in use, nothing to resume)."""


def step_checkpoint(step: int) -> str:
    """The name of the checkpoint kept at ``step`` (``step_0001000.pt``)."""
    return f"step_{step:07d}.pt"


class TrainRunFolder:
    """The run folder ``path`` (created on ``prepare``)."""

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # --------------------------------------------------------------------------- the lock
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run's lock (creating the folder); RunFolderError if another trainer has it."""
        os.makedirs(self.path, exist_ok=True)
        busy = f"{self.path} is in use by another blurgen train (wait for it or stop it)"
        with flocked(self.file(LOCK), busy, error=RunFolderError):
            yield

    def in_use(self) -> bool:
        return is_flocked(self.file(LOCK))

    # --------------------------------------------------------------------------- contents
    def has_last(self) -> bool:
        return os.path.isfile(self.file(LAST))

    def holds_checkpoints(self) -> bool:
        try:
            return any(n == LAST or (n.startswith("step_") and n.endswith(".pt")) for n in os.listdir(self.path))
        except FileNotFoundError:
            return False

    def earlier_config(self) -> dict | None:
        """The settings record of a blurgen train run here (its config.json), or None when there
        is none or the file is not one (a user's own config.json is not ours to replace)."""
        try:
            with open(self.file(CONFIG)) as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and all(k in record for k in RESUME_KEYS) else None

    def stopped_before_first_checkpoint(self) -> bool:
        """A run folder holding only what a run writes before its first checkpoint: nothing to
        keep, so starting again there loses nothing. Ours: its config.json is a blurgen train
        record, or there is none (or an empty one) beside our lock file."""
        names = os.listdir(self.path)
        if not all(n in PRE_CHECKPOINT or is_our_temporary(n) for n in names):
            return False
        config = self.file(CONFIG)
        unwritten = LOCK in names and (not os.path.exists(config) or os.path.getsize(config) == 0)
        return unwritten or self.earlier_config() is not None

    def start_mode(self, resume: bool, check_lock: bool = True) -> str:
        """How a run starts here: ``"fresh"`` (empty or missing folder), ``"restart"`` (a run that
        stopped before its first checkpoint: from step 0, its settings kept) or ``"resume"``
        (from ``last.pt``). RunFolderError for a folder in use, or an existing run without
        ``resume``; ``check_lock`` False skips the in-use check)."""
        if not os.path.exists(self.path):
            return "fresh"  # --resume of a run that never started simply starts it
        if not os.path.isdir(self.path):
            raise RunFolderError(f"{self.path} exists and is not a folder; choose another --out")
        if check_lock and self.in_use():  # rank 0 only: under torchrun the ranks would see each other
            raise RunFolderError(f"{self.path} is in use by another blurgen train (wait for it or stop it)")
        if resume and self.has_last():
            return "resume"
        if not os.listdir(self.path):
            return "fresh"
        if self.stopped_before_first_checkpoint():
            return "restart"
        if resume:
            raise RunFolderError(f"--resume: {self.path} holds no {LAST} of a blurgen train run")
        raise RunFolderError(f"{self.path} already exists: pass --resume to continue that run, or choose another --out")

    # --------------------------------------------------------------------------- writing
    def remove_temporaries(self) -> None:
        """Delete what the run's writes killed midway left (only while no write runs here); a
        user's own ``.notes.tmp`` stays."""
        for ours in (CONFIG, LAST, LOG, VAL):
            remove_temporaries(self.path, ours)
        for name in os.listdir(self.path):
            if name.startswith(".step_") and is_our_temporary(name):
                with contextlib.suppress(OSError):
                    os.unlink(self.file(name))

    def write_config(self, record: dict[str, Any]) -> None:
        with atomic_file(self.file(CONFIG), "w") as handle:
            json.dump(record, handle, indent=2)

    def append_csv(self, name: str, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        """Append ``rows``; a new file gets a header. An existing file keeps its own header (a
        log of an older blurgen may have fewer columns: those missing here stay out)."""
        path = self.file(name)
        header = None
        if os.path.exists(path):
            with open(path, newline="") as handle:
                header = next(csv.reader(handle), None)
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header or list(fields), extrasaction="ignore")
            if header is None:
                writer.writeheader()
            writer.writerows(rows)

    def truncate_logs(self, step: int) -> None:
        """Drop log rows past ``step`` (written after the checkpoint, before the stop). A log left
        with no rows (a start from step 0, or a header only) is removed, so the next append
        writes its header again."""
        for name in (LOG, VAL):
            path = self.file(name)
            if not os.path.exists(path):
                continue
            kept: list[dict[str, str]] = []
            if step > 0:
                with open(path, newline="") as handle:
                    kept = [r for r in csv.DictReader(handle) if r.get("step", "").isdigit() and int(r["step"]) <= step]
            if not kept:
                os.unlink(path)
                continue
            with atomic_file(path, "w") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(kept[0].keys()))
                writer.writeheader()
                writer.writerows(kept)
