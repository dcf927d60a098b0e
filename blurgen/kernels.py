"""Random camera-shake trajectories and their blur kernels (PSFs).

The model is the Markov camera shake of Boracchi & Foi (2012) as DeblurGAN uses it: a path of
``steps`` samples and exactly ``length_px`` pixels whose velocity has inertia, Gaussian jitter, a
centripetal pull back to the start and rare impulsive "big shakes". A kernel is the bilinear
(sub-pixel) splat of the path from t = 0 to the exposure fraction f, shifted so its weighted
centroid lies exactly on the centre pixel: a blurred image is not displaced against its sharp twin.

Sample ``i`` under seed ``s`` depends on ``(s, i)`` alone, so ``random_kernels(n, seed=s,
start=j)[m]`` is sample ``j + m`` whatever the batch size, thread count or worker split.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from blurgen import _kernels_jit as jit
from blurgen.config import MAX_KERNEL_SIZE, MAX_SEED, KernelConfig, check_index, check_kernel_size
from blurgen.kernel_shape import crop_to_support, support_radius  # noqa: F401 (part of this module's API)

#: Paths tried per sample before a configuration is declared infeasible for its kernel size.
MAX_DRAWS = 1000

_PARAM_COLUMNS = {
    "anxiety": (jit.P_ANXIETY, np.float32),
    "centripetal": (jit.P_CENTRIPETAL, np.float32),
    "gaussian_shake": (jit.P_GAUSSIAN, np.float32),
    "big_shake_prob": (jit.P_BIG_PROB, np.float32),
    "initial_angle_rad": (jit.P_ANGLE, np.float32),
    "exposure_fraction": (jit.P_EXPOSURE, np.float32),
    "exposed_steps": (jit.P_USED, np.int32),
    "big_shakes": (jit.P_BIG_COUNT, np.int32),
    "redraws": (jit.P_REDRAWS, np.int32),
}


def check_samples(n: Any, seed: Any, start: Any) -> tuple[int, int, int]:
    """Validated sample count, seed and first index (the last index, start + n - 1, must be a
    valid index too)."""
    n, seed, start = check_index("n", n, 1, 10**9), check_index("seed", seed, 0), check_index("start", start, 0)
    if start > MAX_SEED - (n - 1):
        raise ValueError(f"start + n - 1 (the last sample index) must be <= {MAX_SEED}, got {start + n - 1}")
    return n, seed, start


def _resolve_config(config: KernelConfig | None, size: int | None, overrides: dict) -> KernelConfig:
    if config is None:
        config = KernelConfig()
    elif not isinstance(config, KernelConfig):
        raise ValueError(f"config must be a KernelConfig or a CameraConfig, got {type(config).__name__}")
    if size is not None:
        overrides = {**overrides, "size": size}
    return config.replace(**overrides) if overrides else config


@contextlib.contextmanager
def _wrapping_uint64():
    # Under NUMBA_DISABLE_JIT=1 the RNG runs on NumPy uint64 scalars, whose (intended) wrap-around
    # would warn; compiled code never does.
    with np.errstate(over="ignore"):
        yield


def _model(config: KernelConfig) -> tuple:
    """The model tuple the Numba samplers take (fixed dtypes: one compilation)."""
    return (
        np.int64(config.steps), np.float64(config.length_px),
        np.asarray(config.anxiety, dtype=np.float64), np.float64(config.centripetal_max),
        np.float64(config.gaussian_shake_max), np.float64(config.big_shake_prob_max),
        np.asarray(config.exposures, dtype=np.float64), np.int64(config.size), np.int64(MAX_DRAWS),
    )


def _params_dict(raw: np.ndarray, config: KernelConfig, start: int) -> dict[str, np.ndarray]:
    params = {name: raw[:, col].astype(dtype) for name, (col, dtype) in _PARAM_COLUMNS.items()}
    step_px = config.length_px / (config.steps - 1)
    params["path_length_px"] = ((raw[:, jit.P_USED] - 1) * step_px).astype(np.float32)
    params["seed_index"] = np.arange(start, start + raw.shape[0], dtype=np.int64)
    return params


def _raise_unfitted(fitted: np.ndarray, config: KernelConfig, start: int) -> None:
    if not fitted.all():
        bad = int(np.flatnonzero(~fitted)[0])
        raise ValueError(
            f"size={config.size} is too small for length_px={config.length_px}: no path of sample "
            f"{start + bad} fitted the kernel after {MAX_DRAWS} draws; use a larger size"
        )


def _sample_batch(batch, out_shape: tuple, config: KernelConfig, n: Any, seed: Any, start: Any):
    """Run a Numba sampler (paths or kernels) over samples start .. start + n - 1 of ``seed``
    into a new zeroed float32 array ``(n, *out_shape)``; returns it and the parameters dict."""
    n, seed, start = check_samples(n, seed, start)
    out = np.zeros((n, *out_shape), np.float32)  # see _kernels_jit: NumPy memory is faster to fill
    with _wrapping_uint64():
        raw, fitted = batch(np.int64(seed), np.int64(start), _model(config), out)
    _raise_unfitted(fitted, config, start)
    return out, _params_dict(raw, config, start)


def random_trajectories(n: int, config: KernelConfig | None = None, seed: int = 0, start: int = 0,
                        **overrides: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw ``n`` camera-shake paths, samples ``start`` .. ``start + n - 1`` of ``seed``.

    Each path is one that fits ``config.size`` for its drawn exposure (a sample whose path does
    not is redrawn whole, parameters included, from its own stream and counted in
    ``params["redraws"]``), so
    ``rasterize(xy, config.size, params["exposure_fraction"])`` equals ``random_kernels``.

    Args:
        n: number of samples, >= 1.
        config: the model (default ``KernelConfig()``); ``**overrides`` replace its fields.
        seed: non-negative int.
        start: index of the first sample, non-negative.

    Returns:
        ``xy``: float32 ``(n, steps, 2)``, pixels, (x, y), starting at (0, 0);
        ``params``: dict of 1-D arrays, one value per sample (``anxiety``, ``centripetal``,
        ``gaussian_shake``, ``big_shake_prob``, ``initial_angle_rad``, ``exposure_fraction``,
        ``exposed_steps``, ``path_length_px``, ``big_shakes``, ``redraws``, ``seed_index``).

    Example:
        >>> xy, params = random_trajectories(2, seed=1)
        >>> xy.shape, xy.dtype.name, sorted(params)[:2]
        ((2, 2000, 2), 'float32', ['anxiety', 'big_shake_prob'])
    """
    config = _resolve_config(config, None, overrides)
    return _sample_batch(jit.trajectories_batch, (config.steps, 2), config, n, seed, start)


def rasterize(xy: np.ndarray, size: int = 65, exposure: float | np.ndarray = 1.0) -> np.ndarray:
    """Bilinear-splat paths into centred, normalised kernels.

    Args:
        xy: float32-compatible ``(n, steps, 2)`` (or one path ``(steps, 2)``), pixels, (x, y).
        size: odd kernel side >= 3.
        exposure: fraction in (0, 1] of the path used (from t = 0), scalar or one per path.

    Returns:
        float32 ``(n, size, size)`` (``(size, size)`` for one path): non-negative, sum 1, weighted
        centroid on pixel ``((size-1)/2, (size-1)/2)``; row = y, column = x.

    Raises:
        ValueError: bad arguments, or a path whose exposed part does not fit ``size`` once centred
        (it is never clipped: clipping would break the sum and the centring).

    Example:
        >>> line = np.stack([np.linspace(0, 10, 101), np.zeros(101)], axis=1)
        >>> k = rasterize(line, size=15)
        >>> k.shape, round(float(k.sum()), 5), round(float(k[7].sum()), 5)  # all on row y = 7
        ((15, 15), 1.0, 1.0)
    """
    size = check_kernel_size(size)
    arr = np.asarray(xy)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"xy must hold real numbers, got dtype {arr.dtype}")
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[2] != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"xy must have shape (n, steps, 2) or (steps, 2), got {np.shape(xy)}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("xy must be finite")
    try:
        exposure_arr = np.broadcast_to(np.asarray(exposure, dtype=np.float64), (arr.shape[0],))
    except (TypeError, ValueError):
        raise ValueError(f"exposure must be one number or one per path ({arr.shape[0]}), got "
                         f"{np.shape(exposure) or exposure!r}") from None
    if not (np.all(exposure_arr > 0) and np.all(exposure_arr <= 1)):
        raise ValueError(f"exposure must be in (0, 1], got {exposure!r}")
    steps = arr.shape[1]
    used = np.array([jit.samples_for_exposure(steps, f) for f in exposure_arr], dtype=np.int64)
    psf = np.zeros((arr.shape[0], size, size), np.float32)
    fitted = jit.rasterize_batch(arr, used, psf)
    if not fitted.all():
        bad = int(np.flatnonzero(~fitted)[0])
        raise ValueError(f"path {bad} does not fit a {size}x{size} kernel once centred; use a larger size")
    return psf[0] if single else psf


def _is_camera_config(config: Any) -> bool:
    # Imported here: the camera package loads only when a camera model is asked for.
    from blurgen.camera.config import CameraConfig

    return isinstance(config, CameraConfig)


def random_kernels_with_params(n: int, size: int | None = None, seed: int = 0, start: int = 0,
                               config: KernelConfig | Any | None = None, **overrides: Any
                               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``random_kernels`` plus the parameters drawn for each sample (as ``random_trajectories``;
    for a ``CameraConfig``, as ``blurgen.random_camera_motion`` plus ``position_x``/``position_y``)."""
    if config is not None and not isinstance(config, KernelConfig) and _is_camera_config(config):
        from blurgen.camera.kernels import camera_kernels_with_params

        return camera_kernels_with_params(n, size, seed, start, config, **overrides)
    config = _resolve_config(config, size, overrides)
    return _sample_batch(jit.kernels_batch, (config.size, config.size), config, n, seed, start)


def random_kernels(n: int, size: int | None = None, seed: int = 0, start: int = 0,
                   config: KernelConfig | Any | None = None, **overrides: Any) -> np.ndarray:
    """Draw ``n`` random camera-shake blur kernels, samples ``start`` .. ``start + n - 1``.

    Args:
        n: number of kernels, >= 1.
        size: odd kernel side >= 3 (default ``config.size``, 65).
        seed: non-negative int; sample i depends only on (seed, i).
        start: index of the first sample.
        config: ``KernelConfig``; ``**overrides`` replace its fields (e.g. ``exposures=(0.5,)``).
            A ``blurgen.CameraConfig`` instead gives, per sample, the local kernel of a rotating
            hand-held camera at a position drawn uniformly over its frame (see
            ``random_kernels_with_params`` for the position and the other draws).

    Returns:
        float32 ``(n, size, size)``, non-negative, each summing to 1 with its weighted centroid on
        the centre pixel.

    Example:
        >>> k = random_kernels(4, size=31, seed=7, length_px=20.0)
        >>> k.shape, bool(abs(k.sum(axis=(1, 2)) - 1).max() < 1e-5)
        ((4, 31, 31), True)
    """
    return random_kernels_with_params(n, size, seed, start, config, **overrides)[0]


#: A model whose paths need more redraws than this per sample on average is refused before work:
#: at 30 (a first draw fits with p ~ 1/31) a sample fails all MAX_DRAWS draws with probability
#: (1 - p)^1000 ~ 1e-14, so even 10^8 samples are safe; a run does not stop half-way.
MAX_MEAN_REDRAWS = 30
#: The private stream the fit check draws from (not any dataset's seed: it only measures).
FIT_CHECK_SEED = 0x0F17_C4EC


def mean_redraws(config: Any, samples: int = 64) -> float:
    """Mean redraws per sample of ``config`` (how often a path does not fit ``config.size``),
    measured on ``samples`` samples of a fixed private stream; stops early, returning a value over
    ``MAX_MEAN_REDRAWS``, once the model is clearly too tight, and returns ``MAX_DRAWS`` when a
    sample fits in none of its draws."""
    if isinstance(config, KernelConfig):
        draw = random_trajectories
    else:  # a CameraConfig: its motions are redrawn when a local kernel outgrows the size
        from blurgen.camera.motion import random_camera_motion as draw
    total = drawn = 0
    while drawn < samples:
        try:
            _, params = draw(8, config, seed=FIT_CHECK_SEED, start=drawn)
        except ValueError:  # some sample found no fitting path in MAX_DRAWS draws
            return float(MAX_DRAWS)
        total += int(params["redraws"].sum())
        drawn += 8
        if drawn >= 16 and total / drawn > 2 * MAX_MEAN_REDRAWS:
            break
    return total / drawn


def check_kernel_fits(config: Any) -> None:
    """Raise ``ValueError`` (naming a size that works) when ``config.size`` is so small for the
    paths (of a ``KernelConfig`` or a ``CameraConfig``) that a long run would stop at a sample
    with no fitting path in ``MAX_DRAWS`` draws.
    Call it before long work; it costs a few milliseconds for a workable model."""
    mean = mean_redraws(config)
    if mean <= MAX_MEAN_REDRAWS:
        return
    size = config.size
    while size < MAX_KERNEL_SIZE:
        size = min(MAX_KERNEL_SIZE, size + 2 * max(1, size // 8))
        if mean_redraws(config.replace(size=size)) <= MAX_MEAN_REDRAWS:
            break
    what = (f"length_px={config.length_px:g}" if isinstance(config, KernelConfig)
            else "this camera's shake (exposure, focal length, shake scale)")
    shorter = "a shorter length_px" if isinstance(config, KernelConfig) else "shorter exposures or less shake"
    raise ValueError(f"size={config.size} is too small for {what}: its paths needed {mean:.0f} redraws each "
                     f"on average to fit (a run stops at a sample with no fit in {MAX_DRAWS} draws); use "
                     f"size >= {size} or {shorter}")
