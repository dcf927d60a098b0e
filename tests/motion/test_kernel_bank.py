"""KernelBank: loading every file format, the preparation laws (sum 1, centred, non-negative),
one-line errors for bad files, and deterministic sampling. All kernel files are made here from
synthetic kernels."""

from __future__ import annotations

import os
import pickle

import cv2
import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blurgen
import blurgen.core.streams
import blurgen.motion.bank
from blurgen.core.common import BlurgenError
from blurgen.motion.bank import KernelBank, KernelBankError, centre_kernel, dihedral, scale_kernel

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def centroid_error(kernel: np.ndarray) -> float:
    k = kernel.astype(np.float64)
    rows, cols = np.indices(k.shape)
    centre = (k.shape[0] - 1) / 2
    return max(abs((k * rows).sum() / k.sum() - centre), abs((k * cols).sum() / k.sum() - centre))


def assert_prepared(kernel: np.ndarray) -> None:
    assert kernel.dtype == np.float32 and kernel.ndim == 2
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert (kernel >= 0).all()
    assert abs(float(kernel.sum(dtype=np.float64)) - 1) < 1e-5
    assert centroid_error(kernel) < 1e-3


def synthetic(n: int = 3, side: int = 9, seed: int = 0) -> np.ndarray:
    """Off-centre line-and-dot kernels (not normalised, float64)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, side, side))
    for i in range(n):
        row = rng.integers(0, side)
        out[i, row, rng.integers(0, side // 2):side - 1] = rng.random() + 0.5
        out[i, rng.integers(0, side), rng.integers(0, side)] += 2.0
    return out


def same_kernels(bank: KernelBank, arrays) -> None:
    assert len(bank) == len(arrays)
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(bank.kernel(i), centre_kernel(a))


# --------------------------------------------------------------------------------------------
# Preparation laws


@PROPERTY
@given(st.integers(1, 25), st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_centre_kernel_sums_to_one_and_centres_within_float_rounding(side, seed, density):
    rng = np.random.default_rng(seed)
    k = rng.random((side, side)) * (rng.random((side, side)) < density)
    k[rng.integers(side), rng.integers(side)] += 0.1
    out = centre_kernel(k)
    assert_prepared(out)
    assert centroid_error(out) < 1e-4  # the module docstring's claim


def test_centre_kernel_keeps_a_centred_kernel_bit_for_bit():
    k = np.zeros((7, 7), np.float32)
    k[3, 1:6] = 0.2
    np.testing.assert_array_equal(centre_kernel(k), k[1:6, 1:6])


def test_centre_kernel_shifts_by_a_half_pixel_as_a_bilinear_split():
    out = centre_kernel(np.array([[1.0, 1.0]]))  # centroid at x = 0.5
    np.testing.assert_allclose(out, [[0, 0, 0], [0.25, 0.5, 0.25], [0, 0, 0]])


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 10.0))
def test_scale_keeps_sum_and_centroid(seed, scale):
    k = centre_kernel(synthetic(1, 11, seed)[0])
    out = scale_kernel(k, scale)
    assert_prepared(out)
    support = (out.shape[0] - 1) / 2
    assert support <= np.ceil((k.shape[0] // 2 + 0.5) * scale)


def test_scale_enlarges_without_holes_and_shrinks_mass_preserving():
    line = np.zeros((9, 9), np.float32)
    line[4, :] = 1 / 9
    big = scale_kernel(line, 3.0)
    middle = big[big.shape[0] // 2]
    inner = middle[np.flatnonzero(middle)[0]:np.flatnonzero(middle)[-1] + 1]
    assert (inner > 0).all() and big.shape[0] >= 27
    small = scale_kernel(line, 0.5)
    assert small.shape[0] <= 7 and abs(small.sum() - 1) < 1e-6


def test_dihedral_gives_eight_distinct_arrangements_of_an_asymmetric_kernel():
    k = centre_kernel(synthetic(1, 9, 3)[0])
    arrangements = {dihedral(k, t).tobytes() for t in range(8)}
    assert len(arrangements) == 8
    assert all(centroid_error(dihedral(k, t)) < 1e-3 for t in range(8))


# --------------------------------------------------------------------------------------------
# Formats


def test_npy_stack_and_single_kernel(tmp_path):
    arrays = synthetic(4, 9)
    np.save(tmp_path / "stack.npy", arrays)
    same_kernels(KernelBank.from_file(tmp_path / "stack.npy"), arrays)
    np.save(tmp_path / "one.npy", arrays[0].astype(np.float32))
    same_kernels(KernelBank.from_file(str(tmp_path / "one.npy")), arrays[:1])


def test_npz_reads_every_array_in_order_sizes_may_differ(tmp_path):
    a, b = synthetic(2, 7), synthetic(1, 15, seed=1)
    np.savez(tmp_path / "k.npz", first=a, second=b[0])
    bank = KernelBank.from_file(tmp_path / "k.npz")
    same_kernels(bank, [a[0], a[1], b[0]])
    assert bank.size == max(bank.kernel(i).shape[0] for i in range(3))


def test_mat_v5_plain_stack_in_matlab_order_and_nested_cells(tmp_path):
    arrays = synthetic(3, 9)
    stack = np.moveaxis(arrays, 0, 2)  # MATLAB (k, k, N)
    cell = np.empty((1, 2), dtype=object)
    inner = np.empty((2, 1), dtype=object)
    inner[0, 0], inner[1, 0] = arrays[1], synthetic(1, 5, 2)[0]
    cell[0, 0], cell[0, 1] = arrays[0], inner
    scipy.io.savemat(tmp_path / "k.mat", {"K": stack, "C": cell, "note": "recorded kernels"})
    bank = KernelBank.from_file(tmp_path / "k.mat")
    # savemat keeps the dict order: K's three kernels, then C walked in MATLAB order.
    same_kernels(bank, [*arrays, arrays[0], arrays[1], synthetic(1, 5, 2)[0]])


def write_mat_v73(path, variables: dict) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte text header, arrays stored
    transposed (column-major), MATLAB_class attributes, cell arrays as object references into
    '#refs#'."""
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            if isinstance(value, list):
                targets = []
                for i, item in enumerate(value):
                    ds = refs.create_dataset(f"{name}_{i}", data=np.asarray(item).T)
                    ds.attrs["MATLAB_class"] = np.bytes_("double")
                    targets.append(ds.ref)
                ds = f.create_dataset(name, data=np.array([targets], dtype=h5py.ref_dtype).T)
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                ds = f.create_dataset(name, data=np.asarray(value).T)
                ds.attrs["MATLAB_class"] = np.bytes_("char" if value.dtype.kind == "u" else "double")
    with open(path, "r+b") as f:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
        f.write(text.ljust(116) + b"\0" * 8 + b"\x00\x02" + b"IM")  # version 0x0200, little-endian


def test_mat_v73_arrays_and_cell_arrays(tmp_path):
    arrays = synthetic(3, 9)
    odd = synthetic(1, 13, 5)[0]
    write_mat_v73(tmp_path / "k.mat", {"A": np.moveaxis(arrays, 0, 2), "B": [odd, arrays[2]],
                                       "name": np.frombuffer(b"abc", np.uint8).astype(np.uint16)})
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(tmp_path / "k.mat")  # really a v7.3 file
    same_kernels(KernelBank.from_file(tmp_path / "k.mat"), [*arrays, odd, arrays[2]])


def test_png_folder_8_and_16_bit_sorted_by_name_and_single_png(tmp_path):
    folder = tmp_path / "kernels"
    folder.mkdir()
    arrays = synthetic(3, 11)
    images = [np.round(a / a.max() * 255).astype(np.uint8) for a in arrays]
    images[1] = np.round(arrays[1] / arrays[1].max() * 65535).astype(np.uint16)
    for name, img in zip(["b.png", "c.png", "a.PNG"], images):
        cv2.imwrite(str(folder / name), img)
    cv2.imwrite(str(folder / "colour_grey.png"), np.repeat(images[0][:, :, None], 3, axis=2))
    (folder / "notes.txt").write_text("not a kernel")
    bank = KernelBank.from_file(folder)
    same_kernels(bank, [images[2], images[0], images[1], images[0]])  # a, b, c, colour_grey
    same_kernels(KernelBank.from_file(folder / "b.png"), [images[0]])


def test_negative_entries_are_clipped_before_normalising(tmp_path):
    k = synthetic(1, 9)[0]
    k[0, 0] = -0.05  # ringing of an estimated kernel
    np.save(tmp_path / "k.npy", k)
    bank = KernelBank.from_file(tmp_path / "k.npy")
    np.testing.assert_array_equal(bank.kernel(0), centre_kernel(np.maximum(k, 0)))


# --------------------------------------------------------------------------------------------
# Errors: one line, naming the file and the reason


def bad_files(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (path, a word the message must contain)."""
    k = synthetic(2, 9)
    files = {}

    def add(name, reason, write):
        path = str(tmp_path / name)
        write(path)
        files[name] = (path, reason)

    add("corrupt.npy", "cannot read", lambda p: open(p, "wb").write(b"\x93NUMPY garbage" * 3))
    add("corrupt.npz", "cannot read", lambda p: open(p, "wb").write(b"PK\x03\x04 not a zip"))
    add("corrupt.mat", "cannot read", lambda p: open(p, "wb").write(b"MATLAB 5.0 MAT-file" + b"\0" * 200))
    add("truncated.mat", "cannot read", lambda p: (scipy.io.savemat(p, {"K": k[0]}),
                                                   os.truncate(p, os.path.getsize(p) - 20)))
    add("nonsquare.npy", "not square (9x7)", lambda p: np.save(p, np.ones((9, 7))))
    add("nonsquare.mat", "not square", lambda p: scipy.io.savemat(p, {"K": np.ones((5, 4))}))
    add("negative.npy", "sums to -", lambda p: np.save(p, -np.abs(k)))
    add("zero.npy", "sums to 0", lambda p: np.save(p, np.zeros((3, 3))))
    add("nan.npy", "NaN", lambda p: np.save(p, np.where(k > 0, np.nan, k)))
    add("empty.npy", "empty", lambda p: np.save(p, np.zeros((0, 0))))
    add("empty_stack.npy", "no kernels", lambda p: np.save(p, np.zeros((0, 5, 5))))
    add("fourd.npy", "array of 4 dimension(s)", lambda p: np.save(p, np.ones((2, 2, 3, 3))))
    add("oned.npy", "array of 1 dimension(s)", lambda p: np.save(p, np.ones(9)))
    add("complex.npy", "not real", lambda p: np.save(p, k.astype(np.complex64)))
    add("kernels.txt", "unknown kernel file type", lambda p: open(p, "w").write("1 2 3"))
    add("text_only.mat", "no kernels", lambda p: scipy.io.savemat(p, {"name": "just text"}))
    add("broken.png", "not a readable PNG", lambda p: open(p, "wb").write(b"\x89PNG broken"))
    add("colour.png", "not grayscale", lambda p: cv2.imwrite(p, np.dstack([np.ones((5, 5)), np.zeros((5, 5)),
                                                                            np.zeros((5, 5))]).astype(np.uint8)))
    add("empty_folder", "no .png files", os.mkdir)
    files["missing.npy"] = (str(tmp_path / "missing.npy"), "no such file")
    return files


def test_bad_files_give_one_line_errors_naming_file_and_reason(tmp_path):
    for name, (path, reason) in bad_files(tmp_path).items():
        with pytest.raises(KernelBankError) as info:
            KernelBank.from_file(path)
        message = str(info.value)
        assert isinstance(info.value, BlurgenError) and isinstance(info.value, ValueError)
        assert "\n" not in message, (name, message)
        assert path in message and reason in message, (name, message)


def test_bad_kernel_inside_a_stack_names_its_position(tmp_path):
    k = synthetic(3, 9)
    k[2] = np.nan
    np.save(tmp_path / "k.npy", k)
    with pytest.raises(KernelBankError, match=r"k\.npy: kernel 2: holds NaN"):
        KernelBank.from_file(tmp_path / "k.npy")


def test_bad_arguments_raise_value_errors():
    k = synthetic(2, 5)
    with pytest.raises(ValueError, match="scale_range"):
        KernelBank(k, scale_range=(0.5, 20.0))
    with pytest.raises(ValueError, match="augment"):
        KernelBank(k, augment="yes")
    with pytest.raises(KernelBankError, match="not square"):
        KernelBank([np.ones((3, 3)), np.ones((3, 5))])
    with pytest.raises(ValueError, match="size=3 is smaller"):
        KernelBank(k).kernels(2, size=3)
    with pytest.raises(ValueError, match="start must be"):
        KernelBank(k).kernels(2, start=2**63 - 1)
    assert KernelBank(k).kernels(1, start=2**63 - 1)[1]["seed_index"].tolist() == [2**63 - 1]


# --------------------------------------------------------------------------------------------
# Sampling


def test_sample_i_of_seed_s_depends_only_on_s_and_i():
    bank = KernelBank(synthetic(20, 9), augment=True, scale_range=(0.5, 2.0))
    whole, params = bank.kernels(12, seed=5, start=100)
    part, part_params = bank.kernels(4, seed=5, start=104)
    np.testing.assert_array_equal(whole[4:8], part)
    for name in params:
        np.testing.assert_array_equal(params[name][4:8], part_params[name])
    other, _ = bank.kernels(12, seed=6, start=100)
    assert not np.array_equal(whole, other)
    assert params["seed_index"].tolist() == list(range(100, 112))


def test_sampled_kernels_one_size_prepared_and_rebuilt_from_their_params():
    bank = KernelBank(synthetic(5, 9), augment=True, scale_range=(0.5, 2.0))
    kernels, params = bank.kernels(64, seed=1)
    assert kernels.shape == (64, bank.size, bank.size) and kernels.dtype == np.float32
    for k, i, t, s in zip(kernels, params["bank_index"], params["transform"], params["scale"]):
        assert_prepared(k)
        rebuilt = scale_kernel(dihedral(bank.kernel(int(i)), int(t)), float(s))
        np.testing.assert_array_equal(blurgen.crop_to_support(k), rebuilt)
    assert set(params["transform"].tolist()) == set(range(8))
    assert 0.5 <= params["scale"].min() < 0.8 and 1.4 < params["scale"].max() <= 2.0
    assert set(params["bank_index"].tolist()) == set(range(5))


def test_defaults_draw_no_transform_and_no_scaling():
    bank = KernelBank(synthetic(3, 9))
    kernels, params = bank.kernels(10, seed=2)
    assert (params["transform"] == 0).all() and (params["scale"] == 1).all()
    for k, i in zip(kernels, params["bank_index"]):
        np.testing.assert_array_equal(blurgen.crop_to_support(k), bank.kernel(int(i)))


def test_pickles_compactly_and_samples_the_same_after():
    bank = KernelBank(synthetic(50, 15), augment=True)
    data = pickle.dumps(bank)
    assert len(data) < bank._flat.nbytes + 4000
    clone = pickle.loads(data)
    np.testing.assert_array_equal(clone.kernels(8, seed=3)[0], bank.kernels(8, seed=3)[0])


def test_describe_and_fingerprint_follow_the_kernels(tmp_path):
    k = synthetic(3, 9)
    np.save(tmp_path / "k.npy", k)
    bank = KernelBank.from_file(tmp_path / "k.npy", augment=True)
    info = bank.describe()
    assert info["source"] == str(tmp_path / "k.npy") and info["kernels"] == 3 and info["augment"] is True
    assert info["fingerprint"] == KernelBank(k).fingerprint
    k[0, 0, 0] += 1
    assert KernelBank(k).fingerprint != info["fingerprint"]


def test_stored_kernels_are_read_only_views():
    bank = KernelBank(synthetic(2, 5))
    with pytest.raises(ValueError):
        bank.kernel(0)[0, 0] = 1.0


def test_kernel_bank_is_a_lazy_top_level_name_without_torch():
    import subprocess
    import sys

    code = ("import sys, blurgen; blurgen.KernelBank([[1.0]]); "
            "print('torch' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_png_folder_whose_name_is_not_utf8_loads(tmp_path):
    """cv2.imread hands the path to C++ as UTF-8 and segfaulted (exit -11) on such a name; the
    bank reads through blurgen.core.imageio like every other image reader. In a subprocess, so a
    crash fails this test instead of killing the run."""
    import subprocess
    import sys

    folder = os.fsencode(tmp_path) + b"/psf\xff"
    os.mkdir(folder)
    ok, png = cv2.imencode(".png", (np.eye(5) * 255).astype(np.uint8))
    with open(folder + b"/a.png", "wb") as handle:
        handle.write(png.tobytes())
    code = "import os, sys, blurgen; b = blurgen.KernelBank.from_file(os.fsdecode(os.fsencode(sys.argv[1]))); print(len(b))"
    done = subprocess.run([sys.executable, "-c", code, os.fsdecode(folder)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["1"], done.stderr[-500:]
