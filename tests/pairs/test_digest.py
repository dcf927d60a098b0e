"""Pinned arrays: a small real dataset (dead leaves, the default blur model and one with JPEG and
saturation) must keep the exact bytes it had when this test was written, for 1 and 2 workers.
Restructuring the code must not change any array a seed produces; a deliberate model change
updates the digests here and says so in its commit."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from blurgen.blur import BlurConfig
from blurgen.camera import CameraConfig
from blurgen.core.config import KernelConfig
from blurgen.pairs.pipeline import PairsConfig
from blurgen.runs.dataset import make_dataset

#: Arrays that existed when the digests were taken (later schema additions are not part of them).
PINNED = ("blurred", "sharp", "kernel", *(f"params/{name}" for name in (
    "anxiety", "big_shake_prob", "big_shakes", "centripetal", "exposed_steps", "exposure_fraction",
    "gain", "gaussian_shake", "initial_angle_rad", "jpeg_quality", "kernel_support_px", "noise_a",
    "noise_b", "path_length_px", "redraws", "seed_index", "source_index")))

CAMERA_DIGEST = "c8c76bd76cc0814e5873f3d8b02ee1317a7b9024164f20539666808db763fb25"
CAMERA_PINNED = ("blurred", "sharp", "kernel", "motion/rotation", "motion/translation", *(f"params/{name}" for name in (
    "anchor_x", "anchor_y", "exposure_s", "focal_px", "gain", "noise_a", "noise_b", "redraws", "seed_index",
    "window_x", "window_y")))

CONFIGS = {
    "default": (PairsConfig(width=48, height=40, kernel=KernelConfig(size=33, length_px=24.0,
                                                                     exposures=(0.1, 0.5, 1.0))),
                "cf2bf77822e14b97dc60cd7028bc8bc8264063de81b72b9df8d10a2ab19bf0f4"),
    "jpeg_gain": (PairsConfig(width=40, height=32, kernel=KernelConfig(size=65),
                              blur=BlurConfig(gain_prob=1.0, gain_max=3.0, jpeg_quality_range=(60, 90),
                                              noise="poisson")),
                  "9e7ffb77f253d632c808e427acb06ebf690d2b5b2763f9e63d209c755a4f7169"),
}


def digest(path, names=PINNED) -> str:
    sha = hashlib.sha256()
    with h5py.File(path, "r") as h5:
        for name in names:
            array = np.ascontiguousarray(h5[name][...])
            sha.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            sha.update(array.tobytes())
    return sha.hexdigest()


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("workers", [1, 2])
def test_small_dataset_keeps_its_pinned_digest(tmp_path, name, workers):
    config, expected = CONFIGS[name]
    out = tmp_path / "pairs.h5"
    make_dataset(str(out), config, 10, seed=3, workers=workers, block_size=4, durable=False)
    assert digest(out) == expected


CAMERA = PairsConfig(width=48, height=40, motion="camera3d",
                     camera=CameraConfig(size=33, frame_size=(320, 240), exposure_s=(0.01, 0.04)))


@pytest.mark.parametrize("workers", [1, 2])
def test_small_camera_dataset_keeps_its_pinned_digest(tmp_path, workers):
    out = tmp_path / "pairs.h5"
    make_dataset(str(out), CAMERA, 10, seed=3, workers=workers, block_size=4, durable=False)
    assert digest(out, CAMERA_PINNED) == CAMERA_DIGEST
