"""The federation sees the whole (issue 11): a need posted in Hamburg shows in a Berlin
node's balance of eu/de, attested by Hamburg's nodes, over real daemons on 127.0.0.1."""

from __future__ import annotations

import pytest
from harness import Cluster

pytestmark = pytest.mark.slow


def _level(node, scope: str, at: str) -> dict:
    data = node.call("balance", scope=scope, depth=1, period="2027-Q1")
    return next((lv for lv in data["levels"] if lv["scope"] == at), {"rows": [], "basis": {}})


def _potatoes(level: dict) -> str | None:
    rows = [r for r in level["rows"] if r["item"] == "potatoes"]
    return rows[0]["needs"] if rows else None


def test_a_need_in_hamburg_shows_in_berlin_as_attested(nodes: Cluster) -> None:
    b1 = nodes.node("b1", scope="eu/de/berlin/b1", sync_interval=2.0).init().start()
    b2 = nodes.node("b2", scope="eu/de/berlin/b2", sync_interval=2.0).init(b1.addr).start()
    h1 = nodes.node("h1", scope="eu/de/hamburg/h1", sync_interval=2.0).init(b1.addr).start()
    h2 = nodes.node("h2", scope="eu/de/hamburg/h2", sync_interval=2.0).init(h1.addr).start()
    b2.post_need(qty="10")
    h1.post_need(qty="77")

    def attested(n) -> bool:
        level = _level(n, "eu/de", "eu/de/hamburg")
        return level["basis"].get("status") == "attested" and _potatoes(level) == "77"

    b1.wait_for(attested, 40, "Hamburg's need attested in Berlin")
    level = _level(b1, "eu/de", "eu/de/hamburg")
    assert level["basis"]["attested"] == {"eu/de/hamburg": {"by": 2, "of": 2}}
    top = _level(b1, "eu/de", "eu/de")
    assert _potatoes(top) == "87"  # Berlin's own 10, complete, and Hamburg's 77, attested
    assert top["basis"]["own_region"] is True
    assert top["basis"]["status"] == "attested"
    # Berlin holds Hamburg's rollups, never its records
    assert not any(
        r["origin"] == h1.status()["node_id"] for r in b1.call("list", kind="need", all=True)
    )
    out = b1.cli("balance", "eu/de", "--depth", "1", "--period", "2027-Q1")
    assert "region(s) attested by 2 of 2" in out
    listing = b1.call("rollups")["rollups"]
    assert {(r["region"], r["status"]) for r in listing} == {("eu/de/hamburg", "attested")}
    assert "attested" in b1.cli("rollups")
    # and the other way round
    h2.wait_for(
        lambda n: _potatoes(_level(n, "eu/de", "eu/de/berlin")) == "10", 40, "Berlin in Hamburg"
    )
