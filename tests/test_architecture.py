"""The layout shows the architecture, and a checker keeps it: no import cycles among the project's modules;
transforms/ and storage/ import no Ray and nothing of deployments/; in deployments/, http/ and batch/ depend on
render/, render/ on neither, batch/ not on http/; no function on the request path is over 50 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("deployments", "storage", "transforms")
REQUEST_PATH = ("deployments/http", "deployments/render")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules a module imports (at any level: a function's import is a dependency too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known.keys()
            # `from package import module` depends on the module; `from module import name` on the module
            names.update(submodules or {node.module})
    return {name for name in names if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(edges[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported):], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_dependencies_run_one_way():
    edges = graph()

    def uses(importer: str, imported: str) -> list[str]:
        return sorted(f"{a} -> {b}" for a, deps in edges.items() if a.startswith(importer)
                      for b in deps if b.startswith(imported))

    for pure in ("transforms", "storage"):
        assert not uses(pure, "deployments"), pure
        for path in (ROOT / pure).rglob("*.py"):
            assert "import ray" not in path.read_text() and "from ray" not in path.read_text(), path
    assert not uses("deployments.render", "deployments.http")
    assert not uses("deployments.render", "deployments.batch")
    assert not uses("deployments.batch", "deployments.http")
    assert uses("deployments.http", "deployments.render") and uses("deployments.batch", "deployments.render")


def test_no_function_on_the_request_path_is_over_50_lines():
    long = []
    for folder in REQUEST_PATH:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 50:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long, long


def test_the_walk_of_a_get_names_modules_that_exist():
    """docs/architecture.md walks a GET from its router to the encoder in at most 8 modules."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    walk = text.split("## The walk of a GET", 1)[1].split("\n## ", 1)[0]
    named = [line.split("`")[1] for line in walk.splitlines() if line[:1].isdigit() and "`" in line]
    assert 0 < len(named) <= 8, named
    for module in named:
        assert (ROOT / module).is_file(), module
