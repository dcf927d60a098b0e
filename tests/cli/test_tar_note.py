"""A WebDataset tar is one worker's unit of work: a local run that cuts fewer tars than it has
workers says so on stderr (the others would wait), and says nothing otherwise."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from blurgen.cli import main

TINY = ["--n", "4", "--size", "32", "--kernel-size", "15", "--length-px", "10", "--seed", "7"]


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    out = tmp_path_factory.mktemp("src") / "pairs.h5"
    result = cli("make", *TINY, "--workers", "1", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_export_to_fewer_tars_than_workers_says_how_many_are_busy(tmp_path, pairs):
    result = cli("export", pairs, "--out", tmp_path / "t.tar", "--workers", "3")
    assert result.exit_code == 0, result.output
    assert "note: 4 pairs to make fill 1 tar of up to" in result.stderr
    assert "1 of 3 workers will be busy" in result.stderr and "--tar-mb" in result.stderr


def test_make_to_fewer_tars_than_workers_says_so(tmp_path):
    # 0.02 MB: 2 samples of 32x32 a tar (8,068 bytes each, raw), so 4 pairs fill 2 tars, for 3 workers
    result = cli("make", *TINY, "--workers", "3", "--tar-mb", "0.02", "--out", tmp_path / "m.tar")
    assert result.exit_code == 0, result.output
    assert "note: 4 pairs to make fill 2 tars of up to 2 (--tar-mb 0.02)" in result.stderr
    assert "2 of 3 workers will be busy" in result.stderr


@pytest.mark.parametrize("extra", [["--workers", "1"], ["--workers", "2", "--tar-mb", "0.005"]])
def test_no_note_when_every_worker_gets_a_tar(tmp_path, pairs, extra):
    result = cli("export", pairs, "--out", tmp_path / "t.tar", *extra)
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stderr


def test_no_note_for_the_other_formats(tmp_path, pairs):
    result = cli("export", pairs, "--format", "folders", "--out", tmp_path / "f", "--workers", "3")
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stderr


def test_no_note_before_an_error_or_when_nothing_is_left_to_make(tmp_path, pairs):
    first = cli("export", pairs, "--out", tmp_path / "t.tar", "--workers", "3")
    assert first.exit_code == 0 and "note:" in first.stderr
    again = cli("export", pairs, "--out", tmp_path / "t.tar", "--workers", "3")  # exists, no --overwrite
    assert again.exit_code == 1 and "note:" not in again.stderr, again.output
    resumed = cli("export", pairs, "--out", tmp_path / "t.tar", "--workers", "3", "--resume")
    assert resumed.exit_code == 0 and "already complete" in resumed.output and "note:" not in resumed.stderr
