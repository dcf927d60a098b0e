"""``bank``: kernels from a file (``blurgen.KernelBank``) instead of a random walk. The bank is read
once per process and pinned by its fingerprint: a run (and every worker of it) checks that the file
still holds the same kernels.

Example:
    >>> import numpy as np
    >>> from blurgen.motion.bank import KernelBank
    >>> box = np.ones((1, 3, 3), np.float32) / 9
    >>> MODEL.kernels(KernelBank(box), 2, seed=0)[0].shape
    (2, 3, 3)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from blurgen.motion.bank import KernelBank
from blurgen.motion.registry import MotionModel, Samples
from blurgen.motion.shake2d import KernelSamples

_PINNED: dict[tuple, KernelBank] = {}
_READ: dict[tuple, tuple[tuple, KernelBank]] = {}


def _key(pairs: Any) -> tuple:
    return pairs.kernel_bank, bool(pairs.bank_augment), tuple(pairs.bank_scale)


def _identity(path: str) -> tuple:
    try:
        stat = os.stat(path)
    except OSError:
        return ()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def read_bank(path: str, augment: bool, scale: tuple) -> KernelBank:
    """``KernelBank.from_file``, read once per process (again only if the file is another one or
    was rewritten since)."""
    key = path, bool(augment), tuple(scale)
    identity = _identity(path)
    if key not in _READ or _READ[key][0] != identity or not identity:
        _READ[key] = identity, KernelBank.from_file(path, augment=augment, scale_range=scale)
    return _READ[key][1]


def load_bank(pairs: Any) -> KernelBank:
    """The kernel bank of a ``PairsConfig``: the one pinned for the run in progress, else
    ``read_bank``."""
    key = _key(pairs)
    return _PINNED[key] if key in _PINNED else read_bank(*key)


def pin_bank(pairs: Any, bank: KernelBank | None) -> None:
    """Use ``bank`` for ``pairs`` in this process from now on, whatever happens to the file (a run
    checks it once against its fingerprint, then never reloads it); ``None`` unpins."""
    if bank is None:
        _PINNED.pop(_key(pairs), None)
    else:
        _PINNED[_key(pairs)] = bank


class BankModel(MotionModel):
    name = "bank"
    config_type = KernelBank
    config_field = "kernel"  # its size; the bank itself is PairsConfig.kernel_bank

    def settings(self, pairs: Any) -> KernelBank:
        return load_bank(pairs)

    def kernel_size(self, config: Any) -> int:
        return config.size

    def check(self, pairs: Any, fresh: bool = True) -> str:
        if fresh:
            pin_bank(pairs, None)
        bank = load_bank(pairs)
        if bank.size > pairs.kernel.size:
            raise ValueError(f"size={pairs.kernel.size} is smaller than the kernel bank's kernels "
                             f"({bank.size}x{bank.size}); use size >= {bank.size}")
        return bank.fingerprint

    def pin(self, pairs: Any) -> None:
        pin_bank(pairs, load_bank(pairs))

    def draw(self, pairs: Any, seed: int, start: int, count: int) -> Samples:
        kernels, params = load_bank(pairs).kernels(count, seed=seed, start=start, size=pairs.kernel.size)
        return KernelSamples(kernels, params)

    def kernels(self, config: Any, n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, dict]:
        return config.kernels(n, seed=seed, start=start)

    def kernels_at(self, config: Any, seed: int, indices: np.ndarray) -> tuple[list[np.ndarray], dict]:
        return config.sample(seed, indices)


MODEL = BankModel()
