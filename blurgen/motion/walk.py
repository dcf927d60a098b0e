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

from typing import Any

import numpy as np

from blurgen.core._rng import wrapping_uint64
from blurgen.core.config import MAX_DRAWS, KernelConfig, check_kernel_size, check_samples
from blurgen.core.streams import TAG_LENGTH, sample_bits, to_uniform
from blurgen.motion import _walk_jit as jit

#: Columns of the samplers' parameter rows, by dtype (their order is the columns' order).
_FLOAT_PARAMS = ("anxiety", "centripetal", "gaussian_shake", "big_shake_prob", "initial_angle_rad",
                 "exposure_fraction")
_INT_PARAMS = ("exposed_steps", "big_shakes", "redraws")
_COLUMNS = (jit.P_ANXIETY, jit.P_CENTRIPETAL, jit.P_GAUSSIAN, jit.P_BIG_PROB, jit.P_ANGLE, jit.P_EXPOSURE,
            jit.P_USED, jit.P_BIG_COUNT, jit.P_REDRAWS)
_PARAM_COLUMNS = {name: (col, np.float32 if name in _FLOAT_PARAMS else np.int32)
                  for name, col in zip(_FLOAT_PARAMS + _INT_PARAMS, _COLUMNS)}


def _resolve_config(config: KernelConfig | None, size: int | None, overrides: dict) -> KernelConfig:
    if config is None:
        config = KernelConfig()
    elif not isinstance(config, KernelConfig):
        raise ValueError(f"config must be a KernelConfig, got {type(config).__name__}")
    if size is not None:
        overrides = {**overrides, "size": size}
    return config.replace(**overrides) if overrides else config


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
    with wrapping_uint64():
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
    xy, params = _sample_batch(jit.trajectories_batch, (config.steps, 2), config, n, seed, start)
    if config.blur_length_px is not None:
        _scale_to_targets(xy, params, config, seed)
    return xy, params


def target_lengths(blur_length_px: tuple[float, float], seed: int, indices: np.ndarray) -> np.ndarray:
    """Target blur lengths (px, float64), log-uniform in ``blur_length_px = (low, high)``, of the
    samples ``indices`` of ``seed``: each from the counter-based stream of ``(seed, i)`` alone.

    Example:
        >>> t = target_lengths((2.0, 32.0), 0, np.arange(5))
        >>> bool(((t >= 2) & (t <= 32)).all()), bool(t[3] == target_lengths((2.0, 32.0), 0, [3])[0])
        (True, True)
    """
    low, high = blur_length_px
    u = to_uniform(sample_bits(seed, indices, TAG_LENGTH, 1))[:, 0]
    return low * (high / low) ** u


def _scale_to_targets(xy: np.ndarray, params: dict, config: KernelConfig, seed: int) -> None:
    """Scale each path (in place) so its exposed part is ``params["blur_length_px"]`` long, the
    target drawn for it, or as long as still fits ``config.size`` once centred on its centroid;
    ``path_length_px`` becomes the length made. A walk path is a polyline of equal steps, so its
    exposed length is exactly ``(exposed_steps - 1) * step``, and scaling keeps its shape."""
    used = params["exposed_steps"].astype(np.int64)
    targets = target_lengths(config.blur_length_px, seed, params["seed_index"])
    lengths = (used - 1) * (config.length_px / (config.steps - 1))
    exposed = np.arange(xy.shape[1])[None, :] < used[:, None]
    points = xy.astype(np.float64)
    centroid = (points * exposed[..., None]).sum(axis=1) / used[:, None]
    reach = np.where(exposed[..., None], np.abs(points - centroid[:, None, :]), 0.0).max(axis=(1, 2))
    half = (config.size - 1) / 2.0
    # 0.999: rasterize's test is strict on one side and sees float32-rounded points.
    fit = np.where(reach > 0, 0.999 * half / np.maximum(reach, 1e-300), np.inf)
    scale = np.where(lengths > 0, np.minimum(targets / np.maximum(lengths, 1e-300), fit), 1.0)
    xy *= scale[:, None, None].astype(np.float32)
    params["blur_length_px"] = targets.astype(np.float32)
    params["path_length_px"] = (lengths * scale).astype(np.float32)


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


def walk_kernels(n: int, size: int | None = None, seed: int = 0, start: int = 0,
                 config: KernelConfig | None = None, **overrides: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random-walk kernels, samples ``start .. start + n - 1`` of ``seed``, and the parameters
    drawn for each (as ``random_trajectories``); ``blurgen.random_kernels`` for a ``KernelConfig``."""
    config = _resolve_config(config, size, overrides)
    if config.blur_length_px is None:
        return _sample_batch(jit.kernels_batch, (config.size, config.size), config, n, seed, start)
    xy, params = random_trajectories(n, config, seed, start)
    psf = np.zeros((len(xy), config.size, config.size), np.float32)
    fitted = jit.rasterize_batch(xy, params["exposed_steps"].astype(np.int64), psf)
    _raise_unfitted(fitted, config, params["seed_index"][0])
    return psf, params
