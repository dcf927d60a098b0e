"""Preview sheets say what they show: row captions from the stored parameters, a title, and for
camera3d the local kernels across each window (the centre one is the stored kernel)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from blurgen import read_pairs
from blurgen.cli import main
from blurgen.inspect.preview import CAPTION_PX, kernel_tile, row_captions, sheet_from_file, window_kernel_grid


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cam") / "cam.h5")
    result = CliRunner().invoke(main, ["make", "--n", "3", "--out", out, "--size", "64", "--motion", "camera3d",
                                       "--kernel-size", "33", "--workers", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_camera3d_preview_shows_the_local_kernels_across_the_window(camera_file):
    with read_pairs(camera_file) as f:
        picture = window_kernel_grid(f, 1, (64, 64), 33)
        stored = f[1][2]
    assert picture.shape == (3 * 33 + 4, 3 * 33 + 4, 3)
    centre = picture[1 + 33 + 1:1 + 2 * 33 + 1, 1 + 33 + 1:1 + 2 * 33 + 1]
    assert np.abs(centre.astype(int) - kernel_tile(stored).astype(int)).max() <= 2


def test_preview_rows_are_captioned_with_index_and_blur_parameters(camera_file):
    import h5py

    with h5py.File(camera_file, "r") as h5:
        lines = row_captions(h5, 8, 3)
    assert [line.split()[0] for line in lines] == ["#0", "#1", "#2"]
    assert all(" s " in line and " mm" in line and "at (" in line for line in lines)
    sheet = sheet_from_file(camera_file)
    assert (sheet[:CAPTION_PX] > 128).sum() > 20  # the title line is written
