"""The public kernel functions over every motion model: ``random_kernels`` and friends pick the
model from the settings they are given (``blurgen.motion.registry.for_config``) or by name.

Sample ``i`` under seed ``s`` depends on ``(s, i)`` alone, so ``random_kernels(n, seed=s,
start=j)[m]`` is sample ``j + m`` whatever the batch size, thread count or worker split, and it is
the kernel a dataset made with the same seed and settings stores at index ``j + m``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blurgen.motion import registry


def _model_and_config(config: Any, size: int | None, motion: Any, overrides: dict) -> tuple:
    model = registry.get(motion) if motion is not None else registry.for_config(config)
    if config is None:
        config = model.config_type()
    elif not isinstance(config, model.config_type):
        raise ValueError(f"config must be a {model.config_type.__name__} for motion {model.name}, "
                         f"got {type(config).__name__}")
    if size is not None:
        overrides = {**overrides, "size": size}
    if overrides:
        if not hasattr(config, "replace"):
            raise ValueError(f"{type(config).__name__} takes no overrides, got {sorted(overrides)}")
        config = config.replace(**overrides)
    return model, config


def random_kernels_with_params(n: int, size: int | None = None, seed: int = 0, start: int = 0,
                               config: Any = None, motion: Any = None, **overrides: Any
                               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``random_kernels`` plus the parameters drawn for each sample (for a ``KernelConfig``, as
    ``random_trajectories``; for a ``CameraConfig``, as ``blurgen.random_camera_motion`` plus
    ``position_x``/``position_y``; for a ``KernelBank``, its draws)."""
    model, config = _model_and_config(config, size, motion, overrides)
    return model.kernels(config, n, seed, start)


def random_kernels(n: int, size: int | None = None, seed: int = 0, start: int = 0,
                   config: Any = None, motion: Any = None, **overrides: Any) -> np.ndarray:
    """Draw ``n`` random camera-shake blur kernels, samples ``start`` .. ``start + n - 1``.

    Args:
        n: number of kernels, >= 1.
        size: odd kernel side >= 3 (default ``config.size``, 65).
        seed: non-negative int; sample i depends only on (seed, i).
        start: index of the first sample.
        config: the motion model's settings: ``KernelConfig`` (the default: random-walk camera
            shake), a ``blurgen.CameraConfig`` (per sample, the local kernel of a rotating
            hand-held camera at a position drawn uniformly over its frame), or a
            ``blurgen.KernelBank``; ``**overrides`` replace its fields (e.g. ``exposures=(0.5,)``).
        motion: a model name or instance (``blurgen.motion.registry``) when ``config`` alone does
            not say (models that share a settings class).

    Returns:
        float32 ``(n, size, size)``, non-negative, each summing to 1 with its weighted centroid on
        the centre pixel.

    Example:
        >>> k = random_kernels(4, size=31, seed=7, length_px=20.0)
        >>> k.shape, bool(abs(k.sum(axis=(1, 2)) - 1).max() < 1e-5)
        ((4, 31, 31), True)
    """
    return random_kernels_with_params(n, size, seed, start, config, motion, **overrides)[0]


def check_kernel_fits(config: Any, motion: Any = None) -> None:
    """Raise ``ValueError`` (naming a size that works) when ``config.size`` is too small for the
    model's paths: a long run would stop at a sample with no fitting path. Milliseconds."""
    model, config = _model_and_config(config, None, motion, {})
    model.check_config(config)
