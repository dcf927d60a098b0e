"""Clips from a video source: consecutive sharp frames of a sequence (GoPro's sharp/ at 240 fps, or a
folder of frame sequences) under one synthetic camera shake per clip."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import blurgen
from blurgen.blur import BlurConfig
from blurgen.camera.config import CameraConfig
from blurgen.cli import main
from blurgen.core.imageio import read_rgb
from blurgen.pairs.clips import ClipsConfig, make_clip_block, open_clip_source
from blurgen.pairs.pipeline import PairsConfig
from blurgen.sources.base import SourceError
from blurgen.sources.sequences import SequenceSource, frame_offsets
from tests.deblur_fixtures import make_gopro_tree

QUIET = BlurConfig(noise="off", saturation=False)
SIZE, MARGIN = 32, 24  # 96x96 frames hold the 80x80 crop


def _config(source, frames=3, fps=120.0, shake=0.0, **fields) -> ClipsConfig:
    pairs = PairsConfig(width=SIZE, height=SIZE, motion="camera3d", source=source, blur=QUIET,
                        camera=CameraConfig(shake_scale=shake))
    return ClipsConfig(pairs, frames=frames, fps=fps, margin_px=MARGIN, **fields)


@pytest.fixture(scope="module")
def gopro_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gopro")
    make_gopro_tree(root, sequences=2, frames=9, size=(96, 96), splits=("train",))
    short = root / "train" / "GOPR0009_11_00" / "sharp"  # too short for the clips below: skipped, counted
    short.mkdir(parents=True)
    (short / "000000.png").write_bytes((root / "train" / "GOPR0000_11_00" / "sharp" / "000000.png").read_bytes())
    return root


def test_frame_j_of_a_clip_is_sharp_frame_first_plus_round_j_source_fps_over_fps(gopro_root):
    config = _config(f"gopro:{gopro_root}")  # no shake: every frame is its source frame's window
    assert config.source_fps == 240.0 and frame_offsets(3, 120.0, 240.0).tolist() == [0, 2, 4]
    block = make_clip_block(config, seed=1, start=0, count=3)
    source = open_clip_source(config)
    assert source.skipped == {"too_short": 1}
    for m in range(3):
        p = {name: int(v[m]) for name, v in block["params"].items() if name in
             ("source_index", "source_frame", "crop_y", "crop_x")}
        files = source.sequences[p["source_index"]][1]
        assert 0 <= p["source_frame"] <= len(files) - 5
        for j, offset in enumerate([0, 2, 4]):
            frame = read_rgb(files[p["source_frame"] + offset])
            y, x = p["crop_y"] + MARGIN, p["crop_x"] + MARGIN
            assert np.array_equal(block["sharp"][m, j], frame[y:y + SIZE, x:x + SIZE])
    # the scene moves as filmed: consecutive frames differ even without shake
    assert np.abs(block["sharp"][:, 1:].astype(int) - block["sharp"][:, :-1]).mean() > 1.0
    again = make_clip_block(config, seed=1, start=2, count=1)
    assert np.array_equal(again["blurred"][0], block["blurred"][2])  # clip i depends on (seed, i) alone


def test_shake_moves_a_filmed_scene_and_each_frame_keeps_its_aligned_pair(gopro_root):
    block = make_clip_block(_config(f"gopro:{gopro_root}", shake=1.0), seed=0, start=0, count=2)
    still = make_clip_block(_config(f"gopro:{gopro_root}", shake=0.0), seed=0, start=0, count=2)
    assert block["params"]["source_frame"].tolist() == still["params"]["source_frame"].tolist()
    assert not np.array_equal(block["sharp"], still["sharp"])  # the camera shake adds its own motion
    own = np.abs(block["blurred"].astype(np.float32) - block["sharp"]).mean()
    other = np.abs(block["blurred"][:, 1:].astype(np.float32) - block["sharp"][:, :-1]).mean()
    assert own < other


def test_a_folder_of_frame_sequences_with_source_fps(tmp_path, gopro_root):
    import shutil

    for name in ("GOPR0000_11_00", "GOPR0001_11_00"):
        shutil.copytree(gopro_root / "train" / name, tmp_path / "videos" / name)
    source = SequenceSource(str(tmp_path / "videos"), min_size=(80, 80), span=5)
    assert [name for name, _ in source.sequences] == ["GOPR0000_11_00/sharp", "GOPR0001_11_00/sharp"]  # no blur/
    block = make_clip_block(_config(str(tmp_path / "videos"), source_fps=240.0), seed=0, start=0, count=1)
    assert block["sharp"].shape == (1, 3, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="source_fps"):
        _config("deadleaves", source_fps=240.0)


def test_a_clip_longer_than_every_sequence_is_one_line(gopro_root):
    with pytest.raises(SourceError, match="no sequence holds the 17 frames") as info:
        open_clip_source(_config(f"gopro:{gopro_root}", frames=3, fps=30.0))
    assert "\n" not in str(info.value)


def _make(tmp_path, out, *extra):
    return CliRunner().invoke(main, ["make", "--n", "2", "--size", str(SIZE), "--clip-margin", str(MARGIN),
                                     "--motion", "camera3d", "--workers", "1", "--out", str(tmp_path / out), *extra])


def test_make_clips_from_gopro_on_the_command_line(tmp_path, gopro_root):
    source = ["--source", f"gopro:{gopro_root}"]
    result = _make(tmp_path, "c.h5", "--clips", "3", "--fps", "120", *source)
    assert result.exit_code == 0, result.output
    with blurgen.read_pairs(str(tmp_path / "c.h5")) as f:
        assert f[1][0].shape == (3, SIZE, SIZE, 3) and "source_frame" in f.params
    explicit = _make(tmp_path, "e.h5", "--clips", "3", "--fps", "60", "--source-fps", "120", *source)
    assert explicit.exit_code == 0, explicit.output
    long = _make(tmp_path, "d.h5", "--clips", "3", "--fps", "30", *source)  # needs 17 frames of 9
    assert long.exit_code == 1 and "no sequence holds the 17 frames" in long.output
    assert [line for line in long.output.splitlines() if "no sequence" in line or line.startswith("Error")] == [
        next(line for line in long.output.splitlines() if line.startswith("Error"))]  # one line
    for args, flag in ((["--source-fps", "240"], "clips only"), (["--clips", "2", "--source-fps", "240"], "source_fps")):
        bad = _make(tmp_path, "f.h5", *args)
        assert bad.exit_code == 2 and flag in bad.output, bad.output
