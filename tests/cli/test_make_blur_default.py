"""make's default blur lengths (shake2d 1-32 px; camera3d 1-16 px with exposures in 0.5 ms-1 s),
chosen by the downstream benchmark, and the ways back to the fixed-length / fitted-exposure recipes."""

from __future__ import annotations

import h5py
import numpy as np
from click.testing import CliRunner

from blurgen.cli import main

BASE = ["--n", "6", "--size", "32", "--workers", "1", "--seed", "2"]


def make(tmp_path, name: str, *extra: str) -> dict:
    out = tmp_path / f"{name}.h5"
    result = CliRunner().invoke(main, ["make", *BASE, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as h5:
        return {key: h5["params"][key][:] for key in h5["params"]}


def test_make_draws_blur_lengths_in_1_32_by_default(tmp_path):
    default = make(tmp_path, "default")
    assert ((default["blur_length_px"] >= 1) & (default["blur_length_px"] <= 32)).all()
    np.testing.assert_allclose(default["path_length_px"], default["blur_length_px"], rtol=1e-4)
    explicit = make(tmp_path, "explicit", "--blur-length-px", "1,32")
    np.testing.assert_array_equal(explicit["blur_length_px"], default["blur_length_px"])


def test_off_or_a_path_length_gives_deblurgans_fixed_paths(tmp_path):
    off = make(tmp_path, "off", "--blur-length-px", "off")
    assert "blur_length_px" not in off and np.allclose(off["path_length_px"][off["exposure_fraction"] == 1], 60.0)
    fixed = make(tmp_path, "fixed", "--length-px", "20", "--kernel-size", "31")
    assert "blur_length_px" not in fixed and np.allclose(fixed["path_length_px"][fixed["exposure_fraction"] == 1], 20.0)


def test_camera3d_draws_1_16_px_with_wide_exposures_unless_either_is_given(tmp_path):
    cam = ["--motion", "camera3d", "--frame-size", "320x240", "--kernel-size", "33"]
    default = make(tmp_path, "camera", *cam)
    assert ((default["blur_length_px"] >= 1) & (default["blur_length_px"] <= 16)).all()
    assert ((default["exposure_s"] >= 0.0005 * 0.999) & (default["exposure_s"] <= 1.0)).all()
    assert np.median(np.abs(default["path_length_px"] / default["blur_length_px"] - 1)) < 0.011
    exposures = make(tmp_path, "exposures", *cam, "--exposure-s", "0.01,0.02")
    assert "blur_length_px" not in exposures
    assert ((exposures["exposure_s"] >= 0.01 * 0.999) & (exposures["exposure_s"] <= 0.02 * 1.001)).all()
    off = make(tmp_path, "off", *cam, "--blur-length-px", "off")
    assert "blur_length_px" not in off
    assert ((off["exposure_s"] >= 0.005 * 0.999) & (off["exposure_s"] <= 0.1 * 1.001)).all()
    # a length range of one's own is searched in the same wide exposures, so it is met
    mine = make(tmp_path, "mine", *cam, "--blur-length-px", "1,8")
    assert ((mine["blur_length_px"] >= 1) & (mine["blur_length_px"] <= 8)).all()
    assert np.median(np.abs(mine["path_length_px"] / mine["blur_length_px"] - 1)) < 0.011
    assert mine["exposure_s"].min() < 0.005 or mine["blur_length_px"].min() > 2


def test_clips_and_the_kernels_command_keep_their_defaults(tmp_path):
    out = tmp_path / "clips.h5"
    result = CliRunner().invoke(main, ["make", "--n", "1", "--size", "32", "--out", str(out), "--motion", "camera3d",
                                       "--clips", "2", "--workers", "1", "--frame-size", "320x240",
                                       "--kernel-size", "33", "--clip-margin", "32"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "k.npy"
    result = CliRunner().invoke(main, ["kernels", "--n", "3", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    import blurgen

    np.testing.assert_array_equal(np.load(out), blurgen.random_kernels(3, seed=1))
