"""A small deterministic stand-in for ``blurgen.pairs.pipeline.make_block`` used by the writer tests.

Sample i of seed s depends only on (s, i), like the real pipeline, so every writer property
(workers, shards, resume, block size) can be checked against it quickly.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from blurgen.runs.dataset import BlockMaker
from blurgen.store.schema import REQUIRED_PARAMS

PARAM_DTYPES = {name: np.float32 for name in REQUIRED_PARAMS}
PARAM_DTYPES.update(seed_index=np.int64, source_index=np.int64, jpeg_quality=np.int16)


@dataclass(frozen=True)
class FakeConfig:
    """The parts of PairsConfig the writer uses."""

    width: int = 24
    height: int = 16
    kernel_size: int = 5
    source: str = "fake"
    split: str = "train"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "kernel": {"size": self.kernel_size},
                "source": self.source, "split": self.split}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def fake_sample(config: FakeConfig, seed: int, index: int):
    rng = np.random.default_rng([seed, index])
    h, w, k = config.height, config.width, config.kernel_size
    sharp = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    blurred = (sharp // 2 + rng.integers(0, 128, (h, w, 3), dtype=np.uint8)).astype(np.uint8)
    kernel = rng.random((k, k), dtype=np.float32)
    kernel /= kernel.sum()
    params = {name: np.asarray(rng.random(), dtype=dtype) for name, dtype in PARAM_DTYPES.items()}
    params["seed_index"] = np.int64(index)
    params["jpeg_quality"] = np.int16(-1)
    return blurred, sharp, kernel, params


class FakeMaker(BlockMaker):
    """``maker(config, seed, start, count) -> block``; optionally fails at sample ``fail_at``
    (raising ``fail_with``) to imitate a crash or a Ctrl-C in the middle of a run."""

    def __init__(self, fail_at: int | None = None, fail_with: type = RuntimeError,
                 sigint_at: int | None = None, exit_at: int | None = None) -> None:
        self.exit_at = exit_at
        self.fail_at = fail_at
        self.fail_with = fail_with
        self.sigint_at = sigint_at
        self.prepared = 0

    def prepare(self, config) -> None:
        self.prepared += 1

    def __call__(self, config, seed: int, start: int, count: int) -> dict:
        if self.fail_at is not None and start <= self.fail_at < start + count:
            raise self.fail_with(f"fake failure at sample {self.fail_at}")
        if self.exit_at is not None and start <= self.exit_at < start + count:
            os._exit(3)  # a worker dying without a word (e.g. the OOM killer)
        if self.sigint_at is not None and start <= self.sigint_at < start + count:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of making a block
        samples = [fake_sample(config, seed, i) for i in range(start, start + count)]
        return {"blurred": np.stack([s[0] for s in samples]),
                "sharp": np.stack([s[1] for s in samples]),
                "kernel": np.stack([s[2] for s in samples]),
                "params": {name: np.array([s[3][name] for s in samples], dtype=dtype)
                           for name, dtype in PARAM_DTYPES.items()}}


def wait_for_a_block(proc, parts: str, timeout: float = 120) -> None:
    """Wait until run folder ``parts`` holds a finished block while ``proc`` (a blurgen make or
    export) still runs; fails if it finished first (nothing left to interrupt)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.isdir(parts) and any(n.startswith("block-") for n in os.listdir(parts)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
