"""Tests of Numba-compiled code again with NUMBA_DISABLE_JIT=1, so the kernels' Python source is
what runs (and what coverage sees), not only the compiled code; and the compiled and the Python
code must give the same bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parents[1]
NOJIT = {**os.environ, "NUMBA_DISABLE_JIT": "1"}


@pytest.mark.parametrize("test_file", ["test_kernels.py", "test_jit_twins.py", "test_deadleaves_twin.py"])
def test_jitted_code_passes_its_tests_as_plain_python(test_file):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(next(TESTS.rglob(test_file)))],
                            env=NOJIT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


_RENDER = """
import sys, numpy as np
from blurgen.sources.deadleaves import dead_leaves
from blurgen.blur import noisy_to_srgb, linear_to_srgb, blur_linear
from blurgen.motion.api import random_kernels
rng = np.random.default_rng(3)
image = rng.random((20, 22, 3), dtype=np.float32)
kernel = random_kernels(1, size=7, seed=2, length_px=4.0)[0]
parts = [dead_leaves(20, 22, np.random.default_rng(1)), noisy_to_srgb(image, 1e-3, 1e-5, np.random.default_rng(2)),
         linear_to_srgb(image * 1.1), blur_linear(image, kernel, method="direct")]
sys.stdout.buffer.write(b"".join(np.ascontiguousarray(p).tobytes() for p in parts))
"""


def test_compiled_and_python_versions_give_the_same_bytes():
    outputs = [subprocess.run([sys.executable, "-c", _RENDER], env=env, capture_output=True, timeout=600,
                              check=True).stdout for env in (os.environ, NOJIT)]
    assert len(outputs[0]) > 0
    compiled, python = (np.frombuffer(out, np.uint8) for out in outputs)
    assert np.array_equal(compiled, python)
