"""Every docstring example of every module of blurgen (its CLI and trainer too) runs as written,
from this one place; modules that need torch are included when torch is installed."""

from __future__ import annotations

import doctest
import importlib
import importlib.util

import pytest
from test_architecture import MODULES

TORCH = importlib.util.find_spec("torch") is not None
#: Modules that import torch (or torchvision) at the top.
TORCH_ONLY = ("blurgen.deblur", "blurgen.transforms", "blurgen.blur.torch_stages")


def _needs_torch(name: str) -> bool:
    return name.startswith(TORCH_ONLY) and name != "blurgen.deblur"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docstring_examples_run(name):
    if _needs_torch(name) and not TORCH:
        pytest.skip("needs torch (blurgen[train])")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_collector_finds_the_examples():
    finder = doctest.DocTestFinder()
    counted = sum(len(t.examples) for name in ("blurgen", "blurgen.motion.walk", "blurgen.motion.registry")
                  for t in finder.find(importlib.import_module(name)))
    assert counted >= 5
