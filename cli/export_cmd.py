"""`blurgen export`: a pairs file (plain, merged or virtual) as folders, LMDB or WebDataset."""

from __future__ import annotations

import click

from blurgen.cli.common import RegularFile
from blurgen.cli.output_options import (
    check_output_place,
    format_options,
    make_sink,
    refuse_options_that_do_not_apply,
    resolve_format,
    say_interrupted,
    tar_note,
)


@click.command()
@click.argument("src", type=RegularFile())
@click.option("--out", required=True, type=click.Path(), help="Output folder (folders, lmdb) or tar prefix (webdataset).")
@format_options
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes [default: all cores].")
@click.option("--resume", is_flag=True, help="Continue an interrupted export.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (or interrupted export).")
@click.pass_context
def export(ctx, src, out, output_format, png_level, png_encoder, tar_mb, workers, resume, overwrite):
    """Write the pairs of SRC (a blurgen HDF5 file) as paired PNG folders, a BasicSR LMDB or
    WebDataset tars, with the kernels, every parameter and the provenance. Crash-safe: an
    interrupted export continues with --resume.

    \b
    Examples:
      blurgen export pairs.h5 --format lmdb --out pairs_lmdb
      blurgen export pairs.h5 --format folders --out pairs_png
      blurgen export pairs.h5 --out shards/train.tar --tar-mb 512
    """
    from blurgen.core.progress import Progress
    from blurgen.runs.export import export_file
    from blurgen.store.reader import PairsFile

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    output_format, out = resolve_format(output_format, out)
    if output_format == "hdf5":
        raise click.BadParameter("export writes folders, lmdb or webdataset (SRC is HDF5 already; "
                                 "blurgen merge --copy makes a standalone copy)", param_hint="--format")
    refuse_options_that_do_not_apply(ctx, output_format, png_encoder)
    check_output_place(out)
    with PairsFile(src) as pairs:  # an unreadable or foreign file: one line, exit 1
        if pairs.frames is not None:
            raise click.ClickException(f"{src} is a clips file (video, {pairs.frames} frames per sample); export "
                                       "writes pairs files only")
        height, width, _ = pairs.image_shape
        shape = type("Shape", (), {"width": width, "height": height, "kernel_size": pairs.kernel_size})
    sink = make_sink(output_format, png_level, tar_mb, shape, None, png_encoder)
    progress = Progress("export", "pairs", first=tar_note(sink, workers, tar_mb))
    try:
        result = export_file(src, out, sink, workers=workers, resume=resume, overwrite=overwrite,
                             command=f"blurgen export {src} --format {output_format} --out {out}", progress=progress)
    except KeyboardInterrupt:
        progress.close()
        say_interrupted(ctx, out, (0, 1), sink)
    finally:
        progress.close()
    if result.already_complete:
        click.echo(f"{out} is already complete ({result.n_planned} pairs); nothing to do")
    else:
        click.echo(f"exported {result.n_planned} pairs from {src} to {out} ({output_format}) in {result.seconds:.1f} s")
