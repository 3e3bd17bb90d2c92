"""The cores stay pure: they import only what is on an allowlist, and use no I/O builtins.

An allowlist, not a blocklist: a core that wants a new module has to name it here, so
`time.time_ns`, `os.urandom`, `secrets`, `open` and whatever comes next cannot slip in
unnoticed. Time and randomness are injected (a `random.Random` is passed in; the module
`random` may be named only for that type).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORES = [
    "node/crdt",
    "node/planning",
    "node/governance",
    "node/model",
    "node/core.py",
    "node/clock.py",
    "node/keys.py",
    "node/errors.py",
]
# Pure standard-library modules: no files, sockets, processes, clocks or randomness.
STDLIB = {
    "__future__",
    "abc",  # abstract base classes (the plan both matchings fill, node/planning/matching_types.py)
    "array",  # packed int columns (the matches of a plan)
    "base64",
    "binascii",
    "bisect",
    "collections",
    "collections.abc",
    "csv",  # parses strings; never opens a file here
    "dataclasses",
    "datetime",  # dates as values; reading the clock (now, today) is refused below
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "math",
    "operator",
    "re",
    "struct",
    "threading",  # threading.local only (a msgpack packer per thread in node/crdt/record.py)
    "types",
    "typing",
}
THIRD_PARTY = {
    "msgpack",
    "numpy",  # int64 vectors for the matching (node/planning/matching_vec.py); no np.random
    "nacl.bindings",
    "nacl._sodium",  # the same libsodium, called without the binding's output copy
    "nacl.exceptions",
    "cryptography.hazmat.primitives",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
}
INJECTED = {"random"}  # only as the type of an injected generator: random.Random
CORE_PACKAGES = ("node.crdt", "node.planning", "node.governance", "node.model")
CORE_MODULES = {"node", "node.core", "node.clock", "node.keys", "node.errors"}
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint"}


def _files():
    for core in CORES:
        path = ROOT / core
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


def _allowed(module: str) -> bool:
    return (
        module in STDLIB
        or module in THIRD_PARTY
        or module in INJECTED
        or module in CORE_MODULES
        or any(module == p or module.startswith(p + ".") for p in CORE_PACKAGES)
    )


def _imports(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out.append("<relative import>")
            elif node.module == "node":
                out += [f"node.{a.name}" for a in node.names]
            elif node.module in INJECTED:
                out += [f"{node.module}.{a.name}" for a in node.names if a.name != "Random"]
            else:
                out.append(node.module or "")
    return out


def _violations(source: str) -> list[str]:
    tree = ast.parse(source)
    bad = [f"imports {m}" for m in _imports(tree) if not _allowed(m)]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            bad.append(f"calls {node.func.id}()")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        ):
            bad.append(f"uses random.{node.attr} (inject a random.Random instead)")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("np", "numpy")
            and node.attr in ("random", "load", "save", "fromfile", "loadtxt", "genfromtxt")
        ):
            bad.append(f"uses numpy.{node.attr} (no randomness or files in a core)")
        if isinstance(node, ast.Attribute) and node.attr in ("now", "today", "utcnow"):
            bad.append(f"reads the clock ({node.attr})")
    return bad


@pytest.mark.parametrize("path", list(_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_uses_only_allowed_modules(path):
    assert _violations(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.time_ns()",
        "import os\nx = os.urandom(8)",
        "import secrets",
        "from os import urandom",
        "data = open('f').read()",
        "import random\nx = random.random()",
        "from random import choice",
        "import sqlite3",
        "import trio",
        "from node import daemon",
        "from node.net import gossip",
        "from . import sibling",
        "from datetime import date\nx = date.today()",
        "import datetime\nx = datetime.datetime.now()",
    ],
)
def test_the_check_catches(source):
    """The allowlist check itself: each of these would make a core impure."""
    assert _violations(source) != []


def test_importing_cores_loads_no_io_module():
    modules = sorted(
        str(p.relative_to(ROOT).with_suffix("")).replace("/", ".").removesuffix(".__init__")
        for p in _files()
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = ['trio', 'libp2p', 'sqlite3', 'asyncio', 'anyio', 'node.daemon', 'node.net',\n"
        "       'node.store', 'node.identity', 'node.config']\n"
        "print([m for m in bad if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"
