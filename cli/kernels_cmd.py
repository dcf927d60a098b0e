"""`blurgen kernels`: draw random kernels into a .npy array or a PNG contact sheet."""

from __future__ import annotations

import errno
import os

import click
import numpy as np

from blurgen.cli.common import (
    announce_first_compile,
    check_motion_options,
    check_output,
    kernel_model_options,
    motion_config_from_options,
    motion_options,
)
from blurgen.core.common import atomic_path
from blurgen.core.config import MAX_SEED

#: Kernels computed and written at a time for .npy output (about 70 MB at 65x65).
NPY_BATCH = 4096
#: Kernel pictures a PNG sheet may hold (64 x 64 tiles: about 8,000 px a side at --scale 2).
MAX_PNG_TILES = 4096


@click.command()
@click.option("--n", "n", type=click.IntRange(1, 10**9), default=64, show_default=True, help="Number of kernels.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .npy (float32 (n, k, k)) or .png (a grid to look at).")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True)
@click.option("--start", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True,
              help="Index of the first sample.")
@kernel_model_options
@motion_options
@click.option("--scale", type=click.IntRange(1, 16), default=2, show_default=True,
              help="PNG only: pixels per kernel pixel.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.pass_context
def kernels(ctx, n, out, seed, start, scale, overwrite, **model_options):
    """Draw N random camera-shake kernels and save them.

    With a .png and several --exposures, each row shows one path at every exposure side by side
    (shortest first); with --motion camera3d, each sample is a 3x3 block of its local kernels at
    the corners, edge midpoints and centre of the frame, so the spatial variation shows; otherwise
    a square grid of kernels. A .npy holds float32 (N, k, k): for camera3d, each sample's local
    kernel at a position drawn uniformly over the frame (as blurgen.random_kernels).

    \b
    Examples:
      blurgen kernels --n 64 --out kernels.png
      blurgen kernels --n 1000 --out kernels.npy --seed 3 --kernel-size 31 --length-px 25
      blurgen kernels --n 8 --out strips.png --exposures 0.1,0.5,1
      blurgen kernels --n 16 --out camera.png --motion camera3d --focal-35mm 18,24
    """
    from blurgen.core.config import check_samples
    from blurgen.motion import registry

    announce_first_compile("blurgen.motion._walk_jit")  # the option checks below already run kernels
    config = _model_config(ctx, model_options)
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".png"):
        raise click.BadParameter(f"{out!r} must end in .npy or .png", param_hint="--out")
    try:
        check_samples(n, seed, start)  # the last index, start + n - 1, must be a valid one too
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    model = registry.get(model_options["motion"])
    tiles = model.sheet_tiles(config, n)
    if ext == ".png" and tiles > MAX_PNG_TILES:
        raise click.BadParameter(f"a PNG sheet holds at most {MAX_PNG_TILES} kernel pictures, {tiles} asked "
                                 "(n x exposures, or n x 9 for camera3d); write .npy for more", param_hint="--n")
    check_output(out, overwrite)
    try:
        if ext == ".npy":
            with atomic_path(out, ".npy") as tmp:
                write_npy_in_batches(tmp, n, seed, start, config, model)
        else:
            _write_sheet(out, n, seed, start, config, scale, model)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {n} kernels ({config.size}x{config.size}, {model.name}, seed {seed}) to {out}")


def _model_config(ctx, options: dict):
    """The chosen motion model's settings from the command line."""
    check_motion_options(ctx, options["motion"])
    return motion_config_from_options(options["motion"], options["kernel_size"], options)


def _write_sheet(out: str, n: int, seed: int, start: int, config, scale: int, model) -> None:
    from blurgen.core.imageio import write_png
    from blurgen.inspect.preview import caption, grid

    tiles, columns = model.sheet(config, n, seed, start, scale)
    sheet = grid(tiles, columns=columns, gap=6 if len(tiles[0]) > 3 * config.size else 2)
    with atomic_path(out, ".png") as tmp:
        write_png(tmp, caption(sheet, f"{model.sheet_title(config)}; seed {seed}, {config.size}x{config.size}"))


def write_npy_in_batches(path: str, n: int, seed: int, start: int, config, motion=None) -> None:
    """Write ``random_kernels(n, seed=seed, start=start, config=config)`` as a .npy file, NPY_BATCH
    kernels at a time: memory stays bounded whatever n, and a full disk is found before any work
    (free-space check) or as an OSError, not by a crash."""
    from blurgen.core.common import free_bytes
    from blurgen.motion.api import random_kernels

    shape = (n, config.size, config.size)
    need = 4 * n * config.size * config.size + 4096
    free = free_bytes(os.path.dirname(os.path.abspath(path)))
    if need > free:
        raise OSError(errno.ENOSPC, f"{need / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free")
    with open(path, "wb") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        for first in range(0, n, NPY_BATCH):
            count = min(NPY_BATCH, n - first)
            handle.write(random_kernels(count, seed=seed, start=start + first, config=config, motion=motion).data)
