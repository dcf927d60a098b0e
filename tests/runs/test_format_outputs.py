"""What is already at a format's output when a run starts: another dataset's WebDataset tars at
the positions a ``--shard`` run would write, an ``--overwrite`` of a larger set of tars, a
finished output of another format or other image settings met by ``--resume``, and a shard that
would get no tar."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from fake_pairs import FakeConfig, FakeMaker, wait_for_a_block
from format_clients import READERS, assert_same_as_hdf5

from blurgen.cli import main
from blurgen.core.common import DatasetError
from blurgen.runs.dataset import make_dataset
from blurgen.runs.format_sinks import FoldersSink, LmdbSink, WebDatasetSink

CONFIG = FakeConfig()


def make(out, sink, n=23, seed=3, **kwargs):
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("maker", FakeMaker())
    return make_dataset(str(out), CONFIG, n, seed=seed, block_size=5, durable=False, sink=sink, **kwargs)


def tars(prefix) -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(str(prefix) + "-*.tar"))


def test_a_shard_run_refuses_another_datasets_tars_at_its_positions_and_deletes_nothing(tmp_path):
    prefix = tmp_path / "w"
    make(prefix, WebDatasetSink(samples_per_shard=5), seed=0)
    before = {name: (tmp_path / name).read_bytes() for name in tars(prefix)}
    with pytest.raises(DatasetError, match=r"w-000000\.tar exists; use --overwrite"):
        make(prefix, WebDatasetSink(samples_per_shard=5), seed=1, shard=(0, 2))
    assert {name: (tmp_path / name).read_bytes() for name in tars(prefix)} == before
    assert not glob.glob(str(tmp_path / "*.parts"))
    # its sibling's positions are not its business: shard 1/2 of a fresh prefix beside shard 0/2
    sharded = tmp_path / "s"
    make(sharded, WebDatasetSink(samples_per_shard=5), shard=(0, 2))
    make(sharded, WebDatasetSink(samples_per_shard=5), shard=(1, 2))
    assert tars(sharded) == [f"s-{k:06d}.tar" for k in range(5)]


def test_overwrite_of_more_tars_leaves_none_of_the_old_ones(tmp_path, fake_reference):
    prefix = tmp_path / "r"
    make(prefix, WebDatasetSink(samples_per_shard=2), n=40, seed=9)
    assert len(tars(prefix)) == 20
    make(prefix, WebDatasetSink(samples_per_shard=5), overwrite=True)
    assert tars(prefix) == [f"r-{k:06d}.tar" for k in range(5)]
    assert_same_as_hdf5(fake_reference, READERS["webdataset"](str(prefix)))


def test_an_overwrite_that_fails_midway_leaves_no_index_calling_the_old_tars_complete(tmp_path):
    prefix = tmp_path / "r"
    make(prefix, WebDatasetSink(samples_per_shard=5), seed=9)
    with pytest.raises(DatasetError, match="fake failure"):
        make(prefix, WebDatasetSink(samples_per_shard=5), overwrite=True, maker=FakeMaker(fail_at=12))
    assert not os.path.exists(str(prefix) + ".json") and tars(prefix) == []
    result = CliRunner().invoke(main, ["inspect", str(prefix) + ".tar"])
    assert "complete" not in result.output.replace("incomplete", ""), result.output


@pytest.fixture(scope="module")
def fake_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    make_dataset(str(out), CONFIG, 23, seed=3, workers=1, block_size=7, maker=FakeMaker(), durable=False)
    return str(out)


@pytest.mark.parametrize("first, then", [(FoldersSink, LmdbSink), (LmdbSink, FoldersSink)])
def test_resume_onto_a_finished_output_of_another_format_is_refused(tmp_path, first, then):
    out = tmp_path / "out"
    make(out, first())
    with pytest.raises(DatasetError, match="format"):
        make(out, then(), resume=True)
    assert make(out, first(), resume=True).already_complete


@pytest.mark.parametrize("sink", [lambda: FoldersSink(png_level=5),
                                  lambda: WebDatasetSink(png_level=1, samples_per_shard=4)],
                         ids=["png-level", "samples-per-tar"])
def test_resume_onto_a_finished_output_with_other_image_settings_is_refused(tmp_path, sink):
    out = tmp_path / "out"
    make(out, FoldersSink() if isinstance(sink(), FoldersSink) else WebDatasetSink(samples_per_shard=5))
    with pytest.raises(DatasetError, match="compression|samples_per_tar"):
        make(out, sink(), resume=True)


def test_a_finished_output_of_an_older_blurgen_without_compression_still_resumes_as_complete(tmp_path):
    out = tmp_path / "out"
    make(out, FoldersSink())
    meta = json.load(open(out / "blurgen.json"))
    del meta["compression"]
    json.dump(meta, open(out / "blurgen.json", "w"))
    assert make(out, FoldersSink(), resume=True).already_complete


def test_a_webdataset_shard_that_would_get_no_tar_is_a_usage_error_before_any_work(tmp_path):
    out = str(tmp_path / "z.tar")
    result = CliRunner().invoke(main, ["make", "--n", "20", "--size", "32", "--out", out, "--shard", "0/2",
                                       "--workers", "1"])
    assert result.exit_code == 2 and "gets no WebDataset tar" in result.output, result.output
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="gets no WebDataset tar"):
        make(tmp_path / "lib", WebDatasetSink(samples_per_shard=30), n=20, shard=(0, 2))


class NonFiniteMaker(FakeMaker):
    """FakeMaker whose float parameters include inf, -inf and NaN (camera3d's ``depth_m`` is inf
    for a camera that does not move sideways)."""

    def __call__(self, config, seed, start, count):
        block = super().__call__(config, seed, start, count)
        for name, values in block["params"].items():
            if values.dtype.kind == "f":
                values[:] = np.array([np.inf, -np.inf, np.nan, 0.5])[(np.arange(start, start + count) % 4)]
        return block


def _strict_json(data: bytes):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(data, parse_constant=refuse)


@pytest.mark.parametrize("fmt", ["folders", "lmdb", "webdataset"])
def test_non_finite_parameters_are_valid_json_and_read_back_as_in_the_hdf5(tmp_path, fmt):
    reference = str(tmp_path / "ref.h5")
    make_dataset(reference, CONFIG, 9, seed=3, workers=1, maker=NonFiniteMaker(), durable=False)
    sink = {"folders": FoldersSink, "lmdb": LmdbSink, "webdataset": lambda: WebDatasetSink(samples_per_shard=5)}[fmt]()
    out = tmp_path / "out"
    make(out, sink, n=9, maker=NonFiniteMaker())
    assert_same_as_hdf5(reference, READERS[fmt](str(out)))
    if fmt == "webdataset":
        import webdataset as wds

        samples = list(wds.WebDataset([str(tmp_path / t) for t in tars(out)], shardshuffle=False))
        values = [_strict_json(s["json"]) for s in samples]
        assert {v for params in values for v in params.values() if isinstance(v, str)} == {
            "Infinity", "-Infinity", "NaN"}


@pytest.mark.parametrize("args, flag", [
    (["--out", "a.h5", "--png-level", "3"], "--png-level"),
    (["--out", "a.h5", "--png-encoder", "fpng"], "--png-encoder"),
    (["--out", "a", "--format", "folders", "--tar-mb", "3"], "--tar-mb"),
    (["--out", "a.lmdb", "--compression", "gzip"], "--compression"),
    (["--out", "a.tar", "--png-encoder", "fpng", "--png-level", "2"], "--png-level"),
])
def test_an_option_the_output_would_ignore_is_a_usage_error(tmp_path, args, flag):
    result = CliRunner().invoke(main, ["make", "--n", "4", "--size", "32", "--workers", "1",
                                       *[str(tmp_path / a) if a.startswith("a") else a for a in args]])
    assert result.exit_code == 2 and flag in result.output and "does not apply" in result.output, result.output
    assert os.listdir(tmp_path) == []


def test_export_refuses_an_option_its_format_would_ignore(tmp_path, fake_reference):
    result = CliRunner().invoke(main, ["export", fake_reference, "--format", "lmdb", "--out", str(tmp_path / "x"),
                                       "--tar-mb", "1"])
    assert result.exit_code == 2 and "--tar-mb" in result.output and "does not apply" in result.output, result.output


def test_ctrl_c_during_export_says_what_is_kept_and_how_to_resume(tmp_path):
    import signal
    import subprocess

    source = str(tmp_path / "src.h5")
    make_dataset(source, FakeConfig(width=96, height=96), 3000, seed=3, workers=1, block_size=100, maker=FakeMaker(),
                 durable=False)
    out = tmp_path / "png"
    proc = subprocess.Popen(["blurgen", "export", source, "--format", "folders", "--out", str(out), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for_a_block(proc, str(out) + ".parts")
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and len(stderr.strip().splitlines()) == 1, stderr
    assert "/3000 pairs are kept in" in stderr and "--resume" in stderr and "Traceback" not in stderr


def test_inspect_of_an_interrupted_webdataset_run_named_as_its_out_reports_the_run(tmp_path):
    prefix = tmp_path / "w"
    with pytest.raises(DatasetError, match="fake failure"):
        make(prefix, WebDatasetSink(samples_per_shard=5), maker=FakeMaker(fail_at=12))
    result = CliRunner().invoke(main, ["inspect", str(prefix) + ".tar"])
    assert result.exit_code == 0 and "interrupted" in result.output and "10/23" in result.output, result.output


def _indexes(prefix) -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(str(prefix) + "*.json"))


def test_overwrite_removes_every_index_that_lists_a_tar_it_deletes_and_no_other(tmp_path):
    prefix = tmp_path / "a"
    make(prefix, WebDatasetSink(samples_per_shard=2), n=20, seed=0)
    make(prefix, WebDatasetSink(samples_per_shard=2), n=20, seed=5, shard=(0, 2), overwrite=True)
    assert _indexes(prefix) == ["a.shard-0-of-2.json"]  # a.json listed tars the shard replaced
    make(prefix, WebDatasetSink(samples_per_shard=2), n=20, seed=5, shard=(1, 2), overwrite=True)
    assert _indexes(prefix) == ["a.shard-0-of-2.json", "a.shard-1-of-2.json"]
    make(prefix, WebDatasetSink(samples_per_shard=2), n=20, seed=5, shard=(1, 2), overwrite=True)
    assert _indexes(prefix) == ["a.shard-0-of-2.json", "a.shard-1-of-2.json"]  # its sibling's stays
    make(prefix, WebDatasetSink(samples_per_shard=4), n=20, seed=7, overwrite=True)
    assert _indexes(prefix) == ["a.json"] and len(tars(prefix)) == 5


def test_resume_compares_the_png_settings_of_an_output_that_does_not_record_compression(tmp_path):
    out = tmp_path / "out"
    make(out, FoldersSink())
    meta = json.load(open(out / "blurgen.json"))
    del meta["compression"]  # as blurgen wrote it before this was recorded
    json.dump(meta, open(out / "blurgen.json", "w"))
    with pytest.raises(DatasetError, match="compression"):
        make(out, FoldersSink(png_level=5), resume=True)
    assert make(out, FoldersSink(), resume=True).already_complete


def test_resume_of_a_pairs_file_compares_its_image_filters_and_keeps_an_interrupted_run(tmp_path):
    from blurgen.store.parts import compression_for

    out = tmp_path / "p.h5"
    make_dataset(str(out), CONFIG, 23, seed=3, workers=1, block_size=5, maker=FakeMaker(), durable=False)
    with pytest.raises(DatasetError, match="compression"):
        make_dataset(str(out), CONFIG, 23, seed=3, workers=1, block_size=5, maker=FakeMaker(), durable=False,
                     resume=True, compression=compression_for("lzf"))
    with pytest.raises(DatasetError, match="fake failure"):  # an lzf remake, killed midway
        make_dataset(str(out), CONFIG, 23, seed=3, workers=1, block_size=5, maker=FakeMaker(fail_at=12),
                     durable=False, overwrite=True, compression=compression_for("lzf"))
    done = make_dataset(str(out), CONFIG, 23, seed=3, workers=1, block_size=5, maker=FakeMaker(), durable=False,
                        resume=True, compression=compression_for("lzf"))
    assert done.n_reused == 10 and not done.already_complete
    import h5py

    with h5py.File(out) as h5:
        assert h5["blurred"].compression == "lzf"


def test_png_options_for_clips_in_webdataset_tars_are_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["make", "--n", "2", "--size", "32", "--workers", "1", "--clips", "3",
                                       "--motion", "camera3d", "--out", str(tmp_path / "c.tar"), "--png-level", "0"])
    assert result.exit_code == 2 and "does not apply to clips" in result.output, result.output
