"""`blurgen train`: exit codes as documented (2 usage, 1 failure), one-line messages, resume."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from deblur_fixtures import make_gopro_tree, make_pairs_file

from blurgen.cli import main

torch.set_num_threads(1)
TINY = ["--crop", "32", "--batch-size", "2", "--width", "4", "--blocks", "1", "--critic-width", "4",
        "--critic-layers", "2", "--critic-steps", "1", "--random-vgg", "--workers", "0", "--val-count", "1",
        "--max-steps", "4", "--log-every", "1", "--keep-every", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return str(make_pairs_file(tmp_path_factory.mktemp("data") / "pairs.h5", n=6, size=40))


def run(*args):
    return CliRunner().invoke(main, ["train", *args])


def assert_failure(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code == 1:  # progress lines may come first; the failure itself is one last line
        errors = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and result.output.strip().splitlines()[-1] == errors[0], result.output
        for fragment in fragments:
            assert fragment in errors[0], result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_help_has_an_example():
    result = run("--help")
    assert result.exit_code == 0 and "blurgen train --data pairs.h5 --gopro" in result.output


def test_no_source_is_a_usage_error(tmp_path):
    assert_failure(run("--out", str(tmp_path / "r")), 2, "at least one source")


@pytest.mark.parametrize("ratio, fragment", [("2:1", "--gopro was not given"), ("0:0", "0:0"),
                                             ("two", "expected two integers in [0, 1000]"), ("1:-1", "expected two integers"),
                                             ("3000000000:1", "expected two integers in [0, 1000]")])
def test_bad_ratio_is_a_usage_error(tmp_path, pairs, ratio, fragment):
    assert_failure(run("--data", pairs, "--ratio", ratio, "--out", str(tmp_path / "r")), 2, fragment)


def test_ratio_share_for_missing_synthetic_source(tmp_path):
    root = make_gopro_tree(tmp_path / "G", sequences=1, frames=2, splits=("train",))
    assert_failure(run("--gopro", str(root), "--ratio", "2:1", "--out", str(tmp_path / "r")), 2, "--data was not given")


def test_missing_paths_are_usage_errors(tmp_path, pairs):
    assert_failure(run("--data", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r")), 2, "does not exist")
    assert_failure(run("--gopro", str(tmp_path / "nope"), "--out", str(tmp_path / "r")), 2, "does not exist")
    assert_failure(run("--data", pairs, "--vgg-weights", str(tmp_path / "v.pth"), "--out", str(tmp_path / "r")),
                   2, "does not exist")


def test_foreign_hdf5_fails_in_one_line(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as h5:
        h5["images"] = np.zeros((2, 8, 8, 3), np.uint8)
    assert_failure(run("--data", str(path), "--out", str(tmp_path / "r"), *TINY), 1, "not a blurgen pairs file")


def test_gopro_without_sharp_folders_fails(tmp_path):
    (tmp_path / "G" / "train" / "GOPR0000_11_00" / "blur").mkdir(parents=True)
    assert_failure(run("--gopro", str(tmp_path / "G"), "--out", str(tmp_path / "r"), *TINY), 1,
                   "not a GoPro root")


def test_gopro_with_mismatched_counts_fails(tmp_path):
    root = make_gopro_tree(tmp_path / "G", sequences=1, frames=3, size=(48, 40), splits=("train",))
    (root / "train" / "GOPR0000_11_00" / "sharp" / "000002.png").unlink()
    assert_failure(run("--gopro", str(root), "--out", str(tmp_path / "r"), *TINY), 1, "3 blur frames vs 2 sharp")


def test_trains_both_sources_and_refuses_an_existing_run(tmp_path, pairs):
    root = make_gopro_tree(tmp_path / "G", sequences=1, frames=3, size=(48, 40), splits=("train",))
    out = str(tmp_path / "run")
    result = run("--data", pairs, "--gopro", str(root), "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    assert "ratio 2:1" in result.output and "done: step 4" in result.output
    assert torch.load(f"{out}/last.pt", weights_only=True)["step"] == 4
    again = run("--data", pairs, "--gopro", str(root), "--out", out, *TINY)
    assert_failure(again, 1, "already exists", "--resume")


def test_nan_loss_stops_and_resume_continues(tmp_path, pairs):
    out = str(tmp_path / "run")
    result = run("--data", pairs, "--out", out, *TINY, "--ckpt-every", "1", "--inject-nan-step", "3")
    assert_failure(result, 1, "non-finite critic loss", "at step 3", "last good checkpoint: step 2")
    assert torch.load(f"{out}/last.pt", weights_only=True)["step"] == 2
    resumed = run("--data", pairs, "--out", out, *TINY, "--ckpt-every", "1", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output and "from step 2" in resumed.output and "done: step 4" in resumed.output


def test_resume_with_other_settings_or_a_damaged_checkpoint_fails(tmp_path, pairs):
    out = str(tmp_path / "run")
    assert run("--data", pairs, "--out", out, *TINY).exit_code == 0
    assert_failure(run("--data", pairs, "--out", out, *TINY, "--lr", "0.001", "--resume"), 1,
                   "settings differ", "lr 0.0001 -> 0.001")
    with open(f"{out}/last.pt", "wb") as handle:
        handle.write(b"\x00garbage")
    assert_failure(run("--data", pairs, "--out", out, *TINY, "--resume"), 1, "not a readable PyTorch checkpoint")


def test_ctrl_c_exits_with_one_line_and_a_resumable_checkpoint(tmp_path, pairs, monkeypatch):
    from blurgen.deblur.train import Trainer

    original = Trainer.train_step

    def interrupted(self, *args):
        if self.step == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    out = str(tmp_path / "run")
    result = run("--data", pairs, "--out", out, *TINY, "--ckpt-every", "2")
    assert result.exit_code == 130
    lines = [line for line in result.output.splitlines() if "interrupted" in line]
    assert lines == ["blurgen train: interrupted at step 3; resume from step 2 with --resume"]
    assert "Traceback" not in result.output


def test_without_torch_says_install_the_train_extra(tmp_path, pairs, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    result = run("--data", pairs, "--out", str(tmp_path / "r"))
    assert_failure(result, 1, "install blurgen[train]")


def test_command_module_does_not_import_torch():
    import subprocess

    code = ("import sys, blurgen, blurgen.cli.train_cmd; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_data_error_inside_a_loader_worker_is_one_line(tmp_path):
    root = make_gopro_tree(tmp_path / "GOPRO", sequences=1, frames=3, size=(40, 40))
    for victim in (root / "train").glob("*/blur/*.png"):  # headers fine, data cut: fails only on decode
        victim.write_bytes(victim.read_bytes()[:60])
    result = run("--gopro", str(root), "--out", str(tmp_path / "run"), *TINY, "--workers", "1",
                 "--val-count", "1")
    assert_failure(result, 1, "frame pairs in a row failed to decode")
    assert "Original Traceback" not in result.output


@pytest.mark.parametrize("content", [b"not weights", None])
def test_unusable_vgg_weights_fail_in_one_line(tmp_path, pairs, content):
    weights = tmp_path / "vgg.pt"
    if content is None:  # a real torch file, but not VGG19 weights
        torch.save({"weight": torch.zeros(2, 2)}, weights)
    else:
        weights.write_bytes(content)
    args = [a for a in TINY if a != "--random-vgg"]
    result = run("--data", pairs, "--out", str(tmp_path / "run"), *args, "--vgg-weights", str(weights))
    assert_failure(result, 1, "vgg.pt")


@pytest.mark.parametrize("args, fragment", [
    (["--lr", "inf"], "--lr"), (["--gp-weight", "nan"], "gp_weight"), (["--content-weight", "inf"], "--content-weight"),
    (["--device", "mps"], "--device"),
])
def test_unusable_numbers_and_devices_are_usage_errors(tmp_path, pairs, args, fragment):
    assert_failure(run("--data", pairs, "--out", str(tmp_path / "run"), *TINY, *args), 2, fragment)
    assert not (tmp_path / "run").exists()


def test_a_fifo_as_data_is_a_usage_error_not_a_hang(tmp_path):
    import os

    fifo = tmp_path / "pairs.h5"
    os.mkfifo(fifo)
    assert_failure(run("--data", str(fifo), "--out", str(tmp_path / "run"), *TINY), 2, "not a regular file")


def test_a_run_stopped_before_its_first_checkpoint_can_be_started_again(tmp_path, pairs):
    """A blurgen run folder with config.json and logs but no checkpoint holds nothing to keep: a
    plain rerun and --resume (same settings) both start from step 0 there instead of refusing.
    A folder with somebody else's config.json, or a --resume with other settings, is refused."""
    out = tmp_path / "run"
    assert run("--data", pairs, "--out", str(out), *TINY).exit_code == 0
    (out / "last.pt").unlink()  # as if killed before its first checkpoint
    (out / "log.csv").write_text("step\n")  # a log with a header only
    (out / ".last.pt.abc123.tmp").write_bytes(b"half a save")
    result = run("--data", pairs, "--out", str(out), *TINY)
    assert result.exit_code == 0, result.output
    assert (out / "last.pt").is_file() and not (out / ".last.pt.abc123.tmp").exists()
    assert oct((out / "last.pt").stat().st_mode & 0o777) != "0o600"  # the usual mode, not mkstemp's
    (out / "last.pt").unlink()
    assert_failure(run("--data", pairs, "--out", str(out), *TINY, "--resume", "--width", "8"), 1, "settings differ")
    result = run("--data", pairs, "--out", str(out), *TINY, "--resume")
    assert result.exit_code == 0 and "starting from step 0" in result.output, result.output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    assert_failure(run("--data", pairs, "--out", str(mine), *TINY), 1, "already exists")
    assert (mine / "config.json").read_text() == '{"my": "settings"}'


def test_a_folder_another_trainer_is_writing_is_refused(tmp_path, pairs):
    from blurgen.deblur.run_folder import TrainRunFolder

    out = tmp_path / "run"
    assert run("--data", pairs, "--out", str(out), *TINY).exit_code == 0
    with TrainRunFolder(str(out)).locked():  # as a trainer still running in this folder holds it
        assert_failure(run("--data", pairs, "--out", str(out), *TINY, "--resume"), 1, "in use by another blurgen train")
    assert run("--data", pairs, "--out", str(out), *TINY, "--resume").exit_code == 0


def test_a_folder_left_with_only_the_lock_or_an_empty_config_starts_again(tmp_path, pairs):
    """A kill (or a full disk) between taking the lock and writing config.json leaves such a folder."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".train.lock").write_bytes(b"")
    (out / "config.json").write_bytes(b"")
    assert run("--data", pairs, "--out", str(out), *TINY).exit_code == 0
    (out / "last.pt").unlink()
    (out / "config.json").unlink()
    result = run("--data", pairs, "--out", str(out), *TINY, "--resume")
    assert result.exit_code == 0 and "starting from step 0" in result.output, result.output
