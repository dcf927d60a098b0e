"""Installing blurgen twice must not break it: numba's compiled-code cache never lands inside the
installed package (pip does not remove it, and a leftover ``site-packages/blurgen/__pycache__``
alone is a namespace package that hides a later editable install)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import blurgen

PACKAGE = pathlib.Path(blurgen.__file__).parent


def _cache_files(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_compiled_cache_is_written_outside_an_installed_copy(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "blurgen", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(site), "BLURGEN_CACHE_DIR": str(cache)}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    code = ("import blurgen, sys; assert blurgen.__file__.startswith(sys.argv[1]), blurgen.__file__; "
            "blurgen.random_kernels(2, size=15, length_px=6.0)")
    subprocess.run([sys.executable, "-c", code, str(site)], env=env, check=True, cwd=tmp_path, timeout=600)
    assert _cache_files(site) == [], "numba cache written into the installed package"
    assert _cache_files(cache), "the cache folder was not used"


def test_every_jitted_module_takes_its_decorator_from_blurgen_jit():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "_jit.py" and ("from numba import njit" in text or "numba.njit(" in text
                                        or "from numba import jit" in text):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_every_subpackage_is_in_the_distribution():
    """A package folder missing from pyproject's list works in an editable checkout and is absent
    from a real install."""
    import tomllib

    root = PACKAGE.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    mapped = {"blurgen.cli": root / "cli", "blurgen.deblur": root / "deblur"}
    found = {"blurgen." + ".".join(p.parent.relative_to(PACKAGE).parts) for p in PACKAGE.rglob("__init__.py")
             if p.parent != PACKAGE} | {"blurgen"}
    for name, folder in mapped.items():
        found |= {name + "".join("." + part for part in p.parent.relative_to(folder).parts)
                  for p in folder.rglob("__init__.py")}
    assert found == listed


_FORK = """
import os, sys
import numpy as np
import blurgen
from blurgen.camera import CameraConfig
parent = [blurgen.random_kernels(4, seed=1), blurgen.random_kernels(3, seed=2, config=CameraConfig(size=33))]
pid = os.fork()
if pid == 0:
    child = [blurgen.random_kernels(4, seed=1), blurgen.random_kernels(3, seed=2, config=CameraConfig(size=33))]
    os._exit(0 if all(np.array_equal(a, b) for a, b in zip(parent, child)) else 3)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_process_forked_after_drawing_kernels_can_draw_them_too():
    """GNU OpenMP's pool is not fork-safe: a forked DataLoader worker aborted as soon as the main
    process had drawn kernels. Forked processes now run serial compilations, same arrays."""
    done = subprocess.run([sys.executable, "-c", _FORK], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
