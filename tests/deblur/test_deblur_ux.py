"""Issue 22's inference and data points: `blurgen deblur` picks whole-image inference within a
stated pixel budget, says which mode it used and prints a line per image when piped, takes
`--threads`; `PairsDataset` offers [0, 1] tensors and refuses an empty crop; `blurgen inspect`
piped into a reader that stops early exits quietly."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from deblur_fixtures import make_pairs_file

from blurgen.cli import main
from blurgen.deblur.models import build_generator, generator_config

torch.set_num_threads(1)


def checkpoint(path) -> str:
    torch.manual_seed(0)
    g = build_generator("resnet", width=4, n_blocks=1)
    torch.save({"format": "blurgen-deblurgan", "version": 1, "generator": g.state_dict(),
                "generator_config": generator_config(g), "step": 1}, path)
    return str(path)


def write_image(path, h: int, w: int, seed: int = 0) -> None:
    import cv2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_choose_tile_runs_whole_images_within_the_budget():
    from blurgen.deblur.inference import BYTES_PER_PIXEL_PER_WIDTH, CPU_MEMORY_BUDGET, choose_tile, whole_image_budget

    g = build_generator("resnet", width=64, n_blocks=1)
    budget = whole_image_budget(g, "cpu")
    assert budget == CPU_MEMORY_BUDGET // (BYTES_PER_PIXEL_PER_WIDTH * 64)
    assert 1920 * 1080 <= budget < 3840 * 2160  # 1080p runs whole on the CPU, 4K is tiled
    assert whole_image_budget(build_generator("resnet", width=8, n_blocks=1), "cpu") == 8 * budget
    assert choose_tile((720, 1280, 3), None, budget) is None
    assert choose_tile((budget, 2, 3), None, budget) == 512
    assert choose_tile((720, 1280, 3), 0, budget) is None
    assert choose_tile((720, 1280, 3), 256, budget) == 256


def test_piped_deblur_prints_a_line_per_image_with_the_mode_it_chose(tmp_path, monkeypatch):
    import blurgen.deblur.inference as inference

    write_image(tmp_path / "in" / "a.png", 40, 60)
    write_image(tmp_path / "in" / "b.png", 100, 120, seed=1)
    ckpt = checkpoint(tmp_path / "g.pt")
    # A budget between the two images: a.png (2400 px) runs whole, b.png (12000 px) is tiled.
    monkeypatch.setattr(inference, "CPU_MEMORY_BUDGET", 5000 * inference.BYTES_PER_PIXEL_PER_WIDTH * 4)
    result = CliRunner().invoke(main, ["deblur", "--checkpoint", ckpt, str(tmp_path / "in"), "--out",
                                       str(tmp_path / "out"), "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("deblur: ")]
    assert len(lines) == 2, result.output
    assert lines[0].startswith("deblur: 1/2 ") and "a.png: 60x40, whole image (0.0 MP within the 0.0 MP budget of cpu)" \
        in lines[0]
    assert lines[1].startswith("deblur: 2/2 ") and "b.png: 120x100, tiled 512 px" not in lines[1]
    assert "b.png: 120x100, whole image (fits the 512 px tile)" in lines[1]  # auto tiles are 512: it fits
    assert all(" s, ETA " in line for line in lines)
    assert os.path.exists(tmp_path / "out" / "a.png") and os.path.exists(tmp_path / "out" / "b.png")


def test_deblur_tile_option_accepts_auto_or_a_side_only(tmp_path):
    write_image(tmp_path / "a.png", 40, 60)
    ckpt = checkpoint(tmp_path / "g.pt")
    for bad in ("big", "-3", "16"):
        result = CliRunner().invoke(main, ["deblur", "--checkpoint", ckpt, str(tmp_path / "a.png"), "--out",
                                           str(tmp_path / "o"), "--tile", bad])
        assert result.exit_code == 2 and "--tile" in result.output, (bad, result.output)
    tiled = CliRunner().invoke(main, ["deblur", "--checkpoint", ckpt, str(tmp_path / "a.png"), "--out",
                                      str(tmp_path / "o"), "--tile", "32", "--overlap", "8"])
    assert tiled.exit_code == 0 and "60x40, tiled 32 px" in tiled.output, tiled.output


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return str(make_pairs_file(tmp_path_factory.mktemp("data") / "pairs.h5", n=3, size=40))


def test_pairs_dataset_yields_unit_range_tensors_on_request(pairs):
    from blurgen.deblur.data import PairsDataset

    signed = PairsDataset(pairs, crop=32, random_crop=False, flip=False)
    unit = PairsDataset(pairs, crop=32, random_crop=False, flip=False, value_range=(0, 1))
    raw = PairsDataset(pairs, crop=32, random_crop=False, flip=False, as_uint8=True)
    for a, b, u in zip(signed[0], unit[0], raw[0]):
        assert b.dtype == torch.float32 and 0 <= float(b.min()) and float(b.max()) <= 1
        torch.testing.assert_close(b, u.float() / 255, rtol=0, atol=0)
        torch.testing.assert_close(a, b * 2 - 1, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="value_range"):
        PairsDataset(pairs, value_range=(0, 255))
    with pytest.raises(ValueError, match="as_uint8"):
        PairsDataset(pairs, as_uint8=True, value_range=(0, 1))


@pytest.mark.parametrize("crop", [0, -4])
def test_pairs_dataset_refuses_a_crop_below_one_pixel(pairs, crop):
    from blurgen.deblur.data import PairsDataset

    with pytest.raises(ValueError, match=f"crop={crop} must be a side >= 1 px"):
        PairsDataset(pairs, crop=crop)


def test_inspect_into_a_closed_pipe_exits_quietly(pairs):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone, as `| head -1` does after its line
    try:
        proc = subprocess.run([sys.executable, "-c", "from blurgen.cli import main; main()", "inspect", "--quick",
                               pairs], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    # quietly, and with the exit code of the report (1: this hand-made file's seed_index is not 0..n-1)
    report = subprocess.run([sys.executable, "-c", "from blurgen.cli import main; main()", "inspect", "--quick", pairs],
                            capture_output=True, text=True, timeout=120)
    assert proc.returncode == report.returncode and proc.stderr == "", proc.stderr
