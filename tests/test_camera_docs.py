"""The examples in the camera model's public docstrings run and print what they claim."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["blurgen.camera.motion", "blurgen.camera.kernels", "blurgen.camera.render"])
def test_camera_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
