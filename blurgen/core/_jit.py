"""``njit``: numba's ``njit(cache=True)`` with the on-disk cache kept out of the installed package.

Numba's default puts each cached function into the ``__pycache__`` folder beside its source file.
For an installed blurgen that is ``site-packages/blurgen/__pycache__``, a folder pip never
removes (the ``*.nbi``/``*.nbc`` files are not in its record). After ``pip install .`` then
``pip install -e .``, that leftover folder alone is taken by Python for a namespace package named
``blurgen`` that hides the editable install (``ImportError: cannot import name '__version__'``).

So blurgen's own jitted functions cache in the user's cache folder instead:
``$BLURGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/blurgen/numba``, else ``~/.cache/blurgen/numba``
(one sub-folder per source folder, so two installs never share entries; numba checks each entry
against its source file's content). ``NUMBA_CACHE_DIR``, if set, still wins, as numba documents.
If no such folder is writable, a per-user folder in the temporary directory is used; the package
folder is never written. Every jitted module of blurgen takes its decorator from here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import types

import numba

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # blurgen/


def cache_root() -> str:
    """The folder blurgen's compiled functions are cached in (see the module docstring)."""
    explicit = os.environ.get("BLURGEN_CACHE_DIR")
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "blurgen", "numba")


def cache_is_warm(*modules: str) -> bool:
    """Whether numba's cache already holds compiled code of every module named (dotted names of
    blurgen's jitted modules, e.g. ``"blurgen.motion._walk_jit"``), so that the next run does not
    compile (10-60 s on a first run). Reads the cache folders only; imports nothing."""
    if os.environ.get("NUMBA_CACHE_DIR") or os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return True  # someone else's cache rules, or nothing to compile: nothing to announce
    for module in modules:
        path = os.path.join(os.path.dirname(_PACKAGE_DIR), *module.split(".")) + ".py"
        folder = os.path.dirname(path)
        subpath = f"{os.path.basename(folder)}_{hashlib.sha1(folder.encode()).hexdigest()}"
        name = os.path.basename(path)[:-3]
        found = False
        for root in (cache_root(), _fallback_root()):
            with contextlib.suppress(OSError):
                found = found or any(entry.startswith(f"{name}.") and entry.endswith(".nbi")
                                     for entry in os.listdir(os.path.join(root, subpath)))
        if not found:
            return False
    return True


def _fallback_root() -> str:
    return os.path.join(tempfile.gettempdir(), f"blurgen-numba-{os.getuid()}")


def _inside_package(py_file: str) -> bool:
    path = os.path.abspath(py_file)
    return os.path.commonpath([path, _PACKAGE_DIR]) == _PACKAGE_DIR


def _install_locator() -> bool:
    """Put blurgen's locator into numba's list, right after the ``NUMBA_CACHE_DIR`` one; returns
    whether it is in place (False on a numba whose internals differ: then numba's default rules
    apply)."""
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba without the module
        return False
    base = getattr(caching, "_CacheLocator", None)
    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # renamed in 0.6x
    classes = getattr(impl, "_locator_classes", None)
    if base is None or mixin is None or not isinstance(classes, list):  # pragma: no cover
        return False
    if any(getattr(cls, "_blurgen", False) for cls in classes):
        return True

    class BlurgenCacheLocator(mixin, base):
        """Caches functions defined in blurgen's own files under ``cache_root()``."""

        _blurgen = True

        def __init__(self, py_func, py_file, root: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self) -> str:
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.exists(py_file) or not _inside_package(py_file):
                return None  # someone else's function: numba's own rules
            for root in (cache_root(), _fallback_root()):
                locator = cls(py_func, py_file, root)
                try:
                    locator.ensure_cache_path()
                except OSError:
                    continue
                return locator
            return None

    user_provided = getattr(caching, "UserProvidedCacheLocator", None)
    position = classes.index(user_provided) + 1 if user_provided in classes else 0
    classes.insert(position, BlurgenCacheLocator)
    return True


LOCATOR_INSTALLED = _install_locator()


def njit(*args, **kwargs):
    """``numba.njit`` for blurgen's modules: ``cache=True`` caches under ``cache_root()``; on a
    numba whose cache internals this module does not know, caching is dropped (compiled anew in
    each process) rather than written into the package. ``parallel=True`` functions (called from
    Python) become ``ForkSafe`` twins."""
    if kwargs.get("cache") and not (LOCATOR_INSTALLED or os.environ.get("NUMBA_CACHE_DIR")):
        kwargs["cache"] = False
    if kwargs.get("parallel") and not args:
        return lambda func: ForkSafe(func, kwargs)
    return numba.njit(*args, **kwargs)


#: The process whose numba thread pool has run (None: none yet in this process's history).
_POOL_PID: int | None = None


def may_use_pool() -> bool:
    """Whether this process may start or use numba's thread pool: False in a process forked
    from one whose pool has run."""
    return _POOL_PID is None or _POOL_PID == os.getpid()


class ForkSafe:
    """A ``parallel=True`` function that runs a serial compilation of itself in a process forked
    from one whose numba thread pool has already run: GNU OpenMP's pool is not fork-safe (the
    child aborts), which a ``DataLoader`` with forked workers meets as soon as the main process
    has drawn kernels. Same arithmetic per sample either way, so the same arrays. Call it from
    Python only."""

    def __init__(self, func, options: dict) -> None:
        self._parallel = numba.njit(**options)(func)
        serial = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial",
                                    func.__defaults__, func.__closure__)
        serial.__qualname__ = func.__qualname__ + "_serial"  # its own cache entries
        serial.__module__ = func.__module__
        self._serial_func, self._serial = serial, None
        self._options = {k: v for k, v in options.items() if k != "parallel"}
        functools.update_wrapper(self, func)

    def __call__(self, *args):
        return self.run(True, *args)

    def run(self, parallel: bool, *args):
        """The parallel compilation if ``parallel`` and this process may use numba's pool, the
        serial one otherwise (a caller that has one thread to give asks for it: starting the pool
        for one thread costs more than it gives)."""
        global _POOL_PID
        if parallel and may_use_pool():
            _POOL_PID = os.getpid()
            return self._parallel(*args)
        if self._serial is None:
            self._serial = numba.njit(**self._options)(self._serial_func)
        return self._serial(*args)

    def __getattr__(self, name: str):
        return getattr(self._parallel, name)
