"""Clips through the camera (RAW) pipeline: one camera per clip, each frame its own noise; clip i
depends only on (seed, i), frame j not on the clip length; the command line makes them."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from blurgen import read_pairs
from blurgen.camera import CameraConfig
from blurgen.cli import main
from blurgen.pairs.clips import ClipsConfig, make_clip_block
from blurgen.pairs.pipeline import PairsConfig

CAMERA = CameraConfig(size=33, frame_size=(320, 240), focal_35mm=(20.0, 35.0), shake_scale=0.3)


def _config(frames: int, pipeline: str = "camera") -> ClipsConfig:
    pairs = PairsConfig(width=32, height=32, motion="camera3d", camera=CAMERA, pipeline=pipeline)
    return ClipsConfig(pairs, frames=frames, margin_px=48)


def _assert_rows_equal(a: dict, i: int, b: dict, k: int, frames: int | None = None) -> None:
    cut = slice(None, frames)
    for name in ("blurred", "sharp", "kernel"):
        np.testing.assert_array_equal(a[name][i, cut], b[name][k, cut], err_msg=name)
    for name in a["motion"]:
        np.testing.assert_array_equal(a["motion"][name][i, cut], b["motion"][name][k, cut], err_msg=name)
    for name in a["params"]:
        assert a["params"][name][i] == b["params"][name][k], name


def test_camera_pipeline_clips_depend_on_seed_and_index_and_frames_not_on_the_clip_length():
    four = make_clip_block(_config(4), seed=7, start=1, count=2)
    alone = make_clip_block(_config(4), seed=7, start=2, count=1)
    _assert_rows_equal(four, 1, alone, 0)
    two = make_clip_block(_config(2), seed=7, start=1, count=2)
    assert (four["params"]["redraws"] == two["params"]["redraws"]).all()  # the redraw rule sees every frame
    for m in range(2):
        _assert_rows_equal(two, m, four, m, frames=2)
    assert set(four["params"]) >= {"ccm_0", "wb_red", "bayer_pattern", "noise_a", "gain", "jpeg_quality"}
    assert four["params"]["bayer_pattern"].dtype == np.int32
    assert four["motion"]["clipped_share"].shape == four["motion"]["light_share"].shape == (2, 4)
    srgb = make_clip_block(_config(4, "srgb"), seed=7, start=1, count=2)
    np.testing.assert_array_equal(srgb["kernel"], four["kernel"])  # the same motion, another sensor
    assert not np.array_equal(srgb["blurred"], four["blurred"])


def test_each_frame_draws_its_own_noise():
    still = CameraConfig(size=33, frame_size=(320, 240), focal_35mm=(20.0, 35.0), shake_scale=0.0)
    pairs = PairsConfig(width=32, height=32, motion="camera3d", camera=still, pipeline="camera")
    block = make_clip_block(ClipsConfig(pairs, frames=3, margin_px=48), seed=1, start=0, count=1)
    sharp, blurred = block["sharp"][0].astype(int), block["blurred"][0].astype(int)
    assert (sharp[0] == sharp[1]).all() and (sharp[1] == sharp[2]).all()  # no shake: one view
    assert (blurred[0] != blurred[1]).any() and (blurred[1] != blurred[2]).any()  # noise only
    assert abs((blurred[0] - blurred[1]).mean()) < 2  # zero-mean: the same image under other noise


def test_make_camera_pipeline_clips_on_the_command_line(tmp_path):
    out = tmp_path / "raw.h5"
    result = CliRunner().invoke(main, ["make", "--n", "2", "--out", str(out), "--clips", "2", "--size", "32",
                                       "--motion", "camera3d", "--pipeline", "camera", "--kernel-size", "33",
                                       "--frame-size", "320x240", "--focal-35mm", "20,35", "--shake-scale", "0.3",
                                       "--clip-margin", "48", "--seed", "7", "--workers", "1"])
    assert result.exit_code == 0, result.output
    block = make_clip_block(_config(2), seed=7, start=0, count=2)
    with read_pairs(out) as f:
        for i in range(2):
            blurred, sharp, kernel = f[i]
            np.testing.assert_array_equal(blurred, block["blurred"][i])
            np.testing.assert_array_equal(sharp, block["sharp"][i])
        assert f.attrs["config_dict"]["pipeline"] == "camera"
