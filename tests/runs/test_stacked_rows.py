"""``StackedRows``: the one ``.npy`` of a per-sample array (folders and LMDB ``kernel.npy``),
written row by row from each sample's ``.npy`` member, in any order, any row any number of times."""

from __future__ import annotations

import io

import numpy as np
import pytest

from blurgen.runs.outputs import StackedRows
from blurgen.runs.samples import npy_bytes
from blurgen.store.parts import PartsError


def saved(array: np.ndarray) -> bytes:
    handle = io.BytesIO()
    np.save(handle, array)
    return handle.getvalue()


def test_rows_in_any_order_and_twice_give_np_load_the_stacked_array(tmp_path):
    arrays = np.random.default_rng(0).random((6, 5, 5), dtype=np.float32)
    rows = StackedRows(str(tmp_path / "kernel.npy"), rows=6, first=40)
    for index in (43, 40, 45, 41, 42, 44, 43):
        rows.put(index, npy_bytes(arrays[index - 40]))
    rows.close()
    assert rows.written == 6  # row 43 written twice counts once
    assert np.array_equal(np.load(tmp_path / "kernel.npy"), arrays)
    assert np.array_equal(np.load(tmp_path / "kernel.npy", mmap_mode="r")[2], arrays[2])


def test_a_member_with_another_header_is_parsed_not_cut(tmp_path):
    """A Fortran-ordered member (another header, same dtype and shape) is stored in C order."""
    arrays = np.random.default_rng(1).random((2, 3, 4), dtype=np.float32)
    rows = StackedRows(str(tmp_path / "k.npy"), rows=2, first=0)
    rows.put(0, npy_bytes(arrays[0]))
    rows.put(1, saved(np.asfortranarray(arrays[1])))
    rows.close()
    assert np.array_equal(np.load(tmp_path / "k.npy"), arrays)


@pytest.mark.parametrize("bad", ["shape", "dtype", "cut", "outside"])
def test_a_row_that_does_not_fit_is_a_parts_error(tmp_path, bad):
    rows = StackedRows(str(tmp_path / "k.npy"), rows=3, first=0)
    rows.put(0, npy_bytes(np.zeros((3, 3), np.float32)))
    data = {"shape": npy_bytes(np.zeros((4, 3), np.float32)), "dtype": npy_bytes(np.zeros((3, 3), np.float64)),
            "cut": npy_bytes(np.zeros((3, 3), np.float32))[:-4], "outside": npy_bytes(np.zeros((3, 3), np.float32))}
    with pytest.raises(PartsError):
        rows.put(3 if bad == "outside" else 1, data[bad])
    rows.close()
    assert rows.written == 1
