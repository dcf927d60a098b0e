"""`blurgen make`, `inspect`, `merge` end to end: real pipeline, tiny images.

Arrays must not depend on the worker count or the shard split; bad input follows the documented
exit codes with one line and no traceback, and leaves nothing that looks complete.
"""

from __future__ import annotations

import os
import subprocess

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from pairs_compare import assert_same_arrays

from blurgen.cli import main
from blurgen.store.reader import read_pairs

# 32x32 images, small kernels: a few hundred pairs take well under a second of work.
SMALL = ["--size", "32", "--kernel-size", "15", "--length-px", "10"]


def blurgen(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed `blurgen` console script in a fresh process."""
    done = subprocess.run(["blurgen", *args], capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"blurgen {' '.join(args)} -> {done.returncode}: {done.stderr}")
    return done


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """120 pairs, one worker: the arrays every other way of making them must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    blurgen("make", "--n", "120", "--out", str(out), "--seed", "5", "--workers", "1", *SMALL)
    return out


def test_make_writes_a_complete_readable_file(reference):
    with read_pairs(reference) as f:
        assert len(f) == 120 and f.complete
        blurred, sharp, kernel = f[7]
        assert blurred.shape == sharp.shape == (32, 32, 3) and blurred.dtype == np.uint8
        assert kernel.shape == (15, 15) and abs(float(kernel.sum()) - 1) < 1e-4
        assert not np.array_equal(blurred, sharp)
        np.testing.assert_array_equal(f.params["seed_index"], np.arange(120))
        attrs = f.attrs
        assert attrs["seed"] == 5 and attrs["command"].startswith("blurgen make --n 120")
        assert attrs["config_dict"]["width"] == 32
    assert not os.path.exists(str(reference) + ".parts")


def test_two_workers_and_block_sizes_give_the_same_arrays(reference, tmp_path):
    out = tmp_path / "two.h5"
    blurgen("make", "--n", "120", "--out", str(out), "--seed", "5", "--workers", "2",
            "--block-size", "7", *SMALL)
    assert_same_arrays(reference, out)


def test_merged_shards_equal_one_run(reference, tmp_path):
    shards = [str(tmp_path / f"shard{i}.h5") for i in range(2)]
    for i, shard in enumerate(shards):
        blurgen("make", "--n", "120", "--out", shard, "--seed", "5", "--workers", "1",
                "--shard", f"{i}/2", *SMALL)
    report = blurgen("inspect", shards[1]).stdout
    assert "shard: 1/2, samples 60..120 of 120" in report
    merged = tmp_path / "merged.h5"
    blurgen("merge", *shards[::-1], "--out", str(merged))
    assert_same_arrays(reference, merged)


def test_a_folder_source_gives_the_same_arrays_with_two_workers(tmp_path):
    import cv2

    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"img{i}.png"), rng.integers(0, 256, (70 + 9 * i, 90, 3), dtype=np.uint8))
    outs = []
    for workers in ("1", "2"):
        outs.append(tmp_path / f"dir{workers}.h5")
        blurgen("make", "--n", "8", "--out", str(outs[-1]), "--source", str(tmp_path / "photos"),
                "--workers", workers, "--block-size", "2", *SMALL)
    assert_same_arrays(*outs)
    with read_pairs(outs[0]) as f:
        assert set(f.params["source_index"].tolist()) <= {0, 1, 2}


def test_inspect_reports_counts_params_and_writes_a_sheet(reference, tmp_path):
    sheet = tmp_path / "sheet.png"
    done = blurgen("inspect", str(reference), "--png", str(sheet))
    assert "samples: 120/120 written (complete)" in done.stdout
    assert "problems: none found" in done.stdout
    for name in ("seed_index", "noise_a", "gain", "path_length_px", "/blurred", "chunks (1, 32, 32, 3)"):
        assert name in done.stdout
    import cv2

    picture = cv2.imread(str(sheet))
    assert picture is not None and picture.shape[0] > 8 * 32


def test_make_preview_writes_a_sheet_of_the_new_file(tmp_path):
    out, sheet = tmp_path / "p.h5", tmp_path / "p.png"
    result = cli("make", "--n", "10", "--out", str(out), "--workers", "1", "--preview", str(sheet), *SMALL)
    assert result.exit_code == 0, result.output
    assert "wrote 10 pairs" in result.output and sheet.stat().st_size > 0


def test_help_of_every_command_has_an_example():
    for command in ("make", "inspect", "merge"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "Example" in result.output, command


# ------------------------------------------------------------------------------- bad input
def _assert_clean_failure(result, code: int, needle: str, out=None) -> None:
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output
    assert needle in output, output
    error_lines = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, output
    if code == 1:  # a failure while working: exactly one line
        assert len(output.strip().splitlines()) == 1, output
    if out is not None:
        assert not os.path.exists(out), "no output presented as complete"


@pytest.mark.parametrize("args, needle", [
    (["--n", "0"], "--n"),
    (["--size", "8"], "--size"),
    (["--size", "12x"], "--size"),
    (["--size", "1280x16"], "--size"),
    (["--shard", "3/2"], "--shard"),
    (["--shard", "1"], "--shard"),
    (["--resume", "--overwrite"], "--resume"),
    (["--source", "/no/such/folder"], "--source"),
    (["--source", "gopro:/no/such/root"], "--source"),
    (["--kernel-size", "4"], "--kernel-size"),
    (["--kernel-size", "9", "--length-px", "60"], "use size >= "),  # would stop mid-run, not resumable
    (["--jpeg-quality", "inf"], "--jpeg-quality"),
    (["--jpeg-quality", "50,nan"], "--jpeg-quality"),
    (["--size", "9" * 5000], "--size"),
    (["--shard", "0/" + "9" * 5000], "--shard"),
    (["--n", str(10**8 + 1)], "--n"),
])
def test_command_line_errors_exit_2_before_any_work(tmp_path, args, needle):
    out = tmp_path / "pairs.h5"
    _assert_clean_failure(cli("make", "--n", "5", "--out", str(out), *SMALL, *args), 2, needle, out)
    assert not os.path.exists(str(out) + ".parts")


def test_empty_or_corrupt_only_source_folders_fail_with_exit_1(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    (corrupt / "sub").mkdir(parents=True)
    (corrupt / "a.png").write_bytes(b"not a png")
    (corrupt / "sub" / "b.jpg").write_bytes(b"\xff\xd8 broken")
    for folder in (empty, corrupt):
        out = tmp_path / f"{folder.name}.h5"
        result = cli("make", "--n", "5", "--out", str(out), "--source", str(folder), *SMALL)
        _assert_clean_failure(result, 1, str(folder.name), out)
        assert not os.path.exists(str(out) + ".parts")


def test_existing_or_unwritable_out_fail_with_exit_1(tmp_path):
    out = tmp_path / "pairs.h5"
    out.write_bytes(b"precious")
    _assert_clean_failure(cli("make", "--n", "5", "--out", str(out), *SMALL), 1, "exists")
    assert out.read_bytes() == b"precious"
    missing = tmp_path / "no" / "such" / "pairs.h5"
    _assert_clean_failure(cli("make", "--n", "5", "--out", str(missing), *SMALL), 1, "does not exist", missing)
    under_file = out / "pairs.h5"
    _assert_clean_failure(cli("make", "--n", "5", "--out", str(under_file), *SMALL), 1, "pairs.h5")


def test_resume_with_different_settings_fails_naming_the_setting(tmp_path):
    out = tmp_path / "pairs.h5"
    assert cli("make", "--n", "12", "--out", str(out), "--workers", "1", *SMALL).exit_code == 0
    result = cli("make", "--n", "12", "--out", str(out), "--resume", "--seed", "9", *SMALL)
    _assert_clean_failure(result, 1, "seed")
    result = cli("make", "--n", "12", "--out", str(out), "--resume", *SMALL[:-1], "11")
    _assert_clean_failure(result, 1, "config")
    result = cli("make", "--n", "12", "--out", str(out), "--resume", "--workers", "1", *SMALL)
    assert result.exit_code == 0 and "already complete" in result.output


def test_overwrite_replaces_an_existing_file(tmp_path):
    out = tmp_path / "pairs.h5"
    assert cli("make", "--n", "6", "--out", str(out), "--workers", "1", *SMALL).exit_code == 0
    result = cli("make", "--n", "9", "--out", str(out), "--workers", "1", "--overwrite", *SMALL)
    assert result.exit_code == 0, result.output
    with read_pairs(out) as f:
        assert len(f) == 9


@pytest.fixture()
def broken_files(tmp_path, reference):
    truncated = tmp_path / "truncated.h5"
    data = reference.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["images"] = np.zeros((2, 4, 4, 3), np.uint8)
    return {"truncated": truncated, "foreign": foreign}


@pytest.mark.parametrize("kind, problem", [("truncated", "truncated"), ("foreign", "not a blurgen pairs file")])
def test_inspect_and_merge_name_the_file_and_problem_of_broken_input(broken_files, tmp_path, kind, problem):
    path = broken_files[kind]
    _assert_clean_failure(cli("inspect", str(path)), 1, problem)
    assert str(path) in cli("inspect", str(path)).output
    out = tmp_path / "merged.h5"
    result = cli("merge", str(path), "--out", str(out))
    _assert_clean_failure(result, 1, problem, out)
    assert str(path) in result.output


def test_merge_refuses_shards_of_different_datasets(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert cli("make", "--n", "10", "--out", str(a), "--shard", "0/2", "--workers", "1", *SMALL).exit_code == 0
    assert cli("make", "--n", "10", "--out", str(b), "--shard", "1/2", "--seed", "1", "--workers", "1",
               *SMALL).exit_code == 0
    out = tmp_path / "m.h5"
    _assert_clean_failure(cli("merge", str(a), str(b), "--out", str(out)), 1, "seed", out)
    _assert_clean_failure(cli("merge", str(a), "--out", str(out)), 1, "missing", out)


def test_a_relative_source_folder_is_recorded_absolute(tmp_path, monkeypatch):
    import cv2

    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "a.png"), np.full((80, 80, 3), 100, np.uint8))
    monkeypatch.chdir(tmp_path)
    result = cli("make", "--n", "2", "--out", "rel.h5", "--source", "photos", "--workers", "1", *SMALL)
    assert result.exit_code == 0, result.output
    with read_pairs(tmp_path / "rel.h5") as f:
        assert f.attrs["config_dict"]["source"] == str(tmp_path / "photos")


def test_a_preview_or_sheet_onto_the_dataset_itself_is_refused(reference, tmp_path):
    before = reference.read_bytes()
    result = cli("inspect", str(reference), "--png", str(reference))
    _assert_clean_failure(result, 2, "--png")
    assert reference.read_bytes() == before
    out = tmp_path / "p.h5"
    result = cli("make", "--n", "2", "--out", str(out), "--preview", str(out), "--workers", "1", *SMALL)
    _assert_clean_failure(result, 2, "--preview", out)


def test_sheets_get_the_usual_file_mode(reference, tmp_path):
    sheet = tmp_path / "sheet.png"
    assert cli("inspect", str(reference), "--png", str(sheet)).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert sheet.stat().st_mode & 0o777 == 0o666 & ~umask


def test_inspect_of_blocks_without_a_manifest_says_so_and_exits_0(tmp_path):
    out = tmp_path / "pairs.h5"
    parts = tmp_path / "pairs.h5.parts"
    parts.mkdir()
    (parts / "block-0000000000-16.h5").write_bytes(b"")
    result = cli("inspect", str(out))
    assert result.exit_code == 0, result.output
    assert "no manifest.json" in result.output and "samples: 0/unknown written" in result.output
    result = cli("make", "--n", "32", "--out", str(out), "--block-size", "16", "--resume", *SMALL)
    _assert_clean_failure(result, 1, "--overwrite", out)


def test_damaged_metadata_gives_one_line_errors_naming_the_file(reference, tmp_path):
    rng = np.random.default_rng(1)
    data = reference.read_bytes()
    failed = 0
    for offset in [512, 6000, 8192, *range(0, 12288, 1024)]:
        damaged = bytearray(data)
        damaged[offset:offset + 256] = rng.integers(0, 256, 256, dtype=np.uint8).tobytes()
        path = tmp_path / f"d{offset}.h5"
        path.write_bytes(bytes(damaged))
        for args in (["inspect", str(path)], ["merge", str(path), "--out", str(tmp_path / "m.h5")],
                     ["make", "--n", "120", "--seed", "5", "--out", str(path), "--resume", *SMALL]):
            result = cli(*args)  # an uncaught exception (a traceback) fails the test here
            if result.exit_code != 0:
                failed += 1
                _assert_clean_failure(result, 1, str(path))
            (tmp_path / "m.h5").unlink(missing_ok=True)
    assert failed >= 9


def test_a_full_disk_is_one_line_exit_1(tmp_path, monkeypatch):
    import blurgen.core.common as common
    import blurgen.runs.space as runspace

    monkeypatch.setattr(runspace, "free_bytes", lambda path: 10**12)  # the check before work passes
    monkeypatch.setattr(common, "free_bytes", lambda path: 0)  # then every part write finds no room
    out = tmp_path / "pairs.h5"
    result = cli("make", "--n", "40", "--out", str(out), "--workers", "1", "--block-size", "8", *SMALL)
    _assert_clean_failure(result, 1, "disk full while writing", out)
    assert "free space and rerun with --resume" in result.output


def test_a_run_that_cannot_fit_on_the_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    import blurgen.runs.space as runspace

    monkeypatch.setattr(runspace, "free_bytes", lambda path: 10**6)
    out = tmp_path / "pairs.h5"
    result = cli("make", "--n", "400", "--out", str(out), "--workers", "1", *SMALL)
    _assert_clean_failure(result, 1, "not enough disk space for 400 pairs", out)
    assert not os.path.exists(str(out) + ".parts")


# ------------------------------------------------------------- leftovers and honest reports
def test_inspect_of_a_folder_that_is_no_run_fails_with_one_line(tmp_path):
    (tmp_path / "photos").mkdir()
    _assert_clean_failure(cli("inspect", str(tmp_path / "photos")), 1, "neither a blurgen pairs file")


def test_merge_removes_the_temporary_of_a_killed_merge(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for shard, path in (("0/2", a), ("1/2", b)):
        assert cli("make", "--n", "10", "--out", str(path), "--shard", shard, "--workers", "1",
                   *SMALL).exit_code == 0
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now belongs to no process: as a SIGKILLed merge's
    stale = tmp_path / f".m.h5.merge-{dead.pid}.h5"
    stale.write_bytes(b"x" * 1000)
    assert cli("merge", str(a), str(b), "--out", str(tmp_path / "m.h5")).exit_code == 0
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5", "m.h5"]


def test_the_rate_counts_only_pairs_made_by_this_run():
    from blurgen.cli.make_cmd import _rate_note
    from blurgen.runs.dataset import MakeResult

    only_assembled = MakeResult("o.h5", 600, 0, 600, 2.0, make_seconds=0.0)
    assert _rate_note(only_assembled) == "600 kept from the interrupted run"
    resumed = MakeResult("o.h5", 600, 100, 500, 10.0, make_seconds=1.0)
    assert _rate_note(resumed).startswith("100.0 pairs/s")
    assert _rate_note(MakeResult("o.h5", 60, 60, 0, 3.0, make_seconds=2.0)) == "30.0 pairs/s"


def test_resume_of_a_complete_file_with_other_settings_names_the_field(tmp_path):
    out = str(tmp_path / "a.h5")
    runner = CliRunner()
    assert runner.invoke(main, ["make", "--n", "2", "--out", out, "--size", "32", "--workers", "1"]).exit_code == 0
    result = runner.invoke(main, ["make", "--n", "2", "--out", out, "--size", "32", "--workers", "1", "--resume",
                                  "--length-px", "30"])
    assert result.exit_code == 1
    assert "config.kernel.length_px: 30.0 (now) != 60.0 (file)" in result.output
