"""The downstream benchmark is fair (only the blur differs between recipes; the restorer starts
as the identity), its alignment finds shifts and exposure changes, and its verdicts follow the
seed spread. A slow test runs a tiny version end to end on a fake Köhler folder."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import bench_downstream as bench  # noqa: E402
import downstream_data as data  # noqa: E402
import downstream_net as net  # noqa: E402


def test_every_recipe_gets_the_same_sharp_crops_and_camera_draws(tmp_path):
    made = {name: data.make_pairs(bench.RECIPES[name], str(tmp_path / f"{name}.h5"), 4, 32, 3, str(tmp_path))
            for name in ("shake2d", "camera3d", "lines", "shake2d-len-1-16", "camera3d-len-1-16")}
    first = made["shake2d"]
    for name, pairs in made.items():
        assert np.array_equal(pairs["sharp"], first["sharp"]), name
        for param in ("gain", "noise_a", "noise_b", "jpeg_quality"):
            assert np.array_equal(pairs["params"][param], first["params"][param]), (name, param)
        if name != "shake2d":
            assert not np.array_equal(pairs["blurred"], first["blurred"]), name


def test_the_common_options_reach_every_recipe_alike(tmp_path):
    base = "--source {skimage} --jpeg-quality 40,60"
    made = {name: data.make_pairs(f"{base} {bench.RECIPES[name]}", str(tmp_path / f"{name}.h5"), 3, 32, 1,
                                  str(tmp_path)) for name in ("shake2d", "camera3d-len-1-32")}
    assert sorted(os.listdir(tmp_path / "skimage_photos")) == sorted(data.SKIMAGE_PHOTOS)
    # (the --pipeline camera recipe's sharp target is the same crop developed by its drawn camera)
    a, b = made["shake2d"], made["camera3d-len-1-32"]
    assert np.array_equal(a["sharp"], b["sharp"])
    assert np.array_equal(a["params"]["jpeg_quality"], b["params"]["jpeg_quality"])
    assert ((a["params"]["jpeg_quality"] >= 40) & (a["params"]["jpeg_quality"] <= 60)).all()


def test_crop_plan_depends_on_seed_and_sizes_only():
    plan = net.crop_plan(4, 6, 8, 10, 96, 64)
    assert np.array_equal(plan, net.crop_plan(4, 6, 8, 10, 96, 64))
    assert not np.array_equal(plan, net.crop_plan(5, 6, 8, 10, 96, 64))
    assert plan[..., 0].max() < 10 and plan[..., 1:].max() <= 32 and plan.min() >= 0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_restorer_at_initialisation_is_the_identity(seed):
    torch.manual_seed(seed)
    model = net.TinyUNet(16)
    assert 2e5 < sum(p.numel() for p in model.parameters()) < 1e6
    x = torch.rand(2, 3, 32, 48)
    assert torch.equal(model(x), x)
    image = np.random.default_rng(seed).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    assert np.array_equal(net.restore(model, image), image)


def test_one_training_step_moves_the_restorer_off_the_identity():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (4, 72, 72, 3), dtype=np.uint8)
    blurred = cv2.blur(sharp.reshape(-1, 72, 3), (5, 5)).reshape(sharp.shape)
    model = net.train(blurred, sharp, seed=0, steps=2, batch=2, crop=64, width=8)
    assert not np.array_equal(net.restore(model, blurred[0]), blurred[0])


def test_alignment_finds_a_shift_and_an_exposure_change():
    rng = np.random.default_rng(1)
    sharp = cv2.GaussianBlur(rng.integers(0, 256, (320, 320, 3)).astype(np.uint8), (0, 0), 2)
    moved = np.clip(np.roll(sharp, (7, -4), (0, 1)) * 0.7 + 20, 0, 255).astype(np.uint8)
    psnr, ssim = data.aligned_score(data.centre(moved, 288), sharp)
    assert psnr > 45 and ssim > 0.99
    blurred = cv2.blur(moved, (9, 9))
    assert data.aligned_score(data.centre(blurred, 288), sharp)[0] < psnr - 10
    # a 4x downscaled Köhler-sized frame (200 px): a smaller search (6 px) around a 160 px centre
    half = cv2.resize(sharp, (200, 200), interpolation=cv2.INTER_AREA)
    moved = np.clip(np.roll(half, (5, -3), (0, 1)) * 0.8 + 10, 0, 255).astype(np.uint8)
    crop, context, _ = data.GEOMETRY[4]
    assert data.aligned_score(data.centre(moved, crop + 2 * context), half, scale=4)[0] > 45


def test_differences_below_the_seed_spread_are_ties():
    def runs(means):  # one fake shot per split per seed
        return [{"shots": {"1_1": [m - 1, 0.5], "3_1": [m, 0.5]}} for m in means]

    results = {"shake2d": runs([20.0, 20.2, 19.8]), "camera3d": runs([20.1, 20.3, 19.9]),
               "lines": runs([21.0, 21.1, 20.9])}
    rows = {row[0]: row for row in bench.summarise(results, "shake2d")}
    assert rows["camera3d"][-1] == "tie" and rows["camera3d"][-2].startswith("+0.10")
    assert rows["lines"][-1] == "better" and rows["shake2d"][-2] == "(baseline)"


def fake_kohler(root) -> None:
    """Dead-leaves scenes blurred by random kernels, in the Köhler file layout (640 px)."""
    import blurgen
    from blurgen.sources.base import DeadLeavesSource

    source = DeadLeavesSource()
    for scene in range(1, 5):
        sharp = source.crop_with_origin(0, scene, 640, 640)[0]
        cv2.imwrite(str(root / f"GroundTruth{scene}.jpg"), sharp[..., ::-1])
        for t, kernel in enumerate(blurgen.random_kernels(12, size=15, seed=scene, length_px=10.0), start=1):
            blurred = cv2.filter2D(sharp, -1, kernel[::-1, ::-1])
            cv2.imwrite(str(root / f"Blurry{scene}_{t}.jpg"), blurred[..., ::-1])


@pytest.mark.slow
def test_tiny_benchmark_runs_end_to_end_and_resumes_from_its_cache(tmp_path):
    fake_kohler(tmp_path)
    argv = ["--kohler", str(tmp_path), "--recipes", "shake2d,lines", "--seeds", "0,1", "--steps", "3",
            "--pairs", "8", "--cache", str(tmp_path / "cache"), "--no-append", "--scale", "2",
            "--base", "--jpeg-quality 40,60"]
    rows = bench.main(argv)
    assert [r[0] for r in rows] == ["shake2d", "lines", "blurred input (identity)"]
    cached = sorted(p for p in os.listdir(tmp_path / "cache") if p.endswith(".json"))
    assert len(cached) == 4
    stamps = [os.path.getmtime(tmp_path / "cache" / p) for p in cached]
    assert bench.main(argv) == rows
    assert stamps == [os.path.getmtime(tmp_path / "cache" / p) for p in cached]
