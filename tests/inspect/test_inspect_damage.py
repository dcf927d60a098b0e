"""`blurgen inspect` on damage the report must list, never crash or hang on: damaged WebDataset
members (a JSON or .npy that does not parse), images that are FIFOs or folders, a reader of its
stdout that goes away; and `--png` on a PNG run in progress (one line)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest
from fake_pairs import FakeConfig, FakeMaker

from blurgen.core.common import DatasetError
from blurgen.runs.dataset import make_dataset
from blurgen.runs.format_sinks import FoldersSink, LmdbSink, WebDatasetSink

SINKS = {"folders": FoldersSink, "lmdb": LmdbSink, "webdataset": lambda: WebDatasetSink(samples_per_shard=5)}


def make(out, fmt, n=12, **kwargs):
    make_dataset(str(out), FakeConfig(), n, seed=3, workers=1, block_size=5, durable=False, sink=SINKS[fmt](),
                 maker=FakeMaker(), **kwargs)
    return str(out)


def inspect(*args, timeout=60):
    return subprocess.run(["blurgen", "inspect", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _damage_member(tar_path: str, member_name: str, at: int) -> None:
    """Flip byte ``at`` of a member's data (its CRC-32 no longer matches either)."""
    with tarfile.open(tar_path) as tar:
        offset = tar.getmember(member_name).offset_data
    with open(tar_path, "r+b") as handle:
        handle.seek(offset + at)
        byte = handle.read(1)[0]
        handle.seek(offset + at)
        handle.write(bytes([byte ^ 0xFF]))


@pytest.mark.parametrize("member,at", [("00000006.json", 0), ("00000006.kernel.npy", 3)])
def test_a_webdataset_member_that_does_not_parse_is_a_problem_line_not_a_traceback(tmp_path, member, at):
    out = make(tmp_path / "out", "webdataset")
    _damage_member(out + "-000001.tar", member, at)
    done = inspect(out)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    kind = member.split(".", 1)[1]
    assert f"1 {kind} member(s) unreadable (first: 00000006.{kind})" in done.stdout, done.stdout
    assert "1 tar member(s) damaged (CRC-32 mismatch)" in done.stdout
    assert done.stderr.count("\n") == 1


def test_a_json_member_that_is_not_an_object_is_a_problem_line(tmp_path):
    out = make(tmp_path / "out", "webdataset")
    tar_path = out + "-000000.tar"
    with tarfile.open(tar_path) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar]
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:  # no CRC-32s: only the parse can tell
        for info, data in members:
            data = b"[1, 2]" if info.name == "00000002.json" else data
            info.size, info.pax_headers = len(data), {}
            tar.addfile(info, io.BytesIO(data))
    done = inspect(out)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "1 json member(s) unreadable (first: 00000002.json)" in done.stdout, done.stdout


@pytest.mark.parametrize("what", ["fifo", "folder"])
def test_an_image_that_is_a_fifo_or_a_folder_is_a_problem_line_and_never_hangs(tmp_path, what):
    out = make(tmp_path / "out", "folders")
    image = os.path.join(out, "sharp", "00000004.png")
    os.unlink(image)
    os.mkfifo(image) if what == "fifo" else os.mkdir(image)
    for quick in ([], ["--quick"]):
        done = inspect(out, *quick, timeout=30)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "1 image(s) unreadable (not a regular file, or no permission) (first: sharp/00000004.png)" \
            in done.stdout, done.stdout


@pytest.mark.parametrize("fmt", sorted(SINKS))
def test_png_of_a_png_run_in_progress_is_one_line(tmp_path, fmt):
    out = tmp_path / "out"
    with pytest.raises(DatasetError):  # a run that stops after its first blocks
        _interrupted(out, fmt)
    done = inspect(str(out), "--png", str(tmp_path / "sheet.png"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "is a run in progress of PNG images: --png draws its output once it is finished" in done.stderr
    assert "samples: " in done.stdout  # the report came first
    assert not (tmp_path / "sheet.png").exists()


def _interrupted(out, fmt) -> None:
    """Make blocks 0 and 1, then fail (the finished blocks stay in OUT.parts)."""
    class Failing(FakeMaker):
        def __call__(self, config, seed, start, count):
            if start >= 10:
                raise DatasetError("stopped for the test")
            return super().__call__(config, seed, start, count)

    make_dataset(str(out), FakeConfig(), 20, seed=3, workers=1, block_size=5, durable=False, sink=SINKS[fmt](),
                 maker=Failing())


@pytest.mark.parametrize("damaged", [False, True])
def test_a_reader_that_goes_away_still_gets_the_exit_code_of_the_damage(tmp_path, damaged):
    out = make(tmp_path / "out", "folders")
    if damaged:
        os.unlink(os.path.join(out, "blur", "00000003.png"))
    # `true` reads nothing and exits long before inspect has started: its writes meet a closed pipe
    done = subprocess.run(["bash", "-c", 'set -o pipefail; blurgen inspect "$1" | true', "_", out],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == (1 if damaged else 0), done.stderr
    assert done.stderr == ""


def test_the_damage_line_stays_one_line_for_any_output_name(tmp_path):
    out = make(tmp_path / "x\ny", "folders")
    os.unlink(os.path.join(out, "blur", "00000003.png"))
    done = inspect(out)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("Error: '") and "damaged (" in done.stderr
