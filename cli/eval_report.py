"""The tables `blurgen eval` prints (the JSON report holds the same numbers and more)."""

from __future__ import annotations

from typing import Optional

#: Column title -> key of a detection summary (``blurgen.deblur.detection``).
DETECTION_COLUMNS = (("refs", "references", "d"), ("dets", "detections", "d"), ("TP", "tp", "d"),
                     ("FP", "fp", "d"), ("FN", "fn", "d"), ("recall", "recall", ".3f"),
                     ("precision", "precision", ".3f"), ("F1", "f1", ".3f"), ("AP@.5", "ap50", ".3f"))
COUNT_COLUMNS = (("dets", "detections", "d"), ("per image", "per_image", ".2f"), ("mean score", "mean_score", ".3f"))


def _num(value: Optional[float], fmt: str) -> str:
    """``-`` for a value that does not exist (no sharp images, no reference boxes, ...)."""
    return "-" if value is None else format(value, fmt)


def quality_table(checkpoint: str, rows: list[dict]) -> str:
    lines = [f"checkpoint {checkpoint}",
             f"{'source':<40} {'n':>6} {'PSNR model':>11} {'PSNR blur':>10} {'SSIM model':>11} {'SSIM blur':>10}"]
    for r in rows:
        lines.append(f"{r['source']:<40} {r['n']:>6} {_num(r['model']['psnr'], '.2f'):>11} "
                     f"{_num(r['blurred']['psnr'], '.2f'):>10} {_num(r['model']['ssim'], '.4f'):>11} "
                     f"{_num(r['blurred']['ssim'], '.4f'):>10}")
    return "\n".join(lines)


def _cells(summary: dict, columns) -> str:
    return " ".join(f"{_num(summary.get(key), fmt):>{max(len(title), 6)}}" for title, key, fmt in columns)


def _reference_line(source: str, det: dict) -> str:
    reference = {"annotations": "annotated boxes", "sharp": f"sharp-image detections with score >= {det['score']:g}",
                 None: "none (no sharp images): detection counts at score >= " + f"{det['score']:g}"}[det["reference"]]
    classes = "all" if det["classes"] is None else ",".join(str(c) for c in det["classes"])
    return f"{source}: detector {det['detector']}, reference {reference}, IoU {det['iou']:g}, classes {classes}"


def detection_table(rows: list[dict]) -> str:
    """Per source: one line per scored input (blurred, model = deblurred, sharp with annotations),
    each followed by its per-class lines."""
    lines = []
    for r in rows:
        det = r["detection"]
        columns = COUNT_COLUMNS if det["reference"] is None else DETECTION_COLUMNS
        lines += ["", _reference_line(r["source"], det),
                  f"{'input':<22} " + " ".join(f"{t:>{max(len(t), 6)}}" for t, _, _ in columns)]
        for name in ("blurred", "model", "sharp"):
            if name not in det:
                continue
            label = {"model": "deblurred (model)"}.get(name, name)
            lines.append(f"{label:<22} {_cells(det[name], columns)}")
            for cls, summary in det[name]["per_class"].items():
                title = det["class_names"].get(cls, "")
                lines.append(f"{'  class ' + cls + (' ' + title if title else ''):<22.22} {_cells(summary, columns)}")
    return "\n".join(lines)
