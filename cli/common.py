"""Helpers shared by the commands: option types and atomic output files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator

import click

from blurgen.config import KernelConfig


def parse_float_list(value: str, name: str) -> tuple[float, ...]:
    """'0.1,0.5,1' -> (0.1, 0.5, 1.0); a click usage error (exit 2) otherwise."""
    try:
        items = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}", param_hint=name) from None
    if not items:
        raise click.BadParameter("expected at least one number", param_hint=name)
    return items


def kernel_model_options(func):
    """The KernelConfig options shared by `kernels` and `make`."""
    defaults = KernelConfig()
    options = [
        click.option("--kernel-size", type=int, default=defaults.size, show_default=True,
                     help="Odd kernel side in pixels (>= 3)."),
        click.option("--length-px", type=float, default=defaults.length_px, show_default=True,
                     help="Camera path length in pixels over a full exposure."),
        click.option("--steps", type=int, default=defaults.steps, show_default=True,
                     help="Samples along each path."),
        click.option("--exposures", default=",".join(f"{e:g}" for e in defaults.exposures),
                     show_default=True, help="Exposure fractions to draw from, e.g. 0.1,0.5,1."),
        click.option("--anxiety", default=",".join(f"{a:g}" for a in defaults.anxiety),
                     show_default=True, help="Shake strengths to draw from, each in (0, 0.1]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def kernel_config_from_options(kernel_size: int, length_px: float, steps: int, exposures: str,
                               anxiety: str) -> KernelConfig:
    """Build a KernelConfig from the CLI options; bad values are usage errors (exit 2)."""
    names = {"size": "--kernel-size", "length_px": "--length-px", "steps": "--steps",
             "exposures": "--exposures", "anxiety": "--anxiety"}
    try:
        return KernelConfig(size=kernel_size, length_px=length_px, steps=steps,
                            exposures=parse_float_list(exposures, "--exposures"),
                            anxiety=parse_float_list(anxiety, "--anxiety"))
    except ValueError as exc:
        message = str(exc)
        hint = next((flag for field, flag in names.items() if message.startswith(field)), None)
        raise click.BadParameter(message, param_hint=hint) from None


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds,
    so a reader never sees a half-written file under the final name."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix or ".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable_destination(path: str) -> None:
    """Failure (exit 1) when ``path`` cannot be written: its folder is missing or read-only."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise click.ClickException(f"cannot write {path}: folder {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise click.ClickException(f"cannot write {path}: folder {directory} is not writable")
