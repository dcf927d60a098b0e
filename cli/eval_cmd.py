"""`blurgen eval`: PSNR/SSIM of a DeblurGAN checkpoint, beside the blurred inputs', per source.

Parsing and validation only; the loop lives in ``blurgen.deblur.evaluate``. torch is imported
inside the command, so the command table loads without it.
"""

from __future__ import annotations

import json
import os
import sys

import click

from blurgen.cli.common import RegularFile, check_tile, require_torch, resolve_device
from blurgen.core.common import one_line


def parse_source(value: str) -> tuple[str, str]:
    """'pairs.h5' -> ('hdf5', path); 'gopro:ROOT' -> ('gopro', ROOT). A missing path is a usage
    error (exit 2), like click.Path(exists=True)."""
    from blurgen.sources import gopro
    root = gopro.split_spec(value)
    kind, path = ("hdf5", value) if root is None else ("gopro", root)
    if not path:
        raise click.BadParameter(f"{value!r}: expected pairs.h5 or gopro:ROOT", param_hint="--data")
    if not os.path.exists(path):
        raise click.BadParameter(f"{path!r} does not exist", param_hint="--data")
    if kind == "hdf5" and not os.path.isfile(path):
        raise click.BadParameter(f"{path!r} is not a regular file", param_hint="--data")
    if kind == "gopro" and not os.path.isdir(path):
        raise click.BadParameter(f"{path!r} is not a folder (gopro:ROOT wants GOPRO_Large's root)",
                                 param_hint="--data")
    return kind, path


def _format_table(checkpoint: str, rows: list[dict]) -> str:
    def num(v, fmt):
        return "inf" if v is None else format(v, fmt)
    lines = [f"checkpoint {checkpoint}",
             f"{'source':<40} {'n':>6} {'PSNR model':>11} {'PSNR blur':>10} {'SSIM model':>11} {'SSIM blur':>10}"]
    for r in rows:
        lines.append(f"{r['source']:<40} {r['n']:>6} {num(r['model']['psnr'], '.2f'):>11} "
                     f"{num(r['blurred']['psnr'], '.2f'):>10} {num(r['model']['ssim'], '.4f'):>11} "
                     f"{num(r['blurred']['ssim'], '.4f'):>10}")
    return "\n".join(lines)


@click.command("eval")
@click.option("--checkpoint", required=True, type=RegularFile(),
              help="A checkpoint written by `blurgen train` (e.g. runs/NAME/last.pt).")
@click.option("--data", "data", required=True, multiple=True,
              help="pairs.h5 (blurgen HDF5) or gopro:ROOT (GOPRO_Large); repeat for several sources.")
@click.option("--split", default="test", show_default=True, help="GoPro split folder to evaluate.")
@click.option("--gopro-blur", type=click.Choice(["blur", "blur_gamma"]), default="blur", show_default=True,
              help="GoPro blurred frames: averaged in sRGB (blur) or in linear light (blur_gamma).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N pairs of each source.")
@click.option("--tile", type=click.IntRange(min=0), default=0, show_default=True,
              help="Deblur in tiles of this side (0 = whole images, as papers report).")
@click.option("--tile-norm", type=click.Choice(["image", "tile"]), default="image", show_default=True,
              help="With --tile: InstanceNorm statistics of the whole image (slower, matches whole-image "
                   "output) or of each tile.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def eval_command(checkpoint, data, split, gopro_blur, limit, tile, tile_norm, device, as_json):
    """Score a checkpoint: PSNR/SSIM of its output and of the blurred inputs, per source.

    PSNR on uint8 (range 255); SSIM with skimage's Gaussian convention (sigma 1.5, 11x11,
    mean over RGB). GoPro uses the test split unless --split says otherwise. The generator runs
    in eval mode (dropout off).

    \b
    Examples:
      blurgen eval --checkpoint runs/base/last.pt --data val.h5
      blurgen eval --checkpoint runs/base/last.pt --data gopro:~/GOPRO_Large --json
      blurgen eval --checkpoint last.pt --data val.h5 --data gopro:/data/GOPRO_Large --limit 100
    """
    check_tile(tile)
    sources = [parse_source(os.path.expanduser(d)) for d in data]
    require_torch()
    dev = resolve_device(device)

    from blurgen.deblur.checkpoint import CheckpointError
    from blurgen.deblur.data import DataError
    from blurgen.deblur.evaluate import evaluate, gopro_pairs, hdf5_pairs
    from blurgen.deblur.inference import load_generator
    from blurgen.store.schema import PairsFileError

    try:
        generator = load_generator(checkpoint, dev)
        # Open and check every source before the long loop, so a bad one fails at once.
        opened = []
        for kind, path in sources:
            if kind == "hdf5":
                opened.append((path, *hdf5_pairs(path, limit)))
            else:
                opened.append((f"gopro:{path} ({split}, {gopro_blur})", *gopro_pairs(path, split, gopro_blur, limit)))
        rows = []
        for name, count, pairs in opened:
            if count == 0:
                raise DataError(f"{name}: no complete samples to evaluate")
            rows.append(_evaluate_one(evaluate, generator, name, count, pairs, tile or None,
                                      tile_norm == "image"))
    except (CheckpointError, PairsFileError, DataError, ValueError, RuntimeError, MemoryError) as exc:
        # ValueError: e.g. images too small for SSIM's 11x11 window; RuntimeError: out of memory.
        raise click.ClickException(one_line(exc)) from None
    if as_json:
        click.echo(json.dumps({"checkpoint": checkpoint, "device": str(dev), "sources": rows}, indent=2))
    else:
        click.echo(_format_table(checkpoint, rows))


def _evaluate_one(evaluate, generator, name, count, pairs, tile, global_norm) -> dict:
    from tqdm import tqdm

    with tqdm(total=count, desc=name[:30], unit="img", disable=not sys.stderr.isatty(), leave=False) as bar:
        scores = evaluate(generator, name, pairs, tile=tile, global_norm=global_norm,
                          on_pair=lambda _: bar.update(1))
    return scores.as_dict()
