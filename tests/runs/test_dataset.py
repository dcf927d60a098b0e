"""The dataset writer: schema, identical arrays for any block size / worker count / shard split /
resume point, refusal of unsafe situations, merge checks. Uses the fake block maker so it is fast
and independent of the blur pipeline; tests/cli/test_cli_make.py runs the real one end to end."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
from datetime import datetime

import h5py
import numpy as np
import pytest
from fake_pairs import FakeConfig, FakeMaker, fake_sample
from pairs_compare import assert_same_arrays

from blurgen.core.common import DiskFullError
from blurgen.runs.dataset import DatasetError, make_dataset
from blurgen.runs.folder import Manifest, RunFolder, auto_block_size, parts_dir_for, plan_blocks, shard_range
from blurgen.store.assembly import reserved_bytes
from blurgen.store.merge import merge_files
from blurgen.store.parts import PART_METADATA_BOUND, PART_SPACE_MARGIN_BYTES, compression_for
from blurgen.store.reader import read_pairs
from blurgen.store.schema import REQUIRED_ATTRS, PairsFileError

CONFIG = FakeConfig()


def done_parts(parts_dir) -> dict[int, str]:
    """First sample -> path of the complete parts in a run folder."""
    return RunFolder.at(str(parts_dir)).complete_parts()


def make(out, n=40, **kwargs):
    kwargs.setdefault("maker", FakeMaker())
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("durable", False)
    return make_dataset(str(out), CONFIG, n, seed=kwargs.pop("seed", 7), **kwargs)


def test_plan_blocks_tile_the_range_on_absolute_block_edges():
    assert plan_blocks(0, 10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert plan_blocks(5, 13, 4) == [(5, 3), (8, 4), (12, 1)]
    for n, parts in [(10, 3), (7, 7), (100, 3)]:
        ranges = [shard_range(n, i, parts) for i in range(parts)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_auto_block_size_shrinks_for_large_images_only():
    assert auto_block_size(256, 256) == 64
    assert 1 <= auto_block_size(1280, 720) < 64
    assert auto_block_size(8000, 8000) == 1


def test_written_file_has_schema_attrs_and_the_makers_samples(tmp_path):
    out = tmp_path / "pairs.h5"
    result = make(out, n=13, block_size=4, command="blurgen make --n 13")
    assert result.n_made == 13 and result.n_reused == 0
    assert not os.path.exists(parts_dir_for(str(out))), "parts folder removed after assembly"
    with read_pairs(out) as f:
        attrs = f.attrs
        assert set(REQUIRED_ATTRS) <= set(attrs)
        assert attrs["schema_version"] == 1 and attrs["n_planned"] == attrs["n_written"] == 13
        assert attrs["seed"] == 7 and attrs["command"] == "blurgen make --n 13"
        assert json.loads(attrs["config"]) == CONFIG.to_dict()
        datetime.fromisoformat(attrs["created"])
        assert len(f) == 13 and f.complete
        for i in (0, 5, 12):
            blurred, sharp, kernel, params = fake_sample(CONFIG, 7, i)
            got = f[i]
            np.testing.assert_array_equal(got[0], blurred)
            np.testing.assert_array_equal(got[1], sharp)
            np.testing.assert_array_equal(got[2], kernel)
            assert f.params["noise_a"][i] == params["noise_a"]
        np.testing.assert_array_equal(f.params["seed_index"], np.arange(13))
    with h5py.File(out, "r") as h5:
        assert h5["blurred"].chunks == (1, CONFIG.height, CONFIG.width, 3)
        assert h5["kernel"].chunks == (1, 5, 5)
        assert h5["blurred"].compression is None and h5["kernel"].compression == "gzip"


@pytest.mark.parametrize("images", ["none", "lzf", "gzip:3"])
def test_block_size_and_compression_do_not_change_the_arrays(tmp_path, images):
    make(tmp_path / "a.h5", block_size=3, compression=compression_for(images))
    make(tmp_path / "b.h5", block_size=64)
    assert_same_arrays(tmp_path / "a.h5", tmp_path / "b.h5")
    with h5py.File(tmp_path / "a.h5", "r") as h5:
        assert h5["sharp"].compression == {"none": None, "lzf": "lzf", "gzip:3": "gzip"}[images]


def test_compression_for_rejects_unknown_filters():
    for bad in ("zstd", "gzip:10", "lzf:3", "gzip:x"):
        with pytest.raises(ValueError, match="compression"):
            compression_for(bad)


def test_two_worker_processes_give_the_same_arrays_as_one(tmp_path):
    make(tmp_path / "one.h5", n=30, block_size=4)
    make(tmp_path / "two.h5", n=30, block_size=4, workers=2)
    assert_same_arrays(tmp_path / "one.h5", tmp_path / "two.h5")


def test_merged_shards_equal_one_run(tmp_path):
    make(tmp_path / "all.h5", n=23, block_size=4)
    shards = []
    for i in range(3):
        shards.append(str(tmp_path / f"shard{i}.h5"))  # compressed chunks are copied as stored
        make(shards[-1], n=23, block_size=4, shard=(i, 3), compression=compression_for("lzf"))
        with h5py.File(shards[-1], "r") as h5:
            assert (h5.attrs["sample_start"], h5.attrs["sample_stop"]) == shard_range(23, i, 3)
            assert h5.attrs["n_total"] == 23
    merged = str(tmp_path / "merged.h5")
    assert merge_files(shards[::-1], merged + ".tmp", merged, "blurgen merge") == 23
    assert_same_arrays(tmp_path / "all.h5", merged)
    with h5py.File(merged, "r") as whole, h5py.File(shards[1], "r") as part:
        first = int(part.attrs["sample_start"])  # the stored (compressed) bytes moved unchanged
        assert whole["sharp"].compression == "lzf"
        assert whole["sharp"].id.read_direct_chunk((first + 2, 0, 0, 0)) == \
            part["sharp"].id.read_direct_chunk((2, 0, 0, 0))
    with read_pairs(merged) as f:
        assert len(f) == 23 and f.attrs["command"] == "blurgen merge"


def test_a_merge_on_a_full_disk_asks_for_the_space_it_reserves(tmp_path, monkeypatch):
    """The merged file reserves its raw size before copying; the message asked for the shards'
    size (on a tmpfs with 3.5 MB free, 'need ~1 MB free' for a 24-pair merge that reserves 4.3 MB)."""
    import re

    import blurgen.core.common as common

    shards = [str(tmp_path / f"shard{i}.h5") for i in range(2)]
    for i, shard in enumerate(shards):
        make(shard, n=24, block_size=4, shard=(i, 2), compression=compression_for("gzip"))
    merged = str(tmp_path / "merged.h5")
    free = [sum(os.path.getsize(s) for s in shards) + 2 * 10**6]
    monkeypatch.setattr(common, "free_bytes", lambda path: free[0])
    with pytest.raises(PairsFileError) as info:
        merge_files(shards, merged + ".tmp", merged, "blurgen merge")
    asked = int(re.search(r"need ~(\d+) MB free", str(info.value)).group(1)) * 10**6
    assert asked > free[0]
    free[0] = asked
    assert merge_files(shards, merged + ".tmp", merged, "blurgen merge") == 24


@pytest.mark.parametrize("case", ["gap", "overlap", "other seed"])
def test_merge_refuses_shards_that_do_not_tile_one_dataset(tmp_path, case):
    paths = {}
    for i in range(3):
        paths[i] = str(tmp_path / f"s{i}.h5")
        make(paths[i], n=12, shard=(i, 3), seed=1 if (case == "other seed" and i == 2) else 7)
    if case == "overlap":
        make(tmp_path / "other.h5", n=12, shard=(0, 2))  # samples 0..6 overlap s0 and s1
        inputs = [paths[0], paths[1], str(tmp_path / "other.h5"), paths[2]]
    else:
        inputs = [paths[0], paths[2]] if case == "gap" else list(paths.values())
    out = str(tmp_path / "merged.h5")
    with pytest.raises(PairsFileError) as info:
        merge_files(inputs, out + ".tmp", out, "blurgen merge")
    message = str(info.value)
    assert "\n" not in message
    expected = {"gap": "missing", "overlap": "overlap", "other seed": "seed"}[case]
    assert expected in message
    assert not os.path.exists(out)


def test_interrupted_run_keeps_complete_blocks_and_resumes_to_the_same_arrays(tmp_path):
    make(tmp_path / "ref.h5", n=40, block_size=4)
    out = tmp_path / "pairs.h5"
    with pytest.raises(KeyboardInterrupt):
        make(out, n=40, block_size=4, maker=FakeMaker(fail_at=21, fail_with=KeyboardInterrupt))
    parts_dir = parts_dir_for(str(out))
    assert not out.exists()
    done = done_parts(parts_dir)
    assert sorted(done) == [0, 4, 8, 12, 16]
    progress = []
    result = make(out, n=40, block_size=4, resume=True, progress=lambda d, t: progress.append((d, t)))
    assert (result.n_reused, result.n_made) == (20, 20)
    assert progress[0] == (20, 40) and progress[-1] == (40, 40)
    assert_same_arrays(tmp_path / "ref.h5", out)
    assert not os.path.exists(parts_dir)
    again = make(out, n=40, block_size=4, resume=True)
    assert again.already_complete and again.n_made == 0


def test_ctrl_c_stops_at_a_safe_point_keeping_the_block_in_hand(tmp_path):
    make(tmp_path / "ref.h5", n=40, block_size=4)
    out = tmp_path / "pairs.h5"
    with pytest.raises(KeyboardInterrupt):
        make(out, n=40, block_size=4, maker=FakeMaker(sigint_at=13))
    done = done_parts(parts_dir_for(str(out)))
    assert 12 in done and max(done) <= 16  # the interrupted block is finished, little more
    make(out, n=40, block_size=4, resume=True)
    assert_same_arrays(tmp_path / "ref.h5", out)


@pytest.mark.parametrize("change, named", [({"seed": 8}, "seed"), ({"n": 41}, "n_total"),
                                           ({"shard": (1, 2)}, "sample_start")])
def test_resume_with_different_settings_is_refused_naming_the_setting(tmp_path, change, named):
    out = tmp_path / "pairs.h5"
    with pytest.raises(DatasetError, match="fake failure"):
        make(out, n=40, block_size=4, maker=FakeMaker(fail_at=9))
    with pytest.raises(DatasetError, match=named):
        make(out, **{"n": 40, "block_size": 4, "resume": True, **change})


def test_resume_of_a_complete_file_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "pairs.h5"
    make(out, n=10)
    with pytest.raises(DatasetError, match="seed"):
        make(out, n=10, seed=3, resume=True)


def test_existing_output_or_parts_are_refused_unless_overwrite(tmp_path):
    out = tmp_path / "pairs.h5"
    make(out, n=8, seed=1)
    with pytest.raises(DatasetError, match="exists"):
        make(out, n=8)
    make(out, n=8, seed=2, overwrite=True)
    with read_pairs(out) as f:
        assert f.attrs["seed"] == 2
    with pytest.raises(DatasetError, match="fake failure"):
        make(tmp_path / "b.h5", n=40, block_size=4, maker=FakeMaker(fail_at=30))
    with pytest.raises(DatasetError, match="--resume"):
        make(tmp_path / "b.h5", n=40, block_size=4)
    make(tmp_path / "b.h5", n=40, block_size=4, overwrite=True)
    assert not os.path.exists(parts_dir_for(str(tmp_path / "b.h5")))


def test_a_running_make_locks_out_a_second_one(tmp_path):
    out = tmp_path / "pairs.h5"
    with pytest.raises(DatasetError, match="fake failure"):
        make(out, n=40, block_size=4, maker=FakeMaker(fail_at=30))
    with RunFolder(str(out)).locked():
        with pytest.raises(DatasetError, match="being made by another"):
            make(out, n=40, block_size=4)
        with pytest.raises(DatasetError, match="in use"):
            make(out, n=40, block_size=4, resume=True)
        with pytest.raises(DatasetError, match="in use"):
            make(out, n=40, block_size=4, overwrite=True)
    make(out, n=40, block_size=4, resume=True)


def test_a_damaged_part_is_made_again_on_resume(tmp_path):
    make(tmp_path / "ref.h5", n=40, block_size=4)
    out = tmp_path / "pairs.h5"
    with pytest.raises(DatasetError, match="fake failure"):
        make(out, n=40, block_size=4, maker=FakeMaker(fail_at=30))
    part = done_parts(parts_dir_for(str(out)))[8]
    with open(part, "r+b") as fh:
        fh.truncate(200)
    result = make(out, n=40, block_size=4, resume=True)
    assert result.n_reused == 24
    assert_same_arrays(tmp_path / "ref.h5", out)


def test_a_worker_failure_stops_the_run_with_one_line(tmp_path):
    out = tmp_path / "pairs.h5"
    with pytest.raises(DatasetError) as info:
        make(out, n=40, block_size=4, workers=2, maker=FakeMaker(fail_at=13))
    assert "fake failure at sample 13" in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()


def test_a_worker_that_dies_stops_the_run_with_one_line(tmp_path):
    out = tmp_path / "pairs.h5"
    with pytest.raises(DatasetError, match="worker process died") as info:
        make(out, n=40, block_size=4, workers=2, maker=FakeMaker(exit_at=9))
    assert "\n" not in str(info.value) and not out.exists()


def test_manifest_differences_name_nested_settings():
    base = Manifest(config={"kernel": {"length_px": 10.0}}, seed=0, n_total=4, sample_start=0,
                    sample_stop=4, shard_index=0, shard_count=1, block_size=4, compression={"blurred": ("lzf", None)},
                    blurgen_version="x")
    other = Manifest(**{**base.__dict__, "config": {"kernel": {"length_px": 12.0}}})
    assert [d.split(":")[0] for d in base.differences(other)] == ["config.kernel.length_px"]
    assert Manifest.from_dict(json.loads(json.dumps(base.to_dict()))) == base


def test_read_pairs_names_the_file_and_problem_for_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "good.h5"
    make(good, n=8)
    truncated = tmp_path / "cut.h5"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["x"] = np.zeros(3)
    for path, problem in [(truncated, "truncated"), (foreign, "not a blurgen pairs file")]:
        with pytest.raises(PairsFileError) as info:
            read_pairs(path)
        assert str(path) in str(info.value) and problem in str(info.value)
        assert "\n" not in str(info.value)


# ------------------------------------------------------------ parts of another run (item: mixing)
class _Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs."""


def _killed_run(out, seed=0, n=40, fail_at=21):
    with pytest.raises(DatasetError, match="fake failure"):
        make(out, n=n, block_size=4, seed=seed, maker=FakeMaker(fail_at=fail_at))


def test_blocks_without_a_manifest_are_refused_not_adopted(tmp_path):
    out = tmp_path / "pairs.h5"
    _killed_run(out, seed=0)
    os.unlink(os.path.join(parts_dir_for(str(out)), "manifest.json"))
    with pytest.raises(DatasetError, match="no manifest.json.*--overwrite") as info:
        make(out, n=40, block_size=4, seed=1, resume=True)
    assert "\n" not in str(info.value)
    make(tmp_path / "ref.h5", n=40, block_size=4, seed=1)
    make(out, n=40, block_size=4, seed=1, overwrite=True)
    assert_same_arrays(tmp_path / "ref.h5", out)


def test_a_kill_while_overwrite_deletes_old_parts_cannot_mix_them_into_a_resume(tmp_path, monkeypatch):
    import blurgen.runs.folder as runfolder

    out = tmp_path / "pairs.h5"
    _killed_run(out, seed=0)

    def rmtree_killed_midway(path, *args, **kwargs):
        os.unlink(os.path.join(path, "manifest.json"))  # directory order may put it first
        raise _Killed

    monkeypatch.setattr(runfolder.shutil, "rmtree", rmtree_killed_midway)
    with pytest.raises(_Killed):
        make(out, n=40, block_size=4, seed=1, overwrite=True)
    monkeypatch.undo()
    assert not os.path.exists(parts_dir_for(str(out))), "old parts renamed aside before deletion"
    left = [p for p in os.listdir(tmp_path) if ".parts.done-" in p]
    assert left, "the killed deletion left its renamed folder"
    make(tmp_path / "ref.h5", n=40, block_size=4, seed=1)
    result = make(out, n=40, block_size=4, seed=1, resume=True)
    assert result.n_reused == 0
    assert_same_arrays(tmp_path / "ref.h5", out)
    assert not set(left) & set(os.listdir(tmp_path)), "leftover trash cleared"


def test_a_part_of_another_run_under_a_planned_name_is_made_again(tmp_path):
    out, other = tmp_path / "pairs.h5", tmp_path / "other.h5"
    _killed_run(out, seed=7)
    _killed_run(other, seed=8)
    theirs = done_parts(parts_dir_for(str(other)))[4]
    mine = done_parts(parts_dir_for(str(out)))[4]
    os.replace(theirs, mine)  # same name and sample range, other seed
    make(tmp_path / "ref.h5", n=40, block_size=4, seed=7)
    result = make(out, n=40, block_size=4, seed=7, resume=True)
    assert result.n_reused == 16
    assert_same_arrays(tmp_path / "ref.h5", out)


# ------------------------------------------------------------------ damaged HDF5 metadata
def _damaged_copies(good, tmp_path, offsets):
    """Copies of ``good`` with 256 random bytes written at each offset (seeded)."""
    rng = np.random.default_rng(0)
    data = good.read_bytes()
    for offset in offsets:
        if offset >= len(data):
            continue
        damaged = bytearray(data)
        damaged[offset:offset + 256] = rng.integers(0, 256, 256, dtype=np.uint8).tobytes()
        path = tmp_path / f"damaged{offset}.h5"
        path.write_bytes(bytes(damaged[:len(data)]))
        yield path


def _read_everything(path):
    with read_pairs(path) as f:
        for i in range(len(f)):
            f[i]
        f.params, f.attrs, f.complete


def test_damaged_metadata_gives_one_line_pairs_file_errors_naming_the_file(tmp_path):
    good = tmp_path / "good.h5"
    make(good, n=8, block_size=4)
    failures = 0
    for path in _damaged_copies(good, tmp_path, range(0, 12288, 256)):
        for action in (_read_everything,
                       lambda p: merge_files([str(p)], str(tmp_path / "m.tmp"), str(tmp_path / "m.h5"), "m")):
            try:
                action(path)
            except PairsFileError as exc:  # anything else (RuntimeError, AttributeError) fails
                failures += 1
                assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
    assert failures > 10, "the damage must hit metadata that matters"


# ------------------------------------------------------------------------------- full disk
def _space_runs_out_after(calls: int):
    """A stand-in for ``free_bytes``: plenty of space for ``calls - 1`` calls, then none."""
    seen = [0]

    def free(path):
        seen[0] += 1
        return 10**12 if seen[0] < calls else 0
    return free


def _reservation_fails_after(calls: int, real):
    """A stand-in for ``posix_fallocate`` that, from call ``calls`` on, fails with ENOSPC (the
    space check passed, another process took the space)."""
    seen = [0]

    def fallocate(fd, offset, length):
        seen[0] += 1
        if seen[0] >= calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, offset, length)
    return fallocate


def _assert_disk_full_message(message: str, out) -> None:
    assert message.startswith("disk full while writing ") and "\n" not in message, message
    assert "MB more" in message and "--resume" in message
    parts = parts_dir_for(str(out))
    leftovers = [n for n in os.listdir(parts) if n.startswith(".tmp-") or n.endswith(".tmp")]
    assert not leftovers, "partial part files and the partial assembly are removed"


@pytest.mark.parametrize("where", ["space check", "reservation"])
def test_a_full_disk_while_writing_a_part_stops_with_one_line_then_resumes(tmp_path, monkeypatch, where):
    import blurgen.core.common as common

    make(tmp_path / "ref.h5", n=40, block_size=4)
    out = tmp_path / "pairs.h5"
    if where == "space check":  # the 4th free-space check fails (parts and the assembly's reservation)
        monkeypatch.setattr(common, "free_bytes", _space_runs_out_after(4))
    else:  # calls: the same four writers
        monkeypatch.setattr(common.os, "posix_fallocate", _reservation_fails_after(4, os.posix_fallocate))
    with pytest.raises(DatasetError) as info:
        make(out, n=40, block_size=4)
    monkeypatch.undo()
    _assert_disk_full_message(str(info.value), out)
    kept = 4 * len(done_parts(parts_dir_for(str(out))))
    assert kept >= 8  # the assembly's reservation may come before or after the second part's commit
    result = make(out, n=40, block_size=4, resume=True)
    assert result.n_reused == kept
    assert_same_arrays(tmp_path / "ref.h5", out)


def test_a_full_disk_while_assembling_stops_before_hdf5_writes(tmp_path, monkeypatch):
    """The file being assembled reserves its whole size before HDF5 writes into it: a disk that
    cannot hold it stops the run there, with one line, and the parts resume."""
    import blurgen.store.assembly as assembly

    make(tmp_path / "ref.h5", n=40, block_size=4)
    out = tmp_path / "pairs.h5"

    def no_room(path, nbytes):
        raise DiskFullError(path)
    monkeypatch.setattr(assembly, "reserve", no_room)
    with pytest.raises(DatasetError) as info:
        make(out, n=40, block_size=4)
    monkeypatch.undo()
    _assert_disk_full_message(str(info.value), out)
    assert "assembly" in str(info.value)
    make(out, n=40, block_size=4, resume=True)
    assert_same_arrays(tmp_path / "ref.h5", out)


def test_two_writers_of_one_run_cannot_both_take_the_same_free_space(tmp_path, monkeypatch):
    """Workers (and the assembler) check free space for their own write only. Two checking at
    once both passed and then together filled the disk inside HDF5 (seen on a 120 MB tmpfs with
    2 workers: dozens of HDF5 tracebacks, a worker crashing on close). The check and the write are
    serialised, so the second writer sees the first one's file."""
    import threading

    import blurgen.core.common as common
    import blurgen.store.parts as parts

    folder = tmp_path / "p.parts"
    folder.mkdir()
    n = 8
    rng = np.random.default_rng(0)
    block = {"blurred": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
             "sharp": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
             "kernel": np.zeros((n, 15, 15), np.float32), "params": {"seed_index": np.arange(n)}}
    need = parts._block_bytes(block) + parts.PART_SPACE_MARGIN_BYTES  # what a writer checks for
    capacity = need + 1000  # room for one part's check, not for a second beside a written part
    both_checked = threading.Barrier(2, timeout=1.0)

    def free(path):  # a disk of `capacity` bytes holding the folder's files
        used = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait()  # let the other writer check too, if it can
        return capacity - used
    monkeypatch.setattr(common, "free_bytes", free)
    outcomes = []

    def write(start):
        try:
            outcomes.append(parts.write_part_tmp(str(folder), block, start, compression_for("none"), {}))
        except DiskFullError as exc:
            outcomes.append(exc)
    threads = [threading.Thread(target=write, args=(start,)) for start in (0, n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    written = [o for o in outcomes if isinstance(o, tuple)]
    assert len(outcomes) == 2 and len(written) == 1, outcomes
    assert sum(os.path.getsize(tmp) for tmp, _ in written) <= capacity


def test_a_full_disk_inside_an_assembly_copy_on_resume_keeps_the_parts(tmp_path, monkeypatch):
    """ENOSPC reported by HDF5 while copying a kept part is the disk's fault, not the part's:
    the part must not be deleted as damaged (that threw away finished work)."""
    import blurgen.store.assembly as assembly

    make(tmp_path / "ref.h5", n=40, block_size=4)
    out = tmp_path / "pairs.h5"
    with pytest.raises(KeyboardInterrupt):
        make(out, n=40, block_size=4, maker=FakeMaker(fail_at=21, fail_with=KeyboardInterrupt))
    parts_dir = parts_dir_for(str(out))
    kept = sorted(done_parts(parts_dir))
    assert kept

    def copy_fails(src, dst, offset):
        raise OSError("Can't write data (file write failed: errno = 28, error message = "
                      "'No space left on device')")
    monkeypatch.setattr(assembly, "copy_samples", copy_fails)
    with pytest.raises(DatasetError, match="^disk full while writing"):
        make(out, n=40, block_size=4, resume=True)
    monkeypatch.undo()
    assert sorted(done_parts(parts_dir)) == kept
    result = make(out, n=40, block_size=4, resume=True)
    assert result.n_reused == 4 * len(kept)
    assert_same_arrays(tmp_path / "ref.h5", out)


# ---------------------------------------------------------------------------- reader details
def test_reader_indexing_rejects_bools_and_reports_the_given_index(tmp_path):
    out = tmp_path / "pairs.h5"
    make(out, n=6, block_size=4)
    with read_pairs(out) as f:
        np.testing.assert_array_equal(f[np.int8(-1)][0], f[5][0])  # no int8 overflow
        np.testing.assert_array_equal(f[np.uint64(2)][2], f[2][2])
        for bad in (True, np.bool_(False), 1.0, "1"):
            with pytest.raises(TypeError):
                f[bad]
        for bad, shown in ((-7, "-7"), (6, "6"), (np.int64(-100), "-100")):
            with pytest.raises(IndexError, match=f"index {shown} out of range"):
                f[bad]


def test_reader_params_cannot_be_changed_through_the_cache(tmp_path):
    out = tmp_path / "pairs.h5"
    make(out, n=6, block_size=4)
    with read_pairs(out) as f:
        first = f.params
        with pytest.raises(ValueError):
            first["noise_a"][0] = 123.0
        first["noise_a"] = np.zeros(6)
        assert f.params["noise_a"][0] != 0
        assert f.params["seed_index"].tolist() == list(range(6))


def test_read_pairs_on_a_folder_is_one_line(tmp_path):
    with pytest.raises(PairsFileError) as info:
        read_pairs(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_a_kill_after_the_final_rename_leaves_a_finished_run(tmp_path, monkeypatch):
    from blurgen.inspect.report import describe_parts

    def killed(run):
        raise _Killed

    out = tmp_path / "pairs.h5"
    monkeypatch.setattr(RunFolder, "rename_aside", killed)  # the rename before the clean-up
    with pytest.raises(_Killed):
        make(out, n=40, block_size=4)
    monkeypatch.undo()
    parts_dir = parts_dir_for(str(out))
    assert out.exists() and os.path.isdir(parts_dir)
    lines, n_written, n_planned = describe_parts(parts_dir)
    assert "left over by the finished run" in lines[0] and "interrupted" not in " ".join(lines)
    assert n_written == n_planned == 40
    again = make(out, n=40, block_size=4, resume=True)
    assert again.already_complete and again.n_made == 0
    assert not os.path.exists(parts_dir)


# ------------------------------------------------------------------------ folder sources pinned
def test_resume_refuses_a_folder_source_whose_files_changed(tmp_path):
    import cv2

    from blurgen.core.config import KernelConfig
    from blurgen.pairs.pipeline import PairsConfig, PipelineMaker

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(photos / f"img{i}.png"), rng.integers(0, 256, (60, 60, 3), dtype=np.uint8))
    config = PairsConfig(width=32, height=32, source=str(photos),
                         kernel=KernelConfig(size=15, length_px=10.0))

    def run(out, **kwargs):
        return make_dataset(str(out), config, 12, seed=3, workers=1, block_size=4,
                            maker=PipelineMaker(), durable=False, **kwargs)

    run(tmp_path / "ref.h5")
    out = tmp_path / "pairs.h5"

    def stop_after_first_block(done, total):
        if done:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(out, progress=stop_after_first_block)
    extra = photos / "img3.png"
    cv2.imwrite(str(extra), rng.integers(0, 256, (60, 60, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match="source_files_digest"):
        run(out, resume=True)
    extra.unlink()
    result = run(out, resume=True)
    assert 4 <= result.n_reused < 12 and result.n_made == 12 - result.n_reused
    assert_same_arrays(tmp_path / "ref.h5", out)


def test_a_pipeline_maker_can_serve_runs_on_different_folders(tmp_path):
    import cv2

    from blurgen.core.config import KernelConfig
    from blurgen.pairs.pipeline import PairsConfig, PipelineMaker

    maker = PipelineMaker()
    for k, name in enumerate(("a", "b")):
        folder = tmp_path / name
        folder.mkdir()
        cv2.imwrite(str(folder / "img.png"), np.full((60 + k, 60, 3), 60 * k, np.uint8))
        config = PairsConfig(width=32, height=32, source=str(folder),
                             kernel=KernelConfig(size=15, length_px=10.0))
        make_dataset(str(tmp_path / f"{name}.h5"), config, 2, workers=1, maker=maker, durable=False)
    # A worker's copy checks the parent's files: the same folder passes, changed files do not.
    worker = pickle.loads(pickle.dumps(maker))
    worker.prepare(config)
    (folder / "img2.png").write_bytes((folder / "img.png").read_bytes())
    with pytest.raises(DatasetError, match="changed"):
        pickle.loads(pickle.dumps(maker)).prepare(config)


def test_the_finished_runs_parts_are_deleted_in_the_background(tmp_path):
    import time

    out = tmp_path / "pairs.h5"
    make(out, n=12, block_size=4)
    assert not os.path.exists(parts_dir_for(str(out)))
    deadline = time.monotonic() + 20
    while [p for p in os.listdir(tmp_path) if ".parts.done-" in p]:
        assert time.monotonic() < deadline, "the renamed parts folder is never deleted"
        time.sleep(0.05)
    assert os.listdir(tmp_path) == ["pairs.h5"]


def test_only_this_outputs_trash_folders_are_cleared_not_lookalikes(tmp_path):
    """A run clears the renamed parts folders ``<out>.parts.done-<pid>-<8 hex>`` that a kill left
    behind, and nothing else: a prefix match deleted a user's ``pairs.h5.parts.done-backup``."""
    out = tmp_path / "pairs.h5"
    leftover = tmp_path / "pairs.h5.parts.done-123-0badcafe"
    leftover.mkdir()
    (leftover / "block-0000000000-4.h5").write_bytes(b"x")
    lookalikes = [tmp_path / "pairs.h5.parts.done-backup",
                  tmp_path / "pairs.h5.parts.done-x.h5.parts",  # parts of output pairs.h5.parts.done-x.h5
                  tmp_path / "pairs.h5.parts.done-1-0badcafe-mine"]
    for folder in lookalikes:
        folder.mkdir()
        (folder / "keep.txt").write_text("mine")
    make(out, n=4, block_size=4)
    assert not leftover.exists()
    for folder in lookalikes:
        assert (folder / "keep.txt").read_text() == "mine", folder


def test_the_space_check_before_work_counts_a_killed_assembly_as_free_and_leaves_no_fresh_run(tmp_path, monkeypatch):
    """A resume truncates the killed run's assembly file, so its bytes count as free; a fresh run
    refused for space leaves no parts folder that only --resume could continue."""
    import blurgen.runs.dataset as dataset
    import blurgen.runs.folder as runfolder
    import blurgen.runs.space as runspace

    out = tmp_path / "pairs.h5"
    with pytest.raises(KeyboardInterrupt):
        make(out, n=40, block_size=4, maker=FakeMaker(fail_at=21, fail_with=KeyboardInterrupt))
    parts_dir = parts_dir_for(str(out))
    part_bytes = sum(os.path.getsize(p) for p in done_parts(parts_dir).values())
    assembly = os.path.join(parts_dir, runfolder.ASSEMBLY_NAME)
    with open(assembly, "wb") as handle:  # a big leftover, as a run killed late leaves
        handle.truncate(50 * part_bytes)
    per_sample = part_bytes // 20
    raw = RunFolder(str(out)).manifest.raw_bytes_per_sample()
    # the blocks still to make, the reservation and margin of the part being written, and what
    # the assembled file reserves
    need = per_sample * 20 + 4 * raw + PART_METADATA_BOUND + PART_SPACE_MARGIN_BYTES + reserved_bytes(40, raw)
    free = {"disk": need + per_sample * 5}  # enough once the leftover is gone, not before

    def free_bytes(path):  # the leftover takes its space while it exists
        return free["disk"] - (os.path.getsize(assembly) if os.path.exists(assembly) else 0)

    monkeypatch.setattr(runspace, "free_bytes", free_bytes)
    assert make(out, n=40, block_size=4, resume=True).n_made == 20
    free["disk"] = 10**6
    with pytest.raises(dataset.NotEnoughSpace, match="not enough disk space for 40 pairs"):
        make(tmp_path / "other.h5", n=40, block_size=4)
    assert not os.path.exists(parts_dir_for(str(tmp_path / "other.h5")))


@pytest.mark.parametrize("edit", [{"block_size": 0}, {"block_size": -1}, {"sample_stop": 99},
                                  {"config": "x"}, {"seed": 1.5}, {"shard_index": 3}])
def test_an_edited_manifest_with_impossible_settings_is_one_line(tmp_path, edit):
    from blurgen.inspect.report import describe_parts
    from blurgen.store.parts import PartsError

    out = tmp_path / "pairs.h5"
    with pytest.raises(DatasetError, match="fake failure"):
        make(out, n=40, block_size=4, maker=FakeMaker(fail_at=30))
    path = os.path.join(parts_dir_for(str(out)), "manifest.json")
    with open(path) as handle:
        data = json.load(handle)
    data.update(edit)
    with open(path, "w") as handle:
        json.dump(data, handle)
    with pytest.raises(PartsError, match="manifest"):
        describe_parts(parts_dir_for(str(out)))
    with pytest.raises(DatasetError, match="manifest"):
        make(out, n=40, block_size=4, resume=True)


@pytest.mark.parametrize("start_free", [1.5, 3.0, 6.0])
def test_freeing_the_space_a_disk_full_message_asks_for_lets_the_run_finish(tmp_path, monkeypatch, start_free):
    """'need ~N MB more' counted the parts and the final file's compressed size, while the run
    needs, at its peak, the assembled file's whole reservation (raw arrays plus HDF5's metadata
    allowance) and each part's free-space margin as well: on a 12 MB tmpfs a 1 MB dataset said
    'need ~1 MB more' four times in a row while the user freed 1 MB each time."""
    import re

    import blurgen.core.common as common
    import blurgen.runs.space as runspace

    make(tmp_path / "ref.h5", n=40, block_size=4)
    final = os.path.getsize(tmp_path / "ref.h5")
    disk = tmp_path / "disk"
    disk.mkdir()
    capacity = [int(start_free * final)]

    def free_bytes(path):  # a disk of `capacity` bytes holding the files under `disk`
        used = sum(os.path.getsize(os.path.join(folder, name))
                   for folder, _, names in os.walk(disk) for name in names)
        return max(0, capacity[0] - used)
    monkeypatch.setattr(common, "free_bytes", free_bytes)
    monkeypatch.setattr(runspace, "free_bytes", free_bytes)
    out = disk / "pairs.h5"
    with pytest.raises(DatasetError) as info:
        make(out, n=40, block_size=4)
    asked = re.search(r"need ~(\d+) MB more", str(info.value))
    assert asked, info.value
    capacity[0] += int(asked.group(1)) * 10**6
    make(out, n=40, block_size=4, resume=os.path.isdir(parts_dir_for(str(out))))
    assert_same_arrays(tmp_path / "ref.h5", out)
