"""A motion model from outside the library (tests/toy_motion.py) works everywhere a built-in one
does: make with spawned workers, the kernels sheet and .npy, random_kernels, the augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from toy_motion import BOX, box_kernel

from blurgen import random_kernels, read_pairs
from blurgen.cli import main
from blurgen.core.config import KernelConfig
from blurgen.motion import registry

PATH = "toy_motion:BOX"


def _make(tmp_path, name, *extra):
    out = str(tmp_path / name)
    result = CliRunner().invoke(main, ["make", "--n", "6", "--out", out, "--size", "32", "--kernel-size", "15",
                                       "--motion", PATH, "--length-px", "5", "--block-size", "2", *extra])
    assert result.exit_code == 0, result.output
    return out


def test_a_plugin_model_makes_a_dataset_with_spawned_workers_and_the_same_arrays(tmp_path):
    one = _make(tmp_path, "one.h5", "--workers", "1")
    two = _make(tmp_path, "two.h5", "--workers", "2")  # spawned: they import toy_motion again
    with read_pairs(one) as a, read_pairs(two) as b:
        assert len(a) == len(b) == 6
        for i in range(6):
            for x, y in zip(a[i], b[i]):
                np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a[3][2], box_kernel(15, 5))
        assert a.params["box_width_px"].tolist() == [5] * 6
        assert b.params["kernel_support_px"].tolist() == [5] * 6


def test_a_plugin_model_draws_a_kernel_sheet_and_npy(tmp_path):
    runner = CliRunner()
    npy = str(tmp_path / "k.npy")
    result = runner.invoke(main, ["kernels", "--n", "3", "--out", npy, "--motion", PATH, "--kernel-size", "9",
                                  "--length-px", "3"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(npy), np.repeat(box_kernel(9, 3)[None], 3, axis=0))
    png = str(tmp_path / "k.png")
    result = runner.invoke(main, ["kernels", "--n", "4", "--out", png, "--motion", PATH])
    assert result.exit_code == 0 and (tmp_path / "k.png").stat().st_size > 0, result.output
    result = runner.invoke(main, ["kernels", "--n", "4", "--out", png, "--motion", PATH, "--anxiety", "0.01",
                                  "--overwrite"])
    assert result.exit_code == 2 and "applies to --motion shake2d only" in result.output


def test_a_plugin_model_serves_random_kernels_and_the_augmentation():
    torch = pytest.importorskip("torch")
    from blurgen.transforms import RandomCameraShake, camera_shake

    config = KernelConfig(size=11, length_px=7.0)
    np.testing.assert_array_equal(random_kernels(2, config=config, motion=PATH)[1], box_kernel(11, 7))
    shake = RandomCameraShake(config, motion=PATH, p=1.0, seed=0)
    x = torch.rand(3, 3, 24, 20)
    expected = camera_shake(x, np.repeat(box_kernel(11, 7)[None], 3, axis=0))
    torch.testing.assert_close(shake(x), expected, rtol=0, atol=1e-6)


def test_registering_by_name_and_unknown_names():
    registry.register(BOX, PATH)
    try:
        assert registry.get("box") is BOX and "box" in registry.names()
    finally:
        registry._MODELS.pop("box")
    with pytest.raises(ValueError, match="unknown motion model 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError, match="cannot be imported"):
        registry.get("no_such_module:X")
    result = CliRunner().invoke(main, ["kernels", "--n", "1", "--out", "x.npy", "--motion", "os:path"])
    assert result.exit_code == 2 and "not a blurgen MotionModel" in result.output
