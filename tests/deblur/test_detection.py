"""Detection metrics (blurgen.deblur.detection): AP against pycocotools, recall/precision/F1 by hand."""

import contextlib
import io

import numpy as np
import pytest

from blurgen.deblur.detection import (
    CountAccumulator,
    DetectionAccumulator,
    DetectionError,
    Detections,
    box_iou,
    check_detections,
)

COCO = pytest.importorskip("pycocotools.coco")
COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval


def dets(boxes, scores=None, labels=None):
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64)
    labels = np.ones(len(boxes), np.int64) if labels is None else np.asarray(labels, np.int64)
    return Detections(boxes, scores, labels)


def coco_ap(predictions, references, iou=0.5):
    """(mean AP, {label: AP}) from pycocotools' COCOeval (bbox, area all, maxDets 100); None for -1."""
    labels = sorted({int(x) for d in predictions + references for x in d.labels} | {1})
    gt = {"images": [{"id": i + 1, "width": 1000, "height": 1000} for i in range(len(references))],
          "categories": [{"id": c} for c in labels], "annotations": []}
    for i, ref in enumerate(references):
        for box, label in zip(ref.boxes, ref.labels):
            x1, y1, x2, y2 = box.tolist()
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": int(label),
                                      "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                      "iscrowd": 0})
    results = [{"image_id": i + 1, "category_id": int(label), "score": float(score),
                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
               for i, p in enumerate(predictions) for b, score, label in zip(p.boxes.tolist(), p.scores, p.labels)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO.COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO.COCO()
        if not results:
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.iouThrs = np.array([iou])
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, -1]  # (recall levels, classes), area all, maxDets 100
    per_class = {c: (None if precision[0, k] < 0 else float(precision[:, k].mean())) for k, c in enumerate(labels)}
    valid = precision[precision > -1]
    return (float(valid.mean()) if valid.size else None), per_class


def ours(predictions, references, iou=0.5):
    acc = DetectionAccumulator(score=0.5, iou=iou)
    for p, r in zip(predictions, references):
        acc.add(p, r)
    return acc.summary()


def assert_same_ap(predictions, references, iou=0.5):
    mean, per_class = coco_ap(predictions, references, iou)
    summary = ours(predictions, references, iou)
    if mean is None:
        assert summary["ap50"] is None
    else:
        assert summary["ap50"] == pytest.approx(mean, abs=1e-6)
    for label, ap in per_class.items():
        got = summary["per_class"].get(str(label), {}).get("ap50")
        assert (got is None) == (ap is None), (label, got, ap)
        if ap is not None:
            assert got == pytest.approx(ap, abs=1e-6)
    return summary


def random_case(rng, n_images, n_classes):
    predictions, references = [], []
    for _ in range(n_images):
        k = int(rng.integers(0, 8))
        xy = rng.uniform(0, 200, (k, 2))
        ref = dets(np.c_[xy, xy + rng.uniform(10, 60, (k, 2))], labels=rng.integers(1, n_classes + 1, k))
        m = int(rng.integers(0, 12))
        pick = rng.integers(0, max(k, 1), m)
        base = ref.boxes[pick] if k else rng.uniform(0, 200, (m, 4))
        jitter = rng.normal(0, 8, (m, 4))
        boxes = np.sort((base + jitter).reshape(m, 2, 2), axis=1).reshape(m, 4)  # keep x1<=x2, y1<=y2
        boxes = np.c_[np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3]),
                      np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])]
        labels = np.where(rng.random(m) < 0.8, ref.labels[pick] if k else 1, rng.integers(1, n_classes + 1, m))
        predictions.append(dets(boxes, np.round(rng.random(m), 2), labels))  # rounded: ties in scores
        references.append(ref)
    return predictions, references


def test_ap_matches_pycocotools_on_random_multiclass_cases():
    rng = np.random.default_rng(0)
    for _ in range(25):
        assert_same_ap(*random_case(rng, n_images=int(rng.integers(1, 5)), n_classes=3))


def test_ap_matches_pycocotools_with_empty_predictions():
    refs = [dets([[0, 0, 10, 10], [20, 20, 40, 40]]), dets([[5, 5, 15, 15]], labels=[2])]
    summary = assert_same_ap([Detections.empty(), Detections.empty()], refs)
    assert summary["ap50"] == 0.0 and summary["recall"] == 0.0 and summary["precision"] is None
    assert summary["f1"] is None and summary["fn"] == 3


def test_ap_matches_pycocotools_with_empty_references():
    preds = [dets([[0, 0, 10, 10]], [0.9]), dets([[1, 1, 5, 5]], [0.3], [2])]
    summary = assert_same_ap(preds, [Detections.empty(), Detections.empty()])
    assert summary["ap50"] is None and summary["recall"] is None
    assert summary["precision"] == 0.0 and summary["fp"] == 1  # the 0.3 one is under the score threshold


def test_ap_matches_pycocotools_with_duplicate_detections():
    ref = dets([[0, 0, 10, 10], [50, 50, 70, 70]])
    # three copies of one box: one TP, two FP; a lower-scored hit on the second box
    pred = dets([[0, 0, 10, 10]] * 3 + [[51, 50, 71, 70]], [0.9, 0.9, 0.8, 0.7])
    summary = assert_same_ap([pred], [ref])
    assert summary["tp"] == 2 and summary["fp"] == 2
    assert 0 < summary["ap50"] < 1


def test_ap_matches_pycocotools_with_several_classes_and_wrong_labels():
    refs = [dets([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], labels=[1, 2, 3])]
    preds = [dets([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]], [0.9, 0.8, 0.7, 0.95],
                  [1, 3, 3, 4])]  # box 2 labelled 3: a miss for class 2, an FP for class 3; class 4 has no refs
    summary = assert_same_ap(preds, refs)
    assert summary["per_class"]["2"]["ap50"] == 0.0 and summary["per_class"]["4"]["ap50"] is None
    # class 3 ranks its FP (0.8) above its TP (0.7): precision 1/2 at recall 1
    assert summary["per_class"]["3"]["ap50"] == pytest.approx(0.5)
    assert summary["ap50"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_ap_matches_pycocotools_beyond_100_detections_per_image():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 500, (150, 2))
    ref = dets(np.c_[xy, xy + 20])
    pred = dets(np.c_[xy, xy + 20] + rng.normal(0, 3, (150, 4)), rng.random(150))
    summary = assert_same_ap([pred], [ref])
    assert summary["detections"] <= 100


def test_ap_matches_pycocotools_at_another_iou_threshold():
    rng = np.random.default_rng(5)
    assert_same_ap(*random_case(rng, 3, 2), iou=0.75)


def test_recall_precision_f1_equal_hand_computed_values():
    # image 1: refs A, B (class 1), C (class 2); image 2: ref D (class 1)
    refs = [dets([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], labels=[1, 1, 2]), dets([[0, 0, 20, 20]])]
    preds = [dets([[0, 0, 10, 11],        # A: IoU 10/11, score 0.9 -> TP
                   [20, 20, 30, 30],      # B: score 0.4 < 0.5 -> not counted at the threshold
                   [50, 50, 60, 60],      # C but labelled 1 -> FP (class 1), C missed
                   [100, 100, 110, 110]], # nothing there -> FP
                  [0.9, 0.4, 0.8, 0.6], [1, 1, 1, 2]),
             dets([[0, 0, 20, 9]], [0.7])]  # D: IoU 0.45 < 0.5 -> FP, D missed
    summary = ours(preds, refs)
    tp, fp, fn = 1, 3, 3
    assert (summary["tp"], summary["fp"], summary["fn"], summary["references"]) == (tp, fp, fn, 4)
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    assert summary["recall"] == pytest.approx(recall) and summary["precision"] == pytest.approx(precision)
    assert summary["f1"] == pytest.approx(2 * recall * precision / (recall + precision))
    c1, c2 = summary["per_class"]["1"], summary["per_class"]["2"]
    assert (c1["tp"], c1["fp"], c1["fn"], c2["tp"], c2["fp"], c2["fn"]) == (1, 2, 2, 0, 1, 1)
    assert c1["recall"] == pytest.approx(1 / 3) and c1["precision"] == pytest.approx(1 / 3)
    assert c2["f1"] == 0.0
    assert summary["mean_score"] == pytest.approx(np.mean([0.9, 0.8, 0.6, 0.7]))


def test_greedy_matching_gives_the_box_to_the_higher_score_not_the_higher_iou():
    ref = dets([[0, 0, 10, 10]])
    pred = dets([[0, 0, 10, 12], [0, 0, 10, 10]], [0.9, 0.6])  # the exact box scores lower: it is the FP
    summary = ours([pred], [ref])
    assert summary["tp"] == 1 and summary["fp"] == 1 and summary["mean_score"] == pytest.approx(0.75)
    assert_same_ap([pred], [ref])


def test_box_iou_of_known_boxes():
    iou = box_iou(np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 15, 10.], [20, 20, 30, 30], [0, 0, 10, 10]]))
    assert np.allclose(iou, [[50 / 150, 0, 1]])


def test_count_accumulator_counts_detections_above_the_score():
    acc = CountAccumulator(score=0.5)
    acc.add(dets([[0, 0, 1, 1]] * 3, [0.9, 0.4, 0.7], [1, 1, 2]))
    acc.add(Detections.empty())
    s = acc.summary()
    assert s["images"] == 2 and s["detections"] == 2 and s["per_image"] == 1.0
    assert s["mean_score"] == pytest.approx(0.8) and s["per_class"]["2"]["detections"] == 1


@pytest.mark.parametrize("value, fragment", [
    (([[0, 0, 1, 1]], [0.5]), "expected a tuple (boxes, scores, labels)"),
    ((np.zeros((2, 3)), np.zeros(2), np.zeros(2, int)), "boxes must be (K, 4)"),
    ((np.zeros((2, 4)), np.zeros(3), np.zeros(2, int)), "scores must be (2,)"),
    ((np.zeros((2, 4)), np.zeros(2), np.zeros(2)), "labels must be integers"),
    ((np.full((1, 4), np.nan), np.zeros(1), np.zeros(1, int)), "NaN"),
    ((np.array([[5, 0, 1, 1.]]), np.zeros(1), np.zeros(1, int)), "x2 >= x1"),
    ((np.zeros((1, 4)), np.array(["a"]), np.zeros(1, int)), "scores must be numbers"),
])
def test_check_detections_names_the_problem(value, fragment):
    with pytest.raises(DetectionError, match="image 3") as err:
        check_detections(value, "image 3")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_check_detections_accepts_empty_and_lists():
    assert len(check_detections((np.zeros((0, 4)), [], []), "x")) == 0
    d = check_detections(([[0, 0, 2, 3]], [0.5], [7]), "x")
    assert d.boxes.dtype == np.float64 and d.labels.tolist() == [7]


def test_of_equal_ious_the_later_reference_is_taken_as_pycocotools_does():
    ref = dets([[0, 0, 10, 10], [2, 0, 12, 10]])
    # the first detection overlaps both refs equally (IoU 90/110); pycocotools gives it the later one,
    # so the second detection, which fits only the first ref (IoU 70/130), is a TP too.
    pred = dets([[1, 0, 11, 10], [-3, 0, 7, 10]], [0.9, 0.8])
    summary = assert_same_ap([pred], [ref])
    assert summary["tp"] == 2 and summary["ap50"] == pytest.approx(1.0)
