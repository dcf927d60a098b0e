"""The dead-leaves painter against a numpy twin written from the model's description (disk by
disk, front to back): the same bytes for full pictures and windows and three radius laws. Small
pictures, so ``tests/project/test_nojit.py`` runs this file again with ``NUMBA_DISABLE_JIT=1``."""

from __future__ import annotations

import numpy as np
import pytest

from blurgen.reference.deadleaves import hashed, key_of, paint_twin, radius  # noqa: F401
from blurgen.sources.deadleaves import dead_leaves, power_law_radii


@pytest.mark.parametrize("height, width, exponent, window", [
    (24, 32, 3.0, None), (40, 30, 3.0, (7, 5, 20, 22)), (32, 32, 1.0, None), (28, 36, 2.5, (0, 9, 28, 20)),
])
def test_dead_leaves_equals_the_numpy_painter(height, width, exponent, window):
    got = dead_leaves(height, width, np.random.default_rng(height + width), exponent=exponent, window=window)
    assert np.array_equal(got, paint_twin(height, width, height + width, exponent=exponent, window=window))


def test_dead_leaves_picture_is_covered_and_varied():
    """Properties that hold whatever the implementation: every pixel covered by some leaf
    (MAX_DEPTH leaves deep on average), several distinct colours, edges present."""
    img = dead_leaves(40, 48, np.random.default_rng(3))
    assert img.shape == (40, 48, 3) and len(np.unique(img.reshape(-1, 3), axis=0)) > 20
    assert np.abs(np.diff(img.astype(int), axis=1)).max() > 40


@pytest.mark.parametrize("exponent", [3.0, 1.0, 2.5])
def test_power_law_radii_equal_the_inverse_cdf(exponent):
    u = np.linspace(0.0, 1.0, 17)
    got = power_law_radii(u, 2.0, 16.0, exponent)
    assert np.array_equal(got, [radius(float(v), 2.0, 16.0, exponent) for v in u])
    assert got[0] == pytest.approx(2.0) and got[-1] == pytest.approx(16.0)


# ---------------------------------------------------------------- the same without the JIT
