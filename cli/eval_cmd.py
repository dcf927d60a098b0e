"""`blurgen eval`: PSNR/SSIM of a DeblurGAN checkpoint, beside the blurred inputs', per source;
with ``--detector``, also what deblurring does for an object detector.

Parsing and validation only; the loops live in ``blurgen.deblur.evaluate`` and
``blurgen.deblur.detection_eval``, the report's layout in ``eval_report``. torch is imported
inside the command, so the command table loads without it.
"""

from __future__ import annotations

import json
import os
import sys

import click

from blurgen.cli.common import RegularFile, check_tile, require_torch, resolve_device
from blurgen.cli.eval_report import detection_table, quality_table
from blurgen.core.common import one_line

IMAGES_PREFIX = "images:"  # blurgen.deblur.image_folder.PREFIX (not imported: it pulls in torch)
DETECTION_OPTIONS = ("detector_weights", "score", "iou", "classes")


def _looks_like_gopro(path: str) -> bool:
    for split in ("test", "train"):
        folder = os.path.join(path, split)
        if os.path.isdir(folder) and any(os.path.isdir(os.path.join(folder, s, "sharp")) for s in os.listdir(folder)):
            return True
    return False


def _folder_hint(path: str) -> str:
    if _looks_like_gopro(path):
        return f"{path!r} is a GoPro tree: use --data gopro:{path} (or --gopro {path})"
    if os.path.isdir(os.path.join(path, "blur")):
        return f"{path!r} is a folder of images: use --data images:{path}"
    return f"{path!r} is a folder; expected pairs.h5, gopro:ROOT or images:DIR"


def parse_source(value: str) -> tuple[str, str]:
    """'pairs.h5' -> ('hdf5', path); 'gopro:ROOT' -> ('gopro', ROOT); 'images:DIR' -> ('images',
    DIR). A missing path is a usage error (exit 2), like click.Path(exists=True); a folder given
    as pairs.h5 gets a hint (gopro: or images:)."""
    from blurgen.sources import gopro

    root = gopro.split_spec(value)
    if root is not None:
        kind, path = "gopro", root
    elif value.startswith(IMAGES_PREFIX):
        kind, path = "images", os.path.expanduser(value[len(IMAGES_PREFIX):])
    else:
        kind, path = "hdf5", value
    if not path:
        raise click.BadParameter(f"{value!r}: expected pairs.h5, gopro:ROOT or images:DIR", param_hint="--data")
    if not os.path.exists(path):
        raise click.BadParameter(f"{path!r} does not exist", param_hint="--data")
    if kind == "hdf5" and os.path.isdir(path):
        raise click.BadParameter(_folder_hint(path), param_hint="--data")
    if kind == "hdf5" and not os.path.isfile(path):
        raise click.BadParameter(f"{path!r} is not a regular file", param_hint="--data")
    if kind != "hdf5" and not os.path.isdir(path):
        wants = "GOPRO_Large's root" if kind == "gopro" else "DIR/blur/*.png"
        raise click.BadParameter(f"{path!r} is not a folder ({kind}:{'ROOT' if kind == 'gopro' else 'DIR'} "
                                 f"wants {wants})", param_hint="--data")
    return kind, path


def _check_options(ctx: click.Context, sources: list, detector) -> None:
    """Usage errors that need several options together."""
    from blurgen.deblur.detection import TORCHVISION_DETECTORS

    if not sources:
        raise click.UsageError("give at least one source: --data pairs.h5|gopro:ROOT|images:DIR or --gopro ROOT")
    if detector is None:
        given = [n for n in DETECTION_OPTIONS if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.BadParameter("needs --detector", param_hint="--" + given[0].replace("_", "-"))
        for kind, path in sources:
            if kind == "images" and not os.path.isdir(os.path.join(path, "sharp")):
                raise click.BadParameter(f"images:{path} has no sharp/ folder, so only --detector can score it",
                                         param_hint="--data")
    elif ":" not in detector and detector not in TORCHVISION_DETECTORS:
        raise click.BadParameter(f"unknown detector {detector!r}; choose one of {', '.join(TORCHVISION_DETECTORS)} "
                                 "or give module:function", param_hint="--detector")


def parse_classes(value: str | None, names: dict[int, str]) -> tuple[int, ...] | None:
    """'1,3' or 'person,car' (names of the detector's or the annotations' classes) -> labels."""
    if value is None:
        return None
    by_name = {n.lower(): k for k, n in names.items()}
    labels = []
    for item in (v.strip() for v in value.split(",")):
        if item.lstrip("-").isdigit():
            labels.append(int(item))
        elif item.lower() in by_name:
            labels.append(by_name[item.lower()])
        else:
            known = ", ".join(sorted(by_name)[:8]) or "none: use label numbers"
            raise click.BadParameter(f"unknown class {item!r} (names known: {known})", param_hint="--classes")
    if not labels:
        raise click.BadParameter("expected labels or class names, e.g. 1,3 or person,car", param_hint="--classes")
    return tuple(labels)


@click.command("eval")
@click.option("--checkpoint", required=True, type=RegularFile(),
              help="A checkpoint written by `blurgen train` (e.g. runs/NAME/last.pt).")
@click.option("--data", "data", multiple=True,
              help="pairs.h5 (blurgen HDF5), gopro:ROOT (GOPRO_Large) or images:DIR (DIR/blur/*.png, optional "
                   "DIR/sharp/ twins and DIR/annotations.json in COCO format); repeat for several sources.")
@click.option("--gopro", "gopro_roots", multiple=True, metavar="ROOT",
              help="GOPRO_Large's root; the same as --data gopro:ROOT.")
@click.option("--split", default="test", show_default=True, help="GoPro split folder to evaluate.")
@click.option("--gopro-blur", type=click.Choice(["blur", "blur_gamma"]), default="blur", show_default=True,
              help="GoPro blurred frames: averaged in sRGB (blur) or in linear light (blur_gamma).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N pairs of each source.")
@click.option("--tile", type=click.IntRange(min=0), default=0, show_default=True,
              help="Deblur in tiles of this side (0 = whole images, as papers report).")
@click.option("--tile-norm", type=click.Choice(["image", "tile"]), default="image", show_default=True,
              help="With --tile: InstanceNorm statistics of the whole image (slower, matches whole-image "
                   "output) or of each tile.")
@click.option("--detector", default=None, metavar="NAME|module:function",
              help="Also score an object detector on the blurred and the deblurred images: a torchvision model "
                   "(fasterrcnn_resnet50_fpn, retinanet_resnet50_fpn, fcos_resnet50_fpn, "
                   "ssdlite320_mobilenet_v3_large, ...) or your own module:function (trusted code: it is imported "
                   "and run).")
@click.option("--detector-weights", type=RegularFile(), default=None,
              help="Weights of a torchvision --detector (a state dict; read with torch.load(weights_only=True), "
                   "never downloaded).")
@click.option("--score", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Score threshold for recall/precision/F1 and for the sharp image's reference boxes.")
@click.option("--iou", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="IoU a detection needs to match a reference box.")
@click.option("--classes", default=None, help="Evaluate only these labels or class names, e.g. 1,3 or person,car.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (torch.set_num_threads) [default: torch's own choice].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.pass_context
def eval_command(ctx, checkpoint, data, gopro_roots, split, gopro_blur, limit, tile, tile_norm, detector,
                 detector_weights, score, iou, classes, threads, device, as_json):
    """Score a checkpoint: PSNR/SSIM of its output and of the blurred inputs, per source; with
    --detector, also recall, precision, F1 and AP@0.5 of a detector on both.

    PSNR on uint8 (range 255); SSIM with skimage's Gaussian convention (sigma 1.5, 11x11,
    mean over RGB). GoPro uses the test split unless --split says otherwise. The generator runs
    in eval mode (dropout off). Detection: the reference boxes are the annotations of an
    images:DIR folder, else the sharp image's detections with score >= --score; a folder without
    sharp twins or annotations gets detection counts and mean scores. Progress goes to stderr
    (a line per image when it is not a terminal).

    \b
    Examples:
      blurgen eval --checkpoint runs/base/last.pt --data val.h5
      blurgen eval --checkpoint runs/base/last.pt --gopro ~/GOPRO_Large --json
      blurgen eval --checkpoint last.pt --data val.h5 --data gopro:/data/GOPRO_Large --limit 100
      blurgen eval --checkpoint last.pt --gopro /data/GOPRO_Large --detector fasterrcnn_resnet50_fpn
          --detector-weights coco.pth --classes person,car
      blurgen eval --checkpoint last.pt --data images:photos/ --detector mydet.py:detect
    """
    check_tile(tile)
    sources = [parse_source(os.path.expanduser(d)) for d in data]
    sources += [parse_source("gopro:" + os.path.expanduser(r)) for r in gopro_roots]
    _check_options(ctx, sources, detector)
    torch = require_torch(torchvision=detector is not None)
    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    rows = _run(checkpoint, sources, split, gopro_blur, limit, tile or None, tile_norm == "image", dev,
                detector, detector_weights, score, iou, classes)
    if as_json:
        click.echo(json.dumps({"checkpoint": checkpoint, "device": str(dev), "sources": rows}, indent=2))
    else:
        click.echo(quality_table(checkpoint, rows))
        if detector is not None:
            click.echo(detection_table(rows))


def _run(checkpoint, sources, split, gopro_blur, limit, tile, global_norm, dev, detector, detector_weights,
         score, iou, classes) -> list[dict]:
    from blurgen.deblur.checkpoint import CheckpointError
    from blurgen.deblur.data import DataError
    from blurgen.deblur.detection import DetectionError
    from blurgen.deblur.detectors import DetectorSpecError, load_detector
    from blurgen.deblur.inference import load_generator
    from blurgen.store.schema import PairsFileError

    try:
        generator = load_generator(checkpoint, dev)
        found = None
        if detector is not None:
            try:
                found = load_detector(detector, detector_weights, dev)
            except DetectorSpecError as exc:
                raise click.BadParameter(one_line(exc), param_hint="--detector") from None
        # Open and check every source before the long loop, so a bad one fails at once.
        opened = [_open(kind, path, split, gopro_blur, limit) for kind, path in sources]
        rows = []
        for source in opened:
            if source["count"] == 0:
                raise DataError(f"{source['name']}: no complete samples to evaluate")
            if found is None:
                rows.append(_quality_only(generator, source, tile, global_norm))
            else:
                names = {**source["categories"], **found.class_names}
                rows.append(_with_detector(generator, found, source, tile, global_norm, score, iou,
                                           parse_classes(classes, names)))
    except (CheckpointError, PairsFileError, DataError, DetectionError, ValueError, RuntimeError,
            MemoryError) as exc:
        # ValueError: e.g. images too small for SSIM's 11x11 window; RuntimeError: out of memory.
        raise click.ClickException(one_line(exc)) from None
    return rows


def _open(kind: str, path: str, split: str, gopro_blur: str, limit) -> dict:
    """A source as ``{name, count, items (Item iterator), reference, categories}``."""
    from blurgen.deblur.detection_eval import Item, items_from_pairs, reference_kind
    from blurgen.deblur.evaluate import gopro_pairs, hdf5_pairs
    from blurgen.deblur.image_folder import ImageFolder

    if kind == "images":
        folder = ImageFolder.scan(path)
        count = len(folder.names) if limit is None else min(limit, len(folder.names))
        items = (Item(f.name, f.blurred, f.sharp, f.boxes) for f in folder.items(limit))
        return {"name": f"images:{path}", "count": count, "items": items, "categories": folder.categories,
                "reference": reference_kind(folder.has_sharp, folder.boxes is not None)}
    if kind == "hdf5":
        name, (count, pairs) = path, hdf5_pairs(path, limit)
    else:
        name, (count, pairs) = f"gopro:{path} ({split}, {gopro_blur})", gopro_pairs(path, split, gopro_blur, limit)
    return {"name": name, "count": count, "items": items_from_pairs(pairs), "categories": {},
            "reference": reference_kind(True, False)}


def _progress(source: dict):
    from blurgen.core.progress import Progress

    progress = Progress(f"eval {source['name'][:40]}", "img", stream=sys.stderr, every=0.0)
    done = [0]
    progress(0, source["count"])

    def step(_name: str) -> None:
        done[0] += 1
        progress(done[0], source["count"])
    return progress, step


def _quality_only(generator, source: dict, tile, global_norm) -> dict:
    from blurgen.deblur.evaluate import evaluate

    pairs = ((item.name, item.blurred, item.sharp) for item in source["items"])
    progress, step = _progress(source)
    try:
        return evaluate(generator, source["name"], pairs, tile=tile, global_norm=global_norm,
                        on_pair=step).as_dict()
    finally:
        progress.close()


def _with_detector(generator, detector, source: dict, tile, global_norm, score, iou, classes) -> dict:
    from blurgen.deblur.detection_eval import DetectionSettings, evaluate_detection

    settings = DetectionSettings(score=score, iou=iou, classes=classes)
    progress, step = _progress(source)
    try:
        scores = evaluate_detection(generator, detector, source["name"], source["items"], source["reference"],
                                    settings, tile=tile, global_norm=global_norm, on_item=step)
    finally:
        progress.close()
    return scores.as_dict(detector.name, {**source["categories"], **detector.class_names})
