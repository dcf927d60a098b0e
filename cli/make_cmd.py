"""`blurgen make`: write a blurred/sharp pairs dataset (HDF5, folders, LMDB or WebDataset),
crash-safe and resumable."""

from __future__ import annotations

import os
import re
import shlex
import sys

import click

from blurgen.cli.clip_options import clip_options, clips_config, run_clips, take_clip_options
from blurgen.cli.common import (
    BLUR_OPTIONS,
    announce_first_compile,
    blur_config_from_options,
    blur_model_options,
    camera_pipeline_options,
    check_motion_options,
    check_not_same_file,
    check_output,
    is_png,
    isp_config_from_options,
    kernel_model_options,
    motion_config_from_options,
    motion_options,
    parse_range,
    parse_size,
)
from blurgen.cli.output_options import (
    check_output_place,
    format_options,
    make_sink,
    parse_executor,
    refuse_options_that_do_not_apply,
    resolve_format,
    say_interrupted,
    tar_note,
)
from blurgen.core.common import atomic_path
from blurgen.core.config import MAX_PAIRS, MAX_SEED


def _shown(value: str | None, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters so a pasted blob keeps the message one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def parse_shard(value: str | None) -> tuple[int, int]:
    """'1/4' -> (1, 4) (zero-based index); usage error unless 0 <= i < N."""
    if value is None:
        return 0, 1
    match = re.fullmatch(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*", value)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise click.BadParameter(f"expected i/N with 0 <= i < N (e.g. 0/2), got {_shown(value)}",
                                 param_hint="--shard")
    return int(match.group(1)), int(match.group(2))


def _scale_range(value: str) -> tuple[float, float]:
    low, high = parse_range(value, "--kernel-scale")
    if not 0.1 <= low <= high <= 10.0:
        raise click.BadParameter(f"expected low,high with 0.1 <= low <= high <= 10, got {value!r}",
                                 param_hint="--kernel-scale")
    return low, high


def check_source(source: str) -> str:
    """The source with its folder made absolute (so --resume from another working directory means
    the same images); a missing folder is a command-line error (exit 2), found before work."""
    from blurgen.sources import gopro
    if source == "deadleaves":
        return source
    root = gopro.split_spec(source)
    prefix, root = ("", os.path.expanduser(source)) if root is None else (gopro.PREFIX, root)
    if not os.path.isdir(root):
        raise click.BadParameter(f"{root!r} is not a folder (expected deadleaves, DIR or gopro:ROOT)",
                                 param_hint="--source")
    return prefix + os.path.abspath(root)


def command_line(ctx: click.Context) -> str:
    """The command as typed (for the ``command`` attribute)."""
    args = sys.argv[1:]
    if ctx.info_name in args:
        return "blurgen " + shlex.join(args[args.index(ctx.info_name):])
    return ctx.command_path + " " + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in ctx.params.items()
                                             if v not in (None, False))


@click.command()
@click.option("--n", "n", type=click.IntRange(1, MAX_PAIRS), default=10000, show_default=True,
              help="Pairs in the dataset (all shards together).")
@click.option("--out", required=True, type=click.Path(),
              help="Pairs file to write (.h5), or the folder (folders, lmdb) or tar prefix (webdataset).")
@format_options
@click.option("--size", default="256", show_default=True, help="Image size: N (square) or WxH, >= 32.")
@click.option("--source", default="deadleaves", show_default=True,
              help="Sharp images: deadleaves (procedural, offline), a folder DIR, or gopro:ROOT.")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="GoPro split for gopro:ROOT.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Sample i depends only on (seed, i).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: all cores]; the arrays do not depend on it.")
@kernel_model_options
@click.option("--kernels", type=click.Path(exists=True), default=None,
              help="Blur with your own kernels instead of random walks: a .npy (N, k, k), .npz, MATLAB .mat "
                   "(v5 or v7.3, cell arrays too) or a folder of grayscale PNGs; each normalised and centred.")
@click.option("--kernel-augment", is_flag=True, help="--kernels: draw one of the 8 flips/rotations per sample.")
@click.option("--kernel-scale", default="1,1", show_default=True, callback=lambda ctx, p, v: _scale_range(v),
              help="--kernels: size factor range low,high in [0.1, 10], drawn log-uniformly per sample.")
@motion_options
@blur_model_options
@camera_pipeline_options
@clip_options
@click.option("--resume", is_flag=True, help="Continue an interrupted run (same settings).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (or interrupted run).")
@click.option("--shard", default=None, help="Make only part i of N (e.g. 0/2); join with blurgen merge.")
@click.option("--preview", type=click.Path(dir_okay=False),
              help="Also write a contact sheet PNG of the new file (blurred | sharp | kernel); "
                   "an existing one is replaced only with --overwrite (or --resume, if a PNG).")
@click.option("--compression", default="none", show_default=True,
              help="Image chunks: none, lzf, gzip or gzip:LEVEL (kernels always gzip). Measured on "
                   "default 256x256 pairs: lzf makes the file ~13% smaller, gzip:1 ~22% (the noisy "
                   "blurred images barely compress), at 5-12x the write cost.")
@click.option("--block-size", type=click.IntRange(1, 4096), default=None,
              help="Samples per crash-safe block [default: 64, fewer for big images; webdataset: one tar].")
@click.option("--executor", default="local", show_default=True,
              help="Where blocks run: local (--workers processes) or dask[:SCHEDULER_ADDRESS] "
                   "(dask.distributed; no address: a LocalCluster here). Same arrays either way.")
@click.pass_context
def make(ctx, n, out, size, source, split, seed, workers, resume, overwrite, shard, preview, compression,
         block_size, output_format, png_level, png_encoder, tar_mb, executor,
         **model_options):
    """Make N blurred/sharp pairs into one HDF5 file, paired PNG folders, a BasicSR LMDB or
    WebDataset tars (see `blurgen inspect`).

    Finished blocks are kept in OUT.parts/ while the run goes on, so a killed or interrupted run
    continues with --resume to exactly the arrays an uninterrupted run makes; OUT appears only
    when complete.

    \b
    Examples:
      blurgen make --n 10000 --out pairs.h5
      blurgen make --n 2000 --out big.h5 --size 1024x640 --source gopro:GOPRO_Large --preview big.png
      blurgen make --n 10000 --out pairs.h5 --resume
      blurgen make --n 10000 --out shard1.h5 --shard 1/2 --workers 2
      blurgen make --n 5000 --out cam.h5 --motion camera3d --focal-35mm 24,35 --preview cam.png
      blurgen make --n 5000 --out mine.h5 --kernels my_psfs.mat --kernel-augment
      blurgen make --n 5000 --out raw.h5 --pipeline camera --shot-noise 1e-4,1e-3 --preview raw.png
      blurgen make --n 10000 --out train_lmdb --format lmdb
      blurgen make --n 100000 --out shards/train.tar --tar-mb 512 --shard 3/8
      blurgen make --n 10000 --out pairs.h5 --executor dask:tcp://scheduler:8786
      blurgen make --n 500 --out clips.h5 --clips 8 --fps 30 --shutter-angle 180 --motion camera3d
      blurgen make --n 500 --out clips_png --format folders --clips 8 --motion camera3d --pipeline camera
    """
    from blurgen.store.parts import compression_for

    announce_first_compile("blurgen.motion._walk_jit", "blurgen.sources.deadleaves", "blurgen.blur._noise_jit")
    _say_while_checking()
    clip_fields = take_clip_options(ctx, model_options)
    if clip_fields is not None:
        _refuse_exposure_options_for_clips(ctx)
    config, shard_pair = _config_from_options(ctx, n, size, source, split, resume, overwrite, shard, model_options,
                                              clips=clip_fields is not None)
    config = config if clip_fields is None else clips_config(config, clip_fields)
    try:
        filters = compression_for(compression)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--compression") from None
    output_format, out = _checked_output(output_format, out, preview, None if clip_fields is None else (
        executor != "local"))
    sink = _checked_sink(ctx, output_format, png_level, tar_mb, config, filters, png_encoder, n, shard_pair)
    executor = parse_executor(executor, workers)
    note = tar_note(sink, workers, tar_mb, "pairs" if clip_fields is None else "clips", executor is None)
    if preview:
        check_not_same_file(preview, out, "--preview")
        # Like the dataset: replaced with --overwrite, or by --resume when it is a PNG (an earlier
        # preview of this run), never silently.
        check_output(preview, overwrite, replaceable=resume and is_png(preview))
    if clip_fields is not None:
        result = run_clips(out, config, n, seed, workers, shard_pair, block_size, sink, resume, overwrite,
                           command_line(ctx), preview, note)
        click.echo(f"{out}: {result.n_planned} clips of {config.frames} frames ({config.width}x{config.height}) "
                   f"in {result.seconds:.1f} s" + (" (already complete)" if result.already_complete else ""))
    else:
        result = _run(ctx, out, config, n, seed, workers, shard_pair, block_size, resume, overwrite, sink, executor,
                      note)
        _report(out, config, result)
    if preview and clip_fields is None:
        _write_preview(out, preview)


def _checked_sink(ctx, output_format, png_level, tar_mb, config, filters, png_encoder, n, shard):
    """The output's sink, after the usage errors of the output options: one the format would
    ignore, and a WebDataset ``--shard i/N`` that would get no tar (too few pairs or too large
    tars for N shards)."""
    from blurgen.runs.dataset import tar_shard_range

    sink = make_sink(output_format, png_level, tar_mb, config, filters, png_encoder)
    refuse_options_that_do_not_apply(ctx, output_format, png_encoder, getattr(sink, "stores_png", True))
    per_tar = getattr(sink, "samples_per_shard", None)
    if per_tar:
        try:
            tar_shard_range(n, shard, per_tar)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--shard") from None
    return sink


def _checked_output(output_format: str, out: str, preview: str | None, clips_elsewhere: bool | None):
    """The output format and path, checked before work (``clips_elsewhere``: clips asked for with
    something they do not support yet; None: not clips)."""
    output_format, out = resolve_format(output_format, out)
    if clips_elsewhere:
        raise click.BadParameter("clips are made by the local executor for now (--executor local)",
                                 param_hint="--clips")
    if output_format == "hdf5":
        check_output(out)  # its folder; an existing out is the run folder's to judge (--resume)
    else:
        check_output_place(out)
        if preview:
            raise click.BadParameter("needs --format hdf5 (blurgen export makes the other formats from it)",
                                     param_hint="--preview")
    return output_format, out


def _report(out, config, result) -> None:
    if result.already_complete:
        click.echo(f"{out} is already complete ({result.n_planned} pairs); nothing to do")
    else:
        click.echo(f"wrote {result.n_planned} pairs ({config.width}x{config.height}, {config.model.name}, kernel "
                   f"{config.kernel_size}) to {out} in {result.seconds:.1f} s ({_rate_note(result)})")


def _rate_note(result) -> str:
    """The rate of the pairs made by this run only (a resume's kept pairs cost no making), e.g.
    '310.2 pairs/s, 96 kept from the interrupted run'."""
    notes = []
    if result.n_made:
        seconds = result.make_seconds or result.seconds
        notes.append(f"{result.n_made / seconds:.1f} pairs/s" if seconds > 0 else f"{result.n_made} made")
        if result.n_reused:
            notes[-1] += f" making {result.n_made}"
    if result.n_reused:
        notes.append(f"{result.n_reused} kept from the interrupted run")
    return ", ".join(notes)


def _motion_configs(ctx, options: dict, width: int, height: int, clips: bool = False):
    """The KernelConfig and CameraConfig of the command line: the chosen model's settings from its
    options (the others keep their defaults, and their options are refused)."""
    from blurgen.camera.config import CameraConfig
    from blurgen.core.config import KernelConfig
    from blurgen.motion import registry

    motion, size = options["motion"], options["kernel_size"]
    check_motion_options(ctx, motion)
    _refuse_bank_options_without_bank(ctx, options)
    if options["kernels"]:
        return _bank_kernel_config(ctx, options), CameraConfig()
    model = registry.get(motion)
    if not clips:
        options = with_make_defaults(ctx, model, options)
    settings = motion_config_from_options(motion, size, options)
    frame_w, frame_h = getattr(settings, "frame_size", (width, height))
    if width > frame_w or height > frame_h:
        raise click.BadParameter(f"{width}x{height} is larger than the camera frame {frame_w}x{frame_h}; an output "
                                 "is a window of the frame", param_hint="--size")
    configs = {"kernel": KernelConfig(size=size) if model.config_field != "kernel" else settings,
               "camera": CameraConfig() if model.config_field != "camera" else settings}
    return configs["kernel"], configs["camera"]


def with_make_defaults(ctx, model, options: dict) -> dict:
    """``options`` with make's own defaults for the model (``MotionModel.make_options``; shake2d:
    ``--blur-length-px 1,32``; camera3d: ``--blur-length-px 1,16`` searched in ``--exposure-s
    0.0005,1``) given what is on the command line."""
    source = click.core.ParameterSource.COMMANDLINE
    given = {name for name in options if ctx.get_parameter_source(name) == source}
    return model.make_options(options, given)


def _refuse_exposure_options_for_clips(ctx) -> None:
    """Usage error: a clip's frames take their exposure from --fps and --shutter-angle."""
    source = click.core.ParameterSource.COMMANDLINE
    for name in ("exposure_s", "blur_length_px"):
        if ctx.get_parameter_source(name) == source:
            raise click.BadParameter("does not apply to clips: each frame is exposed --shutter-angle / 360 / --fps "
                                     "seconds", param_hint="--" + name.replace("_", "-"))


def _say_while_checking() -> None:
    """A long check of the motion settings (``blurgen.motion.fit``) says what it is doing."""
    from blurgen.motion import fit

    fit.notify = lambda note: click.echo(f"blurgen: {note}", err=True)


def _refuse_bank_options_without_bank(ctx, options: dict) -> None:
    source = click.core.ParameterSource.COMMANDLINE
    for name in ("kernel_augment", "kernel_scale"):
        if not options["kernels"] and ctx.get_parameter_source(name) == source:
            raise click.BadParameter("applies only with --kernels (a kernel bank)",
                                     param_hint="--" + name.replace("_", "-"))


def _bank_kernel_config(ctx, options: dict):
    """--kernels: the kernel size is the bank's unless --kernel-size (at least as large) is given;
    the random walk's options do not apply."""
    from blurgen.core.config import KernelConfig
    from blurgen.motion import registry
    from blurgen.motion.bank_model import read_bank

    source = click.core.ParameterSource.COMMANDLINE
    default = registry.get(registry.DEFAULT)
    given = [n for n in default.cli_options if ctx.get_parameter_source(n) == source]
    if options["motion"] != registry.DEFAULT or given:
        flag = "--motion" if options["motion"] != registry.DEFAULT else "--" + given[0].replace("_", "-")
        raise click.BadParameter("does not apply with --kernels (the bank's kernels replace the random walk)",
                                 param_hint=flag)
    # A bad file: one line, exit 1. Read once: the run takes it from the same cache.
    bank = read_bank(os.path.abspath(options["kernels"]), options["kernel_augment"], options["kernel_scale"])
    size = options["kernel_size"] if ctx.get_parameter_source("kernel_size") == source else bank.size
    if size < bank.size:
        raise click.BadParameter(f"{size} is smaller than the bank's kernels ({bank.size}x{bank.size})",
                                 param_hint="--kernel-size")
    try:
        return KernelConfig(size=size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--kernel-size") from None


def _config_from_options(ctx, n, size, source, split, resume, overwrite, shard, options, clips: bool = False):
    """Validate the command line (usage errors, exit 2) and build the PairsConfig (``clips``: the
    camera of a clips run, whose exposures the frame rate fixes: no make defaults)."""
    from blurgen.pairs.pipeline import PairsConfig

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    width, height = parse_size(size)
    shard_pair = parse_shard(shard)
    if shard_pair[1] > n:
        raise click.BadParameter(f"{shard} has more shards than the {n} pairs", param_hint="--shard")
    source = check_source(source)
    kernel, camera = _motion_configs(ctx, options, width, height, clips)
    blur = blur_config_from_options(**{k: options[k] for k in BLUR_OPTIONS})
    pipeline = {"pipeline": options["pipeline"], "isp": isp_config_from_options(ctx, options)}
    bank = {"kernel_bank": os.path.abspath(options["kernels"]), "bank_augment": options["kernel_augment"],
            "bank_scale": options["kernel_scale"]} if options["kernels"] else {}
    try:
        config = PairsConfig(width=width, height=height, kernel=kernel, blur=blur, source=source,
                             split=split, motion=options["motion"], camera=camera, **bank, **pipeline)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return config, shard_pair


def _run(ctx, out, config, n, seed, workers, shard, block_size, resume, overwrite, sink, executor, note=None):
    from blurgen.core.progress import Progress
    from blurgen.runs.dataset import make_dataset

    progress = Progress("make", "pairs", first=note)
    try:
        return make_dataset(out, config, n, seed, workers=workers, shard=shard,
                            block_size=block_size, resume=resume, overwrite=overwrite,
                            command=command_line(ctx), progress=progress, sink=sink, executor=executor)
    except KeyboardInterrupt:
        progress.close()
        say_interrupted(ctx, out, shard, sink)
    finally:
        progress.close()


def _write_preview(out: str, preview: str) -> None:
    from blurgen.core.imageio import write_png
    from blurgen.inspect.preview import sheet_from_file

    with atomic_path(preview, ".png") as tmp:
        write_png(tmp, sheet_from_file(out))
    click.echo(f"wrote preview {preview}")
