"""Issue 23, F2/F3/F7 for pairs files: a kernel bank pinned by its fingerprint (in the file, in
every process that loads it, and at merge), HDF5 links out of a pairs file refused without
hanging, and stored camera motions checked by inspect and merge."""

from __future__ import annotations

import os
import pickle
import subprocess

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen.cli import main
from blurgen.core.common import DatasetError
from blurgen.motion.bank import KernelBank
from blurgen.motion.bank_model import pin_bank

MAKE = ["make", "--size", "32", "--workers", "1"]


def _bank(path, middle):
    """Two 3-pixel line kernels (same sizes whatever ``middle``, the centre weight)."""
    k = np.zeros((2, 7, 7), np.float32)
    k[:, 3, 2:5] = 1
    k[:, 3, 3] = middle
    np.save(path, k)


def test_f2_bank_fingerprint_is_recorded_checked_by_workers_and_by_merge(tmp_path):
    runner = CliRunner()
    bank = tmp_path / "bank.npy"
    _bank(bank, 1)
    common = [*MAKE, "--n", "4", "--kernels", str(bank)]
    done = runner.invoke(main, [*common, "--out", str(tmp_path / "s0.h5"), "--shard", "0/2"])
    assert done.exit_code == 0, done.output
    with h5py.File(tmp_path / "s0.h5") as f:
        assert KernelBank.from_file(bank).fingerprint in f.attrs["inputs_fingerprint"]
    _bank(bank, 2)  # the bank changes between the shards
    assert runner.invoke(main, [*common, "--out", str(tmp_path / "s1.h5"), "--shard", "1/2"]).exit_code == 0
    done = runner.invoke(main, ["merge", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5"), "--out",
                                str(tmp_path / "m.h5")])
    assert done.exit_code == 1 and "other inputs" in done.output and len(done.output.strip().splitlines()) == 1
    assert len(done.output) < 300 and not (tmp_path / "m.h5").exists()

    from blurgen.core.config import KernelConfig
    from blurgen.pairs.pipeline import PairsConfig, PipelineMaker

    config = PairsConfig(width=32, height=32, kernel=KernelConfig(size=7), kernel_bank=str(bank))
    parent = PipelineMaker()
    parent.prepare(config)
    worker = pickle.loads(pickle.dumps(parent))
    _bank(bank, 5)
    os.utime(bank, ns=(1, 1))
    pin_bank(config, None)  # as in a fresh worker process: nothing pinned yet
    with pytest.raises(DatasetError, match="holds other kernels than when the run started"):
        worker(config, 0, 0, 2)


def _pairs(tmp_path, name="p.h5", *extra):
    out = tmp_path / name
    assert CliRunner().invoke(main, [*MAKE, "--n", "2", "--out", str(out), *extra]).exit_code == 0
    return out


def test_f3_links_out_of_a_pairs_file_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for how in ("link", "raw"):
        path = _pairs(tmp_path, f"{how}.h5")
        with h5py.File(path, "a") as f:
            if how == "link":
                f["params/evil"] = h5py.ExternalLink(str(fifo), "/x")
            else:
                f.create_dataset("params/evil", (2,), "f4", external=[(str(fifo), 0, 8)])
        for args in (["inspect", str(path)], ["merge", str(path), "--out", str(tmp_path / "m.h5")]):
            done = subprocess.run(["blurgen", *args], capture_output=True, text=True, timeout=60)
            err = done.stderr.strip().splitlines()
            assert done.returncode == 1 and len(err) == 1, done.stderr
            assert "another" in err[0] and str(path) in err[0], err


def test_f7_inspect_and_merge_check_the_stored_camera_motion(tmp_path):
    base = _pairs(tmp_path, "cam.h5", "--motion", "camera3d", "--camera-steps", "16")
    for name, value in (("nan", np.nan), ("inf", np.inf), ("focal", 1e30)):
        path = tmp_path / f"{name}.h5"
        path.write_bytes(base.read_bytes())
        with h5py.File(path, "a") as f:
            if name == "focal":
                f["params/focal_px"][0] = value
            else:
                f["motion/translation"][1, 3, 0] = value
        report = CliRunner().invoke(main, ["inspect", str(path)])
        assert "none found" not in report.output and "/motion of samples" in report.output, report.output
        done = CliRunner().invoke(main, ["merge", str(path), "--out", str(tmp_path / "m.h5")])
        assert done.exit_code == 1 and "/motion of samples" in done.output, done.output
    path = tmp_path / "ints.h5"
    path.write_bytes(base.read_bytes())
    with h5py.File(path, "a") as f:
        shape = f["motion/translation"].shape
        del f["motion/translation"]
        f.create_dataset("motion/translation", shape=shape[:2], dtype="i4", chunks=(1, shape[1]))
    done = CliRunner().invoke(main, ["inspect", str(path)])
    assert done.exit_code == 1 and "/motion/translation must be a float array" in done.output, done.output
