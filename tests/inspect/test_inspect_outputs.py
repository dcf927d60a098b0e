"""`blurgen inspect` on finished folders, LMDB and WebDataset outputs: what it reports, the damage
it finds (missing or damaged images, names that disagree, meta_info.txt lines, missing tars) and
one line for an output it cannot read; a truncated or overwritten LMDB data file is a problem
of that env, not a crash (SIGBUS) or a traceback."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner
from fake_pairs import FakeConfig, FakeMaker

from blurgen.cli import main
from blurgen.runs.dataset import make_dataset
from blurgen.runs.format_sinks import FoldersSink, LmdbSink, WebDatasetSink

SINKS = {"folders": FoldersSink, "lmdb": LmdbSink, "webdataset": lambda: WebDatasetSink(samples_per_shard=5)}


def make(out, fmt, n=23, **kwargs):
    make_dataset(str(out), FakeConfig(), n, seed=3, workers=1, block_size=5, durable=False, sink=SINKS[fmt](),
                 maker=FakeMaker(), **kwargs)
    return str(out)


def inspect(*args):
    return CliRunner().invoke(main, ["inspect", *args])


def flip_byte(path, where=0.6):
    data = bytearray(open(path, "rb").read())
    data[int(len(data) * where)] ^= 0x55
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_a_finished_output_is_described_checked_and_drawn(tmp_path, fmt):
    out = make(tmp_path / "out", fmt)
    for target in ([out] if fmt != "webdataset" else [out, out + ".tar", out + ".json"]):
        result = inspect(target, "--png", str(tmp_path / "sheet.png"), "--overwrite")
        assert result.exit_code == 0, result.output
        assert f"blurgen {fmt} output" in result.output
        assert "samples: 23/23 written (complete), seed 3" in result.output
        assert "images: 24x16 RGB PNG, compression level 1" in result.output
        assert "problems: none found" in result.output
        assert "gain" in result.output  # the parameter table
        assert os.path.getsize(tmp_path / "sheet.png") > 1000
    quick = inspect(out, "--quick")
    assert quick.exit_code == 0 and "problems: none found" in quick.output


def test_the_folder_holding_webdataset_tars_points_at_their_prefix(tmp_path):
    make(tmp_path / "train", "webdataset")
    result = inspect(str(tmp_path))
    assert result.exit_code == 1, result.output
    assert f"it holds the WebDataset output {tmp_path / 'train'}: inspect that" in result.output
    make(tmp_path / "val", "webdataset", n=4)
    (tmp_path / "notes.json").write_text('{"not": "blurgen"}')  # another JSON file: not an output
    result = inspect(str(tmp_path))
    assert result.exit_code == 1, result.output
    assert f"outputs {tmp_path / 'train'}, {tmp_path / 'val'}: inspect one of them" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds" not in inspect(str(empty)).output


def test_odd_json_files_beside_tars_never_hang_or_crash_the_folder_hint(tmp_path, monkeypatch):
    make(tmp_path / "train", "webdataset")
    for odd in ("fifo", "deep", "big"):
        (tmp_path / f"{odd}-000000.tar").write_bytes(b"")  # an index beside tars is what is read
    os.mkfifo(tmp_path / "fifo.json")  # a read would wait for ever
    (tmp_path / "deep.json").write_text("[" * 100000)  # json.load: RecursionError
    index_bytes = os.path.getsize(tmp_path / "train.json")
    # a real index made larger than the cap: read, it would be listed
    (tmp_path / "big.json").write_text((tmp_path / "train.json").read_text() + " " * index_bytes)
    import blurgen.inspect.report as report

    monkeypatch.setattr(report, "MAX_INDEX_BYTES", index_bytes)  # big.json is over it: not read
    result = subprocess.run([sys.executable, "-c", "import sys; from blurgen.inspect.report import webdataset_outputs_in; "
                             "print(webdataset_outputs_in(sys.argv[1]))", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    # in its own process (the FIFO must not hang it) and with the default cap: big.json is an index
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr([str(tmp_path / "big"), str(tmp_path / "train")])
    assert report.webdataset_outputs_in(str(tmp_path)) == [str(tmp_path / "train")]
    cli = inspect(str(tmp_path))
    assert cli.exit_code == 1 and "Traceback" not in cli.output and "output " + str(tmp_path / "train") in cli.output


def test_folders_missing_and_damaged_images_are_found(tmp_path):
    out = make(tmp_path / "out", "folders")
    os.unlink(os.path.join(out, "sharp", "00000007.png"))
    flip_byte(os.path.join(out, "blur", "00000011.png"))
    kernels = np.load(os.path.join(out, "kernel.npy"), mmap_mode="r+")
    kernels[2] *= 2
    kernels.flush()
    del kernels
    result = inspect(out)
    assert result.exit_code == 1, result.output
    assert "samples: 22/23 written (INCOMPLETE)" in result.output
    assert "1 sample(s) missing in sharp/ (first: 00000007)" in result.output
    assert "1 image(s) that do not decode (damaged) (first: blur/00000011.png)" in result.output
    assert "1 kernel(s) that do not sum to 1 (first: kernel.npy row 2 (00000002))" in result.output
    assert "do not decode" not in inspect(out, "--quick").output  # headers only
    np.save(os.path.join(out, "kernel.npy"), np.load(os.path.join(out, "kernel.npy"))[:-1])
    short = inspect(out, "--quick")
    assert "kernel.npy of shape (22, 5, 5), not one row for each of the 23 samples" in short.output, short.output


def test_lmdb_keys_and_meta_info_lines_are_checked(tmp_path):
    out = make(tmp_path / "out", "lmdb")
    meta_info = os.path.join(out, "sharp.lmdb", "meta_info.txt")
    lines = open(meta_info).read().splitlines()
    lines[3] = lines[3].replace("(16,24,3)", "(16,25,3)")
    lines[5] = "00000005 (16,24,3) 1"
    open(meta_info, "w").write("\n".join(lines[:-1]) + "\n")
    result = inspect(out)
    assert result.exit_code == 1, result.output
    assert "sharp.lmdb/meta_info.txt size(s) not (16,24,3) (first: 00000003.png (16,25,3) 1)" in result.output
    assert "sharp.lmdb/meta_info.txt line(s) not 'NAME.png (H,W,C) LEVEL' (first: line 6)" in result.output
    assert "sharp.lmdb/meta_info.txt key(s) not the stored keys in order" in result.output
    assert "blur.lmdb" not in result.output.split("problems:")[1]


def test_webdataset_missing_or_damaged_tars_and_unfinished_shard_runs(tmp_path):
    out = make(tmp_path / "out", "webdataset")
    os.unlink(out + "-000002.tar")
    with tarfile.open(out + "-000003.tar") as tar:
        member = tar.getmember("00000016.blur.png")
    data = bytearray(open(out + "-000003.tar", "rb").read())
    data[member.offset_data + member.size // 2] ^= 0x55  # inside the image data, not a tar header
    open(out + "-000003.tar", "wb").write(bytes(data))
    result = inspect(out)
    assert result.exit_code == 1, result.output
    assert "samples: 18/23 written (INCOMPLETE)" in result.output
    assert "1 tar(s) missing (first: out-000002.tar)" in result.output
    assert "5 sample(s) missing in the tars (first: 00000010)" in result.output
    assert "1 tar member(s) damaged (CRC-32 mismatch) (first: out-000003.tar:00000016.blur.png)" in result.output
    prefix = str(tmp_path / "sharded")
    for i in (0, 2):
        make_dataset(prefix, FakeConfig(), 23, seed=3, workers=1, durable=False, maker=FakeMaker(),
                     sink=WebDatasetSink(samples_per_shard=5), shard=(i, 3))
    result = inspect(prefix)
    assert result.exit_code == 0, result.output
    assert "shard runs: 2 of 3 finished (0, 2)" in result.output
    assert "written (INCOMPLETE)" in result.output and "/23 written" in result.output


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_an_unreadable_description_or_store_is_one_line(tmp_path, fmt):
    out = make(tmp_path / "out", fmt)
    if fmt == "folders":
        open(os.path.join(out, "blurgen.json"), "w").write("{not json")
    else:
        flip_byte(os.path.join(out, "blur.lmdb", "data.mdb"), 0.01)
        os.truncate(os.path.join(out, "blur.lmdb", "data.mdb"), 100)
    result = inspect(out)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


def inspect_in_a_process(*args):
    """`blurgen inspect` in its own process: a SIGBUS (LMDB reading past the end of a truncated
    data.mdb through its map) kills that process, not pytest."""
    return subprocess.run(["blurgen", "inspect", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("size", [8192, 6000])  # 6000: the second meta page only partly there
def test_a_truncated_lmdb_data_file_is_a_problem_of_that_env_not_a_crash(tmp_path, quick, size):
    out = make(tmp_path / "out", "lmdb")
    data = os.path.join(out, "blur.lmdb", "data.mdb")
    assert os.path.getsize(data) > 3 * 8192
    os.truncate(data, size)
    done = inspect_in_a_process(out, *(["--quick"] if quick else []))
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    problems = done.stdout.split("problems:")[1]
    assert f"blur.lmdb damaged: data.mdb is {size} bytes, its pages need" in problems
    assert "incomplete: only 0 of 23 samples have both images" in problems
    assert "sharp.lmdb" not in problems
    sheet = inspect_in_a_process(out, "--png", str(tmp_path / "sheet.png"))  # nothing to draw from: one line
    assert sheet.returncode == 1 and sheet.stderr.count("\n") == 1 and "truncated" in sheet.stderr, sheet.stderr
    assert not os.path.exists(tmp_path / "sheet.png")


def test_an_lmdb_data_file_too_short_for_its_meta_pages_is_one_line(tmp_path):
    out = make(tmp_path / "out", "lmdb")
    os.truncate(os.path.join(out, "sharp.lmdb", "data.mdb"), 4096)
    done = inspect_in_a_process(out)
    assert done.returncode == 1 and done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "sharp.lmdb: not a readable LMDB" in done.stderr


def test_an_overwritten_lmdb_page_is_a_problem_of_that_env_not_a_traceback(tmp_path):
    out = make(tmp_path / "out", "lmdb")
    with open(os.path.join(out, "blur.lmdb", "data.mdb"), "r+b") as handle:  # pages 2-4: the data, not the meta
        handle.seek(2 * 4096)
        handle.write(random.Random(9).randbytes(3 * 4096))
    result = inspect(out)
    assert result.exit_code == 1, result.output
    problems = result.output.split("problems:")[1]
    assert "blur.lmdb damaged: " in problems and "MDB_" in problems and "not read further" in problems
    assert "sharp.lmdb" not in problems
    sheet = inspect(out, "--png", str(tmp_path / "sheet.png"))
    assert sheet.exit_code == 1 and sheet.output.splitlines()[-1].startswith("Error: ")
    assert "LMDB unreadable (" in sheet.output and "Traceback" not in sheet.output


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_an_empty_or_short_kernel_npy_is_a_problem_line_and_the_sheet_a_one_line_error(tmp_path, fmt):
    out = make(tmp_path / "out", fmt)
    kernels = np.load(os.path.join(out, "kernel.npy"))
    np.save(os.path.join(out, "kernel.npy"), kernels[:3])
    short = inspect(out, "--png", str(tmp_path / "s.png"))
    assert short.exit_code == 1 and isinstance(short.exception, SystemExit), short.output  # no traceback
    assert "kernel.npy has no row for sample" in short.output, short.output
    open(os.path.join(out, "kernel.npy"), "wb").close()
    empty = inspect(out, "--quick")
    assert empty.exit_code == 1 and "1 kernel.npy unreadable (EOFError) (first: kernel.npy)" in empty.output, \
        empty.output


@pytest.mark.parametrize("fmt", ["folders", "lmdb"])
def test_an_earlier_blurgens_output_with_a_kernel_file_per_sample_is_read(tmp_path, fmt):
    out = make(tmp_path / "out", fmt)
    kernels = np.load(os.path.join(out, "kernel.npy"))
    os.unlink(os.path.join(out, "kernel.npy"))
    os.mkdir(os.path.join(out, "kernel"))
    for i, kernel in enumerate(kernels):
        np.save(os.path.join(out, "kernel", f"{i:08d}.npy"), kernel)
    result = inspect(out, "--png", str(tmp_path / "s.png"))
    assert result.exit_code == 0 and "problems: none found" in result.output, result.output
    os.unlink(os.path.join(out, "kernel", "00000004.npy"))
    np.save(os.path.join(out, "kernel", "00000006.npy"), 2 * kernels[6])
    damaged = inspect(out)
    assert "1 sample(s) missing in kernel/ (first: 00000004)" in damaged.output, damaged.output
    assert "1 kernel(s) that do not sum to 1 (first: kernel/00000006.npy)" in damaged.output, damaged.output
    quick = inspect(out, "--quick")  # names are checked without reading the files, as before kernel.npy
    assert "1 sample(s) missing in kernel/ (first: 00000004)" in quick.output, quick.output
    open(os.path.join(out, "kernel", "00000008.npy"), "wb").write(b"not a kernel")
    unreadable = inspect(out)
    assert unreadable.exit_code == 1, unreadable.output
    assert "1 kernel file(s) unreadable (first: kernel/00000008.npy)" in unreadable.output, unreadable.output


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_damage_exits_1_after_the_whole_report_and_incompleteness_alone_exits_0(tmp_path, fmt):
    """DESIGN's exit codes: a corrupt dataset is 1 (so `blurgen inspect OUT && train ...` stops),
    an incomplete one 0. The report still goes to stdout whole; stderr has the one line."""
    out = make(tmp_path / "out", fmt)
    if fmt == "webdataset":
        os.unlink(out + "-000001.tar")
    elif fmt == "folders":
        flip_byte(os.path.join(out, "sharp", "00000004.png"), where=0.5)
    else:
        open(os.path.join(out, "sharp.lmdb", "meta_info.txt"), "a").write("stray line\n")
    done = inspect_in_a_process(out)
    assert done.returncode == 1, (done.stdout, done.stderr)
    report = done.stdout.split("problems: \n")
    assert len(report) == 2 and "samples: " in report[0] and report[1].startswith("  - "), done.stdout
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    assert f"{out}: damaged (" in done.stderr and "problem(s) listed above)" in done.stderr
    shard = str(tmp_path / "shard" / "out")
    os.makedirs(os.path.dirname(shard))
    make_dataset(shard, FakeConfig(), 23, seed=3, workers=1, block_size=5, durable=False, maker=FakeMaker(),
                 sink=SINKS[fmt](), shard=(1, 2))  # a --shard run's output lacks the other shards' samples
    alone = inspect_in_a_process(shard)
    assert alone.returncode == 0 and alone.stderr == "", (alone.stdout, alone.stderr)
