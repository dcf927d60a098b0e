"""`blurgen merge` writes an HDF5 virtual dataset file by default: the arrays of the unsharded
run for read_pairs, inspect, export; shards referenced relative to the merged file; a missing
shard is a one-line error, never zeros; --copy still makes a standalone file."""

from __future__ import annotations

import os
import shutil
import time

import h5py
import pytest
from click.testing import CliRunner
from fake_pairs import FakeConfig, FakeMaker
from format_clients import READERS, assert_same_as_hdf5
from pairs_compare import assert_same_arrays

from blurgen.cli import main
from blurgen.runs.dataset import make_dataset
from blurgen.store.reader import read_pairs
from blurgen.store.schema import PairsFileError


def _make(out, n, shard=(0, 1)):
    make_dataset(str(out), FakeConfig(), n, seed=9, workers=1, block_size=8, maker=FakeMaker(), durable=False,
                 shard=shard)


@pytest.fixture
def shards(tmp_path):
    _make(tmp_path / "whole.h5", 30)
    (tmp_path / "shards").mkdir()
    for i in range(3):
        _make(tmp_path / "shards" / f"s{i}.h5", 30, (i, 3))
    return tmp_path


def test_a_virtual_merge_reads_as_the_unsharded_run_from_anywhere(shards, monkeypatch):
    merged = shards / "out" / "merged.h5"
    merged.parent.mkdir()
    result = CliRunner().invoke(main, ["merge", *map(str, sorted((shards / "shards").glob("*.h5"))), "--out", str(merged)])
    assert result.exit_code == 0 and "virtual" in result.output, result.output
    with h5py.File(merged, "r") as h5:
        assert h5["blurred"].is_virtual and h5["params/seed_index"].is_virtual
        assert all(not os.path.isabs(vs.file_name) for vs in h5["blurred"].virtual_sources())
    moved = shards / "elsewhere"
    shutil.copytree(shards / "out", moved / "out")
    shutil.copytree(shards / "shards", moved / "shards")
    monkeypatch.chdir("/")
    assert_same_arrays(shards / "whole.h5", moved / "out" / "merged.h5")
    with read_pairs(moved / "out" / "merged.h5") as f:
        assert len(f) == 30 and f.complete
    assert CliRunner().invoke(main, ["inspect", str(merged)]).exit_code == 0
    exported = shards / "png"
    done = CliRunner().invoke(main, ["export", str(merged), "--format", "folders", "--out", str(exported), "--workers", "1"])
    assert done.exit_code == 0, done.output
    assert_same_as_hdf5(str(shards / "whole.h5"), READERS["folders"](str(exported)))


def test_a_missing_shard_is_a_one_line_error_not_zeros(shards):
    merged = shards / "merged.h5"
    runner = CliRunner()
    assert runner.invoke(main, ["merge", *map(str, (shards / "shards").glob("*.h5")), "--out", str(merged)]).exit_code == 0
    os.rename(shards / "shards" / "s1.h5", shards / "gone.h5")
    with pytest.raises(PairsFileError, match="s1.h5 of this virtual merge is missing"):
        read_pairs(merged)
    for args in (["inspect", str(merged)], ["export", str(merged), "--format", "lmdb", "--out", str(shards / "l")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1 and "s1.h5" in result.output and "Traceback" not in result.output


def test_copy_makes_a_standalone_file(shards):
    merged = shards / "copy.h5"
    result = CliRunner().invoke(main, ["merge", *map(str, (shards / "shards").glob("*.h5")), "--out", str(merged), "--copy"])
    assert result.exit_code == 0, result.output
    shutil.rmtree(shards / "shards")
    with h5py.File(merged, "r") as h5:
        assert not h5["blurred"].is_virtual
    assert_same_arrays(shards / "whole.h5", merged)


def test_virtual_merge_time_does_not_grow_with_the_data(tmp_path):
    """Merging writes only metadata: 2 shards of 40x larger images take about as long."""
    from blurgen.store.merge import merge_files

    seconds = []
    for width in (16, 640):
        folder = tmp_path / str(width)
        folder.mkdir()
        for i in range(2):
            make_dataset(str(folder / f"s{i}.h5"), FakeConfig(width=width), 200, seed=1, workers=1, block_size=100,
                         maker=FakeMaker(), durable=False, shard=(i, 2))
        began = time.perf_counter()
        merge_files([str(folder / "s0.h5"), str(folder / "s1.h5")], str(folder / "tmp.h5"), str(folder / "m.h5"),
                    "test", virtual=True)
        seconds.append(time.perf_counter() - began)
        assert os.path.getsize(folder / "m.h5") < 200_000
    assert seconds[1] < max(0.5, 3 * seconds[0]), seconds
