"""Kernel banks: blur kernels a user already has (recorded or estimated PSFs) as a deterministic
random source, like ``blurgen.random_kernels``.

Loading (``KernelBank.from_file``) reads ``.npy``, ``.npz``, MATLAB ``.mat`` (v5 and earlier by
scipy, v7.3 by h5py; plain arrays and cell arrays, nested) and a folder of grayscale PNG files,
and prepares every kernel the same way:

1. checked: finite, real, square (any side up to 1025, even sides too), positive sum;
2. negative entries (ringing of estimated kernels) set to 0, then normalised to sum 1;
3. centred: shifted so its weighted centroid lies on the centre pixel of an odd canvas. The shift
   is a bilinear splat (each pixel's mass is split over the four pixels around its shifted
   position), which keeps every weight non-negative and moves the centroid *exactly* (splatting
   preserves the weighted mean); the residual centroid error is float32 rounding, measured
   < 1e-4 px (the tests pin it below 1e-3 px; blurgen's contract is 0.05 px). It adds at most
   0.25 px^2 of variance along each axis (a fractional shift u adds u(1 - u));
4. cropped symmetrically about the centre to its support.

Sampling (``bank.kernels(n, seed, start)``): sample i of seed s depends only on (s, i): it picks
a kernel uniformly, then (``augment=True``) one of the 8 flips/rotations, then (``scale_range``)
a size factor drawn log-uniformly, applied by the same mass- and centroid-preserving splat
(each pixel split into m x m sub-masses, m = ceil(scale), so an enlarged kernel has no holes).
Every kernel comes out padded (centred, with zeros) to one odd side.

Errors are one line naming the file and the reason (``KernelBankError``).

Example:
    >>> k = np.zeros((2, 5, 5), np.float32); k[0, 2, 2] = 1; k[1, 2, 1:4] = 1
    >>> bank = KernelBank(k, augment=True)
    >>> kernels, params = bank.kernels(4, seed=0)
    >>> kernels.shape, kernels.dtype.name, sorted(params)
    ((4, 3, 3), 'float32', ['bank_index', 'scale', 'seed_index', 'transform'])
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Sequence

import numpy as np

from blurgen.core.common import one_line
from blurgen.core.config import MAX_KERNEL_SIZE, MAX_SEED, check_index, check_kernel_size, check_pair
from blurgen.core.kernel_shape import crop_to_support
from blurgen.core.safe_files import UnsafeFileError
from blurgen.core.streams import TAG_BANK, check_indices, sample_bits, to_uniform
from blurgen.motion.bank_files import READ_ERRORS, KernelBankError, _split, mat_read_error, read_kernel_arrays

#: Largest and smallest size factor a bank may draw.
SCALE_LIMITS = (0.1, 10.0)
#: Most kernels one bank may hold (a guard against a file that declares absurd sizes).
MAX_KERNELS = 10**7


# --------------------------------------------------------------------------------------------
# Centring and scaling by bilinear splatting


def _splat(pos: np.ndarray, weights: np.ndarray, radius: int) -> np.ndarray:
    """Bilinear splat of point masses at ``pos`` ((M, 2) float64, (y, x) relative to the centre,
    every |coordinate| < radius) into a float64 ``(2r+1, 2r+1)`` canvas. The canvas's weighted
    centroid is the masses' weighted mean exactly, and its sum is theirs."""
    side = 2 * radius + 1
    p = pos + radius
    base = np.floor(p)
    frac = p - base
    base = base.astype(np.int64)
    out = np.zeros(side * side, np.float64)
    for dy in (0, 1):
        wy = frac[:, 0] if dy else 1.0 - frac[:, 0]
        for dx in (0, 1):
            wx = frac[:, 1] if dx else 1.0 - frac[:, 1]
            flat = (base[:, 0] + dy) * side + base[:, 1] + dx
            out += np.bincount(flat, weights * wy * wx, minlength=side * side)
    return out.reshape(side, side)


def _masses(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero pixels of a 2-D kernel: positions (M, 2) as (y, x), weights, and the centroid."""
    ys, xs = np.nonzero(kernel)
    weights = kernel[ys, xs].astype(np.float64)
    pos = np.stack([ys, xs], axis=1).astype(np.float64)
    return pos, weights, weights @ pos / weights.sum()


def centre_kernel(kernel: np.ndarray) -> np.ndarray:
    """Normalise a non-negative 2-D kernel to sum 1 and centre its weighted centroid.

    Args:
        kernel: real ``(h, w)`` array, non-negative, positive sum.

    Returns:
        float32 ``(k, k)``, k odd: sum 1, weighted centroid on pixel ``(k // 2, k // 2)`` (error
        float32 rounding only), cropped to its support symmetrically about the centre.

    Example:
        >>> k = centre_kernel(np.array([[0, 0, 0, 0], [0, 0, 1, 1]]))  # centroid (1, 2.5)
        >>> k.shape, k.tolist()
        ((3, 3), [[0.0, 0.0, 0.0], [0.25, 0.5, 0.25], [0.0, 0.0, 0.0]])
    """
    pos, weights, centroid = _masses(np.asarray(kernel))
    rel = pos - centroid
    radius = int(np.floor(np.abs(rel).max(initial=0.0))) + 1
    out = _splat(rel, weights / weights.sum(), radius)
    return crop_to_support(out.astype(np.float32))


def _scaled_radius(side: int, scale: float) -> int:
    """Canvas radius that holds a centred kernel of odd ``side`` scaled by ``scale``."""
    return int(math.ceil((side // 2 + 0.5) * scale))


def scale_kernel(kernel: np.ndarray, scale: float) -> np.ndarray:
    """Resize a centred kernel about its centre by ``scale`` (mass- and centroid-preserving).

    Each pixel becomes m x m equal sub-masses (m = ceil(scale), so an enlarged kernel has no
    holes) at its sub-pixel positions; their positions are scaled about the centre and splatted
    bilinearly. Sum and centroid are kept exactly (up to float32 rounding).

    Args:
        kernel: float ``(k, k)``, k odd, centred (as ``centre_kernel`` returns).
        scale: factor in [0.1, 10].

    Returns:
        float32 ``(k', k')``, k' odd, cropped to its support.
    """
    k = np.asarray(kernel, np.float64)
    centre = k.shape[0] // 2
    m = max(1, int(math.ceil(scale)))
    pos, weights, _ = _masses(k)
    sub = (np.arange(m) + 0.5) / m - 0.5
    offsets = np.stack(np.meshgrid(sub, sub, indexing="ij"), axis=-1).reshape(-1, 2)
    rel = ((pos[:, None, :] - centre) + offsets[None]) * scale
    out = _splat(rel.reshape(-1, 2), np.repeat(weights / (m * m), m * m), _scaled_radius(k.shape[0], scale))
    return crop_to_support(out.astype(np.float32))


def dihedral(kernel: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 flips/rotations of a square array: ``transform % 4`` quarter turns, then a
    transpose if ``transform >= 4``. The centre pixel of an odd square stays the centre."""
    out = np.rot90(kernel, transform % 4)
    return np.ascontiguousarray(out.T if transform >= 4 else out)


def pad_to(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad an odd square kernel symmetrically to side ``size`` (>= its side, odd)."""
    margin = (size - kernel.shape[0]) // 2
    return np.pad(kernel, margin)


def _checked(label: str, kernel: np.ndarray) -> np.ndarray:
    """One kernel, validated, negatives clipped to 0, centred and normalised (float32)."""
    where = f"{label}: " if label else ""
    if kernel.dtype.kind not in "biuf":
        raise KernelBankError(f"{where}values of type {kernel.dtype} are not real numbers")
    if kernel.size == 0:
        raise KernelBankError(f"{where}empty kernel (shape {kernel.shape})")
    if kernel.shape[0] != kernel.shape[1]:
        raise KernelBankError(f"{where}not square ({kernel.shape[0]}x{kernel.shape[1]})")
    if kernel.shape[0] > MAX_KERNEL_SIZE:
        raise KernelBankError(f"{where}{kernel.shape[0]}x{kernel.shape[1]} is larger than {MAX_KERNEL_SIZE}")
    k = kernel.astype(np.float64)
    if not np.isfinite(k).all():
        raise KernelBankError(f"{where}holds NaN or infinite values")
    peak = float(np.abs(k).max())
    if peak > 0:
        k /= peak  # the sum of values near 1e308 would overflow; the kernel is normalised anyway
    total = float(k.sum())
    if not total > 0:
        raise KernelBankError(f"{where}sums to {total:.6g}; a kernel needs a positive sum")
    return centre_kernel(np.maximum(k, 0.0))


def load_kernels(path: str | os.PathLike) -> list[np.ndarray]:
    """All kernels of a file or folder, prepared as the module docstring says (list of float32
    ``(k, k)``, k odd, sizes may differ). Raises ``KernelBankError`` (one line: the file and the
    reason) for a missing, unreadable or corrupt file, an unknown type, or a bad kernel."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise KernelBankError(f"kernel file {path}: no such file or folder")
    kind, kernels = "a kernel file", []
    try:
        arrays, kind = read_kernel_arrays(path)
        for sub, kernel in arrays:
            kernels.append(_checked(sub, kernel))
            if len(kernels) > MAX_KERNELS:
                raise KernelBankError(f"more than {MAX_KERNELS} kernels")
    except (KernelBankError, UnsafeFileError) as exc:
        raise KernelBankError(f"kernel file {path}: {exc}") from None
    except RecursionError:
        raise KernelBankError(f"kernel file {path}: cell arrays nested too deep") from None
    except (*READ_ERRORS, mat_read_error()) as exc:
        raise KernelBankError(f"kernel file {path}: cannot read it as {kind} ({one_line(exc)})") from None
    if not kernels:
        raise KernelBankError(f"kernel file {path}: holds no kernels (no numeric arrays)")
    return kernels


# --------------------------------------------------------------------------------------------
# The bank


class KernelBank:
    """A set of prepared blur kernels sampled like ``blurgen.random_kernels``.

    Args:
        kernels: float ``(N, k, k)`` or ``(k, k)`` array, or a sequence of 2-D arrays of any
            (square) sides; each is prepared as the module docstring says.
        augment: draw one of the 8 flips/rotations per sample.
        scale_range: ``(low, high)`` in [0.1, 10]: a size factor drawn log-uniformly per sample
            (``(1, 1)``, the default, keeps the sizes).
        source: a name for messages and ``repr`` (``from_file`` passes the path).

    Sampling is deterministic: sample i of seed s depends only on (s, i) (its own random stream,
    see ``blurgen.core.streams``), so any batch split or worker count gives the same kernels. The
    bank pickles as three flat arrays (cheap to send to worker processes).
    """

    def __init__(self, kernels: np.ndarray | Sequence[np.ndarray], *, augment: bool = False,
                 scale_range: tuple[float, float] = (1.0, 1.0), source: str = "arrays") -> None:
        if not isinstance(augment, (bool, np.bool_)):
            raise ValueError(f"augment must be True or False, got {augment!r}")
        self.augment = bool(augment)
        self.scale_range = check_pair("scale_range", scale_range, *SCALE_LIMITS)
        self.source = str(source)
        prepared = _prepare_all(kernels) if not _is_prepared(kernels) else list(kernels)
        self._sides = np.array([k.shape[0] for k in prepared], np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(self._sides**2)])
        self._flat = np.concatenate([k.ravel() for k in prepared]).astype(np.float32)
        if self.size > MAX_KERNEL_SIZE:  # scaling would make kernels no run can hold (and GBs of scratch)
            side = int(self._sides.max())
            high = math.floor(MAX_KERNEL_SIZE // 2 / (side / 2) * 100) / 100
            raise KernelBankError(f"{self.source}: scale_range high end {self.scale_range[1]:g} makes the largest "
                                  f"kernel ({side}x{side}) {self.size} px wide, over the largest kernel size "
                                  f"{MAX_KERNEL_SIZE}; use a high end of at most {high:g}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, augment: bool = False,
                  scale_range: tuple[float, float] = (1.0, 1.0)) -> "KernelBank":
        """Load a bank from ``.npy`` (``(N, k, k)`` or ``(k, k)``), ``.npz`` (every array in it),
        ``.mat`` (v5 via scipy, v7.3 via h5py; every numeric variable, cell arrays walked in
        MATLAB order, 3-D arrays as MATLAB's ``(k, k, N)``), one ``.png`` or a folder of
        grayscale ``.png`` files (sorted by name; 8 or 16 bit).

        Raises:
            KernelBankError: one line naming the file and the reason (missing, unknown type,
                corrupt, no kernels, or a bad kernel: non-square, empty, NaN/inf, sum <= 0,
                wrong number of dimensions, not grayscale).
        """
        kernels = load_kernels(path)
        return cls(_Prepared(kernels), augment=augment, scale_range=scale_range, source=os.fspath(path))

    def __len__(self) -> int:
        return int(self._sides.size)

    def __repr__(self) -> str:
        return (f"KernelBank({len(self)} kernel(s) from {self.source}, sides {self._sides.min()}.."
                f"{self._sides.max()}, augment={self.augment}, scale_range={self.scale_range}, size={self.size})")

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the prepared kernels: banks with the same fingerprint and options
        sample the same kernels (for provenance and resume checks)."""
        digest = hashlib.sha256(self._sides.astype("<i8").tobytes())
        digest.update(self._flat.astype("<f4").tobytes())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON-ready provenance: source, count, smallest/largest side, options, output size,
        fingerprint."""
        return {"source": self.source, "kernels": len(self), "min_side": int(self._sides.min()),
                "max_side": int(self._sides.max()), "augment": self.augment,
                "scale_range": list(self.scale_range), "size": self.size, "fingerprint": self.fingerprint}

    def kernel(self, i: int) -> np.ndarray:
        """Stored kernel ``i``: float32 ``(k, k)``, k odd, sum 1, centred (a read-only view)."""
        i = check_index("i", i, 0, len(self) - 1)
        side = int(self._sides[i])
        view = self._flat[self._offsets[i]:self._offsets[i + 1]].reshape(side, side)
        view.flags.writeable = False
        return view

    @property
    def size(self) -> int:
        """The odd side every sampled kernel is padded to: the largest kernel at the largest scale."""
        high = self.scale_range[1]
        side = max(3, int(self._sides.max()))  # a bank of 1x1 (sharp) kernels still gives 3x3
        return side if high == 1.0 else max(side, 2 * _scaled_radius(side, high) + 1)

    def draw(self, seed: int, indices) -> dict[str, np.ndarray]:
        """The choices for samples ``indices`` of ``seed``: ``bank_index`` (int64), ``transform``
        (int8, 0-7; 0 without ``augment``), ``scale`` (float32; 1 with the default range)."""
        u = to_uniform(sample_bits(seed, indices, TAG_BANK, 3))
        low, high = self.scale_range
        return {
            "bank_index": np.minimum((u[:, 0] * len(self)).astype(np.int64), len(self) - 1),
            "transform": (u[:, 1] * 8).astype(np.int8) if self.augment else np.zeros(len(u), np.int8),
            "scale": (low * (high / low) ** u[:, 2]).astype(np.float32),
        }

    def sample(self, seed: int, indices) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """Kernels of samples ``indices`` of ``seed``, each at its own odd side (cropped to its
        support), and the draws (``draw`` plus ``seed_index``)."""
        idx = check_indices(indices)
        params = self.draw(seed, idx)
        out = []
        for i, t, s in zip(params["bank_index"], params["transform"], params["scale"]):
            k = dihedral(self.kernel(int(i)), int(t))
            out.append(k if s == 1.0 else scale_kernel(k, float(s)))
        return out, {**params, "seed_index": idx}

    def kernels(self, n: int, seed: int = 0, start: int = 0, size: int | None = None
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Samples ``start`` .. ``start + n - 1`` of ``seed``, as ``random_kernels`` numbers them.

        Args:
            n: number of kernels, >= 1.
            seed: non-negative int.
            start: index of the first sample.
            size: odd side of the output (default ``self.size``); must hold every kernel.

        Returns:
            float32 ``(n, size, size)`` (each sums to 1, centroid on the centre pixel, zero
            padded about the centre) and a dict of 1-D arrays ``bank_index``, ``transform``,
            ``scale``, ``seed_index``.
        """
        n = check_index("n", n, 1, 10**9)
        start = check_index("start", start, 0, MAX_SEED - (n - 1))  # the last index is valid too
        size = self.size if size is None else check_kernel_size(size)
        kernels, params = self.sample(seed, np.arange(start, start + n, dtype=np.int64))
        too_big = [k.shape[0] for k in kernels if k.shape[0] > size]
        if too_big:
            raise ValueError(f"size={size} is smaller than a drawn kernel ({max(too_big)}x{max(too_big)}); "
                             f"use size >= {self.size}")
        return np.stack([pad_to(k, size) for k in kernels]), params


class _Prepared(list):
    """Kernels already prepared by ``load_kernels`` (not prepared twice)."""


def _is_prepared(kernels: Any) -> bool:
    return isinstance(kernels, _Prepared)


def _prepare_all(kernels: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate and prepare in-memory kernels (``KernelBankError`` naming the bad one)."""
    try:
        items = [("", np.asarray(kernels))]  # one array (k, k) or (N, k, k), nested lists too
    except ValueError:  # ragged: a sequence of kernels of different sides
        items = [(f"kernel {i}", np.asarray(k)) for i, k in enumerate(kernels)]
    out = []
    for label, arr in items:
        if arr.ndim not in (2, 3):
            raise KernelBankError(f"kernels must be (k, k), (N, k, k) or a list of (k, k), got shape {arr.shape}")
        out += [_checked(sub, k) for sub, k in _split(label, arr, matlab=False)]
    if not out:
        raise KernelBankError("no kernels given")
    return out
