"""``blurgen make --kernels PATH``: pairs blurred with the user's own kernels (a KernelBank)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from pairs_compare import assert_same_arrays, interrupted_maker

from blurgen import KernelBank, read_pairs
from blurgen.cli import main


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def bank_file(path, shift=0):
    kernels = np.zeros((3, 9, 9), np.float32)
    kernels[0, 4, 1:8] = 1
    kernels[1, 1:7 - shift, 3] = 1  # another length: centring cannot undo it
    kernels[2, 2, 2], kernels[2, 6, 7] = 1, 3
    np.save(path, kernels)
    return str(path)


def make(out, bank, *extra):
    return cli("make", "--n", "10", "--out", str(out), "--kernels", bank, "--size", "40", "--block-size", "3",
               "--seed", "4", *extra)


def test_pairs_use_the_banks_kernels_as_its_sampling_says(tmp_path):
    bank = bank_file(tmp_path / "bank.npy")
    assert make(tmp_path / "one.h5", bank, "--workers", "1", "--kernel-augment").exit_code == 0
    assert make(tmp_path / "two.h5", bank, "--workers", "2", "--kernel-augment").exit_code == 0
    assert_same_arrays(tmp_path / "one.h5", tmp_path / "two.h5")
    expected, params = KernelBank.from_file(bank, augment=True).kernels(10, seed=4)
    with read_pairs(tmp_path / "one.h5") as f:
        np.testing.assert_array_equal(f[0:10][2], expected)
        np.testing.assert_array_equal(f.params["bank_index"], params["bank_index"])
        np.testing.assert_array_equal(f.params["transform"], params["transform"])
        assert f.attrs["config_dict"]["kernel_bank"] == bank


def test_a_changed_bank_is_refused_on_resume_and_bad_banks_are_one_line(tmp_path):
    from blurgen.core.config import KernelConfig
    from blurgen.pairs.pipeline import PairsConfig
    from blurgen.runs.dataset import DatasetError, make_dataset

    bank = bank_file(tmp_path / "bank.npy")
    config = PairsConfig(width=40, height=40, kernel=KernelConfig(size=9), kernel_bank=bank)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(str(tmp_path / "p.h5"), config, 10, workers=1, block_size=3, maker=interrupted_maker(6))
    bank_file(tmp_path / "bank.npy", shift=1)
    with pytest.raises(DatasetError, match="source_files_digest"):
        make_dataset(str(tmp_path / "p.h5"), config, 10, workers=1, block_size=3, resume=True)
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    bad = make(tmp_path / "q.h5", str(tmp_path / "bad.npy"))
    assert bad.exit_code == 1 and "bad.npy" in bad.output and "Traceback" not in bad.output
    small = make(tmp_path / "r.h5", bank, "--kernel-size", "3")
    assert small.exit_code == 2 and "smaller than the bank's kernels" in small.output
    walk = make(tmp_path / "s.h5", bank, "--length-px", "20")
    assert walk.exit_code == 2 and "does not apply with --kernels" in walk.output


def test_a_bank_run_says_bank_and_the_bank_is_read_once_per_process(tmp_path, monkeypatch):
    import blurgen

    reads = []
    original = KernelBank.from_file.__func__

    def counting(cls, *args, **kwargs):
        reads.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(KernelBank, "from_file", classmethod(counting))
    bank = bank_file(tmp_path / "bank.npy")
    result = make(tmp_path / "one.h5", bank, "--workers", "1")
    assert result.exit_code == 0 and "(40x40, bank, kernel 9)" in result.output, result.output
    assert len(reads) == 1  # the command line's size check and the run share one read
    assert blurgen.CameraMotion.__name__ == "CameraMotion"  # README's from_arrays is reachable
