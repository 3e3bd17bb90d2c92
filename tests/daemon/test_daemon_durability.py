"""What the control API reports as saved survives SIGKILL of the daemon."""

from __future__ import annotations

import signal

import pytest
from harness import Cluster

pytestmark = pytest.mark.slow


def test_posted_record_survives_kill_9(nodes: Cluster) -> None:
    a = nodes.node("a").init().start()
    posted = [a.post_need(qty=str(i + 1)) for i in range(3)]
    withdrawn = a.call("withdraw", kind="need", key=posted[0]["id"])
    before = a.call("digest")
    a.stop(signal.SIGKILL)  # no clean-up runs: no close, no checkpoint
    assert a.proc is not None
    assert a.proc.returncode == -signal.SIGKILL

    a.start()
    assert a.call("digest") == before
    rows = {r["id"]: r for r in a.call("list", kind="need", withdrawn=True)}
    assert set(rows) == {p["id"] for p in posted}
    assert rows[posted[0]["id"]]["withdrawn"]
    assert rows[posted[0]["id"]]["seq"] == withdrawn["seq"]
    # the node's seq resumes past what it wrote before the kill (at the restart's floor)
    again = a.post_need(qty="99")
    assert again["seq"] > withdrawn["seq"]
    assert again["id"] not in rows


def test_repeated_signals_stop_cleanly(nodes: Cluster) -> None:
    """Ctrl-C pressed again while the node shuts down: still a clean stop, no traceback."""
    import os
    import time

    a = nodes.node("a").init().start()
    a.post_need(qty="1")
    assert a.proc is not None
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        os.kill(a.proc.pid, sig)
        time.sleep(0.05)
    assert a.proc.wait(20) == 0
    log = a.log()
    assert "event=daemon.stopped" in log
    assert "Traceback" not in log
    assert "Aborted" not in log
