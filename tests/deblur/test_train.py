"""DeblurGAN training loop: exact resume, checkpoint format, schedule, NaN and interrupt handling,
and (slow) that a short run really learns to deblur."""

from __future__ import annotations

import csv
import dataclasses
import os

import pytest
import torch
from deblur_fixtures import make_gopro_tree, make_pairs_file

from blurgen.deblur.checkpoint import CheckpointError, load_checkpoint
from blurgen.deblur.models import build_generator
from blurgen.deblur.train import LinearDecaySchedule, NonFiniteLossError, ResumeMismatchError, TrainConfig, Trainer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return str(make_pairs_file(tmp_path_factory.mktemp("data") / "pairs.h5", n=10, size=40))


def tiny(out, data, **overrides) -> TrainConfig:
    settings = dict(out=str(out), data=data, ratio=(1, 0), crop=32, batch_size=2, width=4, blocks=1,
                    critic_width=4, critic_layers=2, critic_steps=2, random_vgg=True, workers=0,
                    val_count=2, max_steps=6, ckpt_every=3, keep_every=0, log_every=1, val_every=100)
    settings.update(overrides)
    return TrainConfig(**settings)


def state_of(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {**{f"g.{k}": v.clone() for k, v in trainer.generator.state_dict().items()},
            **{f"d.{k}": v.clone() for k, v in trainer.critic.state_dict().items()}}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_resume_continues_exactly_with_a_worker_process(tmp_path, pairs):
    """N steps, stop, resume in a fresh Trainer, to 2N == 2N uninterrupted (bitwise)."""
    straight = Trainer(tiny(tmp_path / "a", pairs, workers=1))
    straight.run()
    first = Trainer(tiny(tmp_path / "b", pairs, workers=1))
    first.run(until_step=3)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 3
    second = Trainer(tiny(tmp_path / "b", pairs, workers=1))
    assert second.resume() == 3
    second.run()
    assert second.step == straight.step == 6
    assert_same_state(state_of(second), state_of(straight))
    for opt in ("opt_g", "opt_d"):
        sa = getattr(straight, opt).state_dict()["state"][0]["exp_avg_sq"]
        sb = getattr(second, opt).state_dict()["state"][0]["exp_avg_sq"]
        torch.testing.assert_close(sa, sb, rtol=0, atol=0)
    # The stop is not a no-op: the weights moved during the second half.
    assert any(not torch.equal(v, state_of(first)[k]) for k, v in state_of(second).items())


def test_resume_mixing_two_sources_matches_uninterrupted(tmp_path, pairs):
    root = str(make_gopro_tree(tmp_path / "GOPRO", sequences=2, frames=3, size=(48, 40), splits=("train",)))
    cfg = dict(gopro=root, ratio=(2, 1), max_steps=4, ckpt_every=2, val_count=1)
    straight = Trainer(tiny(tmp_path / "a", pairs, **cfg))
    straight.run()
    Trainer(tiny(tmp_path / "b", pairs, **cfg)).run(until_step=2)
    resumed = Trainer(tiny(tmp_path / "b", pairs, **cfg))
    resumed.resume()
    resumed.run()
    assert_same_state(state_of(resumed), state_of(straight))


def test_checkpoint_loads_weights_only_and_rebuilds_the_generator(tmp_path, pairs):
    trainer = Trainer(tiny(tmp_path / "run", pairs, max_steps=2, val_every=2))
    trainer.run()
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["format"] == "blurgen-deblurgan" and ckpt["version"] == 1
    assert ckpt["step"] == 2 and ckpt["epoch"] == 0 and ckpt["data_position"]["position"] == 4
    assert isinstance(ckpt["rng"]["torch_cpu"], torch.Tensor) and ckpt["rng"]["torch_cpu"].dtype == torch.uint8
    assert ckpt["train_config"]["width"] == 4 and ckpt["train_config"]["content_mode"] == "random-vgg19"
    generator = build_generator(**ckpt["generator_config"])
    generator.load_state_dict(ckpt["generator"])
    generator.eval(), trainer.generator.eval()
    x = torch.rand(1, 3, 20, 24) * 2 - 1
    torch.testing.assert_close(generator(x), trainer.generator(x))
    # Logs: one CSV row per step, one validation row at the end, both readable.
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2] and float(rows[0]["lr"]) == pytest.approx(1e-4)
    with open(tmp_path / "run" / "val.csv") as handle:
        val = list(csv.DictReader(handle))
    assert len(val) == 1 and val[0]["source"] == "synthetic" and float(val[0]["blurred_psnr"]) > 10


def test_schedule_is_constant_then_linear_to_zero():
    schedule = LinearDecaySchedule(total_steps=10)
    assert [schedule.factor(s) for s in range(10)] == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert schedule.factor(10) == 0


def test_epochs_set_the_step_count_from_the_data(tmp_path, pairs):
    # 10 samples, 2 held out -> 8 training samples, global batch 2 -> 4 steps per epoch.
    trainer = Trainer(tiny(tmp_path / "run", pairs, max_steps=None, epochs=3))
    assert trainer.steps_per_epoch == 4 and trainer.total_steps == 12
    assert trainer.schedule.decay_start == 6


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, pairs):
    trainer = Trainer(tiny(tmp_path / "run", pairs, inject_nan_step=5, ckpt_every=2))
    with pytest.raises(NonFiniteLossError, match="non-finite critic loss .* at step 5"):
        trainer.run()
    assert trainer.step == 4
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 4
    # The weights in memory were not touched by the poisoned step either.
    for key, value in ckpt["generator"].items():
        torch.testing.assert_close(value, trainer.generator.state_dict()[key], rtol=0, atol=0)
    assert all(torch.isfinite(v).all() for v in ckpt["critic"].values())


def test_interrupt_leaves_only_complete_checkpoints(tmp_path, pairs, monkeypatch):
    trainer = Trainer(tiny(tmp_path / "run", pairs, ckpt_every=2))
    original = trainer.train_step

    def interrupted(*args):
        if trainer.step == 3:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert sorted(os.listdir(tmp_path / "run")) == [".train.lock", "config.json", "last.pt", "log.csv"]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    from blurgen.deblur.run_folder import TrainRunFolder

    assert not TrainRunFolder(str(tmp_path / "run")).in_use()  # the interrupted trainer let go of its lock


def test_resume_with_different_settings_is_refused(tmp_path, pairs):
    Trainer(tiny(tmp_path / "run", pairs, max_steps=2)).run()
    other = Trainer(tiny(tmp_path / "run", pairs, max_steps=2, lr=2e-4))
    with pytest.raises(ResumeMismatchError, match="lr 0.0001 -> 0.0002"):
        other.resume()


def test_resume_drops_log_rows_written_after_the_checkpoint(tmp_path, pairs):
    Trainer(tiny(tmp_path / "run", pairs, max_steps=4, ckpt_every=2)).run(until_step=2)
    with open(tmp_path / "run" / "log.csv", "a") as handle:  # as if steps 3 ran before a crash
        handle.write("3,0,1,1,1,1,1,1,0.0001,1,1\n")
    trainer = Trainer(tiny(tmp_path / "run", pairs, max_steps=4, ckpt_every=2))
    trainer.resume()
    trainer.run()
    with open(tmp_path / "run" / "log.csv") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4]


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert "not a readable PyTorch checkpoint" in str(info.value) and "\n" not in str(info.value)
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(CheckpointError, match="not a blurgen DeblurGAN checkpoint"):
        load_checkpoint(bad)


def test_config_validation_names_the_field(tmp_path, pairs):
    with pytest.raises(ValueError, match="gives a share to gopro"):
        TrainConfig(out=str(tmp_path), data=pairs, ratio=(2, 1))
    with pytest.raises(ValueError, match="crop=8"):
        tiny(tmp_path, pairs, crop=8)
    with pytest.raises(ValueError, match="at least one training source"):
        TrainConfig(out=str(tmp_path))
    cfg = tiny(tmp_path, pairs)
    assert dataclasses.replace(cfg, ratio=[1, 0]).ratio == (1, 0)


@pytest.mark.slow
def test_short_run_beats_the_blurred_inputs(tmp_path):
    """Learning is real: validation PSNR of a small generator after a short CPU run exceeds the
    blurred inputs' PSNR against the sharp images (same settings as bench_train.py --learn)."""
    torch.set_num_threads(2)
    data = str(make_pairs_file(tmp_path / "pairs.h5", n=72, size=64, seed=3, kernel_size=25, length_px=14.0))
    config = TrainConfig(out=str(tmp_path / "run"), data=data, ratio=(1, 0), crop=48, batch_size=4,
                         width=16, blocks=2, critic_width=16, critic_layers=2, critic_steps=1, dropout=0.0,
                         lr=1e-3, max_steps=600, workers=1, val_count=8, val_crop=64, val_every=150,
                         ckpt_every=600, keep_every=0, log_every=50, seed=0)
    result = Trainer(config, report=print).run()["last_validation"]["synthetic"]
    print(f"val PSNR {result['psnr']:.2f} dB vs blurred {result['blurred_psnr']:.2f} dB")
    assert result["psnr"] > result["blurred_psnr"]


def test_a_run_from_step_0_never_replaces_a_finished_runs_checkpoints(tmp_path, pairs):
    """Checked under the run lock: a trainer that looked at the folder before another one
    finished there must not overwrite that run."""
    Trainer(tiny(tmp_path / "run", pairs)).run()
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run's checkpoints"):
        Trainer(tiny(tmp_path / "run", pairs, width=8)).run()
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
