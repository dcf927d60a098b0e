"""make_block: per-sample determinism, shapes, dtypes, parameters, and PairsConfig."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from blurgen.blur import BlurConfig, blur_sample
from blurgen.core.config import KernelConfig
from blurgen.motion.api import random_kernels
from blurgen.pairs.pipeline import BLUR_STREAM, PARAM_DTYPES, SENSOR_PARAMS, PairsConfig, make_block, open_config_source
from blurgen.store.schema import REQUIRED_PARAMS

# Small and quick: 48x40 outputs, 31-px kernels.
SMALL = PairsConfig(width=48, height=40, kernel=KernelConfig(size=31, length_px=15.0, exposures=(0.5, 1.0)))


def assert_blocks_equal(a: dict, b: dict) -> None:
    for name in ("blurred", "sharp", "kernel"):
        assert a[name].dtype == b[name].dtype
        assert np.array_equal(a[name], b[name]), name
    assert sorted(a["params"]) == sorted(b["params"])
    for name, values in a["params"].items():
        assert values.dtype == b["params"][name].dtype, name
        assert np.array_equal(values, b["params"][name]), name


def sliced(block: dict, lo: int, hi: int) -> dict:
    return {"blurred": block["blurred"][lo:hi], "sharp": block["sharp"][lo:hi], "kernel": block["kernel"][lo:hi],
            "params": {k: v[lo:hi] for k, v in block["params"].items()}}


@pytest.mark.parametrize("config", [
    SMALL,
    SMALL.replace(blur=BlurConfig(jpeg_quality_range=(60, 90), gain_prob=0.5, gamma="2.2")),
    SMALL.replace(blur=BlurConfig(noise="poisson")),
], ids=["defaults", "jpeg-gain-gamma", "poisson"])
def test_a_slice_of_a_block_equals_the_block_of_that_slice(config):
    whole = make_block(config, seed=7, start=0, count=10)
    assert_blocks_equal(sliced(whole, 3, 7), make_block(config, seed=7, start=3, count=4))
    assert_blocks_equal(sliced(whole, 9, 10), make_block(config, seed=7, start=9, count=1))


def test_slicing_determinism_with_an_image_directory(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 256, (90, 100, 3), dtype=np.uint8))
    config = SMALL.replace(source=str(tmp_path))
    source = open_config_source(config)
    whole = make_block(config, seed=1, start=20, count=8, source=source)
    assert_blocks_equal(sliced(whole, 2, 5), make_block(config, seed=1, start=22, count=3))
    assert set(whole["params"]["source_index"]) <= {0, 1, 2}
    assert len(set(whole["params"]["source_index"])) > 1


def test_shapes_dtypes_and_complete_params():
    block = make_block(SMALL, seed=0, start=100, count=5)
    assert block["blurred"].shape == block["sharp"].shape == (5, 40, 48, 3)
    assert block["blurred"].dtype == block["sharp"].dtype == np.uint8
    assert block["kernel"].shape == (5, 31, 31) and block["kernel"].dtype == np.float32
    params = block["params"]
    assert set(REQUIRED_PARAMS) <= set(params)
    camera_only = set(SENSOR_PARAMS["camera"]) - set(SENSOR_PARAMS["srgb"])
    assert set(params) == set(PARAM_DTYPES) - camera_only  # the camera pipeline's columns only with it
    for name, values in params.items():
        assert values.shape == (5,) and values.dtype == PARAM_DTYPES[name], name
    assert params["seed_index"].tolist() == [100, 101, 102, 103, 104]
    assert np.all(params["source_index"] == -1) and np.all(params["jpeg_quality"] == -1)
    assert np.all(params["noise_a"] > 0) and np.all(params["gain"] >= 1)
    assert set(params["exposure_fraction"].tolist()) <= {0.5, 1.0}
    assert np.all(params["kernel_support_px"] % 2 == 1) and np.all(params["kernel_support_px"] <= 31)


def test_param_dtypes_are_the_same_whatever_the_settings():
    plain = make_block(SMALL.replace(blur=BlurConfig(noise="off", saturation=False)), 0, 0, 1)["params"]
    other = make_block(SMALL.replace(blur=BlurConfig(jpeg_quality_range=(50, 50))), 0, 0, 1)["params"]
    assert {k: v.dtype for k, v in plain.items()} == {k: v.dtype for k, v in other.items()}
    assert plain["noise_a"][0] == 0 and plain["gain"][0] == 1 and other["jpeg_quality"][0] == 50


def test_kernels_are_the_library_kernels_of_the_same_indices():
    block = make_block(SMALL, seed=4, start=30, count=3)
    assert np.array_equal(block["kernel"], random_kernels(3, seed=4, start=30, config=SMALL.kernel))


def test_make_block_equals_blurring_the_full_crop_with_the_full_kernel():
    # make_block asks the source only for the centre that the kernel's support needs; the
    # result must be exactly that of the plain recipe on the whole (H+k-1, W+k-1) crop.
    config = SMALL.replace(blur=BlurConfig(gain_prob=0.5))
    block = make_block(config, seed=2, start=5, count=4)
    source = open_config_source(config)
    kernels = random_kernels(4, seed=2, start=5, config=config.kernel)
    for m in range(4):
        crop, _ = source.crop(2, 5 + m, *config.crop_size)
        rng = np.random.default_rng([2, 5 + m, BLUR_STREAM])
        blurred, sharp, params = blur_sample(crop, kernels[m], rng, config.blur)
        assert np.array_equal(block["blurred"][m], blurred) and np.array_equal(block["sharp"][m], sharp)
        assert block["params"]["gain"][m] == np.float32(params["gain"])


def test_different_seeds_give_different_pairs_and_blur_is_visible():
    a = make_block(SMALL, seed=0, start=0, count=2)
    b = make_block(SMALL, seed=1, start=0, count=2)
    assert not np.array_equal(a["sharp"], b["sharp"]) and not np.array_equal(a["kernel"], b["kernel"])
    # Blur removes high frequencies: neighbour differences shrink.
    def detail(img):
        return np.abs(np.diff(img.astype(int), axis=2)).mean()
    assert detail(a["blurred"]) < 0.8 * detail(a["sharp"])


@pytest.mark.parametrize("args, name", [((0, -1, 1), "start"), ((0, 0, 0), "count"), ((-1, 0, 1), "seed"),
                                        ((0, 0, 1.5), "count")])
def test_make_block_rejects_bad_indices(args, name):
    with pytest.raises(ValueError, match=name):
        make_block(SMALL, *args)


# ---------------------------------------------------------------- PairsConfig


@pytest.mark.parametrize("field, value", [
    ("width", 31), ("height", 8), ("width", 256.0), ("height", True), ("split", "val"),
    ("source", ""), ("kernel", {"size": 65}), ("blur", None),
])
def test_pairs_config_rejects_bad_values_naming_the_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        PairsConfig(**{field: value})


def test_pairs_config_round_trips_through_json():
    config = PairsConfig(width=320, height=200, kernel=KernelConfig(size=33, exposures=(0.1, 1.0)),
                         blur=BlurConfig(jpeg_quality_range=(70, 90)), source="gopro:/data/GOPRO", split="test")
    text = config.to_json()
    assert json.loads(text)["kernel"]["size"] == 33
    assert PairsConfig.from_json(text) == config
    assert PairsConfig.from_dict(PairsConfig().to_dict()) == PairsConfig()
    assert config.crop_size == (232, 352)
    with pytest.raises(ValueError, match="unknown"):
        PairsConfig.from_dict({"size": 3})


def test_pairs_config_takes_numpy_sides_as_ints_and_refuses_bools():
    config = PairsConfig(width=np.int64(64), height=np.int32(48))
    assert config == PairsConfig(width=64, height=48) and type(config.width) is int
    with pytest.raises(ValueError, match=r"width must be an integer in \[32, 16384\]"):
        PairsConfig(width=True)


def test_the_block_maker_refuses_a_kernel_too_small_for_its_paths_before_any_work(tmp_path):
    from blurgen.runs.dataset import make_dataset

    out = tmp_path / "p.h5"
    with pytest.raises(ValueError, match=r"size=9 is too small for length_px=60: .* use size >= "):
        make_dataset(str(out), PairsConfig(width=32, height=32, kernel=KernelConfig(size=9)), 10, workers=1)
    assert list(tmp_path.iterdir()) == []
