"""The package's modules import each other without a cycle, counting the imports made inside
functions (a cycle through those works only as long as nobody moves an import to the top)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ufo_rl"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body, ``TYPE_CHECKING`` blocks
    excepted. ``from pkg import sub`` counts as importing ``pkg.sub``, not ``pkg``."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        found: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def visit(node: ast.AST) -> None:
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                return
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                found.update(subs if len(subs) == len(node.names) else [base, *subs])
            for child in ast.iter_child_nodes(node):
                visit(child)

        visit(ast.parse(path.read_text()))
        graph[name] = {m for m in found if m in mods and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "ufo_rl.scorers" in graph["ufo_rl.identity"]  # job_name imports it inside the function
    assert "ufo_rl.config" not in graph["ufo_rl.scorers"]  # only under TYPE_CHECKING


def test_no_import_cycles_in_the_package():
    assert cycles(import_graph()) == []


def test_the_schema_imports_nothing_of_the_project():
    """``ufo_rl/config.py`` is the leaf every module may import; the Hydra glue that needs the
    rest of the project lives in ``ufo_rl/hydra_conf.py``."""
    assert import_graph()["ufo_rl.config"] == set()
