"""Clips (hand-held video): the laws of ``random_camera_clip`` and of clip rendering."""

from __future__ import annotations

import numpy as np
import pytest

import blurgen
from blurgen.blur import BlurConfig
from blurgen.camera._so3_jit import exp_so3
from blurgen.camera.clip import clip_grid, random_camera_clip
from blurgen.camera.config import CameraConfig
from blurgen.camera.kernels import local_kernels
from blurgen.pairs.clips import ClipsConfig, make_clip_block
from blurgen.pairs.pipeline import PairsConfig


def _mat(v) -> np.ndarray:
    out = np.empty((3, 3))
    exp_so3(float(v[0]), float(v[1]), float(v[2]), out)
    return out


def _clips(frames=8, width=48, height=40, **fields) -> ClipsConfig:
    pairs = fields.pop("pairs", None) or PairsConfig(width=width, height=height, motion="camera3d")
    return ClipsConfig(pairs, frames=frames, **fields)


def test_shutter_360_exposures_tile_the_clip():
    times, knots, _ = clip_grid(6, 30.0, 360.0, 256, 0.0)
    assert (knots[:-1, -1] == knots[1:, 0]).all()  # the same grid time, hence the same pose
    clip, _ = random_camera_clip(2, 6, 30.0, 360.0, seed=4)
    for i in range(2):
        for j in range(5):
            last = _mat(clip.frame_rotation[i, j]) @ _mat(clip.rotation[i, j, -1])
            first = _mat(clip.frame_rotation[i, j + 1]) @ _mat(clip.rotation[i, j + 1, 0])
            assert np.abs(last - first).max() < 2e-6  # float32 storage of both
    _, half, _ = clip_grid(6, 30.0, 180.0, 256, 0.0)
    assert (half[:-1, -1] < half[1:, 0]).all()  # at 180 degrees the camera moves between exposures


def test_prefix_property_8_frames_are_the_first_8_of_16_bit_for_bit():
    short, p8 = random_camera_clip(3, 8, 30.0, 180.0, seed=7, start=2)
    long, p16 = random_camera_clip(3, 16, 30.0, 180.0, seed=7, start=2)
    for name, values in short.arrays().items():
        assert np.array_equal(values, long.arrays()[name][:, :8]), name
    assert np.array_equal(p8["frame_kernel_radius_px"], p16["frame_kernel_radius_px"][:, :8])
    config8, config16 = _clips(8), _clips(16)
    b8, b16 = make_clip_block(config8, 3, 5, 1), make_clip_block(config16, 3, 5, 1)
    if b8["params"]["redraws"][0] == b16["params"]["redraws"][0]:  # the redraw rule sees all frames
        assert np.array_equal(b8["blurred"][0], b16["blurred"][0, :8])
        assert np.array_equal(b8["sharp"][0], b16["sharp"][0, :8])


def test_clip_i_depends_only_on_seed_and_i():
    together, params = random_camera_clip(4, 3, 24.0, 90.0, seed=11, start=10)
    for m in range(4):
        alone, p = random_camera_clip(1, 3, 24.0, 90.0, seed=11, start=10 + m)
        assert np.array_equal(alone.rotation[0], together.rotation[m])
        assert np.array_equal(alone.frame_rotation[0], together.frame_rotation[m])
        assert p["focal_px"][0] == params["focal_px"][m]
    other, _ = random_camera_clip(1, 3, 24.0, 90.0, seed=12, start=10)
    assert not np.array_equal(other.rotation[0], together.rotation[0])


def test_one_amplitude_per_clip_and_the_content_moves_between_frames():
    clip, params = random_camera_clip(5, 6, 30.0, 180.0, seed=1)
    assert params["shake_amplitude"].shape == (5,)
    assert (params["drift_rad"][:, 0] == 0).all() and (params["drift_rad"][:, 1:] > 1e-5).all()
    assert np.abs(clip.frame_rotation[:, 0]).max() == 0.0


def test_each_frames_local_kernels_are_centred_on_their_pixel():
    clip, _ = random_camera_clip(2, 5, 30.0, 180.0, CameraConfig(size=81), seed=3)
    positions = np.array([[0.0, 0.0], [639.5, 359.5], [1279.0, 719.0], [100.0, 600.0]])
    ys, xs = np.mgrid[0:81, 0:81]
    for i in range(2):
        k = local_kernels(clip.frame_motion(i), positions, size=81)  # (T, P, 81, 81)
        assert np.allclose(k.sum(axis=(2, 3)), 1.0, atol=1e-5)
        cx = (k * xs).sum(axis=(2, 3)) / k.sum(axis=(2, 3))
        cy = (k * ys).sum(axis=(2, 3)) / k.sum(axis=(2, 3))
        assert np.abs(cx - 40).max() <= 0.05 and np.abs(cy - 40).max() <= 0.05


def test_zero_shake_every_frame_equals_the_still():
    quiet = BlurConfig(noise="off", saturation=False)
    pairs = PairsConfig(width=48, height=40, motion="camera3d", camera=CameraConfig(shake_scale=0.0), blur=quiet)
    config = _clips(5, pairs=pairs, margin_px=40)
    block = make_clip_block(config, 0, 2, 1)
    still, *_ = blurgen.pairs.pipeline.open_config_source(pairs).crop_with_origin(0, 2, 120, 128)
    window = still[40:80, 40:88]
    for j in range(5):
        assert np.array_equal(block["sharp"][0, j], window)
        assert np.array_equal(block["blurred"][0, j], window)


def test_frames_are_aligned_pairs_and_move_with_the_camera():
    block = make_clip_block(_clips(4, 64, 64), 0, 0, 2)
    assert block["blurred"].shape == (2, 4, 64, 64, 3) and block["kernel"].shape == (2, 4, 65, 65)
    assert np.allclose(block["kernel"].sum(axis=(2, 3)), 1.0, atol=1e-5)
    sharp = block["sharp"].astype(np.float32)
    assert np.abs(sharp[:, 1:] - sharp[:, :-1]).mean() > 1.0  # content moves between frames
    # each blurred frame is nearer its own sharp frame than the neighbouring frames' (aligned)
    own = np.abs(block["blurred"].astype(np.float32) - sharp).mean(axis=(2, 3, 4))
    assert (own[:, 1:] < np.abs(block["blurred"][:, 1:].astype(np.float32) - sharp[:, :-1]).mean(axis=(2, 3, 4))).all()


def test_rolling_shutter_readout_zero_is_the_global_shutter_and_keeps_the_trajectory():
    g = make_clip_block(_clips(3), 1, 4, 1)
    z = make_clip_block(_clips(3, readout_s=0.0), 1, 4, 1)
    assert np.array_equal(g["blurred"], z["blurred"]) and np.array_equal(g["sharp"], z["sharp"])
    clip_gs, _ = random_camera_clip(1, 3, 30.0, 180.0, seed=1, start=4)
    clip_rs, _ = random_camera_clip(1, 3, 30.0, 180.0, seed=1, start=4, readout_s=0.01)
    assert np.array_equal(clip_rs.rotation[:, :, :256], clip_gs.rotation)
    tiny = make_clip_block(_clips(3, readout_s=1e-6), 1, 4, 1)
    assert np.array_equal(tiny["sharp"], g["sharp"])  # the target is the global-shutter image
    assert np.abs(tiny["blurred"].astype(int) - g["blurred"]).max() <= 2
    rs = make_clip_block(_clips(3, readout_s=0.02), 1, 4, 1)
    assert np.array_equal(rs["sharp"], g["sharp"]) and not np.array_equal(rs["blurred"], g["blurred"])


@pytest.mark.parametrize("kwargs, word", [({"frames": 0}, "frames"), ({"fps": 0}, "fps"),
                                          ({"shutter_angle": 361}, "shutter_angle"),
                                          ({"readout_s": -1}, "readout_s")])
def test_bad_clip_settings_are_one_line_value_errors(kwargs, word):
    args = {"frames": 4, "fps": 30.0, "shutter_angle": 180.0, **kwargs}
    readout = args.pop("readout_s", 0.0)
    with pytest.raises(ValueError, match=word) as info:
        random_camera_clip(1, args["frames"], args["fps"], args["shutter_angle"], readout_s=readout)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="camera motion model"):
        ClipsConfig(PairsConfig())


_CLIP_BYTES = """
import sys, numpy as np
from blurgen.camera.clip import random_camera_clip
from blurgen.camera import _clip_jit as jit
clip, params = random_camera_clip(1, 2, 60.0, 270.0, seed=5, readout_s=0.002)
still = np.random.default_rng(0).integers(0, 256, (30, 34, 3), dtype=np.uint8)
out = np.empty((12, 14, 3), np.uint8)
mat = np.array([[1.0, -0.01, 0.002], [0.01, 1.0, 0.001], [-0.002, -0.001, 1.0]])
jit.warp_u8(still, 0.0, 0.0, mat, np.zeros(3), 0.0, 300.0, 16.5, 14.5, 9.0, 8.0, out)
rot, tr, ref, mt = np.empty((256, 3)), np.empty((256, 3)), np.empty((3, 3)), np.empty(3)
jit.shifted_exposure(clip.rotation[0, 1].astype(float), clip.translation[0, 1].astype(float), 256, 3.25, rot, tr, ref, mt)
parts = [clip.rotation, clip.frame_rotation, params["frame_kernel_radius_px"], out, rot]
sys.stdout.buffer.write(b"".join(np.ascontiguousarray(p).tobytes() for p in parts))
"""


def test_clip_kernels_give_the_same_bytes_as_plain_python():
    import os
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", _CLIP_BYTES], capture_output=True, timeout=600,
                           env={**os.environ, "NUMBA_DISABLE_JIT": flag}) for flag in ("0", "1")]
    assert all(r.returncode == 0 for r in runs), runs[1].stderr[-2000:]
    assert len(runs[0].stdout) > 10000 and runs[0].stdout == runs[1].stdout
