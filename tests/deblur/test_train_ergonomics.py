"""What a new user meets in `blurgen train` (issue 10): --resume reads the run's own settings and
starts a run that does not exist yet, a longer --max-steps extends a finished run, --init-from
fine-tunes, validation writes pictures, TensorBoard is optional, and logs piped to a file carry
rate and ETA."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from deblur_fixtures import make_pairs_file

from blurgen.cli import main

torch.set_num_threads(1)
SHAPE = ["--width", "4", "--blocks", "1"]
REST = ["--crop", "32", "--batch-size", "2", "--critic-width", "4", "--critic-layers", "2", "--critic-steps", "1",
        "--random-vgg", "--workers", "0", "--val-count", "1", "--log-every", "1", "--keep-every", "0",
        "--device", "cpu", "--val-every", "2"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return str(make_pairs_file(tmp_path_factory.mktemp("data") / "pairs.h5", n=6, size=40))


def run(*args):
    result = CliRunner().invoke(main, ["train", *args])
    assert "Traceback" not in result.output, result.output
    return result


def test_resume_of_a_missing_folder_starts_the_run_and_later_needs_no_options(tmp_path, pairs):
    out = str(tmp_path / "run")
    first = run("--data", pairs, "--out", out, *SHAPE, *REST, "--max-steps", "2", "--resume")
    assert first.exit_code == 0 and "done: step 2" in first.output, first.output
    again = run("--out", out, "--resume")  # every setting comes from the run folder
    assert again.exit_code == 0 and "done: step 2" in again.output, again.output
    assert "training 2 steps" in again.output


def test_a_longer_max_steps_extends_a_finished_run_and_a_shorter_one_is_refused(tmp_path, pairs):
    out = str(tmp_path / "run")
    assert run("--data", pairs, "--out", out, *SHAPE, *REST, "--max-steps", "2").exit_code == 0
    shorter = run("--out", out, "--resume", "--max-steps", "1")
    assert shorter.exit_code == 1 and "settings differ" in shorter.output and "max_steps 2 -> 1" in shorter.output
    longer = run("--out", out, "--resume", "--max-steps", "4")
    assert longer.exit_code == 0, longer.output
    assert "extending the run from 2 to 4 steps" in longer.output and "done: step 4" in longer.output
    ckpt = torch.load(os.path.join(out, "last.pt"), weights_only=True)
    assert ckpt["step"] == 4 and ckpt["scheduler"] == {"total_steps": 4, "decay_start": 2}
    other_lr = run("--out", out, "--resume", "--max-steps", "6", "--lr", "0.01")
    assert other_lr.exit_code == 1 and "lr 0.0001 -> 0.01" in other_lr.output


def test_init_from_starts_from_another_runs_weights_and_shape(tmp_path, pairs):
    from blurgen.deblur.checkpoint import load_checkpoint
    from blurgen.deblur.train import Trainer
    from blurgen.deblur.train_config import TrainConfig

    source = str(tmp_path / "source")
    assert run("--data", pairs, "--out", source, *SHAPE, *REST, "--max-steps", "2").exit_code == 0
    tuned = run("--data", pairs, "--out", str(tmp_path / "tuned"), *REST, "--max-steps", "1",
                "--init-from", os.path.join(source, "last.pt"))
    assert tuned.exit_code == 0 and "starting from the weights of" in tuned.output, tuned.output
    record = load_checkpoint(os.path.join(tmp_path, "tuned", "last.pt"))["generator_config"]
    assert record["width"] == 4 and record["n_blocks"] == 1  # the shape came from the checkpoint
    config = TrainConfig(out=str(tmp_path / "api"), data=pairs, ratio=(1, 0), width=4, blocks=1, crop=32,
                         batch_size=2, critic_width=4, critic_layers=2, random_vgg=True, workers=0, val_count=1,
                         max_steps=1, device="cpu")
    trainer = Trainer(config)
    trainer.init_from(os.path.join(source, "last.pt"))
    weights = load_checkpoint(os.path.join(source, "last.pt"))["generator"]
    for name, value in trainer.generator.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    wrong = run("--data", pairs, "--out", str(tmp_path / "wrong"), *REST, "--width", "8", "--max-steps", "1",
                "--init-from", os.path.join(source, "last.pt"))
    assert wrong.exit_code == 1 and "does not fit this run's" in wrong.output


def test_validation_writes_a_blurred_output_sharp_picture_and_logs_carry_rate_and_eta(tmp_path, pairs):
    import cv2

    out = tmp_path / "run"
    result = run("--data", pairs, "--out", str(out), *SHAPE, *REST, "--max-steps", "2")
    assert result.exit_code == 0, result.output
    picture = cv2.imread(str(out / "val_images" / "step_0000002_synthetic.png"))
    assert picture is not None and picture.shape == (32, 3 * 32 + 8, 3)
    step_lines = [line for line in result.output.splitlines() if line.startswith("step 1/2")]
    assert step_lines and "it/s" in step_lines[0] and "ETA" in step_lines[0]
    header = (out / "log.csv").read_text().splitlines()[0]
    assert header.endswith("it_per_s,elapsed_s,eta_s")


def test_tensorboard_writes_event_files(tmp_path, pairs):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    result = run("--data", pairs, "--out", str(out), *SHAPE, *REST, "--max-steps", "2", "--tensorboard")
    assert result.exit_code == 0, result.output
    events = [name for name in os.listdir(out / "tensorboard") if name.startswith("events.out.tfevents")]
    assert events and os.path.getsize(out / "tensorboard" / events[0]) > 0


def test_tensorboard_without_the_package_is_one_line(tmp_path, pairs, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = run("--data", pairs, "--out", str(tmp_path / "run"), *SHAPE, *REST, "--max-steps", "1", "--tensorboard")
    assert result.exit_code == 1 and "pip install tensorboard" in result.output
    assert np.sum([line.startswith("Error") for line in result.output.splitlines()]) == 1


def test_only_the_runs_own_temporaries_are_removed(tmp_path):
    from blurgen.deblur.run_folder import TrainRunFolder

    folder = TrainRunFolder(str(tmp_path))
    for name in (".last.pt.abc123.tmp", ".config.json.x1.tmp", ".step_0000010.pt.q.tmp", ".notes.tmp"):
        (tmp_path / name).write_bytes(b"x")
    folder.remove_temporaries()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp"]
