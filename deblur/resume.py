"""How a training run starts in its folder: fresh, restarted, resumed or initialised from another
run, with which settings. ``blurgen train`` calls these; a Python caller gets the same behaviour
from ``open_run``::

    trainer = open_run("runs/a", resume=True, max_steps=2000)   # as `blurgen train --out runs/a
    trainer.run()                                               #  --resume --max-steps 2000`

Rules (the CLI's documented ones): a resumed or restarted run takes the settings it recorded
(``config.json``, else ``last.pt``'s), with the settings given again over them; those that change
the arithmetic of training (``RESUME_KEYS``) must agree, except a longer ``epochs``/``max_steps``,
which extends the run. ``epochs`` given to a run planned in ``max_steps`` replaces its
``max_steps`` (the run is then planned in epochs). A fresh run with ``init_from`` takes the
generator shape of that checkpoint unless given.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from blurgen.deblur.run_folder import LAST, TrainRunFolder
from blurgen.deblur.train_config import EXTENDABLE_KEYS, RESUME_KEYS, TrainConfig

#: Recorded settings that are not the caller's to carry over.
NOT_INHERITED = ("out", "inject_nan_step")


class RatioError(ValueError):
    """A ``ratio`` that does not fit the sources (the CLI reports it as a ``--ratio`` usage error)."""


class SettingsError(ValueError):
    """Settings that cannot make a run (no source, a bad value); one line naming the field."""


def parse_ratio(value: Any, data: str | None, gopro: str | None) -> tuple[int, int]:
    """``'2:1'`` or ``(2, 1)`` -> ``(2, 1)``, checked against the sources given; ``None`` -> the
    default share of each source given (2 synthetic, 1 GoPro). ``RatioError`` otherwise."""
    if value is None:
        return (2 if data else 0, 1 if gopro else 0)
    if isinstance(value, str):
        try:
            shares = tuple(int(v) for v in value.split(":"))
        except ValueError:
            shares = ()
    else:
        shares = tuple(int(v) for v in value)
    shown = value if isinstance(value, str) else ":".join(map(str, shares))
    if len(shares) != 2 or min(shares) < 0 or max(shares) > 1000:
        raise RatioError(f"expected two integers in [0, 1000] like 2:1, got {shown[:40]!r}")
    if sum(shares) == 0:
        raise RatioError("0:0 gives no share to any source")
    if shares[0] and not data:
        raise RatioError(f"{shown} gives synthetic pairs a share but --data was not given")
    if shares[1] and not gopro:
        raise RatioError(f"{shown} gives GoPro a share but --gopro was not given")
    return shares


def stored_settings(folder: TrainRunFolder, mode: str) -> dict[str, Any]:
    """The TrainConfig fields a run in ``folder`` recorded (config.json, else last.pt's on a
    resume); empty when there is no record."""
    record = folder.earlier_config()
    if record is None and mode == "resume":
        from blurgen.deblur.checkpoint import load_checkpoint

        record = load_checkpoint(folder.file(LAST), required=("step",)).get("train_config")
    fields = {f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_INHERITED}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in (record or {}).items() if k in fields}


def init_architecture(path: str) -> dict[str, Any]:
    """width/blocks/dropout of the generator in checkpoint ``path`` (for ``init_from``)."""
    from blurgen.deblur.checkpoint import load_checkpoint

    config = load_checkpoint(path)["generator_config"]
    names = {"width": "width", "n_blocks": "blocks", "dropout": "dropout"}
    return {ours: config[theirs] for theirs, ours in names.items() if theirs in config}


def _same_path(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, str) and isinstance(b, str) and os.path.abspath(a) == os.path.abspath(b))


def check_given_agree(stored: dict[str, Any], config: TrainConfig, given: dict[str, Any], where: str) -> None:
    """``ResumeMismatchError`` naming each setting given again whose value in ``config`` differs
    from the run's record in a way that would change its arithmetic (``RESUME_KEYS``; a longer
    run may be asked: the trainer checks ``epochs``/``max_steps`` against the steps made)."""
    from blurgen.deblur.train import ResumeMismatchError

    diffs = []
    for key in given:
        if key in RESUME_KEYS and key not in EXTENDABLE_KEYS and key in stored:
            value = getattr(config, key)
            if not _same_path(stored[key], value):
                diffs.append(f"{key} {stored[key]!r} -> {value!r}")
    if diffs:
        raise ResumeMismatchError(f"{where}: settings differ from the run being resumed: {'; '.join(diffs)}")


def effective_config(out: str, mode: str, given: dict[str, Any], defaults: dict[str, Any] | None = None,
                     report: Callable[[str], None] | None = None) -> TrainConfig:
    """The TrainConfig of a run starting in ``out`` as ``mode`` (``TrainRunFolder.start_mode``).

    ``given``: the settings the caller gave (TrainConfig fields, plus ``ratio`` as ``'2:1'`` or a
    pair, and ``init_from``); ``defaults``: values for fields neither given nor recorded
    (default: TrainConfig's). ``ResumeMismatchError`` when a given setting differs from the
    recorded run, ``RatioError``/``SettingsError``/``ValueError`` for settings that make no run."""
    folder = TrainRunFolder(out)
    settings = {**(defaults or {}), **given}
    stored = stored_settings(folder, mode) if mode in ("resume", "restart") else {}
    if stored:
        settings = {**(defaults or {}), **stored, **given}
        if "epochs" in given and "max_steps" not in given and stored.get("max_steps") is not None:
            settings["max_steps"] = None
            (report or (lambda line: None))(
                f"--epochs {given['epochs']} replaces the run's --max-steps {stored['max_steps']}: "
                "the run is now planned in epochs")
    elif settings.get("init_from") and mode == "fresh":
        settings.update({k: v for k, v in init_architecture(settings["init_from"]).items() if k not in given})
    if not settings.get("data") and not settings.get("gopro"):
        raise SettingsError("give at least one source: --data pairs.h5 and/or --gopro ROOT")
    settings["ratio"] = parse_ratio(settings.get("ratio"), settings.get("data"), settings.get("gopro"))
    try:
        config = TrainConfig(out=out, **settings)
    except TypeError as exc:
        raise SettingsError(str(exc)) from None
    if stored:
        check_given_agree(stored, config, given, folder.file("config.json" if mode == "restart" else LAST))
    return config


def prepare_trainer(trainer, mode: str, init_from: str | None, say: Callable[[str], None]) -> None:
    """Resume, restart or initialise a new ``trainer`` as ``mode`` says (the folder is its
    ``config.out``)."""
    folder = trainer.folder
    if mode == "restart":
        earlier = folder.earlier_config()
        if earlier is not None:  # none when the run stopped before writing it
            trainer.check_same_settings(earlier, folder.file("config.json"))
        say(f"{folder.path} stopped before its first checkpoint: starting from step 0")
    elif mode == "resume":
        stored = folder.earlier_config() or {}
        say(f"resuming {folder.path} from step {trainer.resume()}")
        if stored.get("total_steps") and stored["total_steps"] < trainer.total_steps:
            say(f"extending the run from {stored['total_steps']} to {trainer.total_steps} steps (learning rate: "
                f"constant to step {trainer.total_steps // 2}, then linear decay to 0)")
    if init_from and mode != "resume":
        trainer.init_from(init_from)
        say(f"starting from the weights of {init_from}")


def open_run(out: str, resume: bool = False, ctx=None, report: Callable[[str], None] | None = None,
             **given: Any):
    """A ``Trainer`` for the run in ``out``, started as ``blurgen train --out OUT [--resume]`` with
    the settings ``given`` (TrainConfig fields, ``ratio``, ``init_from``) starts it: resumed from
    ``last.pt`` (settings from the run, those given must agree or extend it), restarted when it
    stopped before its first checkpoint, or fresh. ``RunFolderError`` for a folder in use or an
    existing run without ``resume``."""
    from blurgen.deblur.train import Trainer

    say = report or (lambda line: None)
    folder = TrainRunFolder(out)
    mode = folder.start_mode(resume, check_lock=ctx is None or ctx.is_main)
    if given.get("init_from") and mode == "resume":
        raise SettingsError("init_from starts a new run; the run in out is resumed from its last.pt")
    config = effective_config(out, mode, given, report=say)
    trainer = Trainer(config, ctx=ctx, report=report)
    prepare_trainer(trainer, mode, config.init_from, say)
    return trainer
