"""`blurgen eval --detector`: PSNR/SSIM and detection scores of the blurred inputs and of the
deblurred outputs, over one source.

Each image is deblurred, then the detector runs on the blurred input, the deblurred output and,
when there is one, the sharp image. The reference boxes are the annotated ones when the source
has them (``images:DIR`` with annotations.json; the sharp image is then scored as well), else the
sharp image's detections with score >= ``score``. A source without sharp images or annotations
(real blurred photos) gets detection counts and mean scores only. Metrics: see
``blurgen.deblur.detection``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
from torch import nn

from blurgen.deblur.detection import CountAccumulator, DetectionAccumulator, Detections
from blurgen.deblur.evaluate import SourceScores
from blurgen.deblur.inference import deblur_image
from blurgen.deblur.metrics import psnr, ssim

#: What the detector's images are called in the report (``model``: the deblurred output, as in
#: the PSNR/SSIM part of the report).
INPUTS = ("blurred", "model", "sharp")


@dataclass(frozen=True)
class DetectionSettings:
    """How detections are scored: score threshold (recall/precision/F1, and the reference drawn
    from sharp images), IoU for a match, and the labels evaluated (None: all)."""

    score: float = 0.5
    iou: float = 0.5
    classes: Optional[tuple[int, ...]] = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {self.iou}")


@dataclass(frozen=True)
class Item:
    """One image to score: uint8 RGB blurred, sharp (or None), annotated boxes (or None)."""

    name: str
    blurred: np.ndarray
    sharp: Optional[np.ndarray] = None
    boxes: Optional[Detections] = None


def items_from_pairs(pairs: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> Iterator[Item]:
    """``(name, blurred, sharp)`` pairs (``evaluate.hdf5_pairs``, ``gopro_pairs``) as items."""
    for name, blurred, sharp in pairs:
        yield Item(name, blurred, sharp)


def reference_kind(has_sharp: bool, has_boxes: bool) -> Optional[str]:
    """``annotations``, ``sharp`` (the sharp image's detections) or None (counts only)."""
    return "annotations" if has_boxes else ("sharp" if has_sharp else None)


class DetectionScores:
    """Accumulates one source: PSNR/SSIM (where sharp images exist) and a detection accumulator
    per scored input."""

    def __init__(self, source: str, reference: Optional[str], scored_sharp: bool,
                 settings: DetectionSettings) -> None:
        self.quality = SourceScores(source)
        self.reference, self.settings = reference, settings
        names = INPUTS if scored_sharp else INPUTS[:2]
        if reference is None:
            self.accumulators = {name: CountAccumulator(settings.score) for name in names}
        else:
            self.accumulators = {name: DetectionAccumulator(settings.score, settings.iou) for name in names}

    def add(self, item: Item, restored: np.ndarray, found: dict[str, Detections]) -> None:
        if item.sharp is not None:
            self.quality.model_psnr.add(psnr(restored, item.sharp))
            self.quality.model_ssim.add(ssim(restored, item.sharp))
            self.quality.blurred_psnr.add(psnr(item.blurred, item.sharp))
            self.quality.blurred_ssim.add(ssim(item.blurred, item.sharp))
        self.quality.n += 1
        classes = self.settings.classes
        if self.reference == "annotations":
            reference = item.boxes.of_classes(classes)
        elif self.reference == "sharp":
            reference = found["sharp"].of_classes(classes).above(self.settings.score)
        for name, accumulator in self.accumulators.items():
            detections = found[name].of_classes(classes)
            if self.reference is None:
                accumulator.add(detections)
            else:
                accumulator.add(detections, reference)

    def as_dict(self, detector: str, class_names: dict[int, str]) -> dict:
        row = self.quality.as_dict()
        summaries = {name: acc.summary() for name, acc in self.accumulators.items()}
        labels = {int(k) for s in summaries.values() for k in s["per_class"]}
        row["detection"] = {
            "detector": detector, "reference": self.reference, "score": self.settings.score,
            "iou": self.settings.iou,
            "classes": None if self.settings.classes is None else list(self.settings.classes),
            "class_names": {str(k): class_names[k] for k in sorted(labels) if k in class_names},
            **summaries}
        return row


def evaluate_detection(generator: nn.Module, detector: Callable, source: str, items: Iterable[Item],
                       reference: Optional[str], settings: DetectionSettings, tile: Optional[int] = None,
                       global_norm: bool = False, on_item: Optional[Callable[[str], None]] = None,
                       ) -> DetectionScores:
    """Score one source (see the module docstring). ``reference`` is ``reference_kind(...)`` of
    the source; with ``annotations`` and sharp images the sharp images are scored too."""
    scores: Optional[DetectionScores] = None
    for item in items:
        restored = deblur_image(generator, item.blurred, tile=tile, global_norm=global_norm)
        if scores is None:
            scored_sharp = reference == "annotations" and item.sharp is not None
            scores = DetectionScores(source, reference, scored_sharp, settings)
        images = {"blurred": item.blurred, "model": restored}
        if item.sharp is not None:
            images["sharp"] = item.sharp
        found = dict(zip(images, detector(list(images.values()))))
        scores.add(item, restored, found)
        if on_item is not None:
            on_item(item.name)
    if scores is None:
        scores = DetectionScores(source, reference, False, settings)
    return scores
