"""--out spelled with a trailing slash, or as '.', '..' or the root: `make`, `export` and `merge`
treat ``DIR/`` as ``DIR`` (it used to fail after all the work, leaving ``DIR/.parts``), and an
--out that names no output of its own is a usage error before any work or folder."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from pairs_compare import assert_same_arrays

from blurgen.cli import main

TINY = ["--n", "4", "--size", "32", "--workers", "1", "--kernel-size", "15", "--length-px", "10", "--seed", "7"]


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def listing(folder) -> list[str]:
    """The names in ``folder``, less the parts folders a finished run renamed aside and is
    deleting in the background (``OUT.parts.done-...``)."""
    return sorted(name for name in os.listdir(folder) if ".parts.done-" not in name)


def tree(root) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), blurgen.json left out (it holds the command line)."""
    files = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if ".parts.done-" not in name]
        for name in names:
            path = os.path.join(folder, name)
            if name != "blurgen.json":
                files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    out = tmp_path_factory.mktemp("src") / "pairs.h5"
    result = cli("make", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_make_hdf5_with_a_trailing_slash_is_the_same_file(tmp_path, pairs):
    result = cli("make", *TINY, "--out", f"{tmp_path}/s12/")
    assert result.exit_code == 0, result.output
    assert os.path.isfile(tmp_path / "s12") and listing(tmp_path) == ["s12"]  # no s12.parts, no s12/
    assert_same_arrays(tmp_path / "s12", pairs)


def test_make_folders_with_a_trailing_slash_is_the_same_output(tmp_path):
    slash = cli("make", *TINY, "--format", "folders", "--out", f"{tmp_path}/s11/")
    plain = cli("make", *TINY, "--format", "folders", "--out", tmp_path / "plain")
    assert slash.exit_code == 0 and plain.exit_code == 0, slash.output + plain.output
    assert listing(tmp_path) == ["plain", "s11"]
    assert ".parts" not in listing(tmp_path / "s11")
    got, want = tree(tmp_path / "s11"), tree(tmp_path / "plain")
    assert len(want) > 8 and got == want


def test_make_a_tar_prefix_with_a_trailing_slash_is_webdataset(tmp_path):
    result = cli("make", *TINY, "--out", f"{tmp_path}/s13.tar/")
    assert result.exit_code == 0, result.output
    assert listing(tmp_path) == ["s13-000000.tar", "s13.json"]


@pytest.mark.parametrize("fmt,name", [("folders", "ef/"), ("lmdb", "el.lmdb/"), ("webdataset", "et.tar/")])
def test_export_with_a_trailing_slash_names_the_output_without_it(tmp_path, pairs, fmt, name):
    result = cli("export", pairs, "--format", fmt, "--out", f"{tmp_path}/{name}")
    assert result.exit_code == 0, result.output
    want = {"folders": ["ef"], "lmdb": ["el.lmdb"], "webdataset": ["et-000000.tar", "et.json"]}[fmt]
    assert listing(tmp_path) == want
    assert not os.path.exists(tmp_path / want[0] / ".parts") and not os.path.exists(tmp_path / (want[0] + ".parts"))


def test_merge_with_a_trailing_slash_writes_the_file_and_leaves_no_temporary(tmp_path, pairs):
    result = cli("merge", pairs, "--out", f"{tmp_path}/m.h5/", "--copy")
    assert result.exit_code == 0, result.output
    assert listing(tmp_path) == ["m.h5"]
    assert_same_arrays(tmp_path / "m.h5", pairs)


@pytest.mark.parametrize("out", [".", "./", "..", "sub/.", "sub/..//"])
@pytest.mark.parametrize("command", [["make", *TINY, "--format", "folders"], ["make", *TINY], ["export", "PAIRS"]])
def test_an_out_that_names_no_output_is_a_usage_error_before_any_work(tmp_path, monkeypatch, pairs, out, command):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    args = [str(pairs) if a == "PAIRS" else a for a in command]
    if command[0] == "export":
        args += ["--format", "folders"]
    result = cli(*args, "--out", out, "--overwrite")
    assert result.exit_code == 2, result.output
    last = os.path.basename(out.rstrip("/"))
    assert f"name the output itself (a file, folder or prefix), not {last!r}" in result.output
    assert "Traceback" not in result.output and "pairs/s" not in result.output
    assert listing(tmp_path) == ["work"] and listing(work) == ["sub"]
    assert listing(work / "sub") == []


@pytest.mark.parametrize("out", ["/", "//", ""])
def test_the_root_or_an_empty_out_is_a_usage_error(tmp_path, monkeypatch, pairs, out):
    monkeypatch.chdir(tmp_path)
    for args in (["make", *TINY, "--format", "folders"], ["export", pairs, "--format", "lmdb"]):
        result = cli(*args, "--out", out)
        assert result.exit_code == 2, result.output
        assert "name the output itself" in result.output
    assert listing(tmp_path) == []
