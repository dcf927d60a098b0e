"""`blurgen make --clips`: the video options and the clips run (HDF5 schema 3, or the clip layouts
of ``blurgen.runs.clip_sinks``)."""

from __future__ import annotations

import click

from blurgen.camera.clip import MAX_FPS, MAX_FRAMES, MAX_READOUT_S

#: The options, as click passes them to ``make``.
CLIP_OPTIONS = ("clips", "fps", "shutter_angle", "readout_s", "clip_margin", "source_fps")


def clip_options(command):
    """The video options of ``blurgen make``."""
    options = [
        click.option("--clips", "clips", type=click.IntRange(1, MAX_FRAMES), default=None,
                     help="Make clips of this many frames (video: HDF5 schema 3, or GoPro-layout folders, LMDB, WebDataset "
                          "with --format; --n counts clips) with one "
                          "continuous hand shake each; needs --motion camera3d."),
        click.option("--fps", type=click.FloatRange(0.0, MAX_FPS, min_open=True), default=None,
                     help="--clips: frames per second [default: 30]."),
        click.option("--shutter-angle", type=click.FloatRange(0.0, 360.0, min_open=True), default=None,
                     help="--clips: degrees in (0, 360]; each frame is exposed angle/360/fps s [default: 180]."),
        click.option("--readout-s", type=click.FloatRange(0.0, MAX_READOUT_S), default=None,
                     help="--clips: rolling-shutter readout of the frame height, s [default: 0, global shutter]."),
        click.option("--clip-margin", type=click.IntRange(0, 4096), default=None,
                     help="--clips: still pixels around the window for the shake's movement [default: 224, what a 720-line frame holds around 256 rows]."),
        click.option("--source-fps", type=click.FloatRange(0.0, MAX_FPS, min_open=True), default=None,
                     help="--clips: frame rate of a video source: frame j of a clip reads sharp frame "
                          "round(j x source_fps / fps) of one sequence (gopro:ROOT, or DIR as a folder of frame "
                          "sequences) [default: 240 for gopro:ROOT; stills otherwise]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def take_clip_options(ctx: click.Context, options: dict) -> dict | None:
    """Remove the video options from ``options``; None without --clips (the others are then
    usage errors), else the ``ClipsConfig`` fields they set."""
    values = {name: options.pop(name) for name in CLIP_OPTIONS}
    if values["clips"] is None:
        given = [name for name in CLIP_OPTIONS[1:] if values[name] is not None]
        if given:
            raise click.BadParameter("applies to clips only (add --clips FRAMES)",
                                     param_hint="--" + given[0].replace("_", "-"))
        return None
    fields = {"frames": values["clips"], "fps": values["fps"], "shutter_angle": values["shutter_angle"],
              "readout_s": values["readout_s"], "margin_px": values["clip_margin"], "source_fps": values["source_fps"]}
    return {name: value for name, value in fields.items() if value is not None}


def clips_config(pairs, fields: dict):
    """The ``ClipsConfig`` of the command line (usage error, exit 2, for a bad combination)."""
    from blurgen.camera.config import CameraConfig
    from blurgen.pairs.clips import ClipsConfig

    if pairs.model.config_type is not CameraConfig:
        raise click.BadParameter(f"--clips needs a camera motion model (--motion camera3d), got {pairs.model.name}",
                                 param_hint="--motion")
    try:
        return ClipsConfig(pairs, **fields)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def run_clips(out, config, n, seed, workers, shard, block_size, sink, resume, overwrite, command, preview=None,
              note=None):
    """``make_dataset`` with the clip maker into ``sink``; blocks sized for T frames per sample."""
    from blurgen.core.progress import Progress
    from blurgen.pairs.clips import ClipMaker
    from blurgen.runs.dataset import make_dataset
    from blurgen.runs.folder import auto_block_size

    block_size = block_size or auto_block_size(config.width, config.height * config.frames)
    progress = Progress("make", "clips", first=note)
    try:
        result = make_dataset(out, config, n, seed, workers=workers, shard=shard, block_size=block_size,
                              resume=resume, overwrite=overwrite, command=command, progress=progress,
                              maker=ClipMaker(), sink=sink)
    finally:
        progress.close()
    if preview:
        from blurgen.core.common import atomic_path
        from blurgen.core.imageio import write_png
        from blurgen.inspect.clip_strip import strip_from_file

        with atomic_path(preview, ".png") as tmp:
            write_png(tmp, strip_from_file(out))
        click.echo(f"wrote frame strip {preview} (per clip: blurred frames over sharp frames)")
    return result
