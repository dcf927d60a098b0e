"""Plain-Python twins of the counter-based random streams (``blurgen.core._rng`` and the sensor
noise's normals), written from their definitions.

Example:
    >>> hex(mix64(1))
    '0x5692161d100b05e5'
"""

from __future__ import annotations

import numpy as np

GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
MASK64 = (1 << 64) - 1


def mix64(z: int) -> int:
    """SplitMix64's finaliser on Python ints (the twin of blurgen.core._rng.mix64)."""
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def mix64_array(z):
    """SplitMix64's finaliser in NumPy uint64 (arrays or scalars)."""
    u64 = np.uint64
    z = np.asarray(z, dtype=u64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> u64(30))) * u64(MIX1)
        z = (z ^ (z >> u64(27))) * u64(MIX2)
    return z ^ (z >> u64(31))


def noise_normals(key: int, n: int, table: np.ndarray) -> np.ndarray:
    """The sensor noise's standard normals: normal i is 12 bits of hash i // 5, looked up in
    ``table`` (``blurgen.core._rng.normal_table(12)``)."""
    out = np.empty(n, np.float32)
    for i in range(n):
        h = mix64((key + (i // 5 + 1) * GOLDEN) & MASK64)
        out[i] = table[(h >> (12 * (i % 5))) & 0xFFF]
    return out
