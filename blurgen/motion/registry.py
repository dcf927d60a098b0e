"""The motion models: one protocol (``MotionModel``) and one registry of them by name.

A motion model is what makes the blur of a sample: the random-walk kernels of ``shake2d``, the
rotating hand-held camera of ``camera3d``, or kernels read from a file (``bank``). Everything
that chooses a model -- ``make --motion``, ``make_block``, ``random_kernels``, ``blurgen kernels``,
``RandomCameraShake`` -- looks it up here (``get`` by name, ``for_config`` by its settings) and
calls the protocol; nothing else compares model names.

Adding a model is one module with a ``MotionModel`` subclass instance and one line in
``BUILTIN`` (or, from outside the package, ``register(model)`` or the name ``"module:attribute"``,
which works everywhere a name does, spawned worker processes included: they import the module
again).

Example:
    >>> get("shake2d").name, for_config(get("camera3d").config_type()).name
    ('shake2d', 'camera3d')
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

#: Built-in models: name -> "module:attribute" of the model instance, imported on first use.
BUILTIN = {
    "shake2d": "blurgen.motion.shake2d:MODEL",
    "camera3d": "blurgen.motion.camera3d:MODEL",
    "bank": "blurgen.motion.bank_model:MODEL",
}

#: The model of a config that names none, and the one a kernel bank replaces.
DEFAULT = "shake2d"
#: The model of a ``PairsConfig`` with a ``kernel_bank``.
BANK = "bank"

Step = Callable[[np.ndarray], np.ndarray]


class Samples:
    """What a model drew for a block of samples ``start .. start + count - 1``.

    Attributes:
        kernels: float32 ``(count, k, k)``: the kernel stored with each sample (``/kernel``).
        params: name -> 1-D array ``(count,)`` of everything drawn per sample.
        motion: name -> array ``(count, ...)`` of per-sample motion to store (``/motion/<name>``),
            empty for a model that stores none.
    """

    kernels: np.ndarray
    params: dict[str, np.ndarray]
    motion: dict[str, np.ndarray]

    def sample(self, m: int) -> tuple[int, Step]:
        """Margin (pixels of sharp image needed on each side) and linear blur step of sample ``m``
        of the block: the step maps the linear crop (output + 2 margins) to the blurred output."""
        raise NotImplementedError


class MotionModel:
    """A motion model. Subclasses set ``name``, ``config_type`` (its frozen settings class) and
    ``config_field`` (the ``PairsConfig`` field that holds those settings) and implement the
    methods below. Instances must pickle (they travel to worker processes by reference)."""

    name: str = ""
    config_type: type = type(None)
    config_field: str = "kernel"
    #: Command-line options (click parameter names) that only this model reads.
    cli_options: tuple[str, ...] = ()

    def make_options(self, options: dict[str, Any], given: set[str]) -> dict[str, Any]:
        """``blurgen make``'s own defaults where they differ from the settings class's:
        ``options`` (command-line values as typed, by name) completed, ``given`` being the
        names on the command line. None by default."""
        return options

    def settings(self, pairs: Any) -> Any:
        """This model's settings inside a ``PairsConfig``."""
        return getattr(pairs, self.config_field)

    def kernel_size(self, config: Any) -> int:
        """Side of the stored kernels, and bound of every blur, for settings ``config``."""
        return config.size

    def check_config(self, config: Any) -> None:
        """Raise ``ValueError`` for settings that would stop a long run (a kernel too small for the
        paths); costs milliseconds."""

    def check(self, pairs: Any, fresh: bool = True) -> str:
        """Check ``pairs`` before work (raise ``ValueError``: a kernel too small for the paths, an
        unusable file); returns a fingerprint of any input file ("" for none) that a resumed run
        must find again (``fresh``: read such files again)."""
        self.check_config(self.settings(pairs))
        return ""

    def pin(self, pairs: Any) -> None:
        """Keep the inputs ``check`` saw (a file's contents) for the rest of this process: a run
        never reloads them."""

    def draw(self, pairs: Any, seed: int, start: int, count: int) -> Samples:
        """Samples ``start .. start + count - 1`` of a dataset with settings ``pairs``."""
        raise NotImplementedError

    def kernels(self, config: Any, n: int, seed: int = 0, start: int = 0) -> tuple[np.ndarray, dict]:
        """``n`` kernels, samples ``start ..`` of ``seed``, and their parameters (what
        ``random_kernels`` and the augmentation take)."""
        raise NotImplementedError

    def kernels_at(self, config: Any, seed: int, indices: np.ndarray) -> tuple[list[np.ndarray], dict]:
        """Kernels of any sample indices (what the augmentation asks for) and their parameters:
        one ``kernels`` call per run of consecutive indices."""
        kernels, params = [], []
        for first, length in _runs(np.asarray(indices, np.int64)):
            k, p = self.kernels(config, length, seed, first)
            kernels += list(k)
            params.append(p)
        return kernels, {name: np.concatenate([p[name] for p in params]) for name in params[0]}

    def config_from_options(self, size: int, options: dict[str, Any]) -> Any:
        """This model's settings from command-line values (``cli_options`` and the kernel size);
        ``ValueError`` naming the field for a bad value. By default the options are the
        settings' own field names."""
        return self.config_type(size=size, **{name: options[name] for name in self.cli_options if name in options})

    def sheet(self, config: Any, n: int, seed: int, start: int, scale: int) -> tuple[list[np.ndarray], int]:
        """Pictures for ``blurgen kernels --out sheet.png``: RGB tiles (each labelled with its sample
        index) and the number of columns."""
        from blurgen.inspect.preview import caption, kernel_tile

        kernels, _ = self.kernels(config, n, seed, start)
        return [caption(kernel_tile(k, scale), f"#{start + i}") for i, k in enumerate(kernels)], int(np.ceil(np.sqrt(n)))

    def sheet_title(self, config: Any) -> str:
        """What a kernels sheet of this model shows (its title line)."""
        return f"{self.name}: one kernel per sample"

    def sheet_tiles(self, config: Any, n: int) -> int:
        """How many pictures ``sheet`` draws for ``n`` samples."""
        return n

    def __reduce__(self):
        # By reference: a worker imports the model's module again rather than copying state.
        return _model_at, (_path_of(self),)


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Runs ``(first index, length)`` of consecutive sample indices, in order."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(indices)]])
    return [(int(indices[s]), int(e - s)) for s, e in zip(starts, ends)]


_MODELS: dict[str, MotionModel] = {}
_PATHS: dict[int, str] = {}


def _path_of(model: MotionModel) -> str:
    return _PATHS.get(id(model)) or BUILTIN.get(model.name) or f"{type(model).__module__}:{model.name}"


def _model_at(path: str) -> MotionModel:
    return get(path)


def _import(path: str) -> MotionModel:
    module_name, _, attribute = path.partition(":")
    try:
        model = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # the user's module, whatever it raises while importing: one line
        raise ValueError(f"motion model {path!r} cannot be imported: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, MotionModel):
        raise ValueError(f"{path!r} is not a blurgen MotionModel (got {type(model).__name__})")
    return model


def register(model: MotionModel, path: str | None = None) -> MotionModel:
    """Make ``model`` known by ``model.name`` in this process. ``path`` (``"module:attribute"``)
    is how other processes find it (default: the model's module and name)."""
    if not isinstance(model, MotionModel) or not model.name:
        raise ValueError("register() takes a MotionModel instance with a name")
    _MODELS[model.name] = model
    if path:
        _PATHS[id(model)] = path
    return model


def get(name: str | MotionModel) -> MotionModel:
    """The model called ``name`` (built-in, registered, or ``"module:attribute"``)."""
    if isinstance(name, MotionModel):
        return name
    if not isinstance(name, str) or not name:
        raise ValueError(f"motion must be a model name, got {name!r}")
    if name in _MODELS:
        return _MODELS[name]
    if name in BUILTIN:
        return register(_import(BUILTIN[name]))
    if ":" in name:
        model = _import(name)
        _PATHS[id(model)] = name
        return model
    known = ", ".join(n for n in names() if n != BANK)
    raise ValueError(f"unknown motion model {name!r}; known: {known} (or module:attribute)")


def names() -> list[str]:
    """Built-in and registered model names."""
    return list(dict.fromkeys([*BUILTIN, *_MODELS]))


def for_config(config: Any) -> MotionModel:
    """The model whose settings class ``config`` is (``None``: ``shake2d``)."""
    if config is None:
        return get(DEFAULT)
    for name in names():
        model = get(name)
        if type(config) is model.config_type:
            return model
    raise ValueError(f"config must be a KernelConfig or a CameraConfig (or a KernelBank, or a registered motion "
                     f"model's settings), got {type(config).__name__}")
