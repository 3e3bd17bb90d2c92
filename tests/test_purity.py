"""The cores stay pure: no I/O frameworks, no ambient time or randomness."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORES = ["node/crdt", "node/planning", "node/governance", "node/model.py"]
FORBIDDEN = {"trio", "libp2p", "sqlite3", "socket", "asyncio", "anyio", "threading"}


def _files():
    for core in CORES:
        path = ROOT / core
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


@pytest.mark.parametrize("path", list(_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_io(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path}: imports {name}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            call = f"{node.value.id}.{node.attr}"
            assert call not in (
                "time.time",
                "time.monotonic",
                "random.random",
                "random.choice",
                "random.shuffle",
                "random.randint",
                "datetime.now",
            ), f"{path}: ambient {call}"


def test_importing_cores_loads_no_io_module():
    modules = sorted(
        str(p.relative_to(ROOT).with_suffix("")).replace("/", ".").removesuffix(".__init__")
        for p in _files()
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = {sorted(FORBIDDEN - {'threading', 'socket'})!r}\n"
        "print([m for m in bad if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"
