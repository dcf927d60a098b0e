"""One GoPro scanner for make, train and eval; the trainer's data modules stay free of numba."""

from __future__ import annotations

import subprocess
import sys

import pytest
from deblur_fixtures import make_gopro_tree

from blurgen.sources import gopro


def test_one_scanner_gives_make_and_the_trainer_the_same_frames(tmp_path):
    from blurgen.deblur.data import scan_gopro
    from blurgen.sources.base import GoProSource

    root = make_gopro_tree(tmp_path)
    pairs = scan_gopro(root, "train")
    source = GoProSource(str(root), "train")
    assert [str(sharp) for _, sharp in pairs] == source.paths
    assert all(blur.parent.name == "blur" and blur.name == sharp.name for blur, sharp in pairs)


def test_the_gopro_prefix_is_read_in_one_place():
    assert gopro.split_spec("gopro:/data/GOPRO_Large") == "/data/GOPRO_Large"
    assert gopro.split_spec("deadleaves") is None and gopro.split_spec("/photos") is None
    assert not gopro.split_spec("gopro:~/x").startswith("~")


def test_a_tree_whose_blur_frames_do_not_pair_up_is_refused(tmp_path):
    root = make_gopro_tree(tmp_path)
    sequence = next((root / "train").iterdir())
    next((sequence / "blur").iterdir()).unlink()
    gopro.scan(str(root), "train")  # sharp frames alone are fine
    with pytest.raises(gopro.GoProLayoutError, match="names must match"):
        gopro.scan(str(root), "train", "blur")


def test_the_trainers_data_and_eval_modules_do_not_import_numba():
    code = ("import sys, blurgen.deblur.data, blurgen.deblur.evaluate; "
            "print(sorted(m for m in ('numba', 'blurgen.sources.deadleaves', 'blurgen.sources.base') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
