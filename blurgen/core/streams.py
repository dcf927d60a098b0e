"""Per-sample random bits keyed by ``(seed, index)`` alone, vectorised in NumPy.

The augmentation draws (apply or not, noise levels, which kernel of a bank, its flip and scale)
must not depend on the batch a sample arrives in, on the device, or on numpy/torch generator
versions. Each sample therefore gets its own counter-based stream: SplitMix64 (the generator
blurgen's kernels use, ``blurgen.core._rng``) keyed by the seed, the sample index and a ``tag`` naming
the purpose, so two purposes never share numbers. Pure NumPy ``uint64`` arithmetic (wrapping on
purpose), no Numba: this module loads without the JIT.
"""

from __future__ import annotations

import numpy as np

from blurgen.core.config import MAX_SEED, check_index

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_INDEX_SALT = np.uint64(0x2545F4914F6CDD1D)
_INV_2_53 = 1.0 / 9007199254740992.0

#: Stream tags (any distinct values): the transform's own draws, a kernel bank's choices, blur lengths.
TAG_SHAKE = 0x5348414B45  # "SHAKE"
TAG_BANK = 0x42414E4B  # "BANK"
TAG_EPOCH = 0x45504F4348  # "EPOCH"
TAG_LENGTH = 0x4C454E47  # "LENG": the target blur length of ``blur_length_px``


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (a bijection with strong avalanche)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def check_indices(indices, name: str = "indices") -> np.ndarray:
    """Validated sample indices: a 1-D int64 array of integers in [0, MAX_SEED]."""
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D sequence of non-negative integers, got {np.shape(indices)} "
                         f"of {arr.dtype}")
    if arr.size and (arr.min() < 0 or int(arr.max()) > MAX_SEED):
        raise ValueError(f"{name} must be integers in [0, {MAX_SEED}], got min {arr.min()}, max {arr.max()}")
    return arr.astype(np.int64)


def sample_bits(seed: int, indices, tag: int, count: int) -> np.ndarray:
    """``count`` random 64-bit words for each sample index under ``seed`` and ``tag``.

    Args:
        seed: non-negative int.
        indices: 1-D non-negative ints (the samples).
        tag: the purpose (``TAG_SHAKE``, ``TAG_BANK``, ...).
        count: words per sample.

    Returns:
        uint64 ``(len(indices), count)``; row j depends only on ``(seed, indices[j], tag)``.

    Example:
        >>> a = sample_bits(3, [5, 6], TAG_BANK, 2)
        >>> bool((sample_bits(3, [6], TAG_BANK, 2)[0] == a[1]).all()), a.dtype.name
        (True, 'uint64')
    """
    seed = check_index("seed", seed, 0)
    idx = check_indices(indices).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = _mix64(np.uint64(seed) * _GOLDEN + _mix64(np.uint64(tag)))
        state = _mix64(key ^ _mix64(idx + _INDEX_SALT))
        steps = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
        return _mix64(state[:, None] + steps[None, :])


def to_uniform(bits: np.ndarray) -> np.ndarray:
    """uint64 words -> float64 uniforms in [0, 1) on a 2**-53 grid (same shape)."""
    return (bits >> np.uint64(11)).astype(np.float64) * _INV_2_53
