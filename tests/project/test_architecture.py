"""The shape of the code, enforced: no import circles among blurgen's modules, motion models chosen
through the registry only, no module over 500 lines and no (non-Numba) function over 60 lines."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Folder -> import name of each part of the distribution.
PACKAGES = {"blurgen": ROOT / "blurgen", "blurgen.cli": ROOT / "cli", "blurgen.deblur": ROOT / "deblur"}
MODEL_NAMES = ("shake2d", "camera3d", "bank")
#: Where a motion model's name may be compared: the registry and the modules that define models.
MODEL_MODULES = {"blurgen.motion.registry", "blurgen.motion.shake2d", "blurgen.motion.camera3d",
                 "blurgen.motion.bank_model"}


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "blurgen" and name.startswith(("blurgen.cli", "blurgen.deblur")):
                continue
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, tree: ast.AST) -> set[str]:
    """blurgen modules ``name`` imports anywhere in its code (also inside functions)."""
    out = set()
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return result


def test_no_import_circles_among_blurgen_modules():
    graph = {name: _imports(name, ast.parse(path.read_text())) for name, path in MODULES.items()}
    assert sum(len(v) for v in graph.values()) > 100  # the scan sees the imports at all
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _name_comparisons(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for side in [node.left, *node.comparators]:
            values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            if any(isinstance(v, ast.Constant) and v.value in MODEL_NAMES for v in values):
                lines.append(node.lineno)
    return lines


def test_no_string_comparison_with_a_motion_model_name_outside_the_registry_and_the_models():
    found = {name: _name_comparisons(ast.parse(path.read_text())) for name, path in MODULES.items()
             if name not in MODEL_MODULES}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert _name_comparisons(ast.parse('if motion == "camera3d" or m in ("x", "shake2d"): pass')) == [1, 1]


def _is_numba(func: ast.AST) -> bool:
    return any("jit" in ast.unparse(d) for d in func.decorator_list)


SOURCES = sorted([*MODULES.values(), *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "tools").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_500_lines_and_no_function_over_60(path):
    text = path.read_text()
    assert text.count("\n") <= 500, f"{path.name}: {text.count(chr(10))} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_numba(node)
            and node.end_lineno - node.lineno + 1 > 60]
    assert long == []
