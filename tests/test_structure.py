"""The shape of the code, kept true by parsing the source: dependencies point one
way, modules and functions stay small enough to read, and docstring examples run."""

import ast
import collections
import doctest
import importlib
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "mwconv")

# Each unit (a subpackage or a top-level module of mwconv) may import only units of a
# lower rank, at module level or inside functions: cli -> pipeline -> convert ->
# verification -> formats -> modelio/legacy -> layers -> errors. A new unit must be placed here.
RANK = {
    "errors": 0, "_quiet": 0, "_compat": 0, "progress": 0, "runtime": 0,
    "layers": 1, "outputs": 1, "manifest": 1, "failures": 1, "maps": 1,
    "modelio": 2, "legacy": 2, "training": 2, "callbacks": 2,
    "formats": 3,
    "options": 4, "fixtures": 4, "inspect": 4, "loading": 4, "workspace": 4, "testing": 4,
    "verification": 5,
    "convert": 6,
    "pipeline": 7, "localize": 7,
    "cliutil": 8,
    "cli_compare": 9,
    "cli": 10,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf8") as f:
                    yield os.path.relpath(path, ROOT), f.read()


def _unit(relpath):
    parts = relpath[:-3].split(os.sep)[1:]
    return parts[0] if parts[0] != "__init__" else None


def _imported_units(tree):
    """Units of mwconv imported anywhere in the module (function-level imports included)."""
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = ([f"mwconv.{a.name}" for a in node.names] if node.module == "mwconv" else [node.module])
        for name in names:
            parts = name.split(".")
            if parts[0] == "mwconv" and len(parts) > 1 and not parts[1].startswith("__"):
                yield parts[1]


def dependency_graph():
    graph = collections.defaultdict(set)
    for relpath, text in _modules():
        unit = _unit(relpath)
        if unit is None:
            continue
        graph[unit] |= {u for u in _imported_units(ast.parse(text)) if u != unit}
    return graph


def test_every_unit_has_a_rank():
    units = {_unit(p) for p, _ in _modules()} - {None}
    assert sorted(units - set(RANK)) == []


def test_dependencies_point_one_way():
    wrong = [f"{a} (rank {RANK[a]}) imports {b} (rank {RANK[b]})"
             for a, targets in sorted(dependency_graph().items()) for b in sorted(targets) if RANK[b] >= RANK[a]]
    assert wrong == []


def test_no_import_cycle():
    graph = dependency_graph()
    state = {}

    def visit(node, trail):
        if state.get(node) == "open":
            return trail[trail.index(node):] + [node]
        if state.get(node) == "done":
            return None
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, trail + [node])
            if cycle:
                return cycle
        state[node] = "done"
        return None

    cycles = [c for c in (visit(n, []) for n in sorted(graph)) if c]
    assert cycles == []


def test_no_module_is_too_long():
    long = [f"{p}: {len(t.splitlines())} lines" for p, t in _modules() if len(t.splitlines()) > MAX_MODULE_LINES]
    assert long == []


def test_no_function_is_too_long():
    long = []
    for relpath, text in _modules():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{relpath}:{node.lineno} {node.name}: {lines} lines")
    assert long == []


def test_the_checks_can_fail():
    """The checkers themselves see a cycle and a long function when there is one."""
    assert set(_imported_units(ast.parse("def f():\n    from mwconv.cli import main\n"))) == {"cli"}
    body = "def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1)
    node = ast.parse(body).body[0]
    assert node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES


DOCTESTED = ["mwconv.options", "mwconv.formats", "mwconv.formats.names", "mwconv.workspace", "mwconv.progress"]


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
