"""Options shared by `make` and `export`: the output format (from --format or the --out suffix),
its PNG level and WebDataset shard size, and the executor."""

from __future__ import annotations

import os
import re

import click

from blurgen.cli.common import apply_options
from blurgen.core.common import BlurgenError, check_folder_of, one_line

FORMATS = ("hdf5", "folders", "lmdb", "webdataset")
#: --out suffix -> format (no suffix, or another one: hdf5, the default, unless --format says).
SUFFIX_FORMATS = {".h5": "hdf5", ".hdf5": "hdf5", ".lmdb": "lmdb", ".tar": "webdataset"}


class FiniteRange(click.FloatRange):
    """A ``click.FloatRange`` that also refuses NaN (every comparison with NaN is false, so the
    range alone lets it through)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


def format_options(func):
    options = [
        click.option("--format", "output_format", type=click.Choice(FORMATS), default=None,
                     help="Output: hdf5 (one file), folders (OUT/blur, OUT/sharp PNGs), lmdb (BasicSR's "
                          "OUT/blur.lmdb, OUT/sharp.lmdb) or webdataset (OUT-000000.tar ...) [default: from "
                          "the --out suffix: .h5 hdf5, .lmdb lmdb, .tar webdataset; else hdf5]."),
        click.option("--png-level", type=click.IntRange(0, 9), default=1, show_default=True,
                     help="PNG compression level of folders/lmdb/webdataset images (0 fastest, largest)."),
        click.option("--png-encoder", type=click.Choice(("opencv", "fpng")), default="opencv", show_default=True,
                     help="PNG encoder: opencv (zlib --png-level) or fpng (~10x faster, files ~12% larger, "
                          "--png-level unused; pip install blurgen[fastpng]). Lossless either way."),
        click.option("--tar-mb", type=FiniteRange(0.001, 100000), default=512, show_default=True,
                     help="webdataset: size of each tar (samples per tar fixed from the image size)."),
    ]
    return apply_options(func, options)


def resolve_format(output_format: str | None, out: str) -> tuple[str, str]:
    """``(format, out)``: the format given or implied by the suffix, and the output path (a
    WebDataset prefix loses its ``.tar``). A --format that contradicts the suffix is a usage error.
    ``out`` is normalized first (``normalize_out``), so make and export see ``DIR/`` as ``DIR``."""
    out = normalize_out(out)
    suffix = os.path.splitext(out)[1].lower()
    implied = SUFFIX_FORMATS.get(suffix)
    if output_format and implied and implied != output_format:
        raise click.BadParameter(f"--out {out!r} ends in {suffix} ({implied}) but --format is {output_format}",
                                 param_hint="--format")
    chosen = output_format or implied or "hdf5"
    if chosen == "webdataset" and suffix == ".tar":
        out = out[:-len(suffix)]
    if chosen == "webdataset":
        check_url_safe_prefix(out)
    return chosen, out


def normalize_out(out: str) -> str:
    """``out`` without trailing slashes (``DIR/`` names ``DIR``; ``x.tar/`` is the ``x.tar`` prefix).
    Usage error, before any work, for an --out that names no output of its own: empty, the
    filesystem root, or one whose last component is ``.`` or ``..`` (the output and its
    ``OUT.parts`` staging would be made beside or inside a folder that is not the output)."""
    stripped = out.rstrip("/" + os.sep)
    last = os.path.basename(stripped)
    if not stripped or last in (".", ".."):
        what = repr(last) if last else "the filesystem root" if out else "an empty name"
        raise click.BadParameter(f"{out!r}: name the output itself (a file, folder or prefix), not {what}",
                                 param_hint="--out")
    return stripped


def check_url_safe_prefix(out: str) -> None:
    """Usage error for a WebDataset prefix its readers would take for something else: they read
    shard names as URLs, so '?' and '#' cut the name, control characters split a list, and a name
    that starts like a scheme (``pipe:``, ``s3:``) is run as a command or fetched."""
    name = os.path.basename(out)
    bad = sorted({c for c in name if c in "?#" or ord(c) < 32 or ord(c) == 127})
    if bad or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", name):
        what = f"holds {', '.join(repr(c) for c in bad)}" if bad else "starts like a URL scheme (NAME:)"
        raise click.BadParameter(f"WebDataset prefix {name!r} {what}, which WebDataset's readers take as part of a "
                                 "URL; choose a plain name", param_hint="--out")


def samples_per_tar(tar_mb: float, width: int, height: int, kernel_size: int, frames: int = 1) -> int:
    """Samples (or clips of ``frames`` frames) per WebDataset tar for ``tar_mb`` MB: from the raw
    sample size (PNG of noisy images is about raw; a function of the settings only, so a resume
    cuts the same tars)."""
    per_sample = frames * (2 * 3 * width * height + 4 * kernel_size ** 2) + 1024
    return max(1, int(tar_mb * 1e6 // per_sample))


def tar_note(sink, workers: int | None, tar_mb: float, unit: str = "pairs", local: bool = True):
    """The hook (``Progress(first=...)``) that says on stderr, once the run has passed its checks
    and counted the blocks it keeps, when a ``local`` (not Dask) WebDataset run has fewer tars to
    make than worker processes: a tar is one worker's unit of work (and one DataLoader worker's
    when training reads them), so the other workers would wait while it is made. None where it
    never applies."""
    from blurgen.runs.workers import LocalExecutor

    per_tar = getattr(sink, "samples_per_shard", None)
    if not per_tar or not local:
        return None
    busy = LocalExecutor(workers).workers  # the pool's own default when --workers is not given

    def note(done: int, total: int) -> None:
        left = total - done
        tars = -(-left // per_tar)
        if 0 < tars < busy:
            plural = "" if tars == 1 else "s"
            click.echo(f"note: {left} {unit} to make fill {tars} tar{plural} of up to {per_tar} (--tar-mb {tar_mb:g}); "
                       f"a tar is one worker's work, so {tars} of {busy} workers will be busy (a smaller --tar-mb "
                       "makes more tars)", err=True)

    return note


def check_output_place(out: str) -> None:
    """Exit 1 unless the folder that will hold ``out`` (a folder or a tar prefix) exists and is writable."""
    try:
        check_folder_of(out)
    except BlurgenError as exc:
        raise click.ClickException(one_line(exc)) from None


def make_sink(output_format: str, png_level: int, tar_mb: float, config, compression, png_encoder: str = "opencv"):
    """The sink of ``output_format`` (``blurgen.runs.sinks`` / ``format_sinks``; a clips config's
    from ``clip_sinks``)."""
    from blurgen.runs import clip_sinks, format_sinks
    from blurgen.runs.sinks import HDF5Sink

    if output_format == "hdf5":
        return HDF5Sink(compression)
    if png_encoder == "fpng":
        try:
            import fpng  # noqa: F401
        except ImportError:
            raise click.ClickException("--png-encoder fpng needs the fpng package: pip install blurgen[fastpng]") from None
    frames = getattr(config, "frames", None)
    sinks = clip_sinks.CLIP_SINKS if frames else {"folders": format_sinks.FoldersSink, "lmdb": format_sinks.LmdbSink,
                                                  "webdataset": format_sinks.WebDatasetSink}
    if output_format == "webdataset":
        per_tar = samples_per_tar(tar_mb, config.width, config.height, config.kernel_size, frames or 1)
        return sinks[output_format](png_level, per_tar, png_encoder)
    return sinks[output_format](png_level, png_encoder)


def parse_executor(value: str, workers: int | None = None):
    """``local`` -> None (the local pool); ``dask`` or ``dask:ADDRESS`` -> a ``DaskExecutor``."""
    name, _, address = value.partition(":")
    if name == "local" and not address:
        return None
    if name != "dask":
        raise click.BadParameter(f"expected local, dask or dask:ADDRESS, got {value!r}", param_hint="--executor")
    try:
        from blurgen.runs.dask_executor import DaskExecutor, check_address
    except ImportError:
        raise click.ClickException("--executor dask needs dask.distributed: pip install blurgen[dask]") from None
    try:
        return DaskExecutor(check_address(address) if address else None, workers=workers)
    except ImportError:
        raise click.ClickException("--executor dask needs dask.distributed: pip install blurgen[dask]") from None
    except ValueError as exc:
        raise click.BadParameter(f"dask:{address}: {exc}", param_hint="--executor") from None


#: Options that only some output formats use (``--compression``: make's HDF5 image filters).
FORMAT_ONLY_OPTIONS = {"png_level": ("folders", "lmdb", "webdataset"), "png_encoder": ("folders", "lmdb", "webdataset"),
                       "tar_mb": ("webdataset",), "compression": ("hdf5",)}


def refuse_options_that_do_not_apply(ctx: click.Context, output_format: str, png_encoder: str,
                                     stores_png: bool = True) -> None:
    """Usage error for an option given on the command line that the output would ignore (a
    ``--tar-mb`` for folders, a ``--png-level`` for HDF5, for fpng, which has no levels, or for
    clips in WebDataset tars, which hold ``.npy`` frame stacks: ``stores_png`` False)."""
    for name, formats in FORMAT_ONLY_OPTIONS.items():
        if name not in ctx.params or ctx.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE:
            continue
        flag = "--" + name.replace("_", "-")
        if output_format not in formats:
            raise click.BadParameter(f"does not apply to --format {output_format} (only to {', '.join(formats)})",
                                     param_hint=flag)
        if name.startswith("png_") and not stores_png:
            raise click.BadParameter(f"does not apply to clips in {output_format} tars (frame stacks as .npy, "
                                     "not PNG)", param_hint=flag)
        if name == "png_level" and png_encoder == "fpng":
            raise click.BadParameter("does not apply to --png-encoder fpng (one fixed compression)", param_hint=flag)


def say_interrupted(ctx: click.Context, out: str, shard: tuple[int, int], sink) -> None:
    """After Ctrl-C in ``make`` or ``export``: what is kept and how to go on; exit 130."""
    from blurgen.inspect.report import describe_parts
    from blurgen.runs.folder import parts_dir_for

    try:
        run_out = sink.output(out, shard).label if hasattr(sink, "output") else out
        _, n_written, n_planned = describe_parts(parts_dir_for(run_out))
        kept = f"{n_written}/{n_planned} pairs are kept in {parts_dir_for(run_out)}"
    except (BlurgenError, OSError):
        kept = "finished blocks are kept"
    click.echo(f"blurgen: interrupted; {kept}; continue with the same command plus --resume", err=True)
    ctx.exit(130)
