"""Fixtures for CLI tests (helpers in cli_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_helpers import Node, running


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One running daemon shared by a test module (starting one takes about a second)."""
    base = tmp_path_factory.mktemp("node")
    n = Node(base / "a", "a", "eu/de/berlin/a").init()
    with running(n):
        yield n
