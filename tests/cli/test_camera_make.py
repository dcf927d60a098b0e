"""``blurgen make --motion camera3d``: pairs blurred by a rotating hand-held camera, stored with
their motion (schema 2). Same laws as shake2d datasets (same arrays for any worker count, shard
split or resume point), and the stored motion renders the stored pair again."""

from __future__ import annotations

import os

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from pairs_compare import assert_same_arrays, interrupted_maker

from blurgen import read_pairs
from blurgen.blur import BlurConfig, linear_to_srgb, srgb_to_linear
from blurgen.camera import CameraConfig, CameraMotion, local_kernels, plan_camera_blur
from blurgen.cli import main
from blurgen.pairs.pipeline import PairsConfig
from blurgen.runs.dataset import make_dataset
from blurgen.store.merge import merge_files

CAMERA = CameraConfig(size=33, frame_size=(320, 240), focal_35mm=(20.0, 35.0), exposure_s=(0.01, 0.04))
CONFIG = PairsConfig(width=48, height=40, motion="camera3d", camera=CAMERA)


def make(path, config=CONFIG, n=12, **kwargs):
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("block_size", 4)
    return make_dataset(str(path), config, n, seed=kwargs.pop("seed", 5), durable=False, **kwargs)


def test_camera_pairs_are_the_same_for_any_workers_blocks_and_shards(tmp_path):
    make(tmp_path / "ref.h5")
    make(tmp_path / "two.h5", workers=2, block_size=3)
    assert_same_arrays(tmp_path / "ref.h5", tmp_path / "two.h5")
    for i in range(2):
        make(tmp_path / f"s{i}.h5", shard=(i, 2), block_size=5)
    merge_files([str(tmp_path / "s1.h5"), str(tmp_path / "s0.h5")], str(tmp_path / "m.tmp"), str(tmp_path / "m.h5"), "m")
    assert_same_arrays(tmp_path / "ref.h5", tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as h5:
        assert h5.attrs["schema_version"] == 2 and h5["motion/rotation"].shape == (12, CAMERA.steps, 3)


def test_an_interrupted_camera_run_resumes_to_the_same_arrays(tmp_path):
    make(tmp_path / "ref.h5")
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path / "out.h5", maker=interrupted_maker(8))
    assert make(tmp_path / "out.h5", resume=True).n_reused == 8
    assert_same_arrays(tmp_path / "ref.h5", tmp_path / "out.h5")


def test_the_stored_motion_renders_the_stored_pair_again(tmp_path):
    """Noise, gain and JPEG off: the blurred image is the camera render of the source image's
    crop, and /kernel the local kernel at the window's centre, from what the file stores."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.GaussianBlur(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8), (5, 5), 2))
    quiet = BlurConfig(saturation=False, noise="off")
    config = PairsConfig(width=48, height=40, motion="camera3d", camera=CAMERA, blur=quiet, source=str(folder))
    make(tmp_path / "p.h5", config, n=4)
    image = cv2.imread(str(folder / "a.png"))[:, :, ::-1]
    half = (CAMERA.size - 1) // 2
    with read_pairs(tmp_path / "p.h5") as f:
        frame = tuple(f.attrs["config_dict"]["camera"]["frame_size"])
        for i in range(len(f)):
            blurred, sharp, kernel = f[i]
            motion = CameraMotion.from_arrays(f.motion_arrays(i), frame)
            plan = plan_camera_blur(motion, 48, 40)
            assert plan.origin == (f.params["window_x"][i], f.params["window_y"][i])
            y, x = f.params["crop_y"][i] + half - plan.margin, f.params["crop_x"][i] + half - plan.margin
            crop = image[y:y + 40 + 2 * plan.margin, x:x + 48 + 2 * plan.margin]
            again, centre = plan.render(srgb_to_linear(np.ascontiguousarray(crop)))
            np.testing.assert_array_equal(linear_to_srgb(again), blurred)
            np.testing.assert_array_equal(linear_to_srgb(centre), sharp)
            np.testing.assert_array_equal(local_kernels(motion, np.array([plan.centre]), CAMERA.size)[0, 0], kernel)


def test_the_trainer_reads_camera_files_and_shake2d_files_still_read(tmp_path):
    from blurgen.deblur.data import PairsDataset

    make(tmp_path / "cam.h5")
    make(tmp_path / "shake.h5", PairsConfig(width=48, height=40))
    for name, version in (("cam.h5", 2), ("shake.h5", 1)):
        blurred, sharp = PairsDataset(str(tmp_path / name), crop=32)[0]
        assert blurred.shape == sharp.shape == (3, 32, 32)
        with read_pairs(tmp_path / name) as f:
            assert f.attrs["schema_version"] == version and f.has_motion == (version == 2)


def test_a_shake2d_config_keeps_the_dict_it_had_before_camera3d():
    assert set(PairsConfig().to_dict()) == {"width", "height", "kernel", "blur", "source", "split"}
    assert PairsConfig.from_dict(CONFIG.to_dict()) == CONFIG


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_command_line_makes_inspects_and_draws_camera3d(tmp_path):
    out = tmp_path / "cam.h5"
    made = cli("make", "--n", "6", "--out", str(out), "--motion", "camera3d", "--size", "64x48", "--frame-size",
               "320x240", "--kernel-size", "33", "--exposure-s", "0.01,0.03", "--workers", "1",
               "--preview", str(tmp_path / "p.png"))
    assert made.exit_code == 0, made.output
    report = cli("inspect", str(out))
    assert "schema 2" in report.output and "/motion/rotation" in report.output
    assert "problems: none found" in report.output
    sheet = cli("kernels", "--n", "4", "--out", str(tmp_path / "k.png"), "--motion", "camera3d", "--kernel-size", "33")
    assert sheet.exit_code == 0 and cv2.imread(str(tmp_path / "k.png")) is not None
    array = cli("kernels", "--n", "3", "--out", str(tmp_path / "k.npy"), "--motion", "camera3d", "--kernel-size", "33")
    assert array.exit_code == 0
    from blurgen import random_kernels

    expected = random_kernels(3, config=CameraConfig(size=33))
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), expected)


@pytest.mark.parametrize("args, flag", [
    (["--motion", "camera3d", "--anxiety", "0.01"], "--anxiety"),
    (["--focal-35mm", "20,30"], "--focal-35mm"),
    (["--motion", "camera3d", "--size", "2000x100"], "--size"),
    (["--motion", "camera3d", "--exposure-s", "0,1"], "--exposure-s"),
    # (the fitted exposure range: make's blur-length default redraws to lengths that fit even 3 px)
    (["--motion", "camera3d", "--kernel-size", "3", "--blur-length-px", "off"], "--kernel-size"),
])
def test_camera_options_are_checked_before_work(tmp_path, args, flag):
    result = cli("make", "--n", "4", "--out", str(tmp_path / "x.h5"), *args)
    assert result.exit_code == 2 and flag in result.output and "Traceback" not in result.output
    assert os.listdir(tmp_path) == []
