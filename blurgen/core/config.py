"""Validated, frozen configuration of the camera-shake kernel model."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

DEFAULT_ANXIETY = (0.01, 0.009, 0.008, 0.007, 0.005, 0.003)
#: Smallest anxiety and path length. The walk renormalises the velocity by sqrt(vx^2 + vy^2),
#: whose squares underflow to 0 for velocities near 1e-154 px/step (an anxiety of about 1e-300
#: gave all-zero kernels); these floors keep far away from that and far below any useful value.
MIN_ANXIETY = 1e-6
MIN_LENGTH_PX = 1e-6
#: Range a drawn blur length (``blur_length_px``) may take, px.
BLUR_LENGTH_RANGE_PX = (0.01, 1e4)
MAX_KERNEL_SIZE = 1025
MAX_STEPS = 1_000_000
#: Paths tried per sample before a configuration is declared infeasible for its kernel size.
MAX_DRAWS = 1000
#: Largest seed or sample index (the RNG keys on int64).
MAX_SEED = 2**63 - 1
#: Output image sides a dataset may have, in pixels.
MIN_SIDE, MAX_SIDE = 32, 16384
#: Most pairs one dataset may plan (10^8 of the smallest, 32x32, take ~0.6 TB).
MAX_PAIRS = 10**8
#: Image files blurgen reads (sources, GoPro pairs, `blurgen deblur` folders): what OpenCV decodes.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")


def is_off(value: Any) -> bool:
    """A command-line ``off`` (any case, spaces around): an optional range switched off."""
    return isinstance(value, str) and value.strip().lower() == "off"


def _is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_index(name: str, value: Any, lo: int, hi: int = MAX_SEED) -> int:
    """Validate an integer (Python or NumPy, not bool) in [lo, hi]: a seed, sample index, count
    or size. Returns it as an int."""
    if not _is_int(value) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def check_number(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """Validate a finite real number (Python or NumPy, not bool) in [lo, hi] (or (lo, hi]).
    Returns it as a float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_pair(name: str, value: Any, lo: float, hi: float, integer: bool = False) -> tuple:
    """Validate a ``(low, high)`` pair with lo <= low <= high <= hi (whole numbers if
    ``integer``). Returns it as floats (ints)."""
    kind = "integers" if integer else "numbers"
    message = f"{name} must be a pair (low, high) of {kind} with {lo} <= low <= high <= {hi}, got {value!r}"
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ValueError(message) from None
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(message)
        if integer and float(v) != int(v):
            raise ValueError(message)
    if not lo <= low <= high <= hi:
        raise ValueError(message)
    return (int(low), int(high)) if integer else (float(low), float(high))


def _check_choices(name: str, values: Any, lo: float, hi: float, *, lo_open: bool = True) -> tuple[float, ...]:
    """A non-empty tuple of numbers each in (lo, hi] (or [lo, hi])."""
    interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, (str, bytes)):  # iterating would judge its characters one by one
        raise ValueError(f"{name} must be a non-empty sequence of numbers in {interval}, got {values!r}")
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a non-empty sequence of numbers in {interval}, got {values!r}") from None
    if not values:
        raise ValueError(f"{name} must be a non-empty sequence of numbers in {interval}, got ()")
    return tuple(check_number(f"{name} value", v, lo, hi, lo_open=lo_open) for v in values)


def check_samples(n: Any, seed: Any, start: Any) -> tuple[int, int, int]:
    """Validated sample count, seed and first index (the last index, start + n - 1, must be a
    valid index too)."""
    n, seed, start = check_index("n", n, 1, 10**9), check_index("seed", seed, 0), check_index("start", start, 0)
    if start > MAX_SEED - (n - 1):
        raise ValueError(f"start + n - 1 (the last sample index) must be <= {MAX_SEED}, got {start + n - 1}")
    return n, seed, start


class ConfigMixin:
    """``replace`` / ``to_dict`` / ``to_json`` / ``from_dict`` for the frozen config dataclasses.

    Nested configs become nested dicts and tuples become lists in JSON; ``from_dict`` turns them
    back by looking at the default instance's field values, so every config round-trips.
    """

    def replace(self, **overrides: Any):
        """A copy with some fields changed; unknown names raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} field(s) {unknown}; allowed: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, ConfigMixin) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        defaults = cls()
        values = {}
        for name, value in data.items():
            default = getattr(defaults, name, None)
            if isinstance(default, ConfigMixin) and isinstance(value, dict):
                value = type(default).from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[name] = value
        return defaults.replace(**values)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


def check_kernel_size(size: Any, name: str = "size") -> int:
    """Validate an odd kernel size >= 3; returns it."""
    if not _is_int(size) or not 3 <= size <= MAX_KERNEL_SIZE or size % 2 == 0:
        raise ValueError(f"{name} must be an odd integer in [3, {MAX_KERNEL_SIZE}], got {size!r}")
    return int(size)


@dataclass(frozen=True)
class KernelConfig(ConfigMixin):
    """Random camera-shake kernel model (Boracchi & Foi 2012, as DeblurGAN uses it).

    Each sample draws one ``anxiety`` and one exposure fraction uniformly from the tuples, and
    ``centripetal``, ``gaussian_shake``, ``big_shake_prob`` as ``max * U(0, 1)``.

    Attributes:
        steps: path samples (>= 2); the path is exactly ``length_px`` long over all of them.
        length_px: length of the whole path in pixels, in [1e-6, 1e4].
        anxiety: choices for the shake strength, each in [1e-6, 0.1] (the first contract said (0, 0.1]; values
            near 1e-300 underflow, so the floor is ``MIN_ANXIETY``).
        centripetal_max: upper bound of the pull back to the start, in [0, 10].
        gaussian_shake_max: upper bound of the Gaussian jitter factor, in [0, 100].
        big_shake_prob_max: upper bound of the big-shake probability factor, in [0, 1].
        exposures: choices for the exposure fraction (the path from t = 0 to f), each in (0, 1].
        size: odd kernel side in pixels, >= 3.
        blur_length_px: ``None`` (every path is ``length_px`` long over a full exposure, the
            DeblurGAN recipe) or ``(low, high)`` in [0.01, 1e4]: per sample a target length is drawn
            log-uniformly in it from the counter-based stream of ``(seed, i)`` and the sample's
            exposed path is scaled to exactly that length (its shape is the walk's); a target
            that cannot fit ``size`` once centred is cut to the longest that fits. The target is
            recorded as ``params["blur_length_px"]``, the length made as ``path_length_px``.
    """

    steps: int = 2000
    length_px: float = 60.0
    anxiety: tuple[float, ...] = DEFAULT_ANXIETY
    centripetal_max: float = 0.7
    gaussian_shake_max: float = 10.0
    big_shake_prob_max: float = 0.2
    exposures: tuple[float, ...] = (1.0,)
    size: int = 65
    blur_length_px: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_index("steps", self.steps, 2, MAX_STEPS))
        object.__setattr__(self, "length_px", check_number("length_px", self.length_px, MIN_LENGTH_PX, 1e4))
        object.__setattr__(self, "anxiety", _check_choices("anxiety", self.anxiety, MIN_ANXIETY, 0.1, lo_open=False))
        object.__setattr__(self, "centripetal_max", check_number("centripetal_max", self.centripetal_max, 0.0, 10.0))
        object.__setattr__(self, "gaussian_shake_max",
                           check_number("gaussian_shake_max", self.gaussian_shake_max, 0.0, 100.0))
        object.__setattr__(self, "big_shake_prob_max",
                           check_number("big_shake_prob_max", self.big_shake_prob_max, 0.0, 1.0))
        object.__setattr__(self, "exposures", _check_choices("exposures", self.exposures, 0.0, 1.0))
        object.__setattr__(self, "size", check_kernel_size(self.size))
        if self.blur_length_px is not None:
            object.__setattr__(self, "blur_length_px",
                               check_pair("blur_length_px", self.blur_length_px, *BLUR_LENGTH_RANGE_PX))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.blur_length_px is None:  # unset: the dict (file attributes, manifests) it was before
            del data["blur_length_px"]
        return data
