"""The folders, LMDB and WebDataset sinks: the arrays of the HDF5 of the same seed read back by
each format's own client, resume after a crash (in-process and SIGKILL of real processes), full
disk and existing or impossible outputs as one line, BasicSR's PairedImageDataset on the LMDB and
the folders."""

from __future__ import annotations

import errno
import glob
import json
import os
import random
import signal
import subprocess
import time
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from fake_pairs import FakeConfig, FakeMaker
from format_clients import READERS, assert_same_as_hdf5

from blurgen.cli import main
from blurgen.core.common import DatasetError
from blurgen.runs.dataset import make_dataset
from blurgen.runs.folder import RunFolder, parts_dir_for
from blurgen.runs.format_sinks import FoldersSink, LmdbSink, WebDatasetSink

CONFIG = FakeConfig()
SINKS = {"folders": FoldersSink, "lmdb": LmdbSink, "webdataset": lambda: WebDatasetSink(samples_per_shard=5)}
SMALL = ["--size", "32", "--kernel-size", "15", "--length-px", "10", "--seed", "5"]


def make(out, sink, n=23, **kwargs):
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("maker", FakeMaker())
    return make_dataset(str(out), CONFIG, n, seed=3, block_size=5, durable=False, sink=sink, **kwargs)


@pytest.fixture(scope="module")
def fake_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    make_dataset(str(out), CONFIG, 23, seed=3, workers=1, block_size=7, maker=FakeMaker(), durable=False)
    return str(out)


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_each_format_read_by_its_client_holds_the_hdf5_arrays_of_the_same_seed(tmp_path, fake_reference, fmt):
    out = tmp_path / "out"
    result = make(out, SINKS[fmt](), workers=2 if fmt == "lmdb" else 1)
    assert result.n_made == 23 and not os.path.exists(parts_dir_for(str(out)))
    assert_same_as_hdf5(fake_reference, READERS[fmt](str(out)))


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_a_run_that_fails_midway_resumes_to_the_same_arrays(tmp_path, fake_reference, fmt):
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="fake failure"):
        make(out, SINKS[fmt](), maker=FakeMaker(fail_at=12))
    assert not os.path.exists(out) and not os.path.exists(str(out) + ".json")
    kept = RunFolder.at(parts_dir_for(str(out))).complete_parts()
    assert sorted(kept) == [0, 5]
    with pytest.raises(DatasetError, match="interrupted run"):
        make(out, SINKS[fmt]())
    result = make(out, SINKS[fmt](), resume=True)
    assert (result.n_reused, result.n_made) == (10, 13)
    assert_same_as_hdf5(fake_reference, READERS[fmt](str(out)))
    again = make(out, SINKS[fmt](), resume=True)
    assert again.already_complete
    with pytest.raises(DatasetError, match="exists; use --overwrite"):
        make(out, SINKS[fmt]())


def test_a_damaged_kept_block_is_made_again(tmp_path, fake_reference):
    out = tmp_path / "out"
    with pytest.raises(DatasetError):
        make(out, FoldersSink(), maker=FakeMaker(fail_at=12))
    block = RunFolder.at(parts_dir_for(str(out))).complete_parts()[5]
    data = bytearray(open(block, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(block, "wb").write(bytes(data))
    result = make(out, FoldersSink(), resume=True)
    assert result.n_reused == 5
    assert_same_as_hdf5(fake_reference, READERS["folders"](str(out)))


class ReversedExecutor:
    """Every block made first, then handed to the sink last block first (as blocks that finish
    out of order are)."""

    def run(self, work, jobs, gate):
        from blurgen.runs.workers import LocalExecutor

        def reversed_parts():
            yield from list(LocalExecutor(1).run(work, jobs, gate))[::-1]

        return reversed_parts()


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_blocks_that_finish_out_of_order_give_the_same_arrays(tmp_path, fake_reference, fmt):
    """The LMDB writer appends keys in order (LMDB's append mode refuses a smaller key): it holds
    back a block that finished before an earlier one."""
    out = tmp_path / "out"
    make(out, SINKS[fmt](), executor=ReversedExecutor())
    assert_same_as_hdf5(fake_reference, READERS[fmt](str(out)))


def test_lmdb_resume_with_the_first_block_damaged_puts_every_block_once(tmp_path, fake_reference):
    out = tmp_path / "out"
    kept = _kept_after_failure(out, LmdbSink())
    with open(kept[0], "r+b") as handle:  # the first block: every kept block waits for its remake
        handle.seek(os.path.getsize(kept[0]) // 2)
        handle.write(b"\xff" * 64)
    result = make(out, LmdbSink(), resume=True)
    assert result.n_reused == 5 and result.n_made == 18
    assert_same_as_hdf5(fake_reference, READERS["lmdb"](str(out)))


def _kept_after_failure(out, sink) -> dict[int, str]:
    with pytest.raises(DatasetError, match="fake failure"):
        make(out, sink, maker=FakeMaker(fail_at=12))
    return RunFolder.at(parts_dir_for(str(out))).complete_parts()


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_workers_write_the_files_and_the_block_tar_keeps_only_receipts(tmp_path, fmt):
    from blurgen.runs import block_tar, samples

    kept = _kept_after_failure(tmp_path / "out", SINKS[fmt]())
    staging = os.path.join(parts_dir_for(str(tmp_path / "out")), ".output")
    with open(kept[5], "rb") as handle:
        members = {name: (data, pax) for name, data, pax in block_tar.read_members(handle, {})}
    on_disk = {"folders": {"00000005.blur.png": "blur/00000005.png", "00000005.sharp.png": "sharp/00000005.png"},
               "lmdb": {}}[fmt]
    for member, relative in on_disk.items():
        data, pax = members[member]
        written = open(os.path.join(staging, relative), "rb").read()
        assert data == b"" and pax["blurgen.file"] == f"{len(written)}:{zlib.crc32(written)}"
        # no CRC-32 of the (empty) member: a reader that knows no receipts refuses the block
        assert samples.member_checks(pax) == (None, None) and set(pax) == {"blurgen.file"}
    in_tar = [name for name, (data, _) in members.items() if data]
    # the kernels stay in the tar for the driver, which writes them as rows of OUT/kernel.npy
    assert sorted(in_tar) == sorted({"folders": [f"{i:08d}.{kind}" for i in range(5, 10)
                                                 for kind in ("kernel.npy", "json")],
                                     "lmdb": [f"{i:08d}.{kind}" for i in range(5, 10)
                                              for kind in ("blur.png", "sharp.png", "kernel.npy", "json")]}[fmt])


def _older_file_place(self, kind, key):
    """``FoldersSink.file_place`` before the one kernel.npy: the workers wrote kernel/KEY.npy too."""
    if kind == "kernel.npy":
        return os.path.join("kernel", key + ".npy")
    if kind == "json" or (isinstance(self, LmdbSink) and self.lmdb_entry(kind, key) is not None):
        return None
    return self.member_path(kind, key)


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_blocks_staged_with_kernel_files_by_an_older_blurgen_are_made_again(tmp_path, fake_reference, fmt,
                                                                            monkeypatch):
    """blurgen before the one kernel.npy had each worker write ``kernel/NNNNNNNN.npy`` and keep a
    receipt of it: a resume does not take such a block (its kernels are nowhere it reads)."""
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(FoldersSink, "file_place", _older_file_place)
        _kept_after_failure(out, SINKS[fmt]())
    assert os.path.exists(os.path.join(parts_dir_for(str(out)), ".output", "kernel", "00000005.npy"))
    result = make(out, SINKS[fmt](), resume=True)
    assert (result.n_reused, result.n_made) == (0, 23)
    assert_same_as_hdf5(fake_reference, READERS[fmt](str(out)))
    assert "kernel" not in os.listdir(out)  # the earlier files are gone, not a partial folder beside kernel.npy


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_a_kept_blocks_damaged_or_missing_file_is_found_on_resume_and_the_block_made_again(tmp_path, fake_reference,
                                                                                       damage):
    out = tmp_path / "out"
    _kept_after_failure(out, FoldersSink())
    image = os.path.join(parts_dir_for(str(out)), ".output", "sharp", "00000007.png")
    if damage == "delete":
        os.unlink(image)
    else:
        data = bytearray(open(image, "rb").read())
        data[len(data) // 2] ^= 0x01
        open(image, "wb").write(bytes(data if damage == "flip a byte" else data[:-3]))
    stray = os.path.join(parts_dir_for(str(out)), ".output", "blur", ".tmp-0123456789ab-00000011.png")
    open(stray, "wb").write(b"a killed worker's half-written file")
    killed_finalize = os.path.join(parts_dir_for(str(out)), ".output", ".blurgen.json.x1y2z3w4.tmp")
    open(killed_finalize, "w").write("{")
    result = make(out, FoldersSink(), resume=True)
    assert (result.n_reused, result.n_made) == (5, 18)
    assert_same_as_hdf5(fake_reference, READERS["folders"](str(out)))
    assert sorted(os.listdir(out / "blur")) == [f"{i:08d}.png" for i in range(23)]
    assert sorted(os.listdir(out)) == ["blur", "blurgen.json", "kernel.npy", "params.csv", "sharp"]


def test_a_late_duplicate_of_a_block_writes_into_its_own_run_not_a_newer_one_at_the_same_path(tmp_path):
    """A Dask task still running after its run was interrupted and replaced (--overwrite) must not
    put its files into the new run's output: the writer holds its output folder open."""
    from blurgen.runs.samples import FileBlockWriter

    run, output = tmp_path / "out.parts", tmp_path / "out.parts" / ".output"
    output.mkdir(parents=True)
    writer = FileBlockWriter(str(run), 0, 1, {"run": "A"}, str(output), lambda kind, key: f"blur/{key}.png")
    os.replace(run, tmp_path / "trash")  # the old run set aside, a new one at the same path
    output.mkdir(parents=True)
    writer.add("00000000.blur.png", b"run A's image")
    assert not os.path.exists(output / "blur")
    assert (tmp_path / "trash" / ".output" / "blur" / "00000000.png").read_bytes() == b"run A's image"
    writer.close()
    import shutil

    shutil.rmtree(tmp_path / "trash")
    from blurgen.store.parts import PartsError

    with pytest.raises(PartsError, match="is gone"):
        FileBlockWriter(str(tmp_path / "trash"), 0, 1, {}, str(tmp_path / "trash" / ".output"), lambda k, key: key)


def test_the_space_check_of_a_resumed_folders_run_counts_what_is_left_not_the_whole_dataset(tmp_path):
    config = FakeConfig(width=128, height=128)
    out = str(tmp_path / "out")
    with pytest.raises(DatasetError):
        make_dataset(out, config, 40, seed=3, block_size=4, sink=FoldersSink(), workers=1, durable=False,
                     maker=FakeMaker(fail_at=36))
    run = RunFolder(out, RunFolder.at(parts_dir_for(out)).manifest)
    staged = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(parts_dir_for(out))
                 for name in names)
    per_sample = staged / 36
    needed = run.bytes_needed()
    assert 4 * per_sample < needed < 4 * per_sample + 4 * run.manifest.raw_bytes_per_sample() + 2**25


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_a_durable_run_with_two_workers_gives_the_same_arrays(tmp_path, fake_reference, fmt):
    out = tmp_path / "out"
    result = make_dataset(str(out), CONFIG, 23, seed=3, block_size=5, durable=True, sink=SINKS[fmt](), workers=2,
                          maker=FakeMaker())
    assert result.n_made == 23
    assert_same_as_hdf5(fake_reference, READERS[fmt](str(out)))
    assert not [name for _, _, names in os.walk(out) for name in names if name.startswith(".tmp-")]


@pytest.mark.parametrize("where", ["worker", "driver"])
def test_a_full_disk_is_one_line_and_keeps_the_finished_blocks(tmp_path, fake_reference, monkeypatch, where):
    from blurgen.runs import samples

    calls = {"n": 0}
    target = (samples.BlockTarWriter, "add") if where == "worker" else (LmdbSink, "put")
    original = getattr(*target)

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 40:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(*target, failing)
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="disk full") as info:
        make(out, LmdbSink())
    assert "\n" not in str(info.value) and "--resume" in str(info.value)
    kept = RunFolder.at(parts_dir_for(str(out))).complete_parts()
    assert kept and not os.path.exists(out)
    assert not glob.glob(parts_dir_for(str(out)) + "/.tmp-*")
    monkeypatch.setattr(*target, original)
    result = make(out, LmdbSink(), resume=True)
    assert result.n_reused == sum(min(5, 23 - start) for start in kept)
    assert_same_as_hdf5(fake_reference, READERS["lmdb"](str(out)))


def test_webdataset_shard_k_holds_samples_k_m_and_sharding_splits_whole_tars(tmp_path, fake_reference):
    prefix = str(tmp_path / "train")
    for i in range(3):  # three --shard runs write one set of tars under one prefix
        make(prefix, WebDatasetSink(samples_per_shard=5), shard=(i, 3))
    tars = sorted(os.path.basename(p) for p in glob.glob(prefix + "-*.tar"))
    assert tars == [f"train-{k:06d}.tar" for k in range(5)]
    assert sorted(os.path.basename(p) for p in glob.glob(prefix + "*.json")) == [
        f"train.shard-{i}-of-3.json" for i in range(3)]
    import webdataset as wds

    keys = [s["__key__"] for s in wds.WebDataset(prefix + "-000003.tar", shardshuffle=False, empty_check=False)]
    assert keys == [f"{i:08d}" for i in range(15, 20)]
    single = str(tmp_path / "one")
    make(single, WebDatasetSink(samples_per_shard=5))
    meta = json.load(open(single + ".json"))
    assert [s["start"] for s in meta["shards"]] == [0, 5, 10, 15, 20]
    assert meta["png_compression_level"] == 1 and meta["n"] == 23


def _cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_existing_or_impossible_outputs_fail_with_one_line(tmp_path, fmt):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    taken = str(out) if fmt != "webdataset" else str(tmp_path / "taken")
    if fmt == "webdataset":
        (tmp_path / "taken-000000.tar").write_bytes(b"precious")
    result = _cli("make", "--n", "4", "--out", taken, "--format", fmt, "--workers", "1", *SMALL)
    assert result.exit_code == 1 and "exists; use --overwrite" in result.output, result.output
    assert (out / "mine.txt").read_text() == "precious"
    missing = tmp_path / "no" / "such" / "out"
    result = _cli("make", "--n", "4", "--out", str(missing), "--format", fmt, *SMALL)
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output
    result = _cli("make", "--n", "4", "--out", str(tmp_path / "x.h5"), "--format", fmt, *SMALL)
    assert result.exit_code == 2 and "--format" in result.output
    through = str(tmp_path / "gone" / ".." / "out")  # abspath drops 'gone'; makedirs would create it
    result = _cli("make", "--n", "4", "--out", through, "--format", fmt, "--workers", "1", *SMALL)
    assert result.exit_code == 1 and "does not exist" in result.output and through in result.output
    assert not (tmp_path / "gone").exists()


def _kill_and_resume(tmp_path, fmt: str, reference: str, kills: int, rng: random.Random) -> None:
    out = str(tmp_path / fmt)
    command = ["blurgen", "make", "--n", "60", "--out", out, "--format", fmt, "--block-size", "6", *SMALL,
               *(["--tar-mb", "0.05"] if fmt == "webdataset" else [])]
    flag = []
    for _ in range(kills):
        proc = subprocess.Popen([*command, "--workers", rng.choice(["1", "2"]), *flag],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=rng.uniform(0.5, 3.5))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        flag = ["--resume"]
        time.sleep(0.1)
    done = subprocess.run([*command, "--workers", "2", "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_as_hdf5(reference, READERS[fmt](out))


def test_sigkill_at_random_moments_then_resume_gives_the_hdf5_arrays_for_every_format(tmp_path):
    reference = str(tmp_path / "ref.h5")
    subprocess.run(["blurgen", "make", "--n", "60", "--out", reference, "--workers", "2", *SMALL],
                   check=True, capture_output=True, timeout=300)
    rng = random.Random(21)
    for fmt in ("folders", "lmdb", "webdataset"):
        _kill_and_resume(tmp_path, fmt, reference, kills=2, rng=rng)


def test_basicsr_paired_image_dataset_reads_the_lmdb_and_the_folders(tmp_path, fake_reference):
    """BasicSR itself (installed as basicsr-fixed without its dependencies: .ci/run)."""
    from basicsr.data.paired_image_dataset import PairedImageDataset
    from pairs_compare import arrays

    want = arrays(fake_reference)
    for fmt, backend in (("lmdb", {"type": "lmdb"}), ("folders", {"type": "disk"})):
        out = tmp_path / fmt
        make(out, SINKS[fmt]())
        roots = ("blur.lmdb", "sharp.lmdb") if fmt == "lmdb" else ("blur", "sharp")
        dataset = PairedImageDataset({"dataroot_lq": str(out / roots[0]), "dataroot_gt": str(out / roots[1]),
                                      "io_backend": backend, "phase": "val", "scale": 1, "filename_tmpl": "{}"})
        assert len(dataset) == 23
        seen = set()
        for position in range(len(dataset)):  # BasicSR lists the LMDB keys in its own order
            item = dataset[position]
            i = int(os.path.basename(item["lq_path"]).split(".")[0])
            assert os.path.basename(item["gt_path"]).split(".")[0] == f"{i:08d}"
            seen.add(i)
            lq = np.round(item["lq"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)  # RGB, CHW in [0, 1]
            gt = np.round(item["gt"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
            np.testing.assert_array_equal(lq, want["blurred"][i])
            np.testing.assert_array_equal(gt, want["sharp"][i])
        assert seen == set(range(23))


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_export_writes_any_pairs_file_as_each_format(tmp_path, fake_reference, fmt):
    out = str(tmp_path / "exported")
    result = _cli("export", fake_reference, "--format", fmt, "--out", out, "--workers", "1",
                  *(["--tar-mb", "0.01"] if fmt == "webdataset" else []))
    assert result.exit_code == 0, result.output
    assert_same_as_hdf5(fake_reference, READERS[fmt](out))
    again = _cli("export", fake_reference, "--format", fmt, "--out", out)
    assert again.exit_code == 1 and "exists" in again.output
    refused = _cli("export", fake_reference, "--format", "hdf5", "--out", str(tmp_path / "x.h5"))
    assert refused.exit_code == 2


@pytest.mark.parametrize("fmt", ["lmdb", "webdataset"])
def test_the_fpng_encoder_writes_the_same_arrays(tmp_path, fake_reference, fmt):
    pytest.importorskip("fpng")
    sink = LmdbSink(png_encoder="fpng") if fmt == "lmdb" else WebDatasetSink(samples_per_shard=5, png_encoder="fpng")
    out = tmp_path / "out"
    make(out, sink, workers=2)
    assert_same_as_hdf5(fake_reference, READERS[fmt](str(out)))
    meta = json.load(open(out / "blurgen.json" if fmt == "lmdb" else str(out) + ".json"))
    assert meta["png_encoder"] == "fpng"
    with pytest.raises(ValueError, match="png_encoder"):
        LmdbSink(png_encoder="pillow")


def _png_row_filters(data: bytes) -> set[int]:
    """The filter type byte of every row of an 8-bit RGB PNG (its IDAT chunks inflated)."""
    width, height = np.frombuffer(data[16:24], ">u4")
    idat, at = b"", 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        if data[at + 4:at + 8] == b"IDAT":
            idat += data[at + 8:at + 8 + length]
        at += 12 + length
    rows = zlib.decompress(idat)
    stride = 1 + 3 * int(width)
    assert len(rows) == stride * int(height)
    return {rows[i * stride] for i in range(int(height))}


@pytest.mark.parametrize("level, row_filter", [(0, 0), (1, 3), (9, 3)])
def test_opencv_png_rows_use_one_fixed_filter_and_stay_lossless(level, row_filter):
    """libpng's adaptive filter choice took ~40 % of the encoding; blurgen asks for "average"
    (PNG filter type 3) when compressing and for none at level 0, where nothing is compressed."""
    cv2 = pytest.importorskip("cv2")
    from blurgen.runs.samples import decode_png, encode_png

    image = np.random.default_rng(level).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    image[:, 10:] = np.cumsum(image[:, 10:], axis=1, dtype=np.uint8)
    data = encode_png(image, level)
    assert np.array_equal(decode_png(data), image)
    if not hasattr(cv2, "IMWRITE_PNG_FILTER"):
        pytest.skip(f"OpenCV {cv2.__version__} offers no IMWRITE_PNG_FILTER (adaptive filtering, still lossless)")
    assert _png_row_filters(data) == {row_filter}


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_camera3d_motion_and_kernels_are_one_row_each_in_the_side_arrays(tmp_path, fmt):
    import h5py

    args = ["--n", "4", "--motion", "camera3d", "--size", "48", "--kernel-size", "15", "--workers", "1", "--seed", "2"]
    for out, extra in ((tmp_path / "ref.h5", []), (tmp_path / "out", ["--format", fmt])):
        done = CliRunner().invoke(main, ["make", "--out", str(out), *args, *extra])
        assert done.exit_code == 0, done.output
    motion, kernels = np.load(tmp_path / "out" / "motion.npy"), np.load(tmp_path / "out" / "kernel.npy")
    with h5py.File(tmp_path / "ref.h5", "r") as h5:
        assert motion.dtype == np.float32 and motion.shape == (4, h5["motion/rotation"].shape[1], 6)
        assert np.array_equal(motion[..., :3], h5["motion/rotation"][...])
        assert np.array_equal(motion[..., 3:], h5["motion/translation"][...])
        assert np.array_equal(kernels, h5["kernel"][...])
    assert "problems: none found" in CliRunner().invoke(main, ["inspect", str(tmp_path / "out")]).output


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_a_shards_kernel_rows_start_at_its_first_sample(tmp_path, fake_reference, fmt):
    """``--shard 2/3`` of 23 samples holds samples 8..15 (as names); kernel.npy row 0 is sample 8."""
    out = tmp_path / "out"
    make(out, SINKS[fmt](), shard=(1, 3))
    got = READERS[fmt](str(out))
    with open(out / "blurgen.json", encoding="utf-8") as handle:
        meta = json.load(handle)
    first, stop = meta["sample_start"], meta["sample_stop"]
    assert first > 0 and np.load(out / "kernel.npy").shape[0] == stop - first
    import h5py

    with h5py.File(fake_reference, "r") as h5:
        assert np.array_equal(got["kernel"], h5["kernel"][first:stop])
        assert np.array_equal(got["blurred"], h5["blurred"][first:stop])
