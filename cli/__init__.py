"""The ``blurgen`` command line: one click group, each command a thin module beside this one."""

from __future__ import annotations

import logging
import sys

import click

from blurgen import __version__


class BlurgenGroup(click.Group):
    """Click group that turns interrupts and OS errors into one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("blurgen: interrupted", err=True)
            sys.exit(130)
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


from blurgen.cli.kernels_cmd import kernels  # noqa: E402

main.add_command(kernels)
