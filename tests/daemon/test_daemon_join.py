"""New nodes join a region whose node just imported two budgets and posted 300 needs.

Found in plain use: 3 of 7 daemons died as they joined, with py-libp2p's
``DecodeError: Error parsing message with type 'pubsub.pb.RPC'``. The cause: the
joining node subscribes, the node it joins sends its message cache and its queued
messages on one stream from two tasks, and yamux interleaves the frames of two
large RPCs (node/net/pubsub.py). Joined right after the import, while those messages
are in the cache, every joiner must live and converge.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Cluster

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "pabulib"


def test_nodes_joining_after_a_large_import_live_and_converge(nodes: Cluster) -> None:
    a = nodes.node("a", sync_interval=2.0).init().start()
    for name in ("Netherlands_Assen_2024.pb", "Netherlands_Assen_2025.pb"):
        a.cli("budget", "import", str(DATA / name), timeout=60)
    for i in range(300):
        a.post_need(qty=str(i + 1))
    assert a.status()["records"] >= 300
    joiners = [nodes.node(n, sync_interval=2.0).init(a.addr).start() for n in ("b", "c", "d")]
    everyone = (a, *joiners)
    a.wait_for(lambda _: len({n.digest() for n in everyone}) == 1, 40, "one digest on all")
    assert all(j.status()["records"] >= 300 for j in joiners)
    for j in (a, *joiners):
        assert j.running
        assert "DecodeError" not in j.log()
        assert j.status()["rejected"].get("pubsub-bad-rpc", 0) == 0
