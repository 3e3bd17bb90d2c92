"""node.governance stays pure: no I/O, clocks, global randomness or floats in tallies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "node" / "governance"
FORBIDDEN = {"trio", "libp2p", "sqlite3", "socket", "asyncio", "time"}
TALLIES = {"methods.py", "budget.py"}


def modules():
    files = sorted(PACKAGE.glob("*.py"))
    assert files, f"no modules under {PACKAGE}"
    return files


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.name)
def test_no_forbidden_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "random":
                # Only the injectable generator class may be imported.
                assert {a.name for a in node.names} <= {"Random"}, f"{path.name}:{node.lineno}"
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name}:{node.lineno} {name}"
    # `random.Random` (injected) is fine; module-level `random.random()` is not.
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
        ):
            assert node.attr == "Random", f"{path.name}:{node.lineno} random.{node.attr}"


@pytest.mark.parametrize("name", sorted(TALLIES))
def test_tallies_use_no_floats(name):
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), line
        assert not (isinstance(node, ast.Name) and node.id in ("float", "math")), line


def test_integer_tallies_never_divide():
    # methods.py only adds integers; a `/` there would produce a float.
    tree = ast.parse((PACKAGE / "methods.py").read_text(encoding="utf-8"))
    assert not any(isinstance(node, ast.Div) for node in ast.walk(tree))
