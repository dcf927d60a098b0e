"""``blur_length_px``: unset, nothing changes; set, each sample's blur is the drawn target long
(the walk's shape, scaled), the target is recorded and depends on ``(seed, i)`` alone."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import blurgen
from blurgen.cli import main
from blurgen.core.config import KernelConfig
from blurgen.motion.walk import random_trajectories, target_lengths

SMALL = KernelConfig(size=41, length_px=24.0, steps=400, exposures=(0.1, 0.5, 1.0))


def exposed_lengths(xy: np.ndarray, used: np.ndarray) -> np.ndarray:
    return np.array([np.hypot(*np.diff(xy[i, :u].astype(np.float64), axis=0).T).sum() for i, u in enumerate(used)])


def test_unset_config_dict_and_kernels_are_those_of_before():
    assert "blur_length_px" not in KernelConfig().to_dict()
    assert KernelConfig.from_dict(KernelConfig(blur_length_px=(1, 2)).to_dict()).blur_length_px == (1.0, 2.0)
    # A target equal to the full path length on full exposures scales by 1: the unset kernels.
    full = SMALL.replace(exposures=(1.0,))
    unset, p_unset = blurgen.random_kernels_with_params(6, seed=4, config=full)
    same, p_same = blurgen.random_kernels_with_params(6, seed=4, config=full.replace(blur_length_px=(24.0, 24.0)))
    np.testing.assert_allclose(same, unset, atol=2e-6)
    assert "blur_length_px" not in p_unset and np.allclose(p_same["blur_length_px"], 24.0)


def test_paths_are_the_walks_paths_scaled_to_the_recorded_targets():
    config = SMALL.replace(blur_length_px=(2.0, 16.0))
    xy0, p0 = random_trajectories(20, SMALL, seed=7)
    xy, p = random_trajectories(20, config, seed=7)
    targets = p["blur_length_px"]
    assert ((targets >= 2.0) & (targets <= 16.0)).all()
    np.testing.assert_allclose(exposed_lengths(xy, p["exposed_steps"]), targets, rtol=1e-4)
    np.testing.assert_allclose(p["path_length_px"], targets, rtol=1e-5)
    scale = (targets / p0["path_length_px"]).astype(np.float32)
    np.testing.assert_allclose(xy, xy0 * scale[:, None, None], rtol=1e-5, atol=1e-5)
    assert (p["exposure_fraction"] == p0["exposure_fraction"]).all()


def test_kernels_are_the_rasterised_scaled_paths_and_centred():
    config = SMALL.replace(blur_length_px=(1.0, 30.0))
    kernels, params = blurgen.random_kernels_with_params(12, seed=2, config=config)
    xy, _ = random_trajectories(12, config, seed=2)
    np.testing.assert_allclose(kernels, blurgen.rasterize(xy, config.size, params["exposure_fraction"]), atol=1e-7)
    ys, xs = np.mgrid[:41, :41]
    assert np.abs((kernels * xs).sum(axis=(1, 2)) - 20).max() < 0.05
    assert np.abs(kernels.sum(axis=(1, 2)) - 1).max() < 1e-5


def test_targets_that_do_not_fit_are_cut_to_the_longest_that_fits():
    config = KernelConfig(size=15, length_px=10.0, steps=200, blur_length_px=(200.0, 400.0))
    kernels, params = blurgen.random_kernels_with_params(8, seed=0, config=config)
    assert (params["path_length_px"] < params["blur_length_px"]).all()
    assert (params["path_length_px"] >= 6.9).all()  # at least the kernel's half-width: cut, not shrunk away
    assert np.abs(kernels.sum(axis=(1, 2)) - 1).max() < 1e-5


def test_targets_depend_on_seed_and_index_alone_and_are_log_uniform():
    config = SMALL.replace(blur_length_px=(1.0, 25.0))
    batch, p = blurgen.random_kernels_with_params(9, seed=5, start=40, config=config)
    for m in (0, 4, 8):
        one, q = blurgen.random_kernels_with_params(1, seed=5, start=40 + m, config=config)
        assert np.array_equal(one[0], batch[m]) and q["blur_length_px"][0] == p["blur_length_px"][m]
    t = target_lengths((1.0, 25.0), 1, np.arange(4000))
    assert abs(np.median(t) - 5.0) < 0.4  # log-uniform: median sqrt(low * high)
    assert not np.array_equal(t, target_lengths((1.0, 25.0), 2, np.arange(4000)))


@pytest.mark.parametrize("value", [(0.0, 3.0), (5.0, 3.0), (1.0, float("nan")), "3,4", (1.0,)])
def test_bad_ranges_are_value_errors_naming_the_field(value):
    with pytest.raises(ValueError, match="blur_length_px"):
        KernelConfig(blur_length_px=value)


def test_make_records_targets_and_camera3d_kernels_take_the_option(tmp_path):
    out = tmp_path / "p.h5"
    args = ["make", "--n", "3", "--out", str(out), "--size", "32", "--kernel-size", "33", "--length-px", "20",
            "--workers", "1", "--blur-length-px", "4,8"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as h5:
        targets, lengths = h5["params/blur_length_px"][:], h5["params/path_length_px"][:]
    assert ((targets >= 4) & (targets <= 8)).all() and np.allclose(lengths, targets, rtol=1e-5)
    cam = CliRunner().invoke(main, ["kernels", "--n", "2", "--out", str(tmp_path / "k.npy"), "--motion", "camera3d",
                                    "--blur-length-px", "4,8", "--frame-size", "320x240", "--kernel-size", "33"])
    assert cam.exit_code == 0, cam.output
    assert np.load(tmp_path / "k.npy").shape == (2, 33, 33)


def test_the_augmentation_passes_blur_length_through_to_its_config():
    torch = pytest.importorskip("torch")
    from blurgen.transforms import RandomCameraShake

    shake = RandomCameraShake(SMALL, blur_length_px=(3, 6), p=1.0, seed=2)
    assert shake.config == SMALL.replace(blur_length_px=(3.0, 6.0))
    image = torch.rand(3, 48, 48)
    assert not torch.equal(shake(image), RandomCameraShake(SMALL, p=1.0, seed=2)(image))
    camera = blurgen.CameraConfig(size=33, frame_size=(320, 240), steps=32)
    cam = RandomCameraShake(camera, blur_length_px=(3, 6), p=1.0, seed=2)
    assert cam.config.blur_length_px == (3.0, 6.0)
    assert cam(image).shape == image.shape
    with pytest.raises(ValueError, match="blur_length_px"):
        RandomCameraShake(blurgen.KernelBank(np.ones((1, 3, 3), np.float32)), blur_length_px=(3, 6))
