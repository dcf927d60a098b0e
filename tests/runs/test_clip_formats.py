"""Clips in the folders (GoPro layout), LMDB and WebDataset formats: each read by its client holds
the arrays of the clips file (HDF5 schema 3) of the same seed, for any workers, shards and after a
SIGKILL and --resume; existing outputs are one line; inspect reports them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from clip_clients import CLIP_READERS, assert_same_as_clips_file
from click.testing import CliRunner

from blurgen.cli import main
from blurgen.runs.folder import parts_dir_for

#: A tiny clips dataset (3 clips of 3 frames, 40x32); ``tests/store/test_clips_store.py``'s settings.
CLIP_ARGS = ["--clips", "3", "--size", "40x32", "--motion", "camera3d", "--kernel-size", "33", "--frame-size",
             "320x240", "--focal-35mm", "20,35", "--shake-scale", "0.5", "--clip-margin", "48", "--seed", "3"]
N = "3"
#: The console script of the Python running the tests (not another installation's on PATH).
BLURGEN = shutil.which("blurgen", path=os.path.dirname(sys.executable)) or "blurgen"


def _cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def clips_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    result = _cli("make", "--n", N, "--out", str(out), "--workers", "1", *CLIP_ARGS)
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.mark.parametrize("fmt", sorted(CLIP_READERS))
def test_each_clip_format_read_by_its_client_holds_the_clips_file_arrays(tmp_path, clips_reference, fmt):
    out = str(tmp_path / "out")
    result = _cli("make", "--n", N, "--out", out, "--format", fmt, "--workers", "1", "--block-size", "2",
                  *(["--tar-mb", "0.03"] if fmt == "webdataset" else []), *CLIP_ARGS)
    assert result.exit_code == 0, result.output
    assert "3 clips of 3 frames" in result.output and not os.path.exists(parts_dir_for(out))
    assert_same_as_clips_file(clips_reference, CLIP_READERS[fmt](out))
    shown = _cli("inspect", out, "--png", str(tmp_path / "strip.png"))
    assert shown.exit_code == 0, shown.output
    assert "clips: 3/3 written (complete)" in shown.output and "3 frames" in shown.output
    assert "problems: none found" in shown.output, shown.output
    again = _cli("make", "--n", N, "--out", out, "--format", fmt, "--workers", "1", *CLIP_ARGS)
    assert again.exit_code == 1 and "exists; use --overwrite" in again.output
    lines = [line for line in again.output.splitlines() if not line.startswith("blurgen: first run")]
    assert len(lines) == 1 and "Traceback" not in again.output, again.output


def test_webdataset_tars_hold_whole_clips_and_shards_split_whole_tars(tmp_path, clips_reference):
    import webdataset as wds

    prefix = str(tmp_path / "train")
    for i in range(2):
        result = _cli("make", "--n", N, "--out", prefix + ".tar", "--workers", "1", "--shard", f"{i}/2",
                      "--tar-mb", "0.08", *CLIP_ARGS)  # 2 clips per tar
        assert result.exit_code == 0, result.output
    tars = sorted(os.path.basename(p) for p in tmp_path.glob("train-*.tar"))
    assert tars == ["train-000000.tar", "train-000001.tar"]
    first = list(wds.WebDataset(str(tmp_path / tars[0]), shardshuffle=False, empty_check=False).decode())
    assert [s["__key__"] for s in first] == ["00000000", "00000001"]
    assert first[0]["blur.npy"].shape == (3, 32, 40, 3) and first[0]["kernel.npy"].shape == (3, 33, 33)
    os.rename(prefix + ".shard-0-of-2.json", prefix + ".json")  # one index over every tar, for the reader
    assert_same_as_clips_file(clips_reference, CLIP_READERS["webdataset"](prefix))


def test_clip_folders_survive_sigkill_and_resume_with_other_workers(tmp_path):
    """Killed (SIGKILL) once a block is committed, resumed with 2 workers: the arrays of an
    uninterrupted 1-worker clips file."""
    args = ["--n", "30", *CLIP_ARGS[:1], "4", *CLIP_ARGS[2:3], "64", *CLIP_ARGS[4:]]
    reference = str(tmp_path / "ref.h5")
    assert _cli("make", "--out", reference, "--workers", "1", *args).exit_code == 0
    out = str(tmp_path / "clips")
    command = [BLURGEN, "make", "--out", out, "--format", "folders", "--block-size", "1", *args]
    proc = subprocess.Popen([*command, "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not any(n.startswith("block-") for n in _listing(parts_dir_for(out))) and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(out) and os.path.isdir(parts_dir_for(out))
    done = subprocess.run([*command, "--workers", "2", "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_as_clips_file(reference, CLIP_READERS["folders"](out))


def _listing(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def test_clip_options_a_format_cannot_take_are_usage_errors(tmp_path):
    result = _cli("make", "--n", N, "--out", str(tmp_path / "c"), "--format", "folders", "--preview",
                  str(tmp_path / "p.png"), *CLIP_ARGS)
    assert result.exit_code == 2 and "--preview" in result.output
