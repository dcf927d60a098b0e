"""make's shake2d default blur length (1-32 px, chosen by the downstream benchmark), and the ways
back to DeblurGAN's fixed-length recipe."""

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


def test_camera3d_and_the_kernels_command_keep_their_defaults(tmp_path):
    camera = make(tmp_path, "camera", "--motion", "camera3d", "--frame-size", "320x240", "--kernel-size", "33")
    assert "blur_length_px" not in camera
    out = tmp_path / "k.npy"
    result = CliRunner().invoke(main, ["kernels", "--n", "3", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    import blurgen

    np.testing.assert_array_equal(np.load(out), blurgen.random_kernels(3, seed=1))
