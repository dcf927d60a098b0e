"""The per-sample arrays beside the images of a folders or LMDB output, for ``blurgen inspect``:
``kernel.npy`` (float32 (N, k, k)) and, with camera motion, ``motion.npy`` (float32 (N, S, 6)),
a row per sample, row ``r`` the output's sample ``sample_start + r``. Outputs of an earlier
blurgen hold one ``kernel/NNNNNNNN.npy`` file per sample instead: they are read too."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from blurgen.inspect.report import KERNEL_SUM_TOLERANCE


def kernel_problem(kernel: np.ndarray, shape: tuple[int, ...] | None) -> str | None:
    """What is wrong with one kernel (its shape when ``shape`` is given, weights), or None."""
    if shape is not None and kernel.shape != shape:
        return f"kernel(s) not of shape {shape}"
    k = kernel.astype(np.float64)
    if not np.isfinite(k).all():
        return "kernel(s) with NaN or infinite weights"
    if (k < 0).any():
        return "kernel(s) with negative weights"
    if abs(k.sum() - 1) > KERNEL_SUM_TOLERANCE:
        return "kernel(s) that do not sum to 1"
    return None


def check_kernel_file(checks: Any, path: str, where: str, shape: tuple | None) -> tuple | None:
    """Read and check one kernel ``.npy`` (problems go to ``checks`` as ``where``); returns the
    shape every kernel must have (the first one read)."""
    try:
        kernel = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        checks.add("kernel file(s) unreadable", where)
        return shape
    shape = shape or kernel.shape
    problem = kernel_problem(kernel, shape)
    if problem:
        checks.add(problem, where)
    return shape


def side_rows(checks: Any, path: str, rows: int) -> np.ndarray | None:
    """The per-sample array file ``path`` (a row per sample), mapped, not loaded; None (and a
    problem in ``checks``) when it is unreadable or not ``rows`` rows."""
    name = os.path.basename(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        checks.counts[f"{name} unreadable ({type(exc).__name__})"] = [1, name]
        return None
    if array.ndim < 1 or array.shape[0] != rows:
        checks.counts[f"{name} of shape {array.shape}, not one row for each of the {rows} samples"] = [1, name]
        return None
    return array


class SideArrays:
    """The side arrays of an ``OutputView`` (``path``, ``meta``, ``expected``, ``check_names``,
    ``read_params``)."""

    def _per_sample_files(self) -> str | None:
        """The ``kernel/`` folder of an earlier blurgen's output (no ``kernel.npy``), else None."""
        folder = os.path.join(self.path, "kernel")
        return folder if not os.path.exists(folder + ".npy") and os.path.isdir(folder) else None

    def check_side_files(self, checks: Any, verify: bool) -> dict[str, np.ndarray]:
        """kernel.npy (and motion.npy) and params.csv of the folders and LMDB layouts."""
        folder = self._per_sample_files()
        if folder is not None:
            names = sorted(n[:-4] for n in os.listdir(folder) if n.endswith(".npy"))
            present, shape = self.check_names(checks, "kernel/", names), None  # names: also with --quick
            for name in sorted(present) if verify else ():
                shape = check_kernel_file(checks, os.path.join(folder, name + ".npy"), f"kernel/{name}.npy", shape)
            motions = os.path.join(self.path, "motion")
            if os.path.isdir(motions):
                self.check_names(checks, "motion/", [n[:-4] for n in os.listdir(motions)])
        else:
            kernels = side_rows(checks, os.path.join(self.path, "kernel.npy"), len(self.expected))
            for row in range(len(kernels)) if verify and kernels is not None else ():
                problem = kernel_problem(np.asarray(kernels[row]), None)  # rows of one array: one shape
                if problem:
                    checks.add(problem, f"kernel.npy row {row} ({self.expected[row]})")
        if os.path.exists(os.path.join(self.path, "motion.npy")):
            side_rows(checks, os.path.join(self.path, "motion.npy"), len(self.expected))
        return self.read_params(checks)

    def kernel(self, name: str) -> np.ndarray:
        """The kernel of sample ``name`` (its row of ``kernel.npy``); ``ValueError`` if it has none."""
        folder = self._per_sample_files()
        try:
            if folder is not None:
                return np.load(os.path.join(folder, name + ".npy"), allow_pickle=False)
            kernels = np.load(os.path.join(self.path, "kernel.npy"), mmap_mode="r", allow_pickle=False)
        except EOFError:
            raise ValueError(f"the kernel file of sample {name} is empty") from None
        row = int(name) - int(self.meta["sample_start"])
        if not 0 <= row < len(kernels):
            raise ValueError(f"kernel.npy has no row for sample {name}")
        return np.array(kernels[row])
