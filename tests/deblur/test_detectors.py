"""torchvision detectors for `blurgen eval --detector`: built without downloads, weights read with
torch.load(weights_only=True); foreign, malicious and wrong weights files are one-line failures."""

import json
import os
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from deblur_fixtures import make_pairs_file  # noqa: E402
from test_cli_eval import save_checkpoint  # noqa: E402

from blurgen.cli import main  # noqa: E402
from blurgen.deblur.detection import DetectionError  # noqa: E402
from blurgen.deblur.detectors import (  # noqa: E402
    TORCHVISION_DETECTORS,
    TorchvisionDetector,
    _num_classes,
    read_weights,
)

SSDLITE = "ssdlite320_mobilenet_v3_large"  # the smallest torchvision detector: 0.2 s to build here


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ssdlite_weights(tmp_path_factory):
    """A randomly initialised 5-class SSDlite (background + 4), saved as a plain state dict."""
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5).eval()
    path = tmp_path_factory.mktemp("weights") / "ssdlite.pt"
    torch.save(model.state_dict(), path)
    return path, model


def test_torchvision_detector_loads_saved_weights_and_reproduces_the_model(ssdlite_weights):
    path, model = ssdlite_weights
    detector = TorchvisionDetector(SSDLITE, str(path))
    assert detector.class_names == {}  # 5 classes: not COCO's 91, so no names
    state = detector.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)]
    found = detector(images)
    with torch.no_grad():
        expected = model([torch.from_numpy(im.transpose(2, 0, 1).copy()).float() / 255 for im in images])
    for got, want in zip(found, expected):
        assert np.allclose(got.boxes, want["boxes"].numpy()) and np.array_equal(got.labels, want["labels"].numpy())
        assert got.boxes.shape[1] == 4 and len(got) == len(want["scores"])


def test_a_training_script_dict_holding_the_state_dict_is_accepted(tmp_path, ssdlite_weights):
    path, model = ssdlite_weights
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "epoch": 3}, wrapped)
    assert set(read_weights(str(wrapped))) == set(model.state_dict())


def test_eval_with_a_torchvision_detector_end_to_end(tmp_path, ssdlite_weights):
    pairs = make_pairs_file(tmp_path / "p.h5", n=2, size=40)
    ckpt = save_checkpoint(tmp_path / "g.pt", identity=True)
    result = run("eval", "--checkpoint", ckpt, "--data", pairs, "--detector", SSDLITE, "--detector-weights",
                 ssdlite_weights[0], "--score", "0.01", "--json")
    assert result.exit_code == 0, result.output
    det = json.loads(result.stdout)["sources"][0]["detection"]
    assert det["detector"] == SSDLITE and det["reference"] == "sharp" and det["blurred"]["images"] == 2
    assert det["model"] == det["blurred"]


def _one_line_failure(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def pairs_and_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return str(make_pairs_file(root / "p.h5", n=1, size=32)), save_checkpoint(root / "g.pt", identity=True)


def test_weights_of_another_architecture_are_one_line(pairs_and_ckpt, ssdlite_weights):
    pairs, ckpt = pairs_and_ckpt
    result = run("eval", "--checkpoint", ckpt, "--data", pairs, "--detector", "fasterrcnn_mobilenet_v3_large_320_fpn",
                 "--detector-weights", ssdlite_weights[0])
    _one_line_failure(result, "ssdlite.pt", "weights do not fit fasterrcnn_mobilenet_v3_large_320_fpn",
                      "another architecture")


class _CreatesMarker:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling would call os.system and create the marker file
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the foreign pickle first
@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_a_malicious_weights_file_never_runs(tmp_path, pairs_and_ckpt, how):
    pairs, ckpt = pairs_and_ckpt
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"backbone.features.0.0.weight": _CreatesMarker(marker)}
    if how == "pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil)
    assert not marker.exists()
    result = run("eval", "--checkpoint", ckpt, "--data", pairs, "--detector", SSDLITE, "--detector-weights", evil)
    _one_line_failure(result, "evil.pt", "not a weights file torch.load(weights_only=True) can read")
    assert not marker.exists()


@pytest.mark.parametrize("content, fragment", [
    (b"this is a text file, not weights\n", "not a weights file"),
    ([1, 2, 3], "not a state dict"),
    ({"a": 1}, "not a state dict"),
])
def test_a_wrong_weights_file_is_one_line(tmp_path, pairs_and_ckpt, content, fragment):
    pairs, ckpt = pairs_and_ckpt
    wrong = tmp_path / "wrong.pt"
    if isinstance(content, bytes):
        wrong.write_bytes(content)
    else:
        torch.save(content, wrong)
    result = run("eval", "--checkpoint", ckpt, "--data", pairs, "--detector", SSDLITE, "--detector-weights", wrong)
    _one_line_failure(result, "wrong.pt", fragment)
    with pytest.raises(DetectionError):
        read_weights(str(wrong))


def test_missing_weights_path_is_a_usage_error(tmp_path, pairs_and_ckpt):
    pairs, ckpt = pairs_and_ckpt
    result = run("eval", "--checkpoint", ckpt, "--data", pairs, "--detector", SSDLITE, "--detector-weights",
                 tmp_path / "nope.pt")
    assert result.exit_code == 2 and "--detector-weights" in result.output


@pytest.mark.parametrize("name", TORCHVISION_DETECTORS)
@pytest.mark.parametrize("num_classes", [3, 91])
def test_the_class_count_is_read_from_the_weights_of_every_torchvision_detector(name, num_classes):
    from torchvision.models import detection

    builder = getattr(detection, name)
    with torch.device("meta"):  # shapes only: no memory, no time
        state = builder(weights=None, weights_backbone=None, num_classes=num_classes).state_dict()
    assert _num_classes(builder, state) == num_classes
