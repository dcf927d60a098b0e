"""`blurgen train`: train the companion DeblurGAN on blurgen pairs and/or GoPro frames.

Parsing and validation only; the loop lives in ``blurgen.deblur.train``. torch is imported inside
the command, so the command table loads without it and a missing torch is a one-line error. The
options' defaults are ``TrainConfig``'s.
"""

from __future__ import annotations

import os
import sys

import click
from click.core import ParameterSource

from blurgen.cli.common import RegularFile, apply_options, require_torch
from blurgen.core.common import one_line

RATIO_HELP = "synthetic:GoPro mix, e.g. 2:1 (the paper's; default with both sources)."


def _default(name: str):
    from blurgen.deblur.train_config import (
        TrainConfig,  # no torch: a plain dataclass module
    )

    return TrainConfig.default(name)


class DataSource(RegularFile):
    """``--data``: a pairs file, or ``gopro:ROOT`` (the same as ``--gopro ROOT``, as `eval` spells it)."""

    name = "pairs.h5|gopro:ROOT"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.startswith("gopro:"):
            root = click.Path(exists=True, file_okay=False).convert(value[len("gopro:"):], param, ctx)
            return "gopro:" + root
        return super().convert(value, param, ctx)


def split_sources(data: str | None, gopro: str | None) -> tuple[str | None, str | None]:
    """``--data gopro:ROOT`` -> the GoPro source; given with ``--gopro`` too: a usage error."""
    if data and data.startswith("gopro:"):
        if gopro:
            raise click.BadParameter("gopro:ROOT and --gopro both name a GoPro source; give one",
                                     param_hint="--data")
        return None, data[len("gopro:"):]
    return data, gopro


def build_config(ctx: click.Context, out: str, mode: str, sources: dict, options: dict, say=click.echo):
    """The run's TrainConfig (``blurgen.deblur.resume.effective_config``: on a resume or restart
    the settings the run recorded with those given on this command line over them)."""
    from blurgen.deblur.resume import RatioError, effective_config

    given_names = {k for k in {**sources, **options} if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    if str(ctx.params.get("data") or "").startswith("gopro:"):
        given_names = (given_names - {"data"}) | {"gopro"}  # --data gopro:ROOT is --gopro ROOT
    values = {**options, **sources}
    given = {k: v for k, v in values.items() if k in given_names}
    defaults = {k: v for k, v in values.items() if k not in given_names}
    try:
        return effective_config(out, mode, given, defaults, report=say)
    except RatioError as exc:
        raise click.BadParameter(str(exc), param_hint="--ratio") from None
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None


existing_file = RegularFile()
positive = click.IntRange(min=1)


def _options(func):
    """The training options, defaults from TrainConfig."""
    d = _default
    options = [
        click.option("--gopro-blur", type=click.Choice(["blur", "blur_gamma"]), default=d("gopro_blur"),
                     show_default=True, help="GoPro blurred frames: sRGB average (blur) or linear average (blur_gamma)."),
        click.option("--epochs", type=positive, default=d("epochs"), show_default=True,
                     help="Epochs (first half constant lr, second half linear decay to 0)."),
        click.option("--max-steps", type=positive, default=d("max_steps"), help="Train this many steps instead of --epochs."),
        click.option("--crop", type=click.IntRange(min=16), default=d("crop"), show_default=True, help="Square crop side."),
        click.option("--batch-size", type=positive, default=d("batch_size"), show_default=True, help="Batch per process."),
        click.option("--width", type=click.IntRange(1, 4096), default=d("width"), show_default=True,
                     help="Generator width (ngf)."),
        click.option("--blocks", type=click.IntRange(0, 1024), default=d("blocks"), show_default=True,
                     help="Residual blocks."),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=d("dropout"), show_default=True,
                     help="Dropout in the residual blocks."),
        click.option("--critic-width", type=positive, default=d("critic_width"), show_default=True, help="Critic width (ndf)."),
        click.option("--critic-layers", type=positive, default=d("critic_layers"), show_default=True,
                     help="Critic stride-2 layers."),
        click.option("--lr", type=click.FloatRange(min=0, max=1, min_open=True), default=d("lr"), show_default=True,
                     help="Adam learning rate (both networks)."),
        click.option("--critic-steps", type=positive, default=d("critic_steps"), show_default=True,
                     help="Critic steps per generator step."),
        click.option("--gp-weight", type=click.FloatRange(min=0, max=1e6), default=d("gp_weight"), show_default=True,
                     help="WGAN-GP lambda."),
        click.option("--content-weight", type=click.FloatRange(min=0, max=1e6), default=d("content_weight"),
                     show_default=True, help="Weight of the VGG19 conv3_3 content loss."),
        click.option("--vgg-weights", type=existing_file, default=d("vgg_weights"),
                     help="torchvision vgg19 state dict; default: the torch hub cache, else pixel MSE (warned)."),
        click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=d("seed"), show_default=True),
        click.option("--workers", type=click.IntRange(min=0), default=d("workers"), show_default=True,
                     help="DataLoader workers."),
        click.option("--val-every", type=positive, default=d("val_every"), show_default=True, help="Validate every N steps."),
        click.option("--val-count", type=click.IntRange(min=0), default=d("val_count"), show_default=True,
                     help="Samples held out per source for validation (0: none)."),
        click.option("--ckpt-every", type=positive, default=d("ckpt_every"), show_default=True,
                     help="Update last.pt every N steps."),
        click.option("--keep-every", type=click.IntRange(min=0), default=d("keep_every"), show_default=True,
                     help="Also keep step_N.pt every N steps (0: never)."),
        click.option("--log-every", type=positive, default=d("log_every"), show_default=True, help="Log every N steps."),
        click.option("--device", default=d("device"), show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--threads", type=click.IntRange(1, 1024), default=d("threads"),
                     help="torch threads of the training process [default: torch's]; loader workers use one each."),
        click.option("--tensorboard", is_flag=True, default=d("tensorboard"),
                     help="Also write TensorBoard logs to OUT/tensorboard (needs the tensorboard package)."),
        click.option("--val-images/--no-val-images", default=d("val_images"), show_default=True,
                     help="Write a blurred | output | sharp PNG per source at each validation (OUT/val_images)."),
        click.option("--random-vgg", is_flag=True, hidden=True, help="Tests: random VGG19 weights."),
        click.option("--inject-nan-step", type=positive, default=None, hidden=True, help="Tests: NaN loss at step N."),
    ]
    return apply_options(func, options)


def _run(trainer, config, say) -> None:
    trainer.run()
    say(f"done: step {trainer.step}, checkpoint {os.path.join(config.out, 'last.pt')}")


def _stopped(trainer) -> str:
    saved = trainer.last_saved_step if trainer else None
    return f"resume from step {saved} with --resume" if saved is not None else "no checkpoint was written"


@click.command()
@click.option("--data", type=DataSource(),
              help="blurgen pairs file (.h5), the synthetic source; or gopro:ROOT, the same as --gopro ROOT.")
@click.option("--gopro", type=click.Path(exists=True, file_okay=False),
              help="GOPRO_Large root (its train/ split is used).")
@click.option("--ratio", default=None, help=RATIO_HELP)
@click.option("--out", required=True, type=click.Path(), help="Run folder (checkpoints, logs).")
@_options
@click.option("--resume", is_flag=True,
              help="Continue the run in --out with the settings it recorded; options given again must agree, "
                   "except a larger --max-steps/--epochs, which extends the run. A folder that does not exist "
                   "yet starts the run.")
@click.option("--init-from", type=existing_file, default=None,
              help="Start a new run from another run's checkpoint (fine-tuning): its generator (and critic) "
                   "weights, and its generator shape unless --width/--blocks/--dropout are given.")
@click.pass_context
def train(ctx, data, gopro, ratio, out, resume, init_from, **options):
    """Train the DeblurGAN (WGAN-GP + VGG19 content loss) on synthetic pairs and/or GoPro.

    Defaults are the paper's: 256x256 crops, batch 1, Adam 1e-4 (0.5, 0.999), 5 critic steps,
    150 + 150 epochs. Under `torchrun --nproc-per-node K` it trains with DistributedDataParallel
    (gloo on CPU, nccl on GPU), --batch-size per process. Progress: a bar on a terminal, plain
    lines with rate and ETA otherwise (logs: one before the first step, one after it, then at
    least every 10 s), log.csv and val.csv in OUT. SIGTERM (a scheduler's preemption) or Ctrl-C
    writes a checkpoint at the end of the step in flight and exits 143 / 130; --resume continues
    exactly there.

    \b
    Examples:
      blurgen train --data pairs.h5 --gopro GOPRO_Large --ratio 2:1 --out runs/paper
      blurgen train --data gopro:GOPRO_Large --out runs/gopro --threads 8
      blurgen train --data pairs.h5 --out runs/cpu --max-steps 500 --crop 64 --width 16 --blocks 3
      blurgen train --out runs/cpu --resume --max-steps 1000
      blurgen train --data mine.h5 --out runs/tuned --init-from runs/paper/last.pt --epochs 20
      torchrun --nproc-per-node 4 $(which blurgen) train --data pairs.h5 --out runs/ddp
    """
    from blurgen.deblur.run_folder import TrainRunFolder

    rank0 = int(os.environ.get("RANK", "0")) == 0
    folder = TrainRunFolder(out)
    mode = folder.start_mode(resume, check_lock=rank0)
    if init_from and mode == "resume":
        raise click.UsageError("--init-from starts a new run; the run in --out is resumed from its last.pt")
    if mode == "fresh" and not (data or gopro):
        raise click.UsageError("give at least one source: --data pairs.h5 and/or --gopro ROOT")
    data, gopro = split_sources(data, gopro)
    require_torch(torchvision=True)
    config = build_config(ctx, out, mode, {"data": data, "gopro": gopro, "ratio": ratio, "init_from": init_from},
                          options, say=click.echo if rank0 else (lambda line: None))
    _train(config, mode, init_from)


def _train(config, mode: str, init_from: str | None) -> None:
    from blurgen.deblur import distributed
    from blurgen.deblur.resume import prepare_trainer
    from blurgen.deblur.stopping import StopRequested
    from blurgen.deblur.train import Trainer

    try:
        ctx = distributed.setup(config.device)
    except (ValueError, RuntimeError) as exc:
        raise click.BadParameter(str(exc).splitlines()[0], param_hint="--device") from None
    trainer = None
    try:
        distributed.barrier(ctx)  # every rank checked before rank 0 creates the folder
        say = click.echo if ctx.is_main else (lambda line: None)
        trainer = Trainer(config, ctx=ctx, report=say)
        prepare_trainer(trainer, mode, init_from, say)
        _run(trainer, config, say)
    except StopRequested as exc:  # SIGTERM/SIGINT: a checkpoint was written at the stop step
        if ctx.is_main:
            click.echo(f"blurgen train: {exc}; checkpoint written, continue with --resume", err=True)
        sys.exit(exc.exit_code)
    except ImportError as exc:  # --tensorboard without the package
        raise click.ClickException(one_line(exc)) from None
    except RuntimeError as exc:  # NonFiniteLossError, torch's out-of-memory, a killed loader worker
        if type(exc).__name__ == "NonFiniteLossError":
            saved = trainer.last_saved_step if trainer else None
            kept = f"last good checkpoint: step {saved}" if saved is not None else "no checkpoint was written"
            raise click.ClickException(f"{exc}; stopped ({kept})") from None
        raise click.ClickException(f"training stopped: {one_line(exc)} ({_stopped(trainer)})") from None
    except (MemoryError, OSError) as exc:  # a full disk, ...
        raise click.ClickException(f"training stopped: {one_line(exc)} ({_stopped(trainer)})") from None
    except ValueError as exc:  # e.g. unusable --vgg-weights or a corrupt VGG file in the torch hub cache
        raise click.ClickException(one_line(exc)) from None
    except KeyboardInterrupt:
        where = f"step {trainer.step}" if trainer else "startup"
        click.echo(f"blurgen train: interrupted at {where}; {_stopped(trainer)}", err=True)
        sys.exit(130)
    finally:
        distributed.teardown()
