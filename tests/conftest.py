"""Shared pytest configuration. Fixtures specific to one area live in that area's test files."""

import os

# Keep test processes polite on a 2-core machine and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "2")
