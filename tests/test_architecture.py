"""The layers of the ``lexcoder`` package: its import graph has no cycle (issue 11, point 3).

The graph is read from the source, not from ``sys.modules``: the AST of every file under ``src/lexcoder``,
with module-level **and** function-level imports (an import moved into a function still makes the two
modules depend on each other; it only makes the cycle work by import order), relative imports resolved.
Imports by a string (``importlib.import_module`` in the model registry) are not seen.

Two levels are checked:

- modules: no module depends on itself through others (``lexcoder.cli.core`` importing ``app`` from
  ``lexcoder.cli``, whose ``__init__`` imports ``lexcoder.cli.core``, is a cycle);
- parts: each sub-package (``lexcoder.audit``, ``lexcoder.models`` ...) and each top-level module is one
  node. Importing ``lexcoder.audit.x`` counts as importing ``lexcoder.audit``, because Python runs the
  package's ``__init__`` first: this is the level at which "the pipeline imports the whole audit package".
"""
from __future__ import annotations

import ast
import graphlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import lexcoder

PACKAGE_DIR = Path(lexcoder.__file__).parent


@dataclass(frozen=True)
class Edge:
    """Where an import statement is: file (relative to the package's parent folder), line, in a function."""

    path: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line}{' (in a function)' if self.in_function else ''}"


Graph = Mapping[str, Mapping[str, Edge]]  # importer -> {imported module: the first import statement}


def package_modules(package_dir: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every ``.py`` file of the package."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _function_imports(tree: ast.AST) -> set[int]:
    """ids of the import statements inside a function body."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inside |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return inside


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known) -> list[str]:
    """The package's modules one import statement loads (a name that is a submodule counts as one)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module.split(".") if is_package else module.split(".")[:-1]
        if node.level:  # from .x / from .. import y: relative to the importing module's package
            base = base[:len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                 for alias in node.names]
    out = []
    for name in names:
        while name and name not in known:  # `import lexcoder.x.y` where y is a name, not a module
            name = name.rpartition(".")[0]
        if name:
            out.append(name)
    return out


def import_graph(package_dir: Path) -> dict[str, dict[str, Edge]]:
    """Every import between the package's modules (module level and function level alike)."""
    modules = package_modules(package_dir)
    graph: dict[str, dict[str, Edge]] = {name: {} for name in modules}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        in_function = _function_imports(tree)
        where = path.relative_to(package_dir.parent).as_posix()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(node, name, is_package, modules):
                if target != name:
                    graph[name].setdefault(target, Edge(where, node.lineno, id(node) in in_function))
    return graph


def part_of(module: str, package: str) -> str:
    """``lexcoder.audit.workflow`` -> ``lexcoder.audit``; ``lexcoder.pipeline`` stays itself."""
    depth = package.count(".") + 2
    return ".".join(module.split(".")[:depth])


def parts_graph(graph: Graph, package: str) -> dict[str, dict[str, Edge]]:
    """The graph between sub-packages and top-level modules (imports inside one part dropped)."""
    parts: dict[str, dict[str, Edge]] = {}
    for source, targets in graph.items():
        edges = parts.setdefault(part_of(source, package), {})
        for target, edge in targets.items():
            if part_of(target, package) != part_of(source, package):
                edges.setdefault(part_of(target, package), edge)
    return parts


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of ``graph``, or ``None`` (the graph can be ordered)."""
    try:
        graphlib.TopologicalSorter({node: set(targets) for node, targets in graph.items()}).prepare()
    except graphlib.CycleError as err:
        return list(reversed(err.args[1]))  # graphlib lists it against the arrows
    return None


def find_cycles(graph: Graph, *, limit: int = 20) -> list[list[str]]:
    """Cycles of ``graph``, each as :func:`find_cycle` gives it (one step of each found cycle is removed
    before looking again, so every cycle listed differs from the others; at most ``limit``)."""
    rest = {node: dict(targets) for node, targets in graph.items()}
    cycles = []
    while len(cycles) < limit and (cycle := find_cycle(rest)) is not None:
        cycles.append(cycle)
        del rest[cycle[0]][cycle[1]]
    return cycles


def describe(cycle: list[str], graph: Graph) -> str:
    """``a -> b (a.py:3) -> a (b.py:7, in a function)``: the cycle and the import making each step."""
    steps = [cycle[0]] + [f"{b}   [{graph[a][b]}]" for a, b in zip(cycle, cycle[1:])]
    return "\n    -> ".join(steps)


def reachable(graph: Graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), {}):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


# ----------------------------------------------------------------------------------------------------------
# The graph builder sees what it must (else the tests below could not fail)
# ----------------------------------------------------------------------------------------------------------

def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root / "pkg"


def test_builder_resolves_relative_and_function_level_imports(tmp_path):
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "from .sub import thing\n",
        "pkg/util.py": "import os\nVALUE = 1\n",
        "pkg/sub/__init__.py": "from .a import thing\n",
        "pkg/sub/a.py": "from .. import util\nfrom ..util import VALUE\nthing = VALUE\n",
        "pkg/sub/b.py": "def later():\n    import pkg.sub.a as a\n    from . import thing\n    return a, thing\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg.sub.a"] == {"pkg.util": Edge("pkg/sub/a.py", 1, False)}  # `from .. import util`
    assert set(graph["pkg.sub.b"]) == {"pkg.sub.a", "pkg.sub"}  # absolute, and a name of the package
    assert graph["pkg.sub.b"]["pkg.sub"] == Edge("pkg/sub/b.py", 3, True)
    assert graph["pkg.util"] == {}  # the standard library is not part of the graph
    assert find_cycle(graph) is None
    assert parts_graph(graph, "pkg") == {"pkg": {"pkg.sub": Edge("pkg/__init__.py", 1, False)},
                                         "pkg.util": {}, "pkg.sub": {"pkg.util": Edge("pkg/sub/a.py", 1, False)}}


def test_a_cycle_through_a_function_level_import_is_found_with_its_path(tmp_path):
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/report.py": "def build():\n    from .audit.workflow import SUMMARY\n",
        "pkg/audit/__init__.py": "from .workflow import run\n",
        "pkg/audit/workflow.py": "SUMMARY = 's'\ndef run():\n    from ..report import build\n",
    })
    graph = import_graph(pkg)
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"pkg.report", "pkg.audit.workflow"}
    text = describe(cycle, graph)
    assert "pkg/report.py:2 (in a function)" in text and "pkg/audit/workflow.py:3 (in a function)" in text
    # between parts, importing pkg.audit.workflow is importing pkg.audit
    assert find_cycle(parts_graph(graph, "pkg")) is not None
    assert find_cycles(graph) == [cycle]  # one cycle, listed once


# ----------------------------------------------------------------------------------------------------------
# lexcoder itself
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, Edge]]:
    return import_graph(PACKAGE_DIR)


def test_every_module_is_in_the_graph(graph):
    assert len(graph) >= 40 and {"lexcoder", "lexcoder.pipeline", "lexcoder.ledger", "lexcoder.audit.workflow",
                                 "lexcoder.report.context", "lexcoder.cli.audit"} <= set(graph)
    assert graph["lexcoder.pipeline"]["lexcoder.ledger"].in_function is False


def test_no_import_cycle_between_parts(graph):
    """Sub-packages and top-level modules form layers: no part depends on itself through others."""
    parts = parts_graph(graph, "lexcoder")
    cycles = find_cycles(parts)
    assert not cycles, "Import cycles between parts of lexcoder:\n" + _listing(cycles, parts)


def test_no_import_cycle_between_modules(graph):
    """No module depends on itself through others, not even through an import inside a function."""
    cycles = find_cycles(graph)
    assert not cycles, "Import cycles between modules of lexcoder:\n" + _listing(cycles, graph)


def _listing(cycles: list[list[str]], graph: Graph) -> str:
    return "\n".join(f"  {i}. {describe(cycle, graph)}" for i, cycle in enumerate(cycles, 1))


def test_stages_do_not_reach_the_report_and_the_ledger_is_data(graph):
    """The command layer decides what to rebuild: the audit never imports the report stage. The
    corrections ledger decides what a run trains on: the pipeline reads it from the data layer, not from
    the audit package (the report stage, which shows the audit's files, may read the audit's names)."""
    parts = parts_graph(graph, "lexcoder")
    assert "lexcoder.report" not in reachable(parts, "lexcoder.audit")
    assert "lexcoder.ledger" in parts["lexcoder.pipeline"] and "lexcoder.audit" not in parts["lexcoder.pipeline"]
    assert "lexcoder.audit" not in reachable(parts, "lexcoder.ledger")


def test_every_floor_is_the_pin_of_the_oldest_versions_tested():
    """`make test-oldest` tests the `>=` floors of pyproject.toml: constraints/oldest.txt must pin exactly
    those versions, so a raised floor is a tested floor."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    # the gpu extra (bitsandbytes) needs CUDA: `make test-oldest` runs on a CPU and cannot install it
    specs = [*project["dependencies"], *(d for name, extra in project["optional-dependencies"].items()
                                         if name != "gpu" for d in extra)]
    floors = {}
    for spec in specs:
        req = Requirement(spec)
        if req.name == "lexcoder":
            continue
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert lower, f"{spec}: every dependency needs a tested >= floor"
        floors[req.name.lower()] = Version(lower[0])
    pins = {}
    for line in (root / "constraints" / "oldest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = Version(version.strip())
    pins.pop("torch", None)  # installed by `make install` itself, not listed in pyproject
    assert pins == floors
