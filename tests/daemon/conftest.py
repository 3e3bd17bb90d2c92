"""Fixtures for the multi-process daemon tests: a cluster of real daemons per test,
always torn down, and a hard per-test deadline (SIGALRM) on top of every wait's own.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from harness import Cluster, cluster

TEST_DEADLINE = 60  # seconds, for the whole test including set-up


class TestDeadline(Exception):
    """The test ran past TEST_DEADLINE."""


@pytest.fixture(autouse=True)
def _hard_deadline() -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TestDeadline(f"test ran longer than {TEST_DEADLINE} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_DEADLINE)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A `Cluster`: create nodes with ``nodes.node(name)``; all are stopped at teardown.

    When the test failed, the tail of every daemon's log goes to stderr.
    """
    with cluster(tmp_path) as c:
        yield c
        if request.node.stash.get(_FAILED, False):
            sys.stderr.write(c.dump_logs())
