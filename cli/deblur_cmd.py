"""`blurgen deblur`: deblur image files of any size with a trained checkpoint, into PNGs."""

from __future__ import annotations

import os

import click

from blurgen.cli.common import RegularFile, check_tile, require_torch, resolve_device
from blurgen.core.common import atomic_path, one_line
from blurgen.core.config import IMAGE_EXTENSIONS


def collect_images(inputs: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(source path, output name)`` for every input file and every image under input folders
    (recursive; the relative path is kept, the extension becomes .png). Two inputs that would
    write the same output name are a usage error (exit 2), found before any work."""
    jobs: list[tuple[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for folder, _, files in os.walk(item):
                for f in files:
                    if f.lower().endswith(IMAGE_EXTENSIONS):
                        path = os.path.join(folder, f)
                        found.append((path, os.path.splitext(os.path.relpath(path, item))[0] + ".png"))
            if not found:  # an empty source folder is a failure (exit 1)
                raise click.ClickException(f"{item}: holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            jobs += sorted(found)
        else:
            jobs.append((item, os.path.splitext(os.path.basename(item))[0] + ".png"))
    seen: dict[str, str] = {}
    for src, name in jobs:
        if name in seen:
            raise click.BadParameter(f"{seen[name]} and {src} would both write {name}", param_hint="IMAGE_OR_DIR")
        seen[name] = src
    return jobs


def write_png(path: str, image) -> None:
    from blurgen.core.imageio import write_png as write

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path, ".png") as tmp:
        write(tmp, image)


def _checked_jobs(inputs, out: str, tile: int, overlap, overwrite: bool) -> list:
    """The ``(source, output name)`` jobs, after the command-line checks (exit 2) and the
    existing-output check (exit 1)."""
    check_tile(tile)
    usable = tile - tile % 4  # the generator's tiles are multiples of 4 (deblur_image rounds down)
    if overlap is not None and tile and overlap > usable // 2:
        raise click.BadParameter(f"must be at most half the tile ({usable} once rounded down to a multiple "
                                 f"of 4) = {usable // 2}", param_hint="--overlap")
    jobs = collect_images(inputs)
    sources = {os.path.realpath(src) for src, _ in jobs}
    clash = next((src for src, name in jobs if os.path.realpath(os.path.join(out, name)) in sources), None)
    if clash is not None:
        raise click.BadParameter(f"the output for {clash} would overwrite an input; choose another folder",
                                 param_hint="--out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise click.ClickException(f"{out}: exists and is not a folder")
    existing = [name for _, name in jobs if os.path.lexists(os.path.join(out, name))]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise click.ClickException(f"{os.path.join(out, existing[0])}{more} already exist; pass --overwrite "
                                   "to replace them")
    return jobs


class TileOption(click.ParamType):
    """``--tile``: ``auto`` (whole images within the device's pixel budget, else 512) or a side."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        try:
            tile = int(value)
        except (TypeError, ValueError):
            self.fail(f"expected 'auto' or a whole number, got {value!r}", param, ctx)
        if tile < 0:
            self.fail(f"{tile} is negative", param, ctx)
        return tile


def _describe(image, tile, budget: int, dev) -> str:
    h, w = image.shape[:2]
    if tile is None:
        return f"{w}x{h}, whole image ({h * w / 1e6:.1f} MP within the {budget / 1e6:.1f} MP budget of {dev.type})"
    if h <= tile and w <= tile:
        return f"{w}x{h}, whole image (fits the {tile} px tile)"
    return f"{w}x{h}, tiled {tile} px"


@click.command()
@click.option("--checkpoint", required=True, type=RegularFile(),
              help="A checkpoint written by `blurgen train`.")
@click.argument("inputs", metavar="IMAGE_OR_DIR...", nargs=-1, required=True,
                type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder (created); PNGs keep the input names.")
@click.option("--tile", type=TileOption(), default="auto", show_default=True,
              help="auto: whole images up to the device's pixel budget (CPU: 4 GiB of activations, 4.2 MP "
                   "at width 64; CUDA: 80% of free memory), larger ones in 512 px tiles; N: tile images "
                   "larger than N (memory ~ N^2); 0: always whole images.")
@click.option("--overlap", type=click.IntRange(min=0), default=None,
              help="Minimum tile overlap, feathered [default: tile/4].")
@click.option("--tile-norm", type=click.Choice(["image", "tile"]), default="image", show_default=True,
              help="InstanceNorm statistics of the whole image (matches whole-image output, a few "
                   "extra sweeps) or of each tile (faster, visible tone differences possible).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="torch (and OpenCV) threads [default: torch's].")
@click.option("--overwrite", is_flag=True, help="Replace PNGs that already exist in --out.")
def deblur(checkpoint, inputs, out, tile, overlap, tile_norm, device, threads, overwrite):
    """Deblur images of any size with a trained DeblurGAN checkpoint; writes PNGs to --out.

    Images within the device's pixel budget run whole (fastest, exact); larger ones are cut
    into overlapping tiles blended with a raised-cosine window, so memory is bounded by the
    tile. One line per image says which. Unreadable files are reported and skipped (exit 1 at
    the end).

    \b
    Examples:
      blurgen deblur --checkpoint runs/base/last.pt photo.jpg --out deblurred/
      blurgen deblur --checkpoint last.pt shots/ more/IMG_0001.png --out out/ --tile 768
      blurgen deblur --checkpoint last.pt huge.tif --out out/ --tile 256 --device cpu --threads 4
    """
    jobs = _checked_jobs(inputs, out, 512 if tile is None else tile, overlap, overwrite)
    torch = require_torch()
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)

    from blurgen.deblur.inference import load_generator, whole_image_budget

    generator = load_generator(checkpoint, dev)  # a CheckpointError is one line (the CLI group)
    os.makedirs(out, exist_ok=True)
    failed = _deblur_all(generator, jobs, out, tile, overlap, tile_norm == "image",
                         whole_image_budget(generator, dev), dev)
    if failed:
        raise click.ClickException(f"{failed} of {len(jobs)} inputs could not be read")


def _deblur_all(generator, jobs, out: str, tile, overlap, global_norm: bool, budget: int, dev) -> int:
    """Deblur every job, one progress line each (``deblur: 2/5 a.png 1280x720, whole image ...``);
    returns the number of unreadable inputs."""
    import time

    from blurgen.core.imageio import read_rgb
    from blurgen.core.progress import format_duration
    from blurgen.deblur.inference import choose_tile, deblur_image

    failed = done = 0
    started = time.perf_counter()
    for number, (src, name) in enumerate(jobs, 1):
        image = read_rgb(src)
        if image is None:
            click.echo(f"blurgen deblur: {src}: not a readable image, skipped", err=True)
            failed += 1
            continue
        used = choose_tile(image.shape, tile, budget)
        t0 = time.perf_counter()
        try:
            restored = deblur_image(generator, image, tile=used, overlap=overlap, global_norm=global_norm)
            write_png(os.path.join(out, name), restored)
        except (RuntimeError, MemoryError, OSError) as exc:  # out of memory (try a smaller --tile), disk full
            raise click.ClickException(f"{src}: {one_line(exc)} ({done} image(s) done before it)") from None
        done += 1
        now = time.perf_counter()
        eta = (now - started) / number * (len(jobs) - number)
        click.echo(f"deblur: {number}/{len(jobs)} {src}: {_describe(image, used, budget, dev)}, "
                   f"{now - t0:.1f} s, ETA {format_duration(eta)}")
    click.echo(f"deblurred {done} image{'s' if done != 1 else ''} into {out}")
    return failed
