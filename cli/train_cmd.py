"""`blurgen train`: train the companion DeblurGAN on blurgen pairs and/or GoPro frames.

Parsing and validation only; the loop lives in ``blurgen.deblur.train``. torch is imported inside
the command, so the command table loads without it and a missing torch is a one-line error.
"""

from __future__ import annotations

import json
import os
import sys

import click

from blurgen.cli.common import RegularFile, require_torch
from blurgen.common import one_line

RATIO_HELP = "synthetic:GoPro mix, e.g. 2:1 (the paper's; default with both sources)."


def parse_ratio(value: str | None, data: str | None, gopro: str | None) -> tuple[int, int]:
    """'2:1' -> (2, 1), checked against the sources given; usage errors (exit 2) otherwise."""
    if value is None:
        return (2 if data else 0, 1 if gopro else 0)
    try:
        shares = tuple(int(v) for v in value.split(":"))
    except ValueError:
        shares = ()
    if len(shares) != 2 or min(shares) < 0 or max(shares) > 1000:
        raise click.BadParameter(f"expected two integers in [0, 1000] like 2:1, got {value[:40]!r}",
                                 param_hint="--ratio")
    if sum(shares) == 0:
        raise click.BadParameter("0:0 gives no share to any source", param_hint="--ratio")
    if shares[0] and not data:
        raise click.BadParameter(f"{value} gives synthetic pairs a share but --data was not given", param_hint="--ratio")
    if shares[1] and not gopro:
        raise click.BadParameter(f"{value} gives GoPro a share but --gopro was not given", param_hint="--ratio")
    return shares


#: What a run writes before its first checkpoint (and its lock; killed writes' temporaries too).
PRE_CHECKPOINT_FILES = ("config.json", "log.csv", "val.csv", ".train.lock")


def _earlier_config(out: str) -> dict | None:
    """The settings record of a blurgen train run in ``out`` (its config.json), or None when
    there is none or the file is not one (a user's own config.json is not ours to replace)."""
    from blurgen.deblur.train import RESUME_KEYS

    try:
        with open(os.path.join(out, "config.json")) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and all(k in record for k in RESUME_KEYS) else None


def _stopped_before_first_checkpoint(out: str) -> bool:
    """A blurgen train run folder holding only what a run writes before its first checkpoint:
    nothing to keep, so starting again there loses nothing. Ours: its config.json is a blurgen
    train record, or there is none (or an empty one) beside our lock file."""
    from blurgen.deblur.checkpoint import is_temporary

    names = os.listdir(out)
    only_ours = all(n in PRE_CHECKPOINT_FILES or is_temporary(n) for n in names)
    if not only_ours:
        return False
    config = os.path.join(out, "config.json")
    unwritten = ".train.lock" in names and (not os.path.exists(config) or os.path.getsize(config) == 0)
    return unwritten or _earlier_config(out) is not None


def _check_run_dir(out: str, resume: bool, check_lock: bool = True) -> bool:
    """Exit 1 for an existing run without --resume, a --resume with nothing to resume, or a
    folder another blurgen train is writing. Returns True when --resume has to start from step 0
    (the run stopped before any checkpoint)."""
    from blurgen.deblur.checkpoint import run_folder_in_use

    if check_lock and os.path.isdir(out) and run_folder_in_use(out):  # rank 0 only: ranks would see each other
        raise click.ClickException(f"{out} is in use by another blurgen train (wait for it or stop it)")
    restartable = os.path.isdir(out) and _stopped_before_first_checkpoint(out)
    if resume:
        if os.path.isfile(os.path.join(out, "last.pt")):
            return False
        if restartable:
            return True
        raise click.ClickException(f"--resume: no checkpoint {os.path.join(out, 'last.pt')} to resume")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not restartable:
        raise click.ClickException(f"{out} already exists: pass --resume to continue that run, or choose another --out")
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(parent) and not os.access(parent, os.W_OK):
        raise click.ClickException(f"cannot create {out}: {parent} is not writable")


existing_file = RegularFile()
positive = click.IntRange(min=1)


@click.command()
@click.option("--data", type=existing_file, help="blurgen pairs file (.h5), the synthetic source.")
@click.option("--gopro", type=click.Path(exists=True, file_okay=False),
              help="GOPRO_Large root (its train/ split is used).")
@click.option("--ratio", default=None, help=RATIO_HELP)
@click.option("--gopro-blur", type=click.Choice(["blur", "blur_gamma"]), default="blur", show_default=True,
              help="GoPro blurred frames: sRGB average (blur) or linear average (blur_gamma).")
@click.option("--out", required=True, type=click.Path(), help="Run folder (checkpoints, logs).")
@click.option("--epochs", type=positive, default=300, show_default=True,
              help="Epochs (first half constant lr, second half linear decay to 0).")
@click.option("--max-steps", type=positive, default=None, help="Train this many steps instead of --epochs.")
@click.option("--crop", type=click.IntRange(min=16), default=256, show_default=True, help="Square crop side.")
@click.option("--batch-size", type=positive, default=1, show_default=True, help="Batch per process.")
@click.option("--width", type=positive, default=64, show_default=True, help="Generator width (ngf).")
@click.option("--blocks", type=click.IntRange(min=0), default=9, show_default=True, help="Residual blocks.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
              help="Dropout in the residual blocks.")
@click.option("--critic-width", type=positive, default=64, show_default=True, help="Critic width (ndf).")
@click.option("--critic-layers", type=positive, default=3, show_default=True, help="Critic stride-2 layers.")
@click.option("--lr", type=click.FloatRange(min=0, max=1, min_open=True), default=1e-4, show_default=True,
              help="Adam learning rate (both networks).")
@click.option("--critic-steps", type=positive, default=5, show_default=True, help="Critic steps per generator step.")
@click.option("--gp-weight", type=click.FloatRange(min=0, max=1e6), default=10.0, show_default=True, help="WGAN-GP lambda.")
@click.option("--content-weight", type=click.FloatRange(min=0, max=1e6), default=100.0, show_default=True,
              help="Weight of the VGG19 conv3_3 content loss.")
@click.option("--vgg-weights", type=existing_file, default=None,
              help="torchvision vgg19 state dict; default: the torch hub cache, else pixel MSE (warned).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="DataLoader workers.")
@click.option("--val-every", type=positive, default=1000, show_default=True, help="Validate every N steps.")
@click.option("--val-count", type=click.IntRange(min=0), default=16, show_default=True,
              help="Samples held out per source for validation (0: none).")
@click.option("--ckpt-every", type=positive, default=1000, show_default=True, help="Update last.pt every N steps.")
@click.option("--keep-every", type=click.IntRange(min=0), default=10000, show_default=True,
              help="Also keep step_N.pt every N steps (0: never).")
@click.option("--log-every", type=positive, default=50, show_default=True, help="Log every N steps.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--random-vgg", is_flag=True, hidden=True, help="Tests: random VGG19 weights.")
@click.option("--inject-nan-step", type=positive, default=None, hidden=True, help="Tests: NaN loss at step N.")
def train(data, gopro, ratio, gopro_blur, out, resume, **options):
    """Train the DeblurGAN (WGAN-GP + VGG19 content loss) on synthetic pairs and/or GoPro.

    Defaults are the paper's: 256x256 crops, batch 1, Adam 1e-4 (0.5, 0.999), 5 critic steps,
    150 + 150 epochs. Under `torchrun --nproc-per-node K` it trains with DistributedDataParallel
    (gloo on CPU, nccl on GPU), --batch-size per process.

    \b
    Examples:
      blurgen train --data pairs.h5 --gopro GOPRO_Large --ratio 2:1 --out runs/paper
      blurgen train --data pairs.h5 --out runs/cpu --max-steps 500 --crop 64 --width 16 --blocks 3
      blurgen train --data pairs.h5 --out runs/cpu --max-steps 500 --crop 64 --width 16 --blocks 3 --resume
      torchrun --nproc-per-node 4 $(which blurgen) train --data pairs.h5 --out runs/ddp
    """
    if not data and not gopro:
        raise click.UsageError("give at least one source: --data pairs.h5 and/or --gopro ROOT")
    shares = parse_ratio(ratio, data, gopro)
    require_torch(torchvision=True)

    from blurgen.deblur import distributed
    from blurgen.deblur.checkpoint import CheckpointError
    from blurgen.deblur.data import DataError, PairsFileError
    from blurgen.deblur.train import NonFiniteLossError, TrainConfig, Trainer

    try:
        config = TrainConfig(out=out, data=data, gopro=gopro, ratio=shares, gopro_blur=gopro_blur,
                             random_vgg=options.pop("random_vgg"), **options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        ctx = distributed.setup(config.device)
    except (ValueError, RuntimeError) as exc:
        raise click.BadParameter(str(exc).splitlines()[0], param_hint="--device") from None
    trainer = None
    try:
        from_scratch = _check_run_dir(out, resume, check_lock=ctx.is_main)
        distributed.barrier(ctx)  # every rank checked before rank 0 creates the folder
        say = click.echo if ctx.is_main else (lambda line: None)
        trainer = Trainer(config, ctx=ctx, report=say)
        if from_scratch:
            earlier = _earlier_config(out)
            if earlier is not None:  # none when the run stopped before writing it
                trainer.check_same_settings(earlier, os.path.join(out, "config.json"))
            say(f"{out} stopped before its first checkpoint: starting from step 0")
        elif resume:
            try:
                say(f"resuming {out} from step {trainer.resume()}")
            except (KeyError, TypeError, RuntimeError, ValueError) as exc:
                if isinstance(exc, CheckpointError):
                    raise
                raise CheckpointError(f"{os.path.join(out, 'last.pt')}: damaged checkpoint ({one_line(exc)})") from None
        say(f"training {trainer.total_steps} steps ({trainer.steps_per_epoch} per epoch) on "
            f"{', '.join(f'{n} {k}' for k, n in zip(('synthetic', 'GoPro'), trainer.sizes) if n)} samples, "
            f"ratio {shares[0]}:{shares[1]}, {ctx.world_size} process(es) on {ctx.device}, "
            f"content loss {trainer.content_loss.mode}")
        trainer.run()
        say(f"done: step {trainer.step}, checkpoint {os.path.join(out, 'last.pt')}")
    except NonFiniteLossError as exc:
        saved = trainer.last_saved_step if trainer else None
        kept = f"last good checkpoint: step {saved}" if saved is not None else "no checkpoint was written"
        raise click.ClickException(f"{exc}; stopped ({kept})") from None
    except (PairsFileError, DataError, CheckpointError, ValueError) as exc:
        # ValueError: e.g. unusable --vgg-weights or a corrupt VGG file in the torch hub cache.
        raise click.ClickException(one_line(exc)) from None
    except (RuntimeError, MemoryError, OSError) as exc:
        # torch's out-of-memory (CPU or CUDA), a killed DataLoader worker, a full disk, ...
        saved = trainer.last_saved_step if trainer else None
        kept = f"resume from step {saved} with --resume" if saved is not None else "no checkpoint was written"
        raise click.ClickException(f"training stopped: {one_line(exc)} ({kept})") from None
    except KeyboardInterrupt:
        saved = trainer.last_saved_step if trainer else None
        where = f"step {trainer.step}" if trainer else "startup"
        kept = (f"resume from step {saved} with --resume" if saved is not None else "no checkpoint was written")
        click.echo(f"blurgen train: interrupted at {where}; {kept}", err=True)
        sys.exit(130)
    finally:
        distributed.teardown()
