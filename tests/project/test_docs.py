"""The documentation runs as written (the docstrings' examples: test_doctests.py): every Python block of the
README (in a folder holding a small ``pairs.h5``), and every ``blurgen`` command line of the
README names a command and options that exist."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from blurgen.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_starts_with_exactly_the_two_commands_ci_runs():
    first = _blocks("bash")[0].strip().splitlines()
    assert first == ['pip install . && blurgen make --n 10000 --out pairs.h5',
                     'pip install -e ".[train,test]" && pip install --no-deps basicsr-fixed && python -m pytest -q']
    assert README.read_text().index("```bash") < README.read_text().index("```python")


def test_every_python_block_of_the_readme_runs(tmp_path):
    made = subprocess.run(["blurgen", "make", "--n", "8", "--out", "pairs.h5", "--size", "160", "--workers", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    for fmt, out in (("webdataset", "shards/train.tar"), ("folders", "pairs_png")):  # what the README's loaders read
        os.makedirs(tmp_path / "shards", exist_ok=True)
        done = subprocess.run(["blurgen", "export", "pairs.h5", "--format", fmt, "--out", out, "--workers", "1"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    blocks = _blocks("python")
    assert len(blocks) >= 3
    for number, code in enumerate(blocks):
        script = tmp_path / f"block{number}.py"
        script.write_text(code)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"README python block {number}:\n{code}\n{done.stderr[-3000:]}"


def _command_lines() -> list[list[str]]:
    lines = []
    for block in _blocks("bash")[1:]:
        for line in block.splitlines():
            for part in line.split(";"):
                words = shlex.split(part.split("#")[0])
                if "blurgen" in words:
                    lines.append(words[words.index("blurgen") + 1:])
    return lines


@pytest.mark.parametrize("words", _command_lines(), ids=lambda w: " ".join(w[:2]))
def test_every_readme_command_line_uses_real_options(words):
    command = main.get_command(click.Context(main), words[0])
    assert command is not None, words
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    used = [word for word in words[1:] if word.startswith("--")]
    assert set(used) <= known, (words, set(used) - known)
