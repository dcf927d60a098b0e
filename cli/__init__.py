"""The ``blurgen`` command line: one click group, each command a thin module beside this one."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from blurgen import __version__
from blurgen.core.common import BlurgenError, one_line

# Command name -> "module:attribute". Commands load on first use, so `blurgen kernels` never
# imports h5py or torch, and `blurgen train` reports a missing torch itself.
COMMANDS = {
    "kernels": "blurgen.cli.kernels_cmd:kernels",
    "make": "blurgen.cli.make_cmd:make",
    "inspect": "blurgen.cli.inspect_cmd:inspect",
    "merge": "blurgen.cli.merge_cmd:merge",
    "export": "blurgen.cli.export_cmd:export",
    "train": "blurgen.cli.train_cmd:train",
    "eval": "blurgen.cli.eval_cmd:eval_command",
    "deblur": "blurgen.cli.deblur_cmd:deblur",
}


def _is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is a Ctrl-C in disguise: one that lands inside a Numba call comes out as
    ``SystemError: CPUDispatcher(...) returned a result with an exception set``, with the
    KeyboardInterrupt only in its chain of causes."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class BlurgenGroup(click.Group):
    """Click group with lazily imported commands that turns interrupts and OS errors into
    one-line messages, never tracebacks."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, name: str):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not built into this version
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("blurgen: interrupted", err=True)
            sys.exit(130)
        except SystemError as exc:
            if not _is_interrupt(exc):
                raise
            click.echo("blurgen: interrupted", err=True)
            sys.exit(130)
        except BlurgenError as exc:  # every failure blurgen raises on purpose: one line, exit 1
            raise click.ClickException(one_line(exc)) from None
        except OSError as exc:  # disk full, permission denied, ... while working
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None


@click.group(cls=BlurgenGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="blurgen")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """Synthetic camera-shake motion blur for deblurring datasets, and a DeblurGAN trainer.

    \b
    Examples:
      blurgen kernels --n 64 --out kernels.png
      blurgen make --n 10000 --out pairs.h5
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s")

