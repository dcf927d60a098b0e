"""What `blurgen train` does for a user who pipes it to a log or runs it under a scheduler
(issue 22): progress lines when piped, SIGTERM/SIGINT stop at a step boundary with a checkpoint
and `--resume` continues bit-exactly; the resume rules live in ``blurgen.deblur.resume`` (issue
18), so a Python caller resumes as the CLI does; and the smaller points (`--data gopro:ROOT`,
`--threads`, the ratio in the summary, `--epochs` on a `--max-steps` run, the VGG19 message)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from deblur_fixtures import make_gopro_tree, make_pairs_file

from blurgen.cli import main

torch.set_num_threads(1)
TINY = ["--crop", "32", "--batch-size", "2", "--width", "4", "--blocks", "1", "--critic-width", "4",
        "--critic-layers", "2", "--critic-steps", "1", "--random-vgg", "--workers", "0", "--val-count", "1",
        "--keep-every", "0", "--device", "cpu", "--threads", "1"]
#: Long enough that a signal sent after step 1 lands well before the end.
SLOW = ["--crop", "40", "--critic-steps", "2", "--max-steps", "16", "--log-every", "1000", "--val-every", "1000",
        "--ckpt-every", "1000"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return str(make_pairs_file(tmp_path_factory.mktemp("data") / "pairs.h5", n=6, size=48))


def run(*args):
    result = CliRunner().invoke(main, ["train", *args])
    assert "Traceback" not in result.output, result.output
    return result


def networks(path: str) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, weights_only=True)
    state = {f"g.{k}": v for k, v in ckpt["generator"].items()}
    state.update({f"d.{k}": v for k, v in ckpt["critic"].items()})
    state.update({f"opt_g.{k}": v for k, v in ckpt["opt_g"]["state"][0].items()})
    return state


def assert_same_networks(a: str, b: str) -> None:
    sa, sb = networks(a), networks(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def uninterrupted(pairs, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("straight") / "run")
    result = run("--data", pairs, "--out", out, *TINY, *SLOW)
    assert result.exit_code == 0 and "done: step 16" in result.output, result.output
    return os.path.join(out, "last.pt")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_at_the_next_step_and_resume_is_bit_exact(tmp_path, pairs, uninterrupted,
                                                                        signum, code):
    out = str(tmp_path / "run")
    argv = [sys.executable, "-c", "from blurgen.cli import main; main()", "train", "--data", pairs, "--out", out,
            *TINY, *SLOW]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:  # piped: a line before the first step, one after step 1
        lines.append(line.rstrip("\n"))
        if line.startswith("step 1/16"):
            proc.send_signal(signum)
            break
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (lines, rest, err)
    assert lines[0].startswith("training 16 steps") and "synthetic only" in lines[0], lines
    assert "it/s" in lines[-1] and "ETA" in lines[-1] and "loss_g" in lines[-1], lines
    stopped = torch.load(os.path.join(out, "last.pt"), weights_only=True)["step"]
    assert 1 <= stopped < 16
    assert err.strip().splitlines() == [f"blurgen train: stopped by {signal.Signals(signum).name} at step "
                                        f"{stopped}; checkpoint written, continue with --resume"]
    resumed = run("--out", out, "--resume", "--threads", "1")
    assert resumed.exit_code == 0 and f"from step {stopped}" in resumed.output, resumed.output
    assert_same_networks(os.path.join(out, "last.pt"), uninterrupted)


def test_python_resume_gives_the_weights_of_the_cli_resume(tmp_path, pairs):
    from blurgen.deblur.resume import open_run

    first = str(tmp_path / "cli")
    assert run("--data", pairs, "--out", first, *TINY, "--max-steps", "2", "--log-every", "1").exit_code == 0
    second = str(tmp_path / "py")
    shutil.copytree(first, second)
    resumed = run("--out", first, "--resume", "--max-steps", "4")
    assert resumed.exit_code == 0 and "extending the run from 2 to 4 steps" in resumed.output, resumed.output
    said: list[str] = []
    trainer = open_run(second, resume=True, max_steps=4, report=said.append)
    assert trainer.step == 2 and any("extending the run from 2 to 4" in line for line in said)
    trainer.run()
    assert trainer.step == 4
    assert_same_networks(os.path.join(first, "last.pt"), os.path.join(second, "last.pt"))


def test_python_resume_names_a_setting_that_differs(tmp_path, pairs):
    from blurgen.deblur.resume import open_run
    from blurgen.deblur.train import ResumeMismatchError

    out = str(tmp_path / "run")
    assert run("--data", pairs, "--out", out, *TINY, "--max-steps", "1").exit_code == 0
    with pytest.raises(ResumeMismatchError, match=r"settings differ.*crop 32 -> 40"):
        open_run(out, resume=True, crop=40)


def test_epochs_on_a_max_steps_run_replace_them_and_a_single_source_has_no_ratio(tmp_path, pairs):
    out = str(tmp_path / "run")
    first = run("--data", pairs, "--out", out, *TINY, "--max-steps", "2", "--log-every", "1")
    assert first.exit_code == 0 and "ratio" not in first.output and "synthetic only" in first.output, first.output
    # 5 training samples, batch 2: 2 steps per epoch, so --epochs 3 is 6 steps.
    longer = run("--out", out, "--resume", "--epochs", "3")
    assert longer.exit_code == 0, longer.output
    assert "--epochs 3 replaces the run's --max-steps 2" in longer.output
    assert "done: step 6" in longer.output


def test_data_gopro_root_is_the_same_as_gopro_root(tmp_path, pairs):
    root = str(make_gopro_tree(tmp_path / "G", sequences=1, frames=3, size=(48, 40), splits=("train",)))
    out = str(tmp_path / "run")
    result = run("--data", f"gopro:{root}", "--out", out, *TINY, "--max-steps", "1")
    assert result.exit_code == 0 and "GoPro only" in result.output, result.output
    assert torch.load(os.path.join(out, "last.pt"), weights_only=True)["train_config"]["gopro"] == root
    both = run("--data", f"gopro:{root}", "--gopro", root, "--out", str(tmp_path / "b"), *TINY)
    assert both.exit_code == 2 and "both name a GoPro source" in both.output
    missing = run("--data", f"gopro:{tmp_path / 'nope'}", "--out", str(tmp_path / "c"), *TINY)
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_threads_sets_torchs_thread_count(tmp_path, pairs):
    from blurgen.deblur.train import TrainConfig, Trainer

    before = torch.get_num_threads()
    try:
        Trainer(TrainConfig(out=str(tmp_path / "r"), data=pairs, ratio=(1, 0), crop=32, width=4, blocks=1,
                            critic_width=4, critic_layers=2, random_vgg=True, workers=0, val_count=1, threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert run("--data", pairs, "--out", str(tmp_path / "x"), "--threads", "0").exit_code == 2


def test_piped_progress_lines_come_after_the_first_step_and_every_interval(tmp_path):
    from blurgen.deblur.loggers import Loggers
    from blurgen.deblur.run_folder import TrainRunFolder
    from blurgen.deblur.train_config import TrainConfig

    now = [0.0]
    lines: list[str] = []
    loggers = Loggers(TrainRunFolder(str(tmp_path)), TrainConfig(out=str(tmp_path), data="x", ratio=(1, 0)),
                      lines.append, every=10.0, clock=lambda: now[0])
    loggers.start(0, 100, 100, "training 100 steps")
    assert lines == ["training 100 steps"] and loggers.line_due()  # the first step is always shown
    values = dict(loss_d=1.0, wasserstein=0.5, gp=0.1, loss_g=2.0, loss_content=1.5, lr=1e-4, it_per_s=3.0,
                  elapsed_s=1.0, eta_s=30.0)
    loggers.step(1, values, record=False)
    assert lines[-1].startswith("step 1/100") and not os.path.exists(tmp_path / "log.csv")
    now[0] = 9.9
    assert not loggers.line_due()
    now[0] = 10.0
    assert loggers.line_due()


def test_missing_vgg19_names_the_file_and_folder_and_other_ranks_stay_quiet(tmp_path, caplog, monkeypatch):
    from blurgen.deblur.losses import VGG19_FILE, PerceptualLoss

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with caplog.at_level(logging.WARNING, logger="blurgen.deblur.losses"):
        assert PerceptualLoss().mode == "pixel-mse"
        assert PerceptualLoss(warn=False).mode == "pixel-mse"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1, messages
    assert VGG19_FILE == "vgg19-dcbb9e9d.pth"
    assert f"put {VGG19_FILE}" in messages[0] and str(tmp_path / "hub" / "checkpoints") in messages[0]
    assert "--vgg-weights PATH" in messages[0]
