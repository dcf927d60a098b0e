"""Array-for-array comparison of two pairs files (the determinism laws' oracle)."""

from __future__ import annotations

import h5py
import numpy as np


def arrays(path) -> dict[str, np.ndarray]:
    """Every array of a pairs file, params prefixed ``params/``."""
    with h5py.File(path, "r") as h5:
        out = {name: h5[name][...] for name in ("blurred", "sharp", "kernel")}
        out.update({f"params/{name}": ds[...] for name, ds in h5["params"].items()})
    return out


def assert_same_arrays(a, b) -> None:
    """Same dataset names, dtypes and values in both files."""
    first, second = arrays(a), arrays(b)
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def interrupted_maker(stop_at: int):
    """The real block maker (``PipelineMaker``), interrupted as by Ctrl-C when a block reaches
    sample ``stop_at``: what a killed run leaves, made quickly."""
    from blurgen.pairs.pipeline import PipelineMaker

    class Interrupted(PipelineMaker):
        def __call__(self, config, seed, start, count):
            if start >= stop_at:
                raise KeyboardInterrupt
            return super().__call__(config, seed, start, count)

    return Interrupted()
