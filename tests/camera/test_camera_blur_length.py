"""camera3d's ``blur_length_px``: unset, nothing changes; set, each sample's exposure is chosen
so the frame centre's blur path is the drawn target long, under the sample's own (fitted) shake."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen.camera.config import CameraConfig
from blurgen.camera.motion import random_camera_motion
from blurgen.cli import main

WIDE = CameraConfig(frame_size=(320, 240), size=65, steps=64, exposure_s=(1e-4, 2.0), blur_length_px=(2.0, 24.0))


def centre_path_length(motion, i: int) -> float:
    """The centre's image path length from the stored poses: focal x the summed angle steps of the
    optical axis (the small-angle projection the sampler uses, independently recomputed)."""
    rot = motion.rotation[i].astype(np.float64)
    step = np.diff(rot[:, :2], axis=0)  # pitch/yaw components of the rotation vectors
    return float(motion.focal_px[i] * np.hypot(step[:, 0], step[:, 1]).sum())


def test_unset_dict_and_motions_are_those_of_before():
    assert "blur_length_px" not in CameraConfig().to_dict()
    assert CameraConfig.from_dict(CameraConfig(blur_length_px=(1, 2)).to_dict()).blur_length_px == (1.0, 2.0)
    _, params = random_camera_motion(3, CameraConfig(steps=16), seed=2)
    assert "blur_length_px" not in params and "path_length_px" not in params


def test_made_lengths_meet_the_log_uniform_targets():
    motion, params = random_camera_motion(300, WIDE, seed=5)
    target, made = params["blur_length_px"], params["path_length_px"]
    assert ((target >= 2.0) & (target <= 24.0)).all()
    # log-uniform: the mean of log(target) is the middle of the log range
    u = np.log(target / 2.0) / np.log(12.0)
    assert abs(u.mean() - 0.5) < 0.06 and abs(np.mean(u < 0.25) - 0.25) < 0.07
    ratio = made / target
    inside = (params["exposure_s"] > 1e-4 * 1.001) & (params["exposure_s"] < 2.0 * 0.999)
    assert inside.mean() > 0.9 and (np.abs(ratio[inside] - 1.0) <= 0.0101).all()  # not cut by the range: met
    assert ((params["exposure_s"] >= 1e-4 * 0.999) & (params["exposure_s"] <= 2.0 * 1.001)).all()
    # the recorded length is the stored motion's (small-angle: within a few per cent)
    recomputed = np.array([centre_path_length(motion, i) for i in range(20)])
    np.testing.assert_allclose(recomputed, made[:20], rtol=0.05)


def test_exposures_stay_in_their_range_and_samples_depend_on_seed_and_index_alone():
    narrow = WIDE.replace(exposure_s=(0.01, 0.02))
    _, p = random_camera_motion(40, narrow, seed=3)
    assert ((p["exposure_s"] >= 0.01 * 0.999) & (p["exposure_s"] <= 0.02 * 1.001)).all()
    m_all, p_all = random_camera_motion(12, WIDE, seed=9)
    m_part, p_part = random_camera_motion(4, WIDE, seed=9, start=8)
    np.testing.assert_array_equal(m_all.rotation[8:], m_part.rotation)
    np.testing.assert_array_equal(p_all["blur_length_px"][8:], p_part["blur_length_px"])


def test_longer_targets_make_longer_exposures_of_the_same_process():
    _, short = random_camera_motion(60, WIDE.replace(blur_length_px=(3.0, 3.0)), seed=1)
    _, long_ = random_camera_motion(60, WIDE.replace(blur_length_px=(12.0, 12.0)), seed=1)
    ok = (np.abs(short["path_length_px"] / 3.0 - 1) < 0.011) & (np.abs(long_["path_length_px"] / 12.0 - 1) < 0.011)
    assert ok.mean() > 0.95
    assert (long_["exposure_s"][ok] > short["exposure_s"][ok]).all()
    # the per-exposure shake draws (amplitude, direction) are the same stream either way
    np.testing.assert_array_equal(short["shake_direction_rad"][ok], long_["shake_direction_rad"][ok])


def test_make_and_kernels_take_it_for_camera3d_and_clips_refuse_it(tmp_path):
    out = tmp_path / "cam.h5"
    args = ["make", "--n", "6", "--size", "48", "--out", str(out), "--motion", "camera3d", "--workers", "1",
            "--frame-size", "320x240", "--kernel-size", "33", "--blur-length-px", "2,12", "--exposure-s", "0.001,1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        made = f["params/path_length_px"][:]
        target = f["params/blur_length_px"][:]
    assert ((target >= 2) & (target <= 12)).all() and np.median(np.abs(made / target - 1)) < 0.011
    clips = CliRunner().invoke(main, ["make", "--n", "1", "--size", "48", "--out", str(tmp_path / "c.h5"),
                                      "--motion", "camera3d", "--clips", "2", "--blur-length-px", "2,12"])
    assert clips.exit_code == 2 and "does not apply to clips" in clips.output and "--blur-length-px" in clips.output
    assert "Traceback" not in clips.output and not (tmp_path / "c.h5.parts").exists()
    exposures = CliRunner().invoke(main, ["make", "--n", "1", "--size", "48", "--out", str(tmp_path / "c.h5"),
                                          "--motion", "camera3d", "--clips", "2", "--exposure-s", "0.01,0.02"])
    assert exposures.exit_code == 2 and "--exposure-s" in exposures.output
    with pytest.raises(ValueError, match="blur_length_px does not apply to clips"):
        from blurgen.camera.clip import random_camera_clip

        random_camera_clip(1, 2, 30.0, 180.0, WIDE)


def test_bad_ranges_are_one_line_errors():
    with pytest.raises(ValueError, match="blur_length_px"):
        CameraConfig(blur_length_px=(5.0, 1.0))
    with pytest.raises(ValueError, match="blur_length_px"):
        CameraConfig(blur_length_px=(0.0, 1.0))
