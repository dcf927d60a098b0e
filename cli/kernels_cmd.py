"""`blurgen kernels`: draw random kernels into a .npy array or a PNG contact sheet."""

from __future__ import annotations

import os

import click
import numpy as np

from blurgen.cli.common import (atomic_output, check_writable_destination,
                                kernel_config_from_options, kernel_model_options)


@click.command()
@click.option("--n", "n", type=click.IntRange(min=1), default=64, show_default=True, help="Number of kernels.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .npy (float32 (n, k, k)) or .png (a grid to look at).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True,
              help="Index of the first sample.")
@kernel_model_options
@click.option("--scale", type=click.IntRange(1, 16), default=2, show_default=True,
              help="PNG only: pixels per kernel pixel.")
def kernels(n, out, seed, start, kernel_size, length_px, steps, exposures, anxiety, scale):
    """Draw N random camera-shake kernels and save them.

    With a .png and several --exposures, each row shows one path at every exposure
    side by side (shortest first); otherwise a square grid of kernels.

    \b
    Examples:
      blurgen kernels --n 64 --out kernels.png
      blurgen kernels --n 1000 --out kernels.npy --seed 3 --kernel-size 31 --length-px 25
      blurgen kernels --n 8 --out strips.png --exposures 0.1,0.5,1
    """
    from blurgen.kernels import random_kernels, random_trajectories, rasterize
    from blurgen.preview import grid, kernel_tile, write_png

    config = kernel_config_from_options(kernel_size, length_px, steps, exposures, anxiety)
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".png"):
        raise click.BadParameter(f"{out!r} must end in .npy or .png", param_hint="--out")
    check_writable_destination(out)
    try:
        if ext == ".npy":
            psf = random_kernels(n, seed=seed, start=start, config=config)
            with atomic_output(out, ".npy") as tmp:
                np.save(tmp, psf)
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
            with atomic_output(out, ".png") as tmp:
                write_png(tmp, sheet)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {n} kernels ({config.size}x{config.size}, seed {seed}) to {out}")
