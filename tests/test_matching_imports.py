"""The planning modules import one way: no cycle among them, and the matching loads its
vector half (and numpy) only when it uses it.

`matching_types` holds what both matchings share; `matching_vec` builds on it alone;
`matching` builds on it and loads `matching_vec` inside `plan`, for a large matching.
(At run time the package's `__init__` loads `matching` with any planning module, so
the one-way imports are checked in the source.)"""

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "node" / "planning"


def _module(path: Path) -> str:
    return "node.planning" if path.stem == "__init__" else f"node.planning.{path.stem}"


def _planning_imports(path: Path) -> set[str]:
    """The planning modules `path` imports anywhere: at the top, inside a function or
    for type checking only (`from node.planning import x` names the module x if there
    is one, else the package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("node.planning")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("node.planning"):
            if node.module == "node.planning":
                out |= {
                    f"node.planning.{a.name}"
                    if (path.parent / f"{a.name}.py").exists()
                    else node.module
                    for a in node.names
                }
            else:
                out.add(str(node.module))
    return out


def _graph(package: Path) -> dict[str, set[str]]:
    return {_module(p): _planning_imports(p) for p in sorted(package.glob("*.py"))}


def test_the_planning_modules_import_no_cycle():
    graph = _graph(PACKAGE)
    assert graph["node.planning.matching_vec"] == {
        "node.planning.balance",
        "node.planning.matching_types",
    }
    assert graph["node.planning.matching_types"] == {"node.planning.balance"}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"an import cycle among the planning modules: {e.args[1]}")
    assert order.index("node.planning.matching_vec") < order.index("node.planning.matching")


def test_the_cycle_check_sees_a_cycle(tmp_path):
    """The check itself: an import back from `matching_vec` to `matching`, even one
    inside a function, makes a cycle."""
    for p in PACKAGE.glob("*.py"):
        (tmp_path / p.name).write_text(p.read_text())
    vec = tmp_path / "matching_vec.py"
    vec.write_text(vec.read_text() + "\n\ndef _f():\n    from node.planning.matching import plan\n")
    with pytest.raises(CycleError):
        list(TopologicalSorter(_graph(tmp_path)).static_order())


@pytest.mark.parametrize(
    "module", ["node.planning", "node.planning.matching_types", "node.planning.matching"]
)
def test_importing_the_matching_loads_no_vectors(module):
    """In a fresh interpreter: importing the planning package, the shared types or
    `matching` loads neither `matching_vec` nor numpy (a small matching never needs them)."""
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "assert 'node.planning.matching' in sys.modules\n"
        "print([m for m in ('node.planning.matching_vec', 'numpy') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"
