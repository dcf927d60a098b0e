"""Export's read-ahead: the byte ranges it asks the kernel to read are where the next samples'
images are stored, it asks for them while the current ones are encoded, and an export works the
same where it cannot ask (a virtual merge, a system without posix_fadvise)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from fake_pairs import FakeConfig, FakeMaker
from format_clients import READERS, assert_same_as_hdf5

from blurgen.runs.dataset import make_dataset
from blurgen.runs.export import FileBlockMaker, coalesced, export_file, stored_ranges
from blurgen.runs.format_sinks import WebDatasetSink


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("prefetch") / "pairs.h5")
    make_dataset(path, FakeConfig(), 12, seed=5, workers=1, block_size=5, maker=FakeMaker(), durable=False)
    return path


def _file_bytes(path: str, ranges: list[tuple[int, int]]) -> list[bytes]:
    with open(path, "rb") as handle:
        out = []
        for offset, size in ranges:
            handle.seek(offset)
            out.append(handle.read(size))
        return out


@pytest.mark.parametrize("name", ["blurred", "sharp"])
def test_the_ranges_of_a_pairs_files_rows_hold_those_rows_bytes(pairs, name):
    """Oracle: the file's bytes at each range are the stored row (a checksum filter may follow it)."""
    with h5py.File(pairs, "r") as h5:
        dataset = h5[name]
        ranges = stored_ranges(dataset, 3, 8)
        assert len(ranges) == 5  # one chunk a row
        for row, data in zip(range(3, 8), _file_bytes(pairs, ranges)):
            expected = dataset[row].tobytes()
            assert data[:len(expected)] == expected


def test_the_range_of_rows_of_a_contiguous_dataset_is_their_slice(tmp_path):
    path = str(tmp_path / "contiguous.h5")
    array = np.random.default_rng(0).integers(0, 256, (9, 4, 5, 3), dtype=np.uint8)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=array)
    with h5py.File(path, "r") as h5:
        assert h5["images"].chunks is None
        ranges = stored_ranges(h5["images"], 2, 6)
    assert _file_bytes(path, ranges) == [array[2:6].tobytes()]


def test_a_virtual_dataset_and_unwritten_chunks_give_no_range(tmp_path):
    from blurgen.store.merge import merge_files

    for i in range(2):
        make_dataset(str(tmp_path / f"s{i}.h5"), FakeConfig(), 10, seed=1, workers=1, block_size=5,
                     maker=FakeMaker(), durable=False, shard=(i, 2))
    merged = str(tmp_path / "m.h5")
    merge_files([str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5")], str(tmp_path / "tmp.h5"), merged, "test",
                virtual=True)
    with h5py.File(merged, "r") as h5:
        assert h5["blurred"].is_virtual and stored_ranges(h5["blurred"], 0, 10) == []
    with h5py.File(tmp_path / "empty.h5", "w") as h5:
        empty = h5.create_dataset("images", shape=(4, 2, 2, 3), chunks=(1, 2, 2, 3), dtype=np.uint8)
        assert stored_ranges(empty, 0, 4) == []
    assert_same_export(merged, tmp_path / "from-merge")


def assert_same_export(src: str, folder) -> None:
    out = str(folder / "shards")
    export_file(src, out, WebDatasetSink(0, samples_per_shard=4), workers=1, durable=False)
    assert_same_as_hdf5(src, READERS["webdataset"](out))


def test_each_read_asks_for_the_next_two_reads_images(pairs, monkeypatch):
    asked: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, size, advice: asked.append((offset, size)),
                        raising=False)
    maker = FileBlockMaker(pairs)
    try:
        maker(None, 0, 0, 3)
        with h5py.File(pairs, "r") as h5:
            expected = coalesced(stored_ranges(h5["blurred"], 3, 9) + stored_ranges(h5["sharp"], 3, 9))
        assert asked == expected
        asked.clear()
        maker(None, 0, 9, 3)  # the last samples: nothing after them
        assert asked == []
    finally:
        maker.close()
    assert maker._fd is None and maker._file is None


def test_an_export_without_posix_fadvise_writes_the_same_arrays(pairs, tmp_path, monkeypatch):
    monkeypatch.delattr(os, "posix_fadvise", raising=False)
    assert_same_export(pairs, tmp_path)
