"""`blurgen eval --detector` end to end: a colour detector of the test suite (shape_detector.py) on
pairs that blurgen made from a folder of coloured shapes, on annotated image folders, and on
blurred photos without sharp twins; hostile detectors; eval's GoPro alias, --threads, progress."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

import shape_detector  # noqa: E402
from deblur_fixtures import blur_image, make_gopro_tree  # noqa: E402
from test_cli_eval import save_checkpoint  # noqa: E402

import blurgen  # noqa: E402
from blurgen.cli import main  # noqa: E402
from blurgen.deblur.detection import DetectionAccumulator, check_detections  # noqa: E402
from blurgen.store.reader import PairsFile  # noqa: E402

DETECTOR = "shape_detector:detect"
PROGRESS_LINE = re.compile(r"^eval .*: (\d+)/(\d+) img ")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def draw_shapes(rng, size, n_shapes=3, margin=20):
    """A plain background with one filled square or disk per colour; returns (image, COCO boxes)."""
    image = np.full((size, size, 3), 225, np.uint8)
    boxes = []
    for label, colour in shape_detector.COLOURS.items():
        for _ in range(n_shapes // 3 or 1):
            s = int(rng.integers(10, 16))
            x, y = (int(v) for v in rng.integers(margin, size - margin - s, 2))
            cv2.rectangle(image, (x, y), (x + s, y + s), colour, -1)  # fills x..x+s inclusive
            boxes.append(([x, y, s + 1, s + 1], label))
    return image, boxes


def write_rgb(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def made_pairs(tmp_path_factory):
    """Pairs made by `blurgen make --source DIR` from 128 px pictures of coloured shapes, with a
    strong blur (a 24 px camera path on ~13 px shapes)."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for i in range(6):
        write_rgb(root / "src" / f"s{i}.png", draw_shapes(rng, 128)[0])
    out = root / "pairs.h5"
    result = run("make", "--n", 6, "--out", out, "--source", root / "src", "--size", 96, "--workers", 1,
                 "--kernel-size", 31, "--length-px", 24, "--no-saturation", "--seed", 3)
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {"identity": save_checkpoint(root / "id.pt", identity=True), "random": save_checkpoint(root / "g.pt")}


@pytest.fixture(scope="module")
def annotated_dir(tmp_path_factory):
    """images:DIR with blur/, sharp/ and annotations.json: shapes at known places, blurred with
    blurgen's camera-shake kernels."""
    root = tmp_path_factory.mktemp("annotated")
    rng = np.random.default_rng(1)
    kernels = blurgen.random_kernels(5, size=31, seed=2, length_px=24.0)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "green"},
                                                             {"id": 3, "name": "blue"}]}
    for i, kernel in enumerate(kernels):
        sharp, boxes = draw_shapes(rng, 80, n_shapes=3, margin=8)
        write_rgb(root / "sharp" / f"{i:03d}.png", sharp)
        write_rgb(root / "blur" / f"{i:03d}.png", blur_image(sharp, kernel))
        coco["images"].append({"id": i + 10, "file_name": f"{i:03d}.png", "width": 80, "height": 80})
        for bbox, label in boxes:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 10, "bbox": bbox,
                                        "category_id": label, "iscrowd": 0, "area": bbox[2] * bbox[3]})
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def test_detector_on_made_pairs_reports_blur_hurting_recall_against_the_sharp_reference(made_pairs, checkpoints):
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", made_pairs, "--detector", DETECTOR,
                 "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["sources"]
    det = row["detection"]
    assert det["reference"] == "sharp" and det["detector"] == DETECTOR and "sharp" not in det
    # the keys README documents
    assert set(det) == {"detector", "reference", "score", "iou", "classes", "class_names", "blurred", "model"}
    keys = {"references", "detections", "tp", "fp", "fn", "recall", "precision", "f1", "ap50", "mean_score"}
    assert set(det["blurred"]) == keys | {"images", "per_class"} and set(det["blurred"]["per_class"]["1"]) == keys
    assert (det["score"], det["iou"], det["classes"]) == (0.5, 0.5, None)
    # the same numbers computed here, image by image, from the pairs file
    expected = DetectionAccumulator(0.5, 0.5)
    with PairsFile(made_pairs) as pairs:
        for i in range(len(pairs)):
            blurred, sharp, _ = pairs[i]
            found = [check_detections(r, "test") for r in shape_detector.detect([blurred, sharp])]
            expected.add(found[0], found[1].above(0.5))
    assert det["blurred"] == json.loads(json.dumps(expected.summary()))  # exactly: floats survive JSON
    blurred = det["blurred"]
    # The sharp image is its own reference: recall 1 there. Blur loses objects.
    assert blurred["references"] >= 12 and blurred["recall"] < 0.8
    assert set(blurred["per_class"]) == {"1", "2", "3"}
    assert det["model"] == det["blurred"]  # identity checkpoint: deblurred == blurred
    assert row["n"] == 6 and row["model"]["psnr"] == row["blurred"]["psnr"] is not None


def test_detector_report_table_lists_each_input_and_class(made_pairs, checkpoints):
    result = run("eval", "--checkpoint", checkpoints["random"], "--data", made_pairs, "--detector", DETECTOR)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "PSNR model" in lines[1]
    start = next(i for i, line in enumerate(lines) if "detector shape_detector:detect" in line)
    assert "reference sharp-image detections with score >= 0.5, IoU 0.5, classes all" in lines[start]
    header = lines[start + 1].split()
    assert header == ["input", "refs", "dets", "TP", "FP", "FN", "recall", "precision", "F1", "AP@.5"]
    body = lines[start + 2:]
    assert body[0].startswith("blurred") and body[4].startswith("deblurred (model)")
    assert [line.split()[:2] for line in body[1:4]] == [["class", "1"], ["class", "2"], ["class", "3"]]
    report = json.loads(run("eval", "--checkpoint", checkpoints["random"], "--data", made_pairs, "--detector",
                            DETECTOR, "--json").stdout)["sources"][0]["detection"]
    cells = body[0].split()[1:]
    b = report["blurred"]
    assert cells == [str(b["references"]), str(b["detections"]), str(b["tp"]), str(b["fp"]), str(b["fn"]),
                     f"{b['recall']:.3f}", f"{b['precision']:.3f}", f"{b['f1']:.3f}", f"{b['ap50']:.3f}"]


def test_annotated_folder_scores_sharp_blurred_and_deblurred_against_the_annotations(annotated_dir, checkpoints):
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{annotated_dir}",
                 "--detector", DETECTOR, "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["sources"][0]
    det = row["detection"]
    assert det["reference"] == "annotations" and det["class_names"] == {"1": "red", "2": "green", "3": "blue"}
    assert det["sharp"]["references"] == 15 and det["sharp"]["recall"] == 1.0 and det["sharp"]["ap50"] == 1.0
    assert det["blurred"]["recall"] < det["sharp"]["recall"]
    assert det["blurred"]["ap50"] < det["sharp"]["ap50"]
    assert row["n"] == 5 and row["blurred"]["psnr"] is not None
    only = json.loads(run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{annotated_dir}",
                          "--detector", DETECTOR, "--classes", "red,3", "--json").stdout)["sources"][0]["detection"]
    assert only["classes"] == [1, 3] and set(only["sharp"]["per_class"]) == {"1", "3"}
    assert only["sharp"]["references"] == 10


def test_blurred_photos_without_sharp_twins_get_detection_counts(tmp_path, annotated_dir, checkpoints):
    photos = tmp_path / "photos"
    (photos / "blur").mkdir(parents=True)
    for path in sorted((annotated_dir / "sharp").glob("*.png"))[:3]:  # "photos" in which the shapes are sharp
        (photos / "blur" / path.name).write_bytes(path.read_bytes())
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{photos}", "--detector", DETECTOR,
                 "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["sources"][0]
    det = row["detection"]
    assert det["reference"] is None and row["model"]["psnr"] is None and row["n"] == 3
    assert det["blurred"]["detections"] == 9 and det["blurred"]["per_image"] == 3.0
    scores = np.concatenate([shape_detector.detect_one(cv2.imread(str(p))[:, :, ::-1])[1]
                             for p in sorted((photos / "blur").glob("*.png"))])
    assert det["blurred"]["mean_score"] == pytest.approx(scores[scores >= 0.5].mean())
    assert det["model"] == det["blurred"]
    assert det["blurred"]["per_class"]["2"]["detections"] == 3
    table = run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{photos}", "--detector", DETECTOR)
    lines = table.stdout.splitlines()
    assert lines[2].split()[1:] == ["3", "-", "-", "-", "-"]  # no PSNR/SSIM without sharp images
    assert "reference none (no sharp images)" in table.stdout
    assert "per image" in table.stdout and "mean score" in table.stdout
    # without a detector there is nothing to score: a usage error
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{photos}")
    assert result.exit_code == 2 and "only --detector can score it" in result.output


def test_a_detector_that_draws_on_its_inputs_changes_no_score(made_pairs, checkpoints):
    plain = json.loads(run("eval", "--checkpoint", checkpoints["random"], "--data", made_pairs, "--json").stdout)
    drawn = json.loads(run("eval", "--checkpoint", checkpoints["random"], "--data", made_pairs, "--json",
                           "--detector", "shape_detector:vandal").stdout)
    row, plain_row = drawn["sources"][0], plain["sources"][0]
    assert (row["model"], row["blurred"]) == (plain_row["model"], plain_row["blurred"])
    det = row["detection"]["blurred"]  # vandal zeroes each image before looking: it finds nothing
    assert det["references"] == det["detections"] == 0


def test_images_folder_without_detector_reports_psnr_ssim(annotated_dir, checkpoints):
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{annotated_dir}", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["sources"][0]
    assert row["n"] == 5 and "detection" not in row and row["model"] == row["blurred"]
    assert 10 < row["blurred"]["psnr"] < 60


def _one_line(result, code, *fragments):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if not PROGRESS_LINE.match(line)]
    assert len(lines) == 1 or (code == 2 and lines[-1].startswith("Error:")), result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


@pytest.mark.parametrize("detector, code, fragment", [
    ("no_such_module_xyz:detect", 2, "cannot import 'no_such_module_xyz'"),
    ("shape_detector:nope", 2, "has no attribute 'nope'"),
    ("shape_detector:NOT_CALLABLE", 2, "is not callable"),
    ("missing_file.py:detect", 2, "missing_file.py: no such file"),
    ("yolov99", 2, "unknown detector 'yolov99'"),
    ("fasterrcnn_resnet50_fpn", 2, "needs --detector-weights"),
    ("shape_detector:wrong_shapes", 1, "boxes must be (K, 4) xyxy, got shape (2, 3)"),
    ("shape_detector:wrong_count", 1, "expected a list of 3 (boxes, scores, labels) tuples"),
    ("shape_detector:raises", 1, "failed: model file missing on two lines"),
])
def test_hostile_detectors_are_one_line_with_the_right_exit_code(made_pairs, checkpoints, detector, code, fragment):
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", made_pairs, "--detector", detector)
    _one_line(result, code, fragment)


def test_a_module_that_fails_to_import_is_one_line(tmp_path, made_pairs, checkpoints):
    broken = tmp_path / "broken_det.py"
    broken.write_text("import numpy\nraise SystemExit('half-installed model')\n")
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", made_pairs, "--detector",
                 f"{broken}:detect")
    _one_line(result, 2, "cannot import", "half-installed model")


@pytest.mark.parametrize("args, fragment", [
    (["--score", "0.3"], "needs --detector"),
    (["--detector", DETECTOR, "--score", "1.5"], "--score"),
    (["--detector", DETECTOR, "--iou", "0"], "--iou"),
    (["--detector", DETECTOR, "--detector-weights", "{weights}"], "loads its own weights"),
    (["--detector", DETECTOR, "--classes", "purple"], "unknown class 'purple'"),
])
def test_detection_option_misuse_is_a_usage_error(tmp_path, made_pairs, checkpoints, args, fragment):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    args = [a.format(weights=weights) for a in args]
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", made_pairs, *args)
    assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output, result.output


def test_piped_eval_prints_a_progress_line_per_image_on_stderr(made_pairs, checkpoints):
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", made_pairs, "--json", "--limit", 4)
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout holds only the report
    progress = [PROGRESS_LINE.match(line) for line in result.stderr.splitlines()]
    assert [(int(m.group(1)), int(m.group(2))) for m in progress if m] == [(k, 4) for k in range(5)]
    assert "img/s" in result.stderr and "ETA" in result.stderr


def test_gopro_option_is_the_same_as_data_gopro_and_a_gopro_folder_gets_a_hint(tmp_path, checkpoints):
    root = make_gopro_tree(tmp_path / "GOPRO_Large", sequences=1, frames=2, size=(40, 32), splits=("test",))
    a = run("eval", "--checkpoint", checkpoints["random"], "--data", f"gopro:{root}", "--json")
    b = run("eval", "--checkpoint", checkpoints["random"], "--gopro", root, "--json")
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    assert json.loads(a.stdout) == json.loads(b.stdout)
    hint = run("eval", "--checkpoint", checkpoints["random"], "--data", root)
    assert hint.exit_code == 2 and f"use --data gopro:{root}" in hint.output
    folder = run("eval", "--checkpoint", checkpoints["random"], "--data", tmp_path)
    assert folder.exit_code == 2 and "expected pairs.h5, gopro:ROOT or images:DIR" in folder.output
    assert run("eval", "--checkpoint", checkpoints["random"]).exit_code == 2  # no source at all


def test_threads_option_sets_torchs_thread_count(made_pairs, checkpoints):
    before = torch.get_num_threads()
    try:
        assert run("eval", "--checkpoint", checkpoints["identity"], "--data", made_pairs, "--threads", 2,
                   "--limit", 1).exit_code == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert run("eval", "--checkpoint", checkpoints["identity"], "--data", made_pairs, "--threads", 0).exit_code == 2


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not JSON"),
    (json.dumps({"images": [{"id": 1}]}), "not COCO annotations"),
    (json.dumps({"images": [], "annotations": []}), "no entry for 5 image(s) of blur/ (first: 000.png)"),
])
def test_bad_annotations_are_one_line(tmp_path, annotated_dir, checkpoints, content, fragment):
    import shutil

    folder = tmp_path / "f"
    shutil.copytree(annotated_dir, folder)
    (folder / "annotations.json").write_text(content)
    result = run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{folder}", "--detector", DETECTOR)
    _one_line(result, 1, "annotations.json", fragment)


def test_images_folder_without_blur_or_with_missing_twins_is_one_line(tmp_path, annotated_dir, checkpoints):
    import shutil

    (tmp_path / "empty").mkdir()
    _one_line(run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{tmp_path / 'empty'}",
                  "--detector", DETECTOR), 1, "no blur/ folder")
    folder = tmp_path / "f"
    shutil.copytree(annotated_dir, folder)
    (folder / "sharp" / "001.png").unlink()
    _one_line(run("eval", "--checkpoint", checkpoints["identity"], "--data", f"images:{folder}"), 1,
              "no sharp twin for 1 image(s) of blur/ (first: 001.png)")
