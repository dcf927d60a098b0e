"""`make --executor dask`: a LocalCluster of 2 single-threaded workers gives the arrays of
`--workers 1`, also when one worker is killed mid-run (Dask runs its task again; blocks are
idempotent)."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
from click.testing import CliRunner
from fake_pairs import FakeConfig, FakeMaker
from pairs_compare import assert_same_arrays

from blurgen.cli import main
from blurgen.runs.dataset import make_dataset

distributed = pytest.importorskip("distributed")  # in the test extra; blurgen[dask] for users
SMALL = ["--size", "32", "--kernel-size", "15", "--length-px", "10", "--seed", "4"]
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/: the helper modules


class SlowMaker(FakeMaker):
    """FakeMaker that takes a while per block, so a worker can be killed mid-run."""

    def __call__(self, config, seed, start, count):
        time.sleep(0.3)
        return super().__call__(config, seed, start, count)


@pytest.fixture(scope="module")
def cluster():
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    # The cluster only: a client of the test's own beside the executor's would be two clients in
    # one process, whose event loops distributed does not keep apart (an intermittent
    # "bound to a different event loop" in the executor's as_completed).
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as local:
        yield local


def test_a_two_worker_local_cluster_makes_the_arrays_of_one_local_worker(tmp_path, cluster):
    local = cluster
    reference, out = tmp_path / "ref.h5", tmp_path / "dask.h5"
    runner = CliRunner()
    done = runner.invoke(main, ["make", "--n", "24", "--out", str(reference), "--workers", "1", "--block-size", "4", *SMALL])
    assert done.exit_code == 0, done.output
    done = runner.invoke(main, ["make", "--n", "24", "--out", str(out), "--executor", f"dask:{local.scheduler_address}",
                                "--block-size", "4", *SMALL])
    assert done.exit_code == 0, done.output
    assert_same_arrays(reference, out)


def test_killing_a_dask_worker_mid_run_still_gives_identical_arrays(tmp_path, cluster):
    from blurgen.runs.dask_executor import DaskExecutor

    local = cluster
    config = FakeConfig()
    reference, out = tmp_path / "ref.h5", tmp_path / "dask.h5"
    make_dataset(str(reference), config, 40, seed=2, workers=1, block_size=4, maker=FakeMaker(), durable=False)
    with distributed.Client(local) as client:
        pids = list(client.run(os.getpid).values())
    killed = []

    def kill_one_worker(done, planned):
        if done and not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(done)

    result = make_dataset(str(out), config, 40, seed=2, block_size=4, maker=SlowMaker(), durable=False,
                          executor=DaskExecutor(local.scheduler_address), progress=kill_one_worker)
    assert killed and killed[0] < 40 and result.n_made == 40
    assert_same_arrays(reference, out)
