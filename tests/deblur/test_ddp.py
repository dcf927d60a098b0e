"""DistributedDataParallel: two gloo processes compute the same gradients as one process on the
same global batch, for the generator and the critic, gradient penalty included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from deblur_fixtures import make_pairs_file

from blurgen.deblur.data import normalize
from blurgen.deblur.distributed import DistContext, average_gradients
from blurgen.deblur.losses import critic_loss
from blurgen.deblur.train import TrainConfig, Trainer

torch.set_num_threads(1)
WORLD = 2


def config(out, data, batch_size, **overrides) -> TrainConfig:
    # dropout 0: dropout masks are per-rank random streams by design, everything else is exact.
    settings = dict(out=str(out), data=data, ratio=(1, 0), crop=32, batch_size=batch_size, width=4, blocks=1,
                    critic_width=4, critic_layers=2, critic_steps=2, dropout=0.0, random_vgg=True, workers=0,
                    val_count=2, max_steps=4, ckpt_every=100, keep_every=0, log_every=100, val_every=100)
    settings.update(overrides)
    return TrainConfig(**settings)


def gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    grads = {f"g.{n}": p.grad.clone() for n, p in trainer.generator.named_parameters()}
    grads.update({f"d.{n}": p.grad.clone() for n, p in trainer.critic.named_parameters()})
    return grads


def first_step_gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Gradients left by one full training step: the generator's, and the critic's from its
    last critic iteration.

    The configs here use lr 1e-12, far below a float32 ulp of the weights, so the Adam steps
    between critic iterations leave the weights bitwise unchanged and every gradient is taken
    at the same point in both runs. (At lr 1e-4 Adam's first step is ~lr * sign(g): a gradient
    element that is float noise flips sign with the summation order and moves its weight by
    2 lr, which would test Adam, not the gradients; the torchrun test checks whole steps.)"""
    blurred, sharp = next(iter(trainer._loader()))
    dtype = next(trainer.generator.parameters()).dtype
    trainer.train_step(normalize(blurred).to(dtype), normalize(sharp).to(dtype))
    return gradients(trainer)


DTYPES = (torch.float64, torch.float32)


def _one_rank_step(out: str, data: str, ctx: DistContext, dtype: torch.dtype) -> dict:
    torch.set_default_dtype(dtype)
    try:
        trainer = Trainer(config(out, data, batch_size=2 * WORLD // ctx.world_size, lr=1e-12), ctx=ctx)
        grads = first_step_gradients(trainer)
        blurred, sharp = next(iter(trainer._loader()))
        penalty = penalty_only_gradients(trainer, normalize(blurred).to(dtype), normalize(sharp).to(dtype))
        # The bare penalty gradient, averaged over ranks as the trainer averages the critic's.
        trainer.critic.zero_grad()
        for p, g in zip(trainer.critic.parameters(), penalty):
            p.grad = g
        average_gradients(trainer.critic.parameters(), ctx)
        return {"grads": grads, "penalty": [p.grad.clone() for p in trainer.critic.parameters()]}
    finally:
        torch.set_default_dtype(torch.float32)


def _worker(rank: int, store: str, data: str, out: str, result: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        ctx = DistContext(rank=rank, world_size=WORLD)
        runs = {str(dtype): _one_rank_step(out, data, ctx, dtype) for dtype in DTYPES}
        torch.save(runs, f"{result}.{rank}")
    finally:
        dist.destroy_process_group()


def penalty_only_gradients(trainer: Trainer, blurred, sharp) -> list[torch.Tensor]:
    """Critic gradients of the gradient-penalty term alone (real vs blurred input as 'fake')."""
    from blurgen.deblur.losses import gradient_penalty

    trainer.critic.zero_grad(set_to_none=True)
    gp = gradient_penalty(trainer.critic, sharp, blurred, alpha=trainer.gan._alpha(0, 0))
    params = list(trainer.critic.parameters())
    # The final conv's bias shifts every score equally, so the penalty does not depend on it.
    grads = torch.autograd.grad(gp, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return str(make_pairs_file(tmp_path_factory.mktemp("data") / "pairs.h5", n=10, size=40))


def test_two_gloo_ranks_match_one_process_on_the_global_batch(tmp_path, pairs):
    """float64: equal to ~1e-12, i.e. the same mathematics; float32: equal up to summation order."""
    result = str(tmp_path / "grads")
    mp.spawn(_worker, args=(str(tmp_path / "store"), pairs, str(tmp_path / "ddp"), result), nprocs=WORLD)
    ranks = [torch.load(f"{result}.{r}", weights_only=True) for r in range(WORLD)]
    for dtype in DTYPES:
        expected = _one_rank_step(str(tmp_path / "single"), pairs, DistContext(), dtype)
        rtol, atol = (1e-9, 1e-12) if dtype == torch.float64 else (1e-3, 1e-4)
        for got in ranks:
            got = got[str(dtype)]
            assert got["grads"].keys() == expected["grads"].keys()
            for name, value in expected["grads"].items():
                assert got["grads"][name].dtype == dtype
                torch.testing.assert_close(got["grads"][name], value, rtol=rtol, atol=atol,
                                           msg=lambda m: f"{dtype} {name}: {m}")
            for mine, value in zip(got["penalty"], expected["penalty"]):
                torch.testing.assert_close(mine, value, rtol=rtol, atol=atol)
        # Gradients that are really there (the critic's last bias cancels in D(fake) - D(real)),
        # and a penalty gradient that is not negligible, so the comparison covers it.
        nonzero = [name for name, value in expected["grads"].items() if value.abs().max() > 0]
        assert len(nonzero) >= len(expected["grads"]) - 1
        assert max(float(g.abs().max()) for g in expected["penalty"]) > 1e-3


def test_local_penalty_alone_would_differ_from_the_global_one(pairs, tmp_path):
    """Sanity check of the test's power: one rank's unaveraged critic gradient is not the
    global-batch gradient, so the equality above is a real statement about the averaging."""
    single = Trainer(config(tmp_path / "single", pairs, batch_size=4))
    blurred, sharp = (normalize(t) for t in next(iter(single._loader())))
    alpha = single.gan._alpha(0, 0)
    full, _ = critic_loss(single.critic, sharp, blurred, alpha=alpha)
    half, _ = critic_loss(single.critic, sharp[:2], blurred[:2], alpha=alpha[:2])
    g_full = torch.autograd.grad(full, list(single.critic.parameters()))
    g_half = torch.autograd.grad(half, list(single.critic.parameters()))
    assert any(not torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(g_full, g_half))


@pytest.mark.slow  # ~45 s: two torchrun workers and a single-process run, each importing torch
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_blurgen_train_under_torchrun_matches_a_single_process(tmp_path, pairs):
    """The same command under `torchrun --nproc-per-node 2` trains the same weights (within float
    tolerance) as one process with twice the per-process batch."""
    args = ["train", "--data", pairs, "--ratio", "1:0", "--crop", "32", "--width", "4", "--blocks", "1",
            "--critic-width", "4", "--critic-steps", "2", "--dropout", "0", "--random-vgg", "--workers", "0",
            "--val-count", "2", "--max-steps", "3", "--log-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = [sys.executable, "-c", "from blurgen.cli import main; main()"]
    ddp = subprocess.run(["torchrun", "--nproc-per-node", str(WORLD), "--standalone", "--no-python",
                          *script, *args, "--batch-size", "1", "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = subprocess.run([*script, *args, "--batch-size", str(WORLD), "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    a = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    assert a["train_config"]["world_size"] == WORLD and b["train_config"]["world_size"] == 1
    assert a["data_position"]["position"] == b["data_position"]["position"] == 3 * WORLD
    # Whole Adam steps: elements whose gradient is float noise may step by +-lr differently
    # (see first_step_gradients), so: nearly all equal to 1e-6, none further apart than the
    # Adam steps taken could move them: 3 of the generator, 3 x --critic-steps 2 of the critic.
    lr = 1e-4
    for part, adam_steps in (("generator", 3), ("critic", 3 * 2)):
        diffs = torch.cat([(a[part][k] - v).abs().flatten() for k, v in b[part].items()])
        assert float((diffs <= 1e-6).float().mean()) >= 0.99, part
        assert float(diffs.max()) <= 2 * lr * adam_steps + 1e-6, part
    assert len(a["rng"]["per_rank"]) == WORLD


def _stop_worker(rank: int, store: str, result: str) -> None:
    import signal

    from blurgen.deblur.stopping import StopSignals

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    ctx = DistContext(rank=rank, world_size=WORLD)
    signals = StopSignals()
    before = signals.agreed(ctx)
    if rank == 1:  # the signal reached one rank only
        signals.received = int(signal.SIGTERM)
    after = signals.agreed(ctx)
    torch.save({"before": before, "after": after}, f"{result}.{rank}")
    dist.destroy_process_group()


def test_ranks_agree_on_a_stop_signal_only_one_of_them_received(tmp_path):
    import signal

    result = str(tmp_path / "stop")
    mp.spawn(_stop_worker, args=(str(tmp_path / "store"), result), nprocs=WORLD)
    for rank in range(WORLD):
        assert torch.load(f"{result}.{rank}") == {"before": None, "after": int(signal.SIGTERM)}
