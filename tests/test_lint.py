"""CI runs the linters through the test suite: ruff (lint and format) and mypy.

The versions are pinned in pyproject.toml, so a new release cannot turn CI red.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "cmd",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("mypy", "node", "cli", "simnet", "web"),
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_linter_passes(cmd: tuple[str, ...]) -> None:
    result = _run(*cmd)
    assert result.returncode == 0, result.stdout + result.stderr
