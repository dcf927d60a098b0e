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

from blurgen.runs import export
from blurgen.runs.dataset import make_dataset
from blurgen.runs.export import FileBlockMaker, StoredRows, export_file
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
        ranges = StoredRows(dataset).ranges(3, 8)
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
        ranges = StoredRows(h5["images"]).ranges(2, 6)
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
        assert h5["blurred"].is_virtual and StoredRows(h5["blurred"]).ranges(0, 10) == []
    with h5py.File(tmp_path / "empty.h5", "w") as h5:
        empty = h5.create_dataset("images", shape=(4, 2, 2, 3), chunks=(1, 2, 2, 3), dtype=np.uint8)
        assert StoredRows(empty).ranges(0, 4) == []
    assert_same_export(merged, tmp_path / "from-merge")


def assert_same_export(src: str, folder) -> None:
    folder.mkdir(exist_ok=True)
    out = str(folder / "shards")
    export_file(src, out, WebDatasetSink(0, samples_per_shard=4), workers=1, durable=False)
    assert_same_as_hdf5(src, READERS["webdataset"](out))


def _chunk_ranges(path: str, rows: range) -> set[tuple[int, int]]:
    """The oracle: h5py's own lookup of each row's chunk, one at a time."""
    with h5py.File(path, "r") as h5:
        return {(info.byte_offset, info.size) for name in ("blurred", "sharp") for row in rows
                for info in [h5[name].id.get_chunk_info_by_coord((row, 0, 0, 0))]}


def _asked_bytes(asked: list[tuple[int, int]]) -> set[int]:
    return {byte for offset, size in asked for byte in range(offset, offset + size)}


@pytest.fixture
def advice(monkeypatch):
    asked: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, size, how: asked.append((offset, size)),
                        raising=False)
    return asked


def test_each_read_asks_for_the_next_two_reads_images_once_in_small_pieces(pairs, advice, monkeypatch):
    monkeypatch.setattr(export, "ADVICE_BYTES", 1000)  # the fake images' chunks are ~1.2 kB
    maker = FileBlockMaker(pairs)
    try:
        maker(None, 0, 0, 3)
        assert _asked_bytes(advice) == _asked_bytes(_chunk_ranges(pairs, range(3, 9)))
        assert max(size for _, size in advice) <= 1000
        advice.clear()
        maker(None, 0, 3, 3)  # rows 6..8 were asked for already: only 9..11
        assert _asked_bytes(advice) == _asked_bytes(_chunk_ranges(pairs, range(9, 12)))
        advice.clear()
        maker(None, 0, 9, 3)  # the last samples: nothing after them
        assert advice == []
    finally:
        maker.close()


def test_the_chunk_index_is_read_once_per_file_and_no_descriptor_stays_open(pairs, advice, monkeypatch):
    built = []
    monkeypatch.setattr(export, "StoredRows", lambda dataset: built.append(dataset.name) or StoredRows(dataset))
    monkeypatch.setattr(export, "_STORED", {})

    def open_on_the_file() -> int:
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(pairs)
                   for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}"))

    before = open_on_the_file()
    for start in (0, 6):  # two makers, as two Dask tasks in one worker process (which never close them)
        maker = FileBlockMaker(pairs)
        maker(None, 0, start, 3)
        assert open_on_the_file() == before + 1  # h5py's own
        maker.close()
    assert built == ["/blurred", "/sharp"]
    assert open_on_the_file() == before


def test_the_chunk_indexes_of_a_few_files_are_kept_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_STORED", {})
    paths = [str(tmp_path / f"p{i}.h5") for i in range(3)]
    for path in paths:
        make_dataset(path, FakeConfig(), 6, seed=5, workers=1, block_size=3, maker=FakeMaker(), durable=False)
    built = []
    monkeypatch.setattr(export, "StoredRows", lambda dataset: built.append(dataset.file.filename) or
                        StoredRows(dataset))
    for path in paths + paths:  # two exports' tasks alternating in one process
        with h5py.File(path, "r") as h5:
            export.stored_rows(path, h5)
    assert built == [path for path in paths for _ in range(2)]
    os.utime(paths[0], ns=(1, 1))  # a file replaced in place: its index is read again
    with h5py.File(paths[0], "r") as h5:
        export.stored_rows(paths[0], h5)
    assert len(built) == 8


def test_rows_chunked_several_to_a_chunk_map_to_their_chunks(tmp_path):
    path = str(tmp_path / "four.h5")
    array = np.random.default_rng(1).integers(0, 256, (10, 3, 2, 3), dtype=np.uint8)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images", data=array, chunks=(4, 3, 2, 3))
    with h5py.File(path, "r") as h5:
        ranges = StoredRows(h5["images"]).ranges(5, 9)  # rows 4..7 and 8..9: two chunks
    first, last = _file_bytes(path, ranges)
    assert first == array[4:8].tobytes()
    assert last[:array[8:10].nbytes] == array[8:10].tobytes()  # an edge chunk is stored whole


@pytest.mark.parametrize("error", [OSError, OverflowError])
def test_an_export_whose_read_ahead_fails_or_is_missing_writes_the_same_arrays(pairs, tmp_path, monkeypatch, error):
    def fail(*args):
        raise error("no")

    monkeypatch.setattr(os, "posix_fadvise", fail, raising=False)
    assert_same_export(pairs, tmp_path / "failing")
    monkeypatch.delattr(os, "posix_fadvise")
    assert_same_export(pairs, tmp_path / "missing")
