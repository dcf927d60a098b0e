"""Detection metrics for `blurgen eval --detector`: does deblurring help a detector?

NumPy only (no torch), so the metrics can be checked against pycocotools anywhere.

Definitions (also in README, "Detection-based evaluation"):

- **Boxes** are ``(x1, y1, x2, y2)`` in pixels, continuous coordinates; IoU = intersection area /
  union area (COCO's convention, no +1).
- **Matching**, per image and per class: the detections of that class, sorted by score (highest
  first, ties kept in the order the detector gave them) and cut to the best ``max_dets`` (100),
  are matched greedily: each takes the still unmatched reference box of the same class with the
  highest IoU, if that IoU is at least ``iou`` (0.5; of equal IoUs the later reference box wins,
  as in pycocotools). A matched detection is a true positive (TP), an unmatched one a false
  positive (FP), an unmatched reference box a false negative (FN).
- **Recall, precision, F1** count only detections with score >= ``score`` (0.5): recall =
  TP / (TP + FN), precision = TP / (TP + FP), F1 = 2PR / (P + R). Greedy matching in score order
  means the matches of those detections do not depend on the lower-scored ones. Undefined values
  (no reference boxes, no detections) are None.
- **AP@0.5** is COCO's: per class, all detections (no score threshold) of all images ranked by
  score; precision made monotone (the best precision at any higher recall); its mean at the 101
  recall levels 0, 0.01, ..., 1 (0 where the recall is never reached); the mean AP is the mean over
  the classes that have at least one reference box (None if none has). Same as pycocotools'
  ``COCOeval`` bbox AP at IoU 0.5, area "all", maxDets 100 (tests pin it to 1e-6).

>>> import numpy as np
>>> ref = Detections(np.array([[0, 0, 10, 10.]]), np.ones(1), np.array([1]))
>>> acc = DetectionAccumulator()
>>> acc.add(Detections(np.array([[1, 0, 11, 10.]]), np.array([0.9]), np.array([1])), ref)
>>> s = acc.summary(); (s["recall"], s["precision"], round(s["ap50"], 9))
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from blurgen.core.common import BlurgenError

#: COCO's 101 recall levels (the same expression pycocotools uses, so the floats agree).
RECALL_LEVELS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = 100
#: ``--detector`` names of torchvision's detection models (``torchvision.models.detection``; built
#: by ``blurgen.deblur.detectors``, listed here so the CLI can check a name without torch).
TORCHVISION_DETECTORS = (
    "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large",
)


class DetectionError(BlurgenError):
    """A detector that cannot be used or that returned something unusable; one line."""


@dataclass(frozen=True)
class Detections:
    """One image's boxes: float64 ``(K, 4)`` xyxy pixels, float64 ``(K,)`` scores, int64 ``(K,)``
    labels. ``check_detections`` builds one from what a detector returned."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @staticmethod
    def empty() -> "Detections":
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> "Detections":
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    def above(self, score: float) -> "Detections":
        """The detections with score >= ``score`` (a reference made from detections)."""
        return self.select(self.scores >= score)

    def of_classes(self, classes: Optional[Iterable[int]]) -> "Detections":
        """Only the given labels (None: all)."""
        if classes is None:
            return self
        return self.select(np.isin(self.labels, np.asarray(list(classes), np.int64)))


def _array(value, name: str, where: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: to NumPy without importing torch here
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged lists and foreign objects: many exception types
        raise DetectionError(f"{where}: {name} is not an array") from None


def check_detections(value, where: str, image_shape: Optional[tuple] = None) -> Detections:
    """Validate one image's ``(boxes, scores, labels)`` as a detector returned it: float ``(K, 4)``
    xyxy with x2 >= x1 and y2 >= y1, float ``(K,)``, int ``(K,)``, all finite. Raises
    ``DetectionError`` naming ``where`` and the problem."""
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise DetectionError(f"{where}: expected a tuple (boxes, scores, labels), got {type(value).__name__}"
                             + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""))
    boxes, scores, labels = (_array(v, n, where) for v, n in zip(value, ("boxes", "scores", "labels")))
    if boxes.size == 0 and scores.size == 0 and labels.size == 0:
        return Detections.empty()
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DetectionError(f"{where}: boxes must be (K, 4) xyxy, got shape {boxes.shape}")
    k = boxes.shape[0]
    for name, arr in (("scores", scores), ("labels", labels)):
        if arr.shape != (k,):
            raise DetectionError(f"{where}: {name} must be ({k},) for {k} boxes, got shape {arr.shape}")
    for name, arr in (("boxes", boxes), ("scores", scores)):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise DetectionError(f"{where}: {name} must be numbers, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise DetectionError(f"{where}: {name} hold NaN or infinite values")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DetectionError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    boxes = boxes.astype(np.float64)
    if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
        raise DetectionError(f"{where}: boxes must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1")
    return Detections(boxes, scores.astype(np.float64), labels.astype(np.int64))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``(N, 4)`` with every box of ``b`` ``(M, 4)`` (xyxy): ``(N, M)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_class(det_boxes: np.ndarray, det_scores: np.ndarray, ref_boxes: np.ndarray, iou: float,
                max_dets: int = MAX_DETS) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one class in one image. Returns ``(order, matched)``: the indices of the
    kept detections, best score first (at most ``max_dets``), and whether each was matched."""
    order = np.argsort(-det_scores, kind="mergesort")[:max_dets]
    matched = np.zeros(len(order), bool)
    if len(order) == 0 or len(ref_boxes) == 0:
        return order, matched
    ious = box_iou(det_boxes[order], ref_boxes)
    taken = np.zeros(len(ref_boxes), bool)
    threshold = min(iou, 1 - 1e-10)
    for d in range(len(order)):
        candidates = np.where(taken, -np.inf, ious[d])
        best = len(candidates) - 1 - int(np.argmax(candidates[::-1]))  # of equal IoUs, the last one
        if candidates[best] >= threshold:
            taken[best] = matched[d] = True
    return order, matched


def average_precision(scores: np.ndarray, matched: np.ndarray, n_refs: int) -> Optional[float]:
    """COCO's 101-point interpolated AP of one class from the pooled detections (in image order)
    and their match flags; None without reference boxes."""
    if n_refs == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(matched[order]).astype(np.float64)
    fp = np.cumsum(~matched[order]).astype(np.float64)
    if len(tp) == 0:
        return 0.0
    recall = tp / n_refs
    precision = tp / (fp + tp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at any higher recall
    where = np.searchsorted(recall, RECALL_LEVELS, side="left")
    sampled = np.where(where < len(precision), precision[np.minimum(where, len(precision) - 1)], 0.0)
    return float(np.mean(sampled))


def _ratio(num: int, den: int) -> Optional[float]:
    return num / den if den else None


def _f1(recall: Optional[float], precision: Optional[float]) -> Optional[float]:
    if recall is None or precision is None:
        return None
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


class DetectionAccumulator:
    """Pools the matches of a stream of images (detections against references) and summarises
    them: recall, precision, F1 at ``score``, AP at ``iou``, in total and per class."""

    def __init__(self, score: float = 0.5, iou: float = 0.5, max_dets: int = MAX_DETS) -> None:
        if not 0.0 <= score <= 1.0 or not math.isfinite(score):
            raise ValueError(f"score must be in [0, 1], got {score}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou}")
        self.score, self.iou, self.max_dets = float(score), float(iou), int(max_dets)
        self.images = 0
        self._scores: dict[int, list[np.ndarray]] = {}
        self._matched: dict[int, list[np.ndarray]] = {}
        self._refs: dict[int, int] = {}

    def add(self, detections: Detections, reference: Detections) -> None:
        """One image's detections against its reference boxes (both already cut to the classes
        evaluated; the reference already cut to its score threshold, if it came from detections)."""
        self.images += 1
        for label in np.union1d(detections.labels, reference.labels).tolist():
            det = detections.labels == label
            refs = reference.boxes[reference.labels == label]
            order, matched = match_class(detections.boxes[det], detections.scores[det], refs, self.iou,
                                         self.max_dets)
            self._scores.setdefault(label, []).append(detections.scores[det][order])
            self._matched.setdefault(label, []).append(matched)
            self._refs[label] = self._refs.get(label, 0) + len(refs)

    def _class(self, label: int) -> dict:
        scores = np.concatenate(self._scores[label])
        matched = np.concatenate(self._matched[label])
        kept = scores >= self.score
        tp, fp = int(np.sum(matched & kept)), int(np.sum(~matched & kept))
        refs = self._refs[label]
        recall, precision = _ratio(tp, refs), _ratio(tp, tp + fp)
        return {"references": refs, "detections": tp + fp, "tp": tp, "fp": fp, "fn": refs - tp,
                "recall": recall, "precision": precision, "f1": _f1(recall, precision),
                "ap50": average_precision(scores, matched, refs),
                "mean_score": float(scores[kept].mean()) if kept.any() else None}

    def summary(self) -> dict:
        """JSON-ready totals (TP, FP, FN summed over classes), the mean AP over classes with
        reference boxes, and ``per_class`` (keys: labels as strings)."""
        per_class = {str(label): self._class(label) for label in sorted(self._scores)}
        tp = sum(c["tp"] for c in per_class.values())
        fp = sum(c["fp"] for c in per_class.values())
        refs = sum(c["references"] for c in per_class.values())
        aps = [c["ap50"] for c in per_class.values() if c["ap50"] is not None]
        recall, precision = _ratio(tp, refs), _ratio(tp, tp + fp)
        scored = [s[s >= self.score] for label in self._scores for s in self._scores[label]]
        kept = np.concatenate(scored) if scored else np.zeros(0)
        return {"images": self.images, "references": refs, "detections": tp + fp, "tp": tp, "fp": fp,
                "fn": refs - tp, "recall": recall, "precision": precision, "f1": _f1(recall, precision),
                "ap50": float(np.mean(aps)) if aps else None,
                "mean_score": float(kept.mean()) if kept.size else None, "per_class": per_class}


class CountAccumulator:
    """For images without any reference (real blurred photos): how many detections at ``score``
    and their mean score, in total and per class."""

    def __init__(self, score: float = 0.5) -> None:
        self.score = float(score)
        self.images = 0
        self._scores: dict[int, list[np.ndarray]] = {}

    def add(self, detections: Detections) -> None:
        self.images += 1
        kept = detections.above(self.score)
        for label in np.unique(kept.labels).tolist():
            self._scores.setdefault(label, []).append(kept.scores[kept.labels == label])

    def summary(self) -> dict:
        def stats(parts: list[np.ndarray]) -> dict:
            scores = np.concatenate(parts) if parts else np.zeros(0)
            return {"detections": int(scores.size),
                    "per_image": scores.size / self.images if self.images else None,
                    "mean_score": float(scores.mean()) if scores.size else None}
        per_class = {str(label): stats(self._scores[label]) for label in sorted(self._scores)}
        return {"images": self.images, **stats([s for parts in self._scores.values() for s in parts]),
                "per_class": per_class}
