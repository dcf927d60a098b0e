"""The examples in the public docstrings run and print what they claim."""

import doctest

import pytest

import blurgen
import blurgen.kernels


@pytest.mark.parametrize("module", [blurgen, blurgen.kernels])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
