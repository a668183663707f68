"""The package's import graph runs one way (no cycles), every module declares its public surface, none is oversized."""

from __future__ import annotations

import ast
from pathlib import Path

import zoo

PACKAGE = Path(zoo.__file__).parent


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> tuple[set[str], list[str]]:
    """Package modules ``name`` imports (resolved), and the ones imported inside functions."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found, nested = set(), []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for t in targets:
            if t.startswith("zoo"):
                found.add(t)
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                relative = isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("zoo"))
                absolute = isinstance(node, ast.Import) and any(a.name.startswith("zoo") for a in node.names)
                if relative or absolute:
                    nested.append(f"{name}.{fn.name}")
    return found, nested


def test_imports_form_no_cycle_and_none_hides_in_a_function():
    modules = _modules()
    graph, nested = {}, []
    for name, path in modules.items():
        found, inner = _imports(name, path)
        graph[name] = {m for m in found if m in modules and m != name}
        nested += inner
    # The CLI sits on top (nothing imports it) and imports its handlers' modules lazily for start-up time: that dodges no cycle.
    nested = [n for n in nested if not n.startswith("zoo.cli.")]
    assert not nested, f"function-level imports of zoo modules: {nested}"
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt == "zoo" or nxt.endswith("__init__"):
                continue
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(trail + [node, nxt])}"
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name != "zoo" and name not in state:
            visit(name, [])


def test_every_module_declares_its_surface_and_stays_small():
    for name, path in _modules().items():
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        text = path.read_text()
        assert path.name == "__init__.py" and name != "zoo" or "__all__" in text, f"{name} has no __all__"
        assert len(text.splitlines()) <= 420, f"{name} has {len(text.splitlines())} lines (keep modules under about 400)"
