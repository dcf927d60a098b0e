"""A hostile user's worst hour on the write side (issue 10, F1-F8): full disks and file-size
limits, outputs that already exist, file names that are not UTF-8, crafted and damaged files.
Each failure is exit 1 with exactly one line and no traceback, and finished work resumes to the
same arrays."""

from __future__ import annotations

import os
import resource
import subprocess

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from pairs_compare import assert_same_arrays, interrupted_maker

from blurgen.cli import main
from blurgen.core.config import KernelConfig
from blurgen.pairs.pipeline import PairsConfig
from blurgen.runs.dataset import make_dataset

SMALL = ["--size", "32", "--kernel-size", "15", "--length-px", "10"]
#: 8-sample parts of 64x64 pairs are ~0.2 MB; 40 of them assembled take ~1 MB plus reserve.
PARTS_FIT_FILE_DOES_NOT = 1024 * 1024


def run_blurgen(args, file_size_limit=None, cwd=None):
    """``blurgen *args`` in a fresh process, optionally under ``ulimit -f`` (bytes)."""
    def limit():
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    return subprocess.run(["blurgen", *args], capture_output=True, timeout=300, preexec_fn=limit, cwd=cwd)


def assert_one_line_failure(done, *fragments):
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, (done.returncode, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def make_args(out, *extra, workers="1"):
    return ["make", "--n", "40", "--out", str(out), "--size", "64", "--kernel-size", "15",
            "--length-px", "10", "--workers", workers, "--block-size", "8", *extra]


# ------------------------------------------------------------------------------- F1 full disk
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_file_size_limit_hit_by_the_assembly_is_one_line_and_the_parts_resume(tmp_path, workers):
    reference = tmp_path / "ref.h5"
    assert run_blurgen(make_args(reference)).returncode == 0
    out = tmp_path / "f.h5"
    done = run_blurgen(make_args(out, workers=workers), file_size_limit=PARTS_FIT_FILE_DOES_NOT)
    assert_one_line_failure(done, "file-size limit reached while writing", "--resume")
    assert not out.exists()
    assert run_blurgen(make_args(out, "--resume", workers=workers)).returncode == 0
    assert_same_arrays(reference, out)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_file_size_limit_smaller_than_a_part_is_one_line(tmp_path, workers):
    done = run_blurgen(make_args(tmp_path / "f.h5", workers=workers), file_size_limit=100 * 1024)
    assert_one_line_failure(done, "file-size limit reached while writing")


def test_a_file_size_limit_hit_by_the_assembly_header_of_a_folder_source_is_one_line(tmp_path):
    """The assembled file's attributes and /source_files (one name per image of a folder source)
    were written through HDF5 before its size was reserved: under ``ulimit -f`` that write failed
    inside HDF5 (exit 139, a segfault, after h5py tracebacks)."""
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    ok, png = cv2.imencode(".png", np.full((48, 48, 3), 90, np.uint8))
    for i in range(120):
        (folder / f"{'a_long_file_name_' * 5}{i:04d}.png").write_bytes(png.tobytes())
    args = ["make", "--n", "16", "--size", "32", "--kernel-size", "15", "--length-px", "10",
            "--workers", "1", "--block-size", "8", "--source", str(folder)]
    reference, out = tmp_path / "ref.h5", tmp_path / "f.h5"
    assert run_blurgen([*args, "--out", str(reference)]).returncode == 0
    with h5py.File(reference, "r") as h5:
        assert sum(len(name) for name in h5["source_files"][...]) > 8192  # the names alone pass the limit
    done = run_blurgen([*args, "--out", str(out)], file_size_limit=8192)
    assert_one_line_failure(done, "file-size limit reached while writing", "--resume")
    assert run_blurgen([*args, "--out", str(out), "--resume"]).returncode == 0
    assert_same_arrays(reference, out)


# -------------------------------------------------------------------- F2 existing outputs
def test_secondary_outputs_are_never_replaced_without_overwrite(tmp_path):
    data = tmp_path / "pairs.h5"
    assert cli("make", "--n", "4", "--out", str(data), "--workers", "1", *SMALL).exit_code == 0
    other, other_png = tmp_path / "other.h5", tmp_path / "other.png"
    other.write_bytes(b"precious")
    other_png.write_bytes(b"precious")
    for args in (["inspect", str(data), "--png", str(other)],
                 ["kernels", "--n", "4", "--out", str(other_png)],
                 ["make", "--n", "4", "--out", str(tmp_path / "new.h5"), "--preview", str(other), *SMALL]):
        result = cli(*args)
        assert result.exit_code == 1 and "exists; use --overwrite" in result.output, (args, result.output)
        assert other.read_bytes() == other_png.read_bytes() == b"precious"
    assert not (tmp_path / "new.h5").exists() and not (tmp_path / "new.h5.parts").exists()
    assert cli("inspect", str(data), "--png", str(other), "--overwrite").exit_code == 0
    assert other.read_bytes()[:4] == b"\x89PNG"


def test_a_resumed_make_may_refresh_its_png_preview_but_nothing_else(tmp_path):
    out, sheet = tmp_path / "pairs.h5", tmp_path / "sheet.png"
    args = ["make", "--n", "4", "--out", str(out), "--workers", "1", "--preview", str(sheet), *SMALL]
    assert cli(*args).exit_code == 0 and sheet.exists()
    assert cli(*args, "--resume").exit_code == 0
    sheet.write_bytes(b"not a picture")
    assert cli(*args, "--resume").exit_code == 1 and sheet.read_bytes() == b"not a picture"


# --------------------------------------------------------------------- F3 non-UTF-8 names
def test_names_that_are_not_utf8_work_for_out_and_source(tmp_path):
    import cv2

    folder = os.path.join(os.fsencode(tmp_path), b"ph\xf6tos")
    os.mkdir(folder)
    ok, png = cv2.imencode(".png", np.full((80, 90, 3), 120, np.uint8))
    with open(os.path.join(folder, b"\xe9t\xe9.png"), "wb") as handle:
        handle.write(png.tobytes())
    out = os.path.join(os.fsencode(tmp_path), b"p\xe4irs.h5")
    done = subprocess.run(["blurgen", "make", "--n", "6", "--out", out, "--source", folder, "--workers", "1",
                           *SMALL], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    inspected = subprocess.run(["blurgen", "inspect", out], capture_output=True, timeout=120)
    assert inspected.returncode == 0 and b"problems: none found" in inspected.stdout
    with h5py.File(out, "r") as h5:
        assert "\\udce4" in h5.attrs["command"]


# ------------------------------------------------------------------- F5/F6/F8 crafted files
def _crafted(path, n=3, image=(8, 8), k=5, n_written=None, kernels=None):
    from blurgen.store.schema import REQUIRED_ATTRS, REQUIRED_PARAMS

    empty = min(*image, k) == 0  # HDF5 cannot chunk an empty axis: contiguous then
    with h5py.File(path, "w") as h5:
        for name in ("blurred", "sharp"):
            h5.create_dataset(name, shape=(n, *image, 3), dtype=np.uint8, chunks=None if empty else (1, *image, 3))
        h5.create_dataset("kernel", shape=(n, k, k), dtype=np.float32, chunks=None if empty else (1, k, k),
                          data=kernels)
        for name in REQUIRED_PARAMS:
            h5.create_dataset(f"params/{name}", shape=(n,), dtype=np.float32, chunks=(min(n, 4096),))
        for name in REQUIRED_ATTRS:
            h5.attrs[name] = {"schema_version": 1, "n_planned": n, "config": "{}",
                              "n_written": n if n_written is None else n_written}.get(name, 0)


@pytest.mark.parametrize("shape, fragment", [({"k": 0}, "/kernel must be"), ({"k": 4}, "/kernel must be"),
                                             ({"image": (0, 0)}, "/blurred must be")])
def test_crafted_files_with_empty_kernels_or_images_are_refused_in_one_line(tmp_path, shape, fragment):
    path = tmp_path / "crafted.h5"
    _crafted(path, **shape)
    for args in (["inspect", str(path)], ["inspect", str(path), "--png", str(tmp_path / "s.png")]):
        result = cli(*args)
        assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_inspect_of_a_small_file_declaring_a_hundred_million_samples_answers_at_once(tmp_path):
    path = tmp_path / "huge.h5"
    _crafted(path, n=10**8, image=(32, 32))
    assert os.path.getsize(path) < 10**6
    done = subprocess.run(["blurgen", "inspect", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1  # damage: exit 1 after the report
    assert "stores data for only 0 of the 100000000 samples" in done.stdout


def _crafted_stored(path, n, image, k, samples_per_chunk=1, kernel_value=None):
    """A pairs file whose chunks are all stored (gzip), each chunk the same compressed bytes: a
    few MB on disk for gigabytes of data. Image chunks are 64 px a side at most (a sample with
    bigger images stores its first chunk only)."""
    import zlib

    from blurgen.store.schema import REQUIRED_ATTRS, REQUIRED_PARAMS

    def stored(h5, name, shape, dtype, fill=None):
        chunks = (samples_per_chunk, *(min(side, 64) if fill is None else side for side in shape[1:]))
        ds = h5.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip")
        data = np.zeros(chunks, dtype)
        if fill is not None:
            fill(data)
        packed = zlib.compress(data.tobytes(), 9)
        for first in range(0, n, samples_per_chunk):
            ds.id.write_direct_chunk((first, *[0] * (len(shape) - 1)), packed, 0)

    def centre(kernels):
        kernels[:, k // 2, k // 2] = 1 if kernel_value is None else kernel_value

    with h5py.File(path, "w") as h5:
        for name in ("blurred", "sharp"):
            stored(h5, name, (n, *image, 3), np.uint8)
        stored(h5, "kernel", (n, k, k), np.float32, centre)
        for name in REQUIRED_PARAMS:  # seed_index in order for small files only (it compresses)
            values = np.arange(n) if name == "seed_index" and n <= 4096 else np.zeros(n, np.int64)
            h5.create_dataset(f"params/{name}", data=values, chunks=(min(n, 2**20),), compression="gzip")
        for name in REQUIRED_ATTRS:
            h5.attrs[name] = {"schema_version": 1, "n_planned": n, "config": "{}", "n_written": n}.get(name, 0)


def _limited_memory(nbytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    return limit


def test_inspect_reads_large_kernels_in_bounded_memory(tmp_path):
    """The kernel scan read 1024 kernels at a time whatever their size: at --kernel-size 1025 that
    is 4.3 GB of float32 plus 8.6 GB as float64 (a MemoryError traceback, or 13 GB of memory)."""
    path = tmp_path / "k1025.h5"
    _crafted_stored(path, n=256, image=(32, 32), k=1025)
    done = subprocess.run(["blurgen", "inspect", "--quick", str(path)], capture_output=True, text=True,
                          timeout=300, preexec_fn=_limited_memory(1536 * 2**20))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "problems: none found" in done.stdout


def test_inspect_reads_a_chunk_holding_millions_of_samples_once(tmp_path):
    """Scans read pieces of 1024 samples (or one sample, for the checksums) whatever the chunk
    shape: a 2 MB crafted file whose chunks each hold 2.5 million samples was decompressed again
    for every piece (no answer for minutes), and its bad kernels were listed one Python int each."""
    path = tmp_path / "big_chunks.h5"
    _crafted_stored(path, n=10**7, image=(1, 1), k=1, samples_per_chunk=10**7 // 4, kernel_value=0.5)
    assert os.path.getsize(path) < 4 * 10**6
    done = subprocess.run(["blurgen", "inspect", str(path)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited_memory(3 * 2**30))
    assert done.returncode == 1, done.stderr[-2000:]
    assert "10000000 kernel(s) do not sum to 1 (first: sample 0)" in done.stdout


@pytest.mark.parametrize("image, k", [((10**6, 10**6), 5), ((32, 32), 2049)])
def test_files_declaring_sides_larger_than_blurgen_makes_are_refused_in_one_line(tmp_path, image, k):
    """A 100 KB file declaring 10^6 x 10^6 images made every reader ask numpy for 2.7 TiB."""
    from blurgen import read_pairs
    from blurgen.store.schema import PairsFileError

    path = tmp_path / "wide.h5"
    _crafted_stored(path, n=1, image=image, k=k)
    for args in (["inspect", str(path)], ["inspect", str(path), "--quick", "--png", str(tmp_path / "s.png")]):
        done = run_blurgen(args)
        assert_one_line_failure(done, "must be")
    with pytest.raises(PairsFileError, match="at most|<= 16384"):
        read_pairs(path)


def test_inspect_flags_nan_kernels(tmp_path):
    kernels = np.zeros((3, 5, 5), np.float32)
    kernels[:, 2, 2] = 1
    kernels[1, 0, 0] = np.nan
    path = tmp_path / "nan.h5"
    _crafted(path, kernels=kernels)
    with h5py.File(path, "r+") as h5:  # give every sample stored data
        for name in ("blurred", "sharp"):
            h5[name][...] = 1
        for ds in h5["params"].values():
            ds[...] = 0
        h5["params/seed_index"][...] = np.arange(3)
    result = cli("inspect", str(path))
    assert result.exit_code == 1 and "1 kernel(s) hold NaN or infinite weights" in result.output


def test_inspect_draws_nan_infinite_and_negative_kernels_without_warnings(tmp_path):
    """`inspect --png` of such a file printed numpy's RuntimeWarnings (4 lines on stderr)."""
    kernels = np.zeros((3, 5, 5), np.float32)
    kernels[:, 2, 2] = 1
    kernels[0, 0, 0], kernels[1, 0, 0], kernels[2, 0, 0] = np.nan, np.inf, -0.5
    path = tmp_path / "odd.h5"
    _crafted(path, kernels=kernels)
    done = run_blurgen(["inspect", str(path), "--quick", "--png", str(tmp_path / "sheet.png")])
    err = done.stderr.decode()  # only the one line saying the kernels are damaged: no warnings
    assert done.returncode == 1 and err.startswith("Error: ") and err.count("\n") == 1 and "damaged (" in err, err
    assert (tmp_path / "sheet.png").exists()


# ------------------------------------------------------------------------ F7 flipped bits
def _flip_a_byte_in_a_chunk(path, dataset, index):
    with h5py.File(path, "r") as h5:
        info = h5[dataset].id.get_chunk_info_by_coord((index, *([0] * (h5[dataset].ndim - 1))))
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset + info.size // 2)
        byte = handle.read(1)
        handle.seek(info.byte_offset + info.size // 2)
        handle.write(bytes([byte[0] ^ 0x10]))


def _make_small(path, **kwargs):
    config = PairsConfig(width=32, height=32, kernel=KernelConfig(size=15, length_px=10.0))
    return make_dataset(str(path), config, 24, seed=3, workers=1, block_size=8, durable=False, **kwargs)


def _reference_and_two_kept_parts(tmp_path):
    """A complete reference dataset and a run of the same killed after 2 of its 3 parts:
    ``(reference, out, [the two part files])``."""
    reference, out = tmp_path / "ref.h5", tmp_path / "pairs.h5"
    _make_small(reference)
    with pytest.raises(KeyboardInterrupt):
        _make_small(out, maker=interrupted_maker(16))
    parts = sorted(p for p in os.listdir(f"{out}.parts") if p.startswith("block-"))
    assert len(parts) == 2
    return reference, out, [os.path.join(f"{out}.parts", p) for p in parts]


def test_a_flipped_bit_in_a_kept_part_is_remade_on_resume_and_inspect_finds_one_in_a_file(tmp_path):
    reference, out, parts = _reference_and_two_kept_parts(tmp_path)
    _flip_a_byte_in_a_chunk(parts[0], "blurred", 3)
    assert _make_small(out, resume=True).n_reused == 8  # the damaged part is made again
    assert_same_arrays(reference, out)
    assert "problems: none found" in cli("inspect", str(out)).output
    _flip_a_byte_in_a_chunk(out, "sharp", 17)
    report = cli("inspect", str(out))
    assert report.exit_code == 1 and "damaged data" in report.output and "sample 17" in report.output
    assert "problems: none found" in cli("inspect", str(out), "--quick").output


def _flip_a_bit(path, offset, bit):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ (1 << bit)]))


def _chunk_key_offset(path, dataset):
    """File offset of the first coordinate in the chunk-index key of ``dataset``'s first chunk
    (HDF5's default v1 B-tree: a key is size u32, filter mask u32, one u64 per axis and one more,
    then the chunk's address u64); HDF5 has no checksum on it."""
    import struct

    with h5py.File(path, "r") as h5:
        ds = h5[dataset]
        address, ndim = ds.id.get_chunk_info(0).byte_offset, ds.ndim
    raw = open(path, "rb").read()
    at = raw.find(struct.pack("<Q", address))
    assert raw.count(struct.pack("<Q", address)) == 1
    return at - 8 * (ndim + 1)


def _rename_in_place(path, name):
    raw = open(path, "rb").read()
    assert raw.count(name.encode()) == 1
    return raw.find(name.encode()) + 2  # a letter of the link name, in an unchecksummed heap


@pytest.mark.parametrize("damage", ["chunk index key", "dataset name"])
def test_damaged_metadata_in_a_kept_part_is_remade_not_adopted(tmp_path, damage):
    """Fletcher32 covers chunk contents only: a flipped bit in a part's chunk index made a
    parameter read as zeros without any error (silently adopted), one in a dataset name made the
    first kept part define the layout, so every resume deleted the good parts and failed."""
    reference, out, (first, _) = _reference_and_two_kept_parts(tmp_path)
    if damage == "chunk index key":
        _flip_a_bit(first, _chunk_key_offset(first, "params/path_length_px"), 3)
        with h5py.File(first, "r") as h5:  # HDF5 reads fill values, no error: only a checksum of
            assert not h5["params/path_length_px"][...].any()  # the whole part can tell
    else:
        _flip_a_bit(first, _rename_in_place(first, "path_length_px"), 0)
        with h5py.File(first, "r") as h5:
            assert "path_length_px" not in h5["params"]
    assert _make_small(out, resume=True).n_reused == 8  # the damaged part is made again
    assert_same_arrays(reference, out)


# ---------------------------------------------------------------------------- reader slices
def test_a_reader_slice_equals_the_stacked_samples(tmp_path):
    from blurgen import read_pairs

    out = tmp_path / "pairs.h5"
    assert cli("make", "--n", "6", "--out", str(out), "--workers", "1", *SMALL).exit_code == 0
    with read_pairs(out) as f:
        for index in (slice(0, 4), slice(1, 6, 2), slice(None, None, -1), slice(4, 2)):
            got = f[index]
            picks = range(*index.indices(len(f)))
            for array, position in zip(got, range(3)):
                expected = [f[i][position] for i in picks]
                assert array.shape[0] == len(picks)
                if expected:
                    np.testing.assert_array_equal(array, np.stack(expected))



# ------------------------------------------------------------------------------- provenance
def test_each_sample_records_its_source_file_and_crop_offsets(tmp_path):
    import cv2

    from blurgen import read_pairs

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.png"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (70, 80, 3), dtype=np.uint8))
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "pairs.h5"
    done = subprocess.run(["blurgen", "make", "--n", "6", "--out", str(out), "--source", str(folder),
                           "--workers", "2", "--block-size", "2", "--no-saturation", *SMALL],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("skipped") == 1, done.stderr  # once per run, not once per worker
    half = (15 - 1) // 2
    with read_pairs(out) as f:
        assert f.source_files == ["a.png", "sub/b.png"]
        params = f.params
        for i in range(len(f)):
            image = cv2.imread(str(folder / f.source_files[params["source_file"][i]]))[:, :, ::-1]
            y, x = params["crop_y"][i] + half, params["crop_x"][i] + half
            np.testing.assert_array_equal(f[i][1], image[y:y + 32, x:x + 32])


# ------------------------------------------------------------------------------ first hour
def test_piped_progress_prints_plain_lines_with_rate_and_eta(tmp_path):
    done = subprocess.run(["blurgen", "make", "--n", "6", "--out", str(tmp_path / "p.h5"), "--workers", "1",
                           "--block-size", "2", *SMALL], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("make: ")]
    assert lines and lines[-1].startswith("make: 6/6 pairs (100%)") and "ETA" in lines[-1], done.stdout


def test_the_first_run_says_it_compiles_and_later_runs_do_not(tmp_path):
    env = {**os.environ, "BLURGEN_CACHE_DIR": str(tmp_path / "cache")}
    args = ["blurgen", "kernels", "--n", "2", "--kernel-size", "15", "--length-px", "6"]
    first = subprocess.run([*args, "--out", str(tmp_path / "a.npy")], env=env, capture_output=True, text=True,
                           timeout=600)
    second = subprocess.run([*args, "--out", str(tmp_path / "b.npy")], env=env, capture_output=True, text=True,
                            timeout=600)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "compiling the kernels" in first.stderr and "compiling" not in second.stderr


def test_the_eta_does_not_count_the_start_up_of_the_first_block():
    """A first run compiles for ~30 s before its first block: the ETA then read an hour."""
    import io

    from blurgen.core.progress import Progress

    now = [0.0]
    out = io.StringIO()
    progress = Progress("make", "pairs", stream=out, tty=False, every=10.0, clock=lambda: now[0])
    progress(0, 1000)
    now[0] = 30.0  # the first block of 10 is done after 30 s of compilation
    progress(10, 1000)
    now[0] = 40.0  # then 100 more in 10 s: 10 pairs/s, 890 left: ~89 s
    progress(110, 1000)
    last = out.getvalue().strip().splitlines()[-1]
    assert "10.0 pairs/s" in last and "ETA 1m29s" in last, out.getvalue()
