"""`blurgen kernels`: draw random kernels into a .npy array or a PNG contact sheet."""

from __future__ import annotations

import errno
import os

import click
import numpy as np

from blurgen.cli.common import (
    announce_first_compile,
    check_output,
    kernel_config_from_options,
    kernel_model_options,
)
from blurgen.common import atomic_path
from blurgen.config import MAX_SEED

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
@click.option("--scale", type=click.IntRange(1, 16), default=2, show_default=True,
              help="PNG only: pixels per kernel pixel.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def kernels(n, out, seed, start, kernel_size, length_px, steps, exposures, anxiety, scale, overwrite):
    """Draw N random camera-shake kernels and save them.

    With a .png and several --exposures, each row shows one path at every exposure
    side by side (shortest first); otherwise a square grid of kernels.

    \b
    Examples:
      blurgen kernels --n 64 --out kernels.png
      blurgen kernels --n 1000 --out kernels.npy --seed 3 --kernel-size 31 --length-px 25
      blurgen kernels --n 8 --out strips.png --exposures 0.1,0.5,1
    """
    from blurgen.imageio import write_png
    from blurgen.kernels import (
        check_samples,
        random_kernels,
        random_trajectories,
        rasterize,
    )
    from blurgen.preview import grid, kernel_tile

    announce_first_compile("blurgen._kernels_jit")  # the option checks below already run kernels
    config = kernel_config_from_options(kernel_size, length_px, steps, exposures, anxiety)
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".png"):
        raise click.BadParameter(f"{out!r} must end in .npy or .png", param_hint="--out")
    try:
        check_samples(n, seed, start)  # the last index, start + n - 1, must be a valid one too
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    tiles = n * len(set(config.exposures))
    if ext == ".png" and tiles > MAX_PNG_TILES:
        raise click.BadParameter(f"a PNG sheet holds at most {MAX_PNG_TILES} kernel pictures, {tiles} asked "
                                 "(n x exposures); write .npy for more", param_hint="--n")
    check_output(out, overwrite)
    try:
        if ext == ".npy":
            with atomic_path(out, ".npy") as tmp:
                write_npy_in_batches(tmp, n, seed, start, config)
        else:
            fractions = sorted(set(config.exposures))
            if len(fractions) > 1:
                # Fit test at the longest exposure; shorter ones are prefixes of the same path.
                xy, _ = random_trajectories(n, config.replace(exposures=(fractions[-1],)), seed=seed, start=start)
                strips = [rasterize(xy, config.size, f) for f in fractions]
                tiles = [kernel_tile(strips[j][i], scale) for i in range(n) for j in range(len(fractions))]
                sheet = grid(tiles, columns=len(fractions))
            else:
                psf = random_kernels(n, seed=seed, start=start, config=config)
                sheet = grid([kernel_tile(k, scale) for k in psf], columns=int(np.ceil(np.sqrt(n))))
            with atomic_path(out, ".png") as tmp:
                write_png(tmp, sheet)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {n} kernels ({config.size}x{config.size}, seed {seed}) to {out}")


def write_npy_in_batches(path: str, n: int, seed: int, start: int, config) -> None:
    """Write ``random_kernels(n, seed=seed, start=start, config=config)`` as a .npy file, NPY_BATCH
    kernels at a time: memory stays bounded whatever n, and a full disk is found before any work
    (free-space check) or as an OSError, not by a crash."""
    from blurgen.common import free_bytes
    from blurgen.kernels import random_kernels

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
            handle.write(random_kernels(count, seed=seed, start=start + first, config=config).data)
