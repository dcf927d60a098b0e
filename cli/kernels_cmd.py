"""`blurgen kernels`: draw random kernels into a .npy array or a PNG contact sheet."""

from __future__ import annotations

import errno
import os

import click
import numpy as np

from blurgen.cli.common import (
    announce_first_compile,
    camera_config_from_options,
    check_motion_options,
    check_output,
    kernel_config_from_options,
    kernel_model_options,
    motion_options,
)
from blurgen.common import atomic_path
from blurgen.config import MAX_SEED, KernelConfig

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
    from blurgen.kernels import check_samples

    announce_first_compile("blurgen._kernels_jit")  # the option checks below already run kernels
    config = _model_config(ctx, model_options)
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".png"):
        raise click.BadParameter(f"{out!r} must end in .npy or .png", param_hint="--out")
    try:
        check_samples(n, seed, start)  # the last index, start + n - 1, must be a valid one too
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    tiles = n * (len(GRID_FRACTIONS) ** 2 if model_options["motion"] == "camera3d" else len(set(config.exposures)))
    if ext == ".png" and tiles > MAX_PNG_TILES:
        raise click.BadParameter(f"a PNG sheet holds at most {MAX_PNG_TILES} kernel pictures, {tiles} asked "
                                 "(n x exposures, or n x 9 for camera3d); write .npy for more", param_hint="--n")
    check_output(out, overwrite)
    try:
        if ext == ".npy":
            with atomic_path(out, ".npy") as tmp:
                write_npy_in_batches(tmp, n, seed, start, config)
        else:
            _write_sheet(out, n, seed, start, config, scale)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {n} kernels ({config.size}x{config.size}, {model_options['motion']}, seed {seed}) to {out}")


#: Where camera3d's sheet shows each sample's local kernels: these fractions of the frame.
GRID_FRACTIONS = (0.0, 0.5, 1.0)


def _model_config(ctx, options: dict):
    """The KernelConfig (shake2d) or CameraConfig (camera3d) of the command line."""
    check_motion_options(ctx, options["motion"])
    if options["motion"] == "camera3d":
        return camera_config_from_options(options["kernel_size"], *(options[k] for k in (
            "frame_size", "focal_35mm", "exposure_s", "shake_scale", "roll_scale", "translation_mps", "depth_m",
            "camera_steps")))
    return kernel_config_from_options(options["kernel_size"], *(options[k] for k in (
        "length_px", "steps", "exposures", "anxiety")))


def _sheet_tiles(n: int, seed: int, start: int, config, scale: int) -> tuple[list, int]:
    """The kernel pictures of the PNG sheet and its number of columns."""
    from blurgen.kernels import random_kernels, random_trajectories, rasterize
    from blurgen.preview import grid, kernel_tile

    if not isinstance(config, KernelConfig):
        from blurgen.camera import local_kernels, random_camera_motion

        motion, _ = random_camera_motion(n, config, seed=seed, start=start)
        width, height = config.frame_size
        positions = np.array([(fx * (width - 1), fy * (height - 1)) for fy in GRID_FRACTIONS for fx in GRID_FRACTIONS])
        blocks = local_kernels(motion, positions, config.size)  # (n, 9, k, k)
        side = len(GRID_FRACTIONS)
        pictures = [grid([kernel_tile(k, scale) for k in block], columns=side, gap=1, background=24) for block in blocks]
        return pictures, int(np.ceil(np.sqrt(n)))
    fractions = sorted(set(config.exposures))
    if len(fractions) > 1:
        # Fit test at the longest exposure; shorter ones are prefixes of the same path.
        xy, _ = random_trajectories(n, config.replace(exposures=(fractions[-1],)), seed=seed, start=start)
        strips = [rasterize(xy, config.size, f) for f in fractions]
        return [kernel_tile(strips[j][i], scale) for i in range(n) for j in range(len(fractions))], len(fractions)
    psf = random_kernels(n, seed=seed, start=start, config=config)
    return [kernel_tile(k, scale) for k in psf], int(np.ceil(np.sqrt(n)))


def _write_sheet(out: str, n: int, seed: int, start: int, config, scale: int) -> None:
    from blurgen.imageio import write_png
    from blurgen.preview import grid

    tiles, columns = _sheet_tiles(n, seed, start, config, scale)
    with atomic_path(out, ".png") as tmp:
        write_png(tmp, grid(tiles, columns=columns, gap=6 if len(tiles[0]) > 3 * config.size else 2))


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
