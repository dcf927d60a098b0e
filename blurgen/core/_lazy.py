"""Lazy package attributes (PEP 562): public names load their module on first access."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, table: dict[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose public names load from modules: ``table``
    maps each module to the names it defines (a space-separated string); a loaded value is stored
    in ``namespace`` (the package globals) so later access is direct."""
    table = {name: module for module, names in table.items() for name in names.split()}
    namespace.setdefault("__all__", list(table))

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", table))

    return __getattr__, __dir__
