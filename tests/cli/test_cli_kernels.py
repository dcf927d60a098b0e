"""`blurgen kernels` and the package's import-time promises."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen import KernelConfig, random_kernels
from blurgen.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_npy_output_holds_the_same_kernels_as_the_library(tmp_path):
    out = tmp_path / "k.npy"
    result = run("kernels", "--n", "5", "--out", str(out), "--seed", "3", "--kernel-size", "31", "--length-px", "20")
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    expected = random_kernels(5, seed=3, config=KernelConfig(size=31, length_px=20.0))
    assert saved.tobytes() == expected.tobytes()


@pytest.mark.parametrize("exposures", ["1", "0.1,0.5,1"])
def test_png_output_is_a_picture_with_one_tile_per_kernel(tmp_path, exposures):
    out = tmp_path / "k.png"
    result = run("kernels", "--n", "4", "--out", str(out), "--kernel-size", "21", "--length-px", "12",
                 "--exposures", exposures, "--scale", "1")
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    columns = len(exposures.split(",")) if "," in exposures else 2
    rows = 4 if "," in exposures else 2
    caption = 14  # each tile and the sheet carry a caption band
    assert image.shape == (caption + rows * (23 + caption) + 2, columns * 23 + 2, 3)
    assert image.max() == 255


def test_sheets_and_previews_carry_labels_but_data_outputs_do_not(tmp_path):
    from blurgen.inspect.preview import CAPTION_PX

    png = tmp_path / "k.png"
    assert run("kernels", "--n", "2", "--out", str(png), "--kernel-size", "21", "--scale", "2").exit_code == 0
    image = cv2.imread(str(png))
    band, first_tile = image[:CAPTION_PX], image[CAPTION_PX + 2:2 * CAPTION_PX + 2, 2:44]
    assert (band > 128).sum() > 20 and (first_tile > 128).sum() > 5  # the title and "#0" are written
    unlabelled = np.zeros((21, 21), np.float32)
    unlabelled[10, 10] = 1
    from blurgen.inspect.preview import caption, kernel_tile

    tile = kernel_tile(unlabelled, 2)
    assert caption(tile, "").shape == (tile.shape[0] + CAPTION_PX, *tile.shape[1:])
    npy = tmp_path / "k.npy"  # data: exactly the kernels, nothing drawn on them
    assert run("kernels", "--n", "2", "--out", str(npy), "--kernel-size", "21").exit_code == 0
    assert np.load(npy).shape == (2, 21, 21)


@pytest.mark.parametrize("args, fragment", [
    (["--n", "0"], "--n"),
    (["--kernel-size", "4"], "--kernel-size"),
    (["--kernel-size", "1"], "--kernel-size"),
    (["--length-px", "-1"], "--length-px"),
    (["--exposures", "0"], "--exposures"),
    (["--exposures", "abc"], "--exposures"),
    (["--anxiety", "0.5"], "--anxiety"),
    (["--steps", "1"], "--steps"),
    (["--seed", "-1"], "--seed"),
    (["--bogus"], "--bogus"),
])
def test_bad_options_exit_2_with_a_short_message(tmp_path, args, fragment):
    result = run("kernels", "--out", str(tmp_path / "k.npy"), *args)
    assert result.exit_code == 2
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "k.npy").exists()


def test_unknown_extension_is_a_usage_error(tmp_path):
    result = run("kernels", "--out", str(tmp_path / "k.txt"))
    assert result.exit_code == 2 and ".npy or .png" in result.output


def test_unwritable_output_fails_with_exit_1(tmp_path):
    result = run("kernels", "--n", "2", "--out", str(tmp_path / "missing" / "k.npy"))
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_kernel_too_small_for_its_paths_is_a_usage_error_found_before_work(tmp_path):
    result = run("kernels", "--n", "2", "--out", str(tmp_path / "k.npy"), "--kernel-size", "5",
                 "--anxiety", "0.0001", "--steps", "50")
    assert result.exit_code == 2 and "--kernel-size" in result.output
    assert "size=5 is too small for length_px=60" in result.output and "use size >= " in result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_version_and_help_with_examples():
    assert run("--version").output.startswith("blurgen, version")
    help_text = run("kernels", "--help").output
    assert "Examples:" in help_text and "blurgen kernels --n 64 --out kernels.png" in help_text


def test_import_blurgen_does_not_import_torch_h5py_or_opencv():
    code = ("import sys, blurgen; blurgen.random_kernels(1, size=15, length_px=5.0); "
            "print(sorted(m for m in ('torch', 'h5py', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_npy_is_written_in_batches_with_the_library_kernels(tmp_path, monkeypatch):
    from blurgen.cli import kernels_cmd

    monkeypatch.setattr(kernels_cmd, "NPY_BATCH", 3)
    out = tmp_path / "k.npy"
    result = run("kernels", "--n", "7", "--out", str(out), "--seed", "2", "--start", "5", "--kernel-size", "21",
                 "--length-px", "12")
    assert result.exit_code == 0, result.output
    expected = random_kernels(7, seed=2, start=5, config=KernelConfig(size=21, length_px=12.0))
    assert np.load(out).tobytes() == expected.tobytes()


def test_npy_too_large_for_the_disk_fails_before_work(tmp_path, monkeypatch):
    monkeypatch.setattr("blurgen.core.common.free_bytes", lambda path: 10**6)
    result = run("kernels", "--n", "1000", "--out", str(tmp_path / "k.npy"))
    assert result.exit_code == 1 and "GB needed" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, fragment", [
    (["--n", "4097", "--out", "k.png"], "at most 4096"),
    (["--n", "2049", "--exposures", "0.5,1", "--out", "k.png"], "at most 4096"),
    (["--n", "2", "--start", str(2**63 - 1), "--out", "k.npy"], "last sample index"),
    (["--n", str(10**9 + 1), "--out", "k.npy"], "--n"),
])
def test_requests_beyond_the_limits_are_usage_errors(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    result = run("kernels", *args)
    assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
