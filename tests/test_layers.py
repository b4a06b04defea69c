"""The package's import graph: no cycles, and the layers of docs/architecture.md hold.

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of a ragloop module, at module level or inside a function, relative ones
resolved. Imports under ``if TYPE_CHECKING:`` are left out, since they never run. ``from pkg
import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``; parent packages
are not edges of their own, or every ``__init__`` that re-exports a submodule would look like a
cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layer -> the layers it must never import (docs/architecture.md).
FORBIDDEN = {
    "core": {"ingest", "finetune", "eval", "service", "cli", "integrations", "client"},
    "ingest": {"service", "cli"},
    "finetune": {"service", "cli"},
    "eval": {"service", "cli"},
    "service": {"cli"},
}


@dataclass(frozen=True)
class ImportEdge:
    """One import statement of a ragloop module by another."""

    source: str
    target: str
    #: The importing file, relative to the source root.
    file: Path
    line: int

    def describe(self) -> str:
        """``path:line: a imports b``, the form every failure message uses."""
        return f"{self.file}:{self.line}: {self.source} imports {self.target}"


def module_name(root: Path, file: Path) -> str:
    """The dotted module name of ``file`` under the source root ``root``."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    # A walk that does not enter the body of ``if TYPE_CHECKING:`` (its ``else`` does run).
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str = "ragloop") -> list[ImportEdge]:
    """Every run-time import of one ``package`` module by another, read from the source."""
    files = {module_name(root, f): f for f in sorted((root / package).rglob("*.py"))}
    edges: list[ImportEdge] = []
    for name, file in files.items():
        is_package = file.name == "__init__.py"
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in _runtime_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    # Relative: strip the module itself (not for a package), then level - 1.
                    anchor = name.split(".")[: None if is_package else -1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            for target in dict.fromkeys(targets):
                if target.split(".")[0] == package and target != name:
                    # ``import a.b.c`` of a module runs a.b.c; keep the longest known prefix.
                    while target not in files and "." in target:
                        target = target.rsplit(".", 1)[0]
                    edges.append(ImportEdge(name, target, file.relative_to(root), node.lineno))
    return edges


def find_cycles(edges: list[ImportEdge]) -> list[list[ImportEdge]]:
    """One closed path of edges through each strongly connected group of modules (Tarjan)."""
    graph: dict[str, list[ImportEdge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
        graph.setdefault(edge.target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, list[ImportEdge]], group: set[str]) -> list[ImportEdge]:
    # Breadth-first from the group's first module back to itself, inside the group.
    start = min(group)
    came_by: dict[str, ImportEdge] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came_by[path[0].source])
                    return path
                if edge.target in group and edge.target not in came_by:
                    came_by[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group has one


def layer_of(module: str) -> str:
    """``ragloop.core.x`` -> ``core``; ``ragloop.client`` -> ``client``; the root -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(edges: list[ImportEdge]) -> list[str]:
    """Each import that goes against ``FORBIDDEN``, described with its file and line."""
    bad = []
    for edge in edges:
        src, dst = layer_of(edge.source), layer_of(edge.target)
        if dst in FORBIDDEN.get(src, set()):
            bad.append(f"{edge.describe()} ({src} must not import {dst})")
    return bad


def _cycle_message(cycle: list[ImportEdge]) -> str:
    return "import cycle:\n    " + "\n    ".join(e.describe() for e in cycle)


# --- the real package --------------------------------------------------------------------


def test_the_graph_is_read_from_the_source() -> None:
    edges = import_graph(SRC)
    pairs = {(e.source, e.target) for e in edges}
    # Module-level, function-local and ``from package import module`` imports all count.
    assert ("ragloop.core.runtime", "ragloop.core.settings") in pairs
    assert ("ragloop.service.app", "ragloop.service.native.query") in pairs
    assert len({e.source for e in edges}) > 50


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph(SRC))
    assert not cycles, "\n".join(_cycle_message(c) for c in cycles)


def test_layers_import_only_downwards() -> None:
    bad = layer_violations(import_graph(SRC))
    assert not bad, "imports against the layers:\n  " + "\n  ".join(bad)


# --- the checks themselves, on a package made up for the purpose ---------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_a_function_local_import_is_found_and_named(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "ragloop/__init__.py": "",
            "ragloop/core/__init__.py": "",
            "ragloop/core/a.py": "from ragloop.core import b\n",
            "ragloop/core/b.py": "def f():\n    from . import c\n",
            "ragloop/core/c.py": "import ragloop.core.a\n",
            "ragloop/core/d.py": "from ragloop.core.a import x\n",
        },
    )
    cycles = find_cycles(import_graph(tmp_path))
    assert len(cycles) == 1
    assert [(e.source, e.target) for e in cycles[0]] == [
        ("ragloop.core.a", "ragloop.core.b"),
        ("ragloop.core.b", "ragloop.core.c"),
        ("ragloop.core.c", "ragloop.core.a"),
    ]
    message = _cycle_message(cycles[0])
    assert "ragloop/core/b.py:2: ragloop.core.b imports ragloop.core.c" in message


def test_type_checking_imports_are_not_edges(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "ragloop/__init__.py": "",
            "ragloop/core/__init__.py": "",
            "ragloop/core/a.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from ragloop.service import app\n"
                "else:\n    from ragloop.core import b\n"
            ),
            "ragloop/core/b.py": "",
            "ragloop/service/__init__.py": "",
            "ragloop/service/app.py": "from ragloop.core import a\n",
        },
    )
    edges = import_graph(tmp_path)
    assert {(e.source, e.target) for e in edges} == {
        ("ragloop.core.a", "ragloop.core.b"),
        ("ragloop.service.app", "ragloop.core.a"),
    }


def test_an_upward_import_is_reported_with_its_line(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "ragloop/__init__.py": "",
            "ragloop/client.py": "",
            "ragloop/core/__init__.py": "",
            "ragloop/core/x.py": "import json\n\nfrom ragloop import client\n",
            "ragloop/eval/__init__.py": "",
            "ragloop/eval/y.py": "from ragloop.core import x\nfrom ragloop.cli.main import app\n",
            "ragloop/cli/__init__.py": "",
            "ragloop/cli/main.py": "from ragloop.eval import y\n",
        },
    )
    assert layer_violations(import_graph(tmp_path)) == [
        "ragloop/core/x.py:3: ragloop.core.x imports ragloop.client (core must not import client)",
        "ragloop/eval/y.py:2: ragloop.eval.y imports ragloop.cli.main (eval must not import cli)",
    ]
