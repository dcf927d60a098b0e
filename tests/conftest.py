"""Shared pytest configuration. Fixtures specific to one area live in that area's test files."""

import os
import pathlib
import sys

# Keep test processes polite on a 2-core machine and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "2")


# The tests mirror the package's folders; their shared helper modules (fake_pairs, pairs_compare,
# ...) live in tests/ itself, and a few test modules import from each other: every test folder is
# importable by module name, as the flat layout was.
_TESTS = pathlib.Path(__file__).resolve().parent
for _folder in [_TESTS, *sorted(p for p in _TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))]:
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
