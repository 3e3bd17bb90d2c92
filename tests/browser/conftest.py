"""Fixtures for the web app's tests: real daemons on 127.0.0.1 and Debian's headless
chromium driven by Playwright (`executable_path`: no browser download, ever).

`tests/browser/ensure-chromium` installs chromium; the README's test command runs it.
Screenshots go to tests/artifacts/ (ignored by git, kept by CI).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "daemon"))

from harness import Cluster, Node

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEST_DEADLINE = 120  # seconds per test, set-up included


@pytest.fixture(autouse=True)
def _hard_deadline() -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"test ran longer than {TEST_DEADLINE} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_DEADLINE)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# Module scope: Playwright's sync API keeps an asyncio loop marked running while it is
# started; it is stopped before any other test module runs.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing: run tests/browser/ensure-chromium (as root), "
            "or apt-get install chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def trio_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Node, Node]]:
    """Node `a` serves the web app; `b` and `c` are its peers in one federation (three
    nodes: an assembly's draw needs three committers)."""
    c = Cluster(tmp_path_factory.mktemp("web"))
    try:
        a = c.node("a", web=True, sync_interval=1.0).init()
        b = c.node("b", sync_interval=1.0).init(a.addr)
        third = c.node("c", sync_interval=1.0).init(a.addr)
        for n in (a, b, third):
            n.start()
        a.wait_for(lambda n: n.connected_to(b) and n.connected_to(third), what="peers")
        from procs import wait_for

        wait_for(lambda: a.web_url, 20, what="web.url")
        yield a, b, third
    finally:
        c.close()


@pytest.fixture
def pair(trio_nodes: tuple[Node, Node, Node]) -> tuple[Node, Node]:
    return trio_nodes[0], trio_nodes[1]


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
