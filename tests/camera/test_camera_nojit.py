"""The camera tests again with NUMBA_DISABLE_JIT=1, so the Numba kernels' Python source is what
runs (and what coverage sees), not only the compiled code."""

import os
import subprocess
import sys
from pathlib import Path


def test_camera_tests_pass_without_jit():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    here = Path(__file__).parent
    files = [str(here / f"test_camera_{name}.py") for name in ("motion", "kernels", "render")]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                            env=env, capture_output=True, text=True, timeout=1200, cwd=here)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
