"""Who counts, over real daemons on 127.0.0.1 (issue 10): a node joins by invite and
is admitted; a node nobody vouches for posts capacities that count nowhere, and what
it floods is refused and counted."""

from __future__ import annotations

import json

import pytest
from federation import TestFederation
from harness import Cluster

pytestmark = pytest.mark.slow


def _standing(node, about) -> str:
    return node.call("admission", node=about.node_id)["status"]


def test_a_node_joins_by_invite_and_its_need_counts(nodes: Cluster) -> None:
    a = nodes.node("a", sync_interval=2.0).init().start()
    code = a.call("invite_create", note="for b")["code"]
    b = nodes.node("b", sync_interval=2.0).init(founder=False, extra=("--invite", code)).start()
    status = b.status()
    assert status["federation"] == a.status()["federation"]
    a.wait_for(lambda n: _standing(n, b) == "admitted", 20, "b admitted on a")
    b.wait_for(lambda n: n.status()["admitted"], 20, "b admitted in its own view")
    standing = a.call("admission", node=b.node_id)
    assert standing["invited_by"] == a.status()["node_id"]
    assert standing["endorsers"] == [a.status()["node_id"]]
    b.post_need(qty="40")
    a.wait_for(lambda n: _needs(n) == "40", 20, "b's need in a's balance")
    # the invite is spent: a second node showing the same code is not admitted by it
    c = nodes.node("c", sync_interval=2.0).init(founder=False, extra=("--invite", code)).start()
    c.wait_for(lambda n: n.connected_to(a), 20, "c connected")
    c.post_need(qty="1000")
    a.wait_for(lambda n: n.status()["rejected"].get("not-admitted", 0) > 0, 20, "c refused")
    assert _needs(a) == "40"
    assert not _known(a, c) or _standing(a, c) == "pending"  # its application was refused


def _known(node, about) -> bool:
    rows = node.call("admission")["nodes"]
    return any(r["node"] == about.node_id for r in rows)


def _needs(node) -> str | None:
    levels = node.call("balance", scope="eu/de/berlin")["levels"]
    rows = [r for r in levels[0]["rows"] if r["item"] == "potatoes"]
    return rows[0]["needs"] if rows else None


def test_a_stranger_counts_nowhere_and_its_flood_is_refused(nodes: Cluster) -> None:
    a = nodes.node("a", sync_interval=2.0).init().start()
    charter = str(TestFederation(a.data_dir.parent / "federation").charter_file)
    s = nodes.node("s", sync_interval=2.0).init(a.addr, founder=False, extra=("--charter", charter))
    s.start()
    assert s.status()["federation"] == a.status()["federation"]
    s.wait_for(lambda n: n.connected_to(a), 20, "stranger connected")
    for i in range(60):
        s.call(
            "post", kind="capacity", item="potatoes", qty=str(100 + i), unit="kg", period="2027-Q1"
        )
    a.wait_for(
        lambda n: n.status()["rejected"].get("not-admitted", 0) >= 60, 30, "the flood refused"
    )
    held = {r["origin"] for r in a.call("list", kind="capacity", all=True)}
    assert s.node_id not in held  # nothing of it stored
    balance = a.call("balance", scope="eu/de/berlin")
    assert all(r["item"] != "potatoes" for r in balance["levels"][0]["rows"])
    # the stranger's own view counts its capacities nowhere either, and says so
    own = s.call("balance", scope="eu/de/berlin")
    assert own["levels"][0]["rows"] == []
    assert own["left_out"] == {"records": 60, "nodes": 1}
    out = s.cli("balance", "eu/de/berlin")
    assert "Left out: 60" in out
    assert json.loads(s.cli("admission", "--json"))["this_node"]["status"] == "pending"
    assert a.running
    assert s.running
