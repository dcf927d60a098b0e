"""Issue 23, round 3 review: the augmentation's kernel checks (F7) and regressions found by the
adversarial pass over this wave's surfaces (docs/adversarial-pass-wave3.md)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from blurgen.transforms import camera_shake

_DELTA = np.zeros((1, 5, 5), np.float64)
_DELTA[0, 2, 2] = 1.0
_BAD_KERNELS = {
    "NaN": np.full((1, 5, 5), np.nan),
    "infinite": np.full((1, 5, 5), np.inf),
    "beyond float32": _DELTA * 1e308,
    "sums to 0": np.zeros((1, 5, 5)),
    "sums to 0 in float32": _DELTA * 1e-300,
    "negative": -_DELTA,
    "complex128": _DELTA.astype(complex),
    "object": _DELTA.astype(object),
    "complex64": torch.from_numpy(_DELTA).to(torch.complex64),
}


@pytest.mark.parametrize("dtype,method", [(torch.float32, "auto"), (torch.float32, "direct"),
                                          (torch.float32, "fft"), (torch.float64, "auto"), (torch.float64, "fft")])
@pytest.mark.parametrize("found", sorted(_BAD_KERNELS))
def test_camera_shake_refuses_bad_kernels_on_every_path(found, dtype, method):
    x = torch.rand(1, 3, 12, 12, dtype=dtype)
    with pytest.raises(ValueError, match="finite, real, non-negative with a positive sum") as err:
        camera_shake(x, _BAD_KERNELS[found], method=method)
    assert found.split()[0] in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("dtype,method", [(torch.float32, "direct"), (torch.float32, "fft"), (torch.float64, "fft")])
def test_camera_shake_nan_input_is_refused_on_every_path(dtype, method):
    x = torch.rand(1, 3, 12, 12, dtype=dtype)
    x[0, 1, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        camera_shake(x, _DELTA, method=method)
    with pytest.raises(ValueError, match="NaN"):
        camera_shake(x, _DELTA, gamma=None, method=method)


def test_camera_shake_still_takes_integer_and_unnormalised_kernels():
    x = torch.rand(2, 3, 12, 12)
    k = np.zeros((2, 3, 3), np.int64)
    k[:, 1, 1] = 1
    assert torch.allclose(camera_shake(x, k, gamma=None), x)
    assert torch.allclose(camera_shake(x, k.astype(bool), gamma=None), x)


# ------------------------------------------------- virtual merges whose shards changed afterwards
class _Done:
    def __init__(self, result):
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def _blurgen(*args, cwd):
    """``blurgen ARGS`` in this process (click's runner), in folder ``cwd``."""
    from click.testing import CliRunner

    from blurgen.cli import main

    here = os.getcwd()
    os.chdir(cwd)
    try:
        return _Done(CliRunner().invoke(main, list(args)))
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory):
    """Shards 0/2 and 1/2 of seed 5, shard 1/2 of seed 6 and the unsharded file of seed 5."""
    folder = tmp_path_factory.mktemp("shards")
    small = ["--n", "8", "--size", "32", "--kernel-size", "15", "--length-px", "10", "--workers", "1"]
    for out, extra in (("s0.h5", ["--shard", "0/2"]), ("s1.h5", ["--shard", "1/2"]),
                       ("other.h5", ["--shard", "1/2", "--seed", "6"]), ("full.h5", [])):
        seed = [] if "--seed" in extra else ["--seed", "5"]
        assert _blurgen("make", *small, *seed, *extra, "--out", out, cwd=folder).returncode == 0
    return folder


def _merged_copy(shard_folder, tmp_path):
    import shutil

    for name in ("s0.h5", "s1.h5", "other.h5", "full.h5"):
        shutil.copy(shard_folder / name, tmp_path / name)
    done = _blurgen("merge", "s0.h5", "s1.h5", "--out", "m.h5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("replacement", ["other.h5", "full.h5", "s0.h5", "/etc/passwd", "truncated"])
def test_a_virtual_merge_whose_shard_was_replaced_is_refused_not_read(shard_folder, tmp_path, replacement):
    """Before: export and eval read another dataset's samples through the merge with exit 0, and
    inspect said "problems: none found" (or named chunks of the merge for a foreign shard)."""
    import shutil

    _merged_copy(shard_folder, tmp_path)
    os.remove(tmp_path / "s1.h5")
    if replacement == "/etc/passwd":
        os.symlink("/etc/passwd", tmp_path / "s1.h5")
    elif replacement == "truncated":
        (tmp_path / "s1.h5").write_bytes((shard_folder / "s1.h5").read_bytes()[:3000])
    else:
        shutil.copy(tmp_path / replacement, tmp_path / "s1.h5")
    for command in (["inspect", "m.h5"], ["export", "m.h5", "--format", "folders", "--out", "ex", "--workers", "1"]):
        done = _blurgen(*command, cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if not line.startswith(("export:", "blurgen: first"))]
        assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "shard s1.h5 of this virtual merge is not" in lines[0], lines[0]
    assert not (tmp_path / "ex").exists()


def test_inspect_of_an_intact_virtual_merge_finds_no_problems_and_nested_merges_are_checked(shard_folder, tmp_path):
    """Before: inspect reported "/blurred stores data for only 0 of the 8 samples" for every
    intact virtual merge, and a merge of a merge read a replaced inner shard silently."""
    import shutil

    from pairs_compare import assert_same_arrays

    _merged_copy(shard_folder, tmp_path)
    done = _blurgen("inspect", "m.h5", cwd=tmp_path)
    assert done.returncode == 0 and "problems: none found" in done.stdout, done.stdout
    (tmp_path / "up").mkdir()
    assert _blurgen("merge", "m.h5", "--out", "up/mm.h5", cwd=tmp_path).returncode == 0
    assert _blurgen("merge", "up/mm.h5", "--out", "copy.h5", "--copy", cwd=tmp_path).returncode == 0
    assert_same_arrays(tmp_path / "copy.h5", tmp_path / "full.h5")
    shutil.copy(tmp_path / "other.h5", tmp_path / "s1.h5")
    done = _blurgen("inspect", "mm.h5", cwd=tmp_path / "up")
    assert done.returncode == 1 and "shard s1.h5 of this virtual merge is not the shard that was merged" in done.stderr


# ------------------------------------------------------------ values the pass found unchecked
_TINY = ["--n", "4", "--size", "32", "--kernel-size", "15", "--length-px", "10", "--workers", "1"]


@pytest.mark.parametrize("command", ["make", "export"])
def test_tar_mb_nan_is_a_usage_error_not_a_traceback(tmp_path, command):
    """Before: ``--tar-mb nan`` passed click's FloatRange (NaN compares false) and webdataset raised
    "cannot convert float NaN to integer" with a traceback."""
    args = ["make", *_TINY] if command == "make" else ["export", str(tmp_path / "none.h5")]
    if command == "export":
        (tmp_path / "none.h5").write_bytes(b"")
    done = _blurgen(*args, "--out", str(tmp_path / "w.tar"), "--tar-mb", "nan", cwd=tmp_path)
    assert done.returncode == 2 and "--tar-mb" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_clip_frames_exposed_longer_than_the_camera_allows_are_a_usage_error(tmp_path):
    """Before: ``--fps 1e-300`` exposed each frame 1e300 s and failed while working, in two lines
    (a NumPy overflow warning, then "rotation must be finite ..., got nan")."""
    done = _blurgen("make", "--n", "2", "--size", "32", "--motion", "camera3d", "--clips", "3", "--fps", "1e-300",
                    "--out", str(tmp_path / "c.h5"), cwd=tmp_path)
    assert done.returncode == 2 and "longer than 10 s" in done.stderr, done.stderr


def test_clips_too_shaky_to_render_say_which_options_to_change(tmp_path, monkeypatch):
    """Before: 10 s frames (``--fps 0.1 --shutter-angle 360``, within every range) failed while
    working with "check the motion's focal_px, translation and depth_m" or "use a larger
    tolerance_px", fields the command line does not have. Such a draw is now redrawn like any
    that does not fit, and the message after the last draw names real options."""
    from blurgen.pairs import clips

    monkeypatch.setattr(clips, "MAX_CLIP_DRAWS", 2)
    done = _blurgen("make", "--n", "1", "--size", "32", "--motion", "camera3d", "--clips", "8", "--fps", "0.1",
                    "--shutter-angle", "360", "--workers", "1", "--out", str(tmp_path / "c.h5"), cwd=tmp_path)
    assert done.returncode == 1 and "exposed 10 s" in done.stderr, done.stderr
    assert "--shutter-angle" in done.stderr and "--fps" in done.stderr and "--shake-scale" in done.stderr
    assert "tolerance_px" not in done.stderr and "focal_px" not in done.stderr


def test_a_malformed_dask_address_is_a_usage_error(tmp_path):
    pytest.importorskip("distributed")
    done = _blurgen("make", *_TINY, "--out", str(tmp_path / "d.h5"), "--executor", "dask:::::", cwd=tmp_path)
    assert done.returncode == 2 and "--executor" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "d.h5.parts").exists()


def test_a_peer_that_is_not_a_dask_scheduler_is_one_line(tmp_path):
    """Before: a port answering with other bytes gave a traceback (a 3 EiB allocation)."""
    import socket
    import threading

    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def answer():
        for _ in range(4):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"\xff" * 64)
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        done = _blurgen("make", *_TINY, "--out", str(tmp_path / "d.h5"),
                        "--executor", f"dask:tcp://127.0.0.1:{server.getsockname()[1]}", cwd=tmp_path)
    finally:
        server.close()
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("make:")]
    assert done.returncode == 1 and len(lines) == 1 and "Dask scheduler" in lines[0], done.stderr


def test_export_of_a_clips_file_is_one_line(tmp_path):
    """Before: a traceback ("too many values to unpack") from the clip frames' extra axis."""
    clips = str(tmp_path / "clips.h5")
    made = _blurgen("make", "--n", "1", "--size", "32", "--motion", "camera3d", "--clips", "2", "--frame-size",
                    "96x96", "--clip-margin", "16", "--camera-steps", "16", "--workers", "1", "--out", clips, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    done = _blurgen("export", clips, "--format", "folders", "--out", str(tmp_path / "ex"), cwd=tmp_path)
    assert done.returncode == 1 and "is a clips file" in done.stderr and not (tmp_path / "ex").exists(), done.stderr


@pytest.mark.parametrize("copy", [False, True])
def test_merging_more_shards_than_the_open_file_limit_says_so(tmp_path, copy):
    """Before: "s7.h5: not a readable HDF5 file (truncated or foreign): ... Too many open files"."""
    import resource
    import subprocess

    n = 8
    for i in range(n):
        assert _blurgen("make", *_TINY[:1], str(n), *_TINY[2:], "--shard", f"{i}/{n}", "--out", f"s{i}.h5",
                        cwd=tmp_path).returncode == 0

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 60, n + 60))
    done = subprocess.run(["blurgen", "merge", *[f"s{i}.h5" for i in range(n)], "--out", "m.h5",
                           *(["--copy"] if copy else [])], cwd=tmp_path, capture_output=True, text=True,
                          preexec_fn=limit, timeout=120)
    assert done.returncode == 1 and "ulimit -n" in done.stderr and "foreign" not in done.stderr, done.stderr
    assert ("--copy" in done.stderr) != copy


# ----------------------------------------------- kept blocks of folders/LMDB/WebDataset runs damaged
def _interrupted_format_run(out, fmt):
    from fake_pairs import FakeMaker
    from test_formats import SINKS, make

    from blurgen.core.common import DatasetError
    from blurgen.runs.folder import RunFolder, parts_dir_for

    with pytest.raises(DatasetError):
        make(out, SINKS[fmt](), maker=FakeMaker(fail_at=12))
    kept = RunFolder.at(parts_dir_for(str(out))).complete_parts()
    assert sorted(kept) == [0, 5]
    return kept[0], SINKS[fmt]


class _Hung(Exception):
    pass


def _flip_middle_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("fmt", ["folders", "lmdb", "webdataset"])
@pytest.mark.parametrize("damage", ["flipped byte", "FIFO"])
def test_a_damaged_or_fifo_first_kept_block_is_made_again_for_every_format(tmp_path, fmt, damage):
    """Before: LMDB left the damaged block's write transactions open, so the next block raised
    lmdb.Error with a traceback; a FIFO named like a block hung the resume for ever."""
    import signal

    from fake_pairs import FakeConfig, FakeMaker
    from format_clients import READERS, assert_same_as_hdf5
    from test_formats import make

    from blurgen.runs.dataset import make_dataset

    reference = str(tmp_path / "ref.h5")
    make_dataset(reference, FakeConfig(), 23, seed=3, workers=1, block_size=7, maker=FakeMaker(), durable=False)
    out = tmp_path / "out"
    block, sink = _interrupted_format_run(out, fmt)
    if damage == "FIFO":
        os.remove(block)
        os.mkfifo(block)
    else:
        _flip_middle_byte(block)
    def hung(*_):
        raise _Hung("the resume hung on the damaged block")  # not an OSError: nothing may catch it

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # a hang fails this test, not the suite
    try:
        result = make(out, sink(), resume=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.n_reused == 5
    assert_same_as_hdf5(reference, READERS[fmt](str(out)))


def test_a_folder_where_a_kept_block_belongs_is_one_line(tmp_path, caplog):
    """Before: a warning and then "Is a directory" (two lines, the second without advice)."""
    from test_formats import make

    from blurgen.core.common import DatasetError

    out = tmp_path / "out"
    block, sink = _interrupted_format_run(out, "folders")
    os.remove(block)
    os.mkdir(block)
    with pytest.raises(DatasetError, match="a folder where a block file belongs; remove it") as err:
        make(out, sink(), resume=True)
    assert "\n" not in str(err.value) and "remaking" not in caplog.text  # no warning line before it


@pytest.mark.parametrize("prefix", ["q?m", "h#s", "new\nline", "pipe:touch x"])
def test_webdataset_prefixes_its_readers_misread_are_a_usage_error(tmp_path, prefix):
    """Before: blurgen wrote ``q?m-000000.tar``, which ``webdataset.WebDataset`` opened as ``q``
    (FileNotFoundError); a ``pipe:`` name would be run as a command by the reader."""
    (tmp_path / "x.h5").write_bytes(b"")
    for command in (["make", *_TINY], ["export", str(tmp_path / "x.h5")]):
        done = _blurgen(*command, "--format", "webdataset", "--out", prefix, cwd=tmp_path)
        assert done.returncode == 2 and "WebDataset prefix" in done.stderr, done.stderr
    assert os.listdir(tmp_path) == ["x.h5"]


# ------------------------------------------------- open items 3 and 4 of the adversarial pass
@pytest.mark.parametrize("copy", [[], ["--copy"]])
def test_merge_out_through_a_missing_folder_names_out_not_the_temporary(shard_folder, tmp_path, copy):
    """Before: `--out ../x/../m.h5` (x missing) failed with "Error: /abs/.m.h5.merge-PID.h5: No such
    file or directory": the folder was checked after normalising the path, which the kernel does not."""
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    for name in ("s0.h5", "s1.h5"):
        shutil.copy(shard_folder / name, work / name)
    done = _blurgen("merge", "s0.h5", "s1.h5", "--out", "../x/../m.h5", *copy, cwd=work)
    assert done.returncode == 1, done.stderr
    assert "../x/../m.h5" in done.stderr and ".merge-" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["work"] and sorted(os.listdir(work)) == ["s0.h5", "s1.h5"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (3, 16, 16), (1, 2, 3, 16, 16)])
@pytest.mark.parametrize("how", ["RandomCameraShake", "v2", "camera_shake"])
def test_a_meta_tensor_is_a_one_line_value_error(how, shape, dtype):
    """Before: torch's "RuntimeError: Tensor.item() cannot be called on meta tensors" from inside
    the range check (uint8: from further inside)."""
    from blurgen.transforms import RandomCameraShake
    from blurgen.transforms.v2 import RandomCameraShake as V2Shake

    x = torch.empty(shape, dtype=dtype, device="meta")
    shake = (RandomCameraShake if how == "RandomCameraShake" else V2Shake)(p=1.0)
    with pytest.raises(ValueError, match="meta tensor") as err:
        if how == "camera_shake":
            camera_shake(x, np.ones((shape[0], 3, 3)) / 9)
        else:
            shake(x)
    assert "\n" not in str(err.value)
