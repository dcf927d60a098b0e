"""Clip datasets (HDF5 schema 3): same arrays for any workers, shards and resume point; the reader
returns whole clips; the image-pair trainer and the command line refuse what they cannot use."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from pairs_compare import assert_same_arrays

from blurgen import read_pairs
from blurgen.camera import CameraConfig
from blurgen.cli import main
from blurgen.pairs.clips import ClipMaker, ClipsConfig, make_clip_block
from blurgen.pairs.pipeline import PairsConfig
from blurgen.runs.dataset import make_dataset
from blurgen.store.merge import merge_files

CAMERA = CameraConfig(size=33, frame_size=(320, 240), focal_35mm=(20.0, 35.0), shake_scale=0.5)
CONFIG = ClipsConfig(PairsConfig(width=40, height=32, motion="camera3d", camera=CAMERA), frames=3, margin_px=48)


class Interrupted(ClipMaker):
    def __call__(self, config, seed, start, count):
        if start >= 4:
            raise KeyboardInterrupt
        return super().__call__(config, seed, start, count)


def make(path, n=6, **kwargs):
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("block_size", 2)
    kwargs.setdefault("maker", ClipMaker())
    return make_dataset(str(path), CONFIG, n, seed=3, durable=False, **kwargs)


def test_clip_files_are_the_same_for_any_workers_shards_and_resume(tmp_path):
    make(tmp_path / "ref.h5")
    make(tmp_path / "two.h5", workers=2, block_size=3)
    assert_same_arrays(tmp_path / "ref.h5", tmp_path / "two.h5")
    for i in range(2):
        make(tmp_path / f"s{i}.h5", shard=(i, 2))
    merge_files([str(tmp_path / "s1.h5"), str(tmp_path / "s0.h5")], str(tmp_path / "m.tmp"), str(tmp_path / "m.h5"), "m")
    assert_same_arrays(tmp_path / "ref.h5", tmp_path / "m.h5")
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path / "out.h5", maker=Interrupted())
    assert make(tmp_path / "out.h5", resume=True).n_reused == 4
    assert_same_arrays(tmp_path / "ref.h5", tmp_path / "out.h5")


def test_the_reader_returns_whole_clips_stored_one_frame_per_chunk(tmp_path):
    make(tmp_path / "c.h5", n=3)
    block = make_clip_block(CONFIG, 3, 1, 1)
    with read_pairs(tmp_path / "c.h5") as f:
        blurred, sharp, kernels = f[1]
        assert (blurred.shape, sharp.shape, kernels.shape) == ((3, 32, 40, 3), (3, 32, 40, 3), (3, 33, 33))
        assert f.frames == 3 and f.attrs["schema_version"] == 3 and f.attrs["config_dict"]["clips"]["frames"] == 3
        np.testing.assert_array_equal(blurred, block["blurred"][0])
        np.testing.assert_array_equal(kernels, block["kernel"][0])
    with h5py.File(tmp_path / "c.h5", "r") as h5:
        assert h5["blurred"].chunks == (1, 1, 32, 40, 3)
        assert h5["motion/rotation"].shape[:2] == (3, 3) and h5["motion/frame_rotation"].shape == (3, 3, 3)


def test_a_clip_file_is_refused_by_the_pair_trainer_in_one_line(tmp_path):
    torch = pytest.importorskip("torch")  # noqa: F841
    from blurgen.deblur.data import DataError, PairsDataset

    make(tmp_path / "c.h5", n=2)
    with pytest.raises(DataError, match="clips file") as info:
        PairsDataset(tmp_path / "c.h5", crop=16)
    assert "\n" not in str(info.value)
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "c.h5"), "--out", str(tmp_path / "run"),
                                       "--max-steps", "1", "--crop", "16", "--width", "4"])
    assert result.exit_code == 1 and "clips file" in result.output and "Traceback" not in result.output
    from blurgen.deblur.evaluate import hdf5_pairs
    from blurgen.store.schema import PairsFileError

    with pytest.raises(PairsFileError, match="clips file"):
        hdf5_pairs(str(tmp_path / "c.h5"))


@pytest.mark.parametrize("args, flag", [(["--clips", "0"], "--clips"), (["--clips", "2", "--fps", "0"], "--fps"),
                                        (["--clips", "2", "--shutter-angle", "361"], "--shutter-angle"),
                                        (["--fps", "24"], "--fps"), (["--clips", "2", "--motion", "shake2d"], "--motion")])
def test_bad_clip_options_are_usage_errors(tmp_path, args, flag):
    result = CliRunner().invoke(main, ["make", "--n", "2", "--out", str(tmp_path / "x.h5"), "--motion", "camera3d",
                                       *args])
    assert result.exit_code == 2 and flag in result.output
    assert not (tmp_path / "x.h5").exists()


def test_make_clips_on_the_command_line(tmp_path):
    out = tmp_path / "c.h5"
    result = CliRunner().invoke(main, ["make", "--n", "2", "--out", str(out), "--clips", "2", "--size", "32",
                                       "--motion", "camera3d", "--fps", "24", "--shutter-angle", "90",
                                       "--readout-s", "0.01", "--workers", "1", "--preview", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    strip = cv2.imread(str(tmp_path / "s.png"))[:, :, ::-1]
    assert strip.shape == (14 + 4 * 32 + 4 * 4, 2 * 32 + 4, 3)  # title band + 2 clips x (blurred row, sharp row) of 2 frames
    with read_pairs(out) as f:
        np.testing.assert_array_equal(strip[14:46, :32], f[0][0][0])  # below the title band
        np.testing.assert_array_equal(strip[50:82, 36:68], f[0][1][1])
    shown = CliRunner().invoke(main, ["inspect", str(out), "--png", str(tmp_path / "i.png")])
    assert shown.exit_code == 0 and "problems: none found" in shown.output, shown.output
    assert cv2.imread(str(tmp_path / "i.png")).shape == strip.shape
    with read_pairs(out) as f:
        assert len(f) == 2 and f[0][0].shape == (2, 32, 32, 3)
        assert f.attrs["config_dict"]["clips"] == {"frames": 2, "fps": 24.0, "shutter_angle": 90.0,
                                                   "readout_s": 0.01, "margin_px": 224}


def test_clips_dataset_gives_aligned_temporal_and_spatial_crops(tmp_path):
    pytest.importorskip("torch")
    from blurgen.deblur.clips_data import ClipsDataset
    from blurgen.deblur.data import DataError

    make(tmp_path / "c.h5", n=2)
    ds = ClipsDataset(tmp_path / "c.h5", frames=2, crop=16, seed=1)
    blurred, sharp = ds[1]
    assert blurred.shape == sharp.shape == (2, 3, 16, 16) and -1.0 <= float(blurred.min()) <= float(blurred.max()) <= 1.0
    first, top, left = ds._window(1)
    with read_pairs(tmp_path / "c.h5") as f:
        stored = f[1][1][first:first + 2, top:top + 16, left:left + 16].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(sharp.numpy(), stored / 127.5 - 1.0, atol=1e-6)
    windows = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        windows.add(ds._window(1))
    assert len(windows) > 1  # epochs differ; each is a pure function of (seed, epoch, index)
    with pytest.raises(DataError, match="fewer than frames=4"):
        ClipsDataset(tmp_path / "c.h5", frames=4)
