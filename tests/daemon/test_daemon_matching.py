"""From balance to plan (issue 13) over real daemons on 127.0.0.1: A needs 100 kg, B has
60 kg, C has 80 kg in one region; `match` shows the rule's split on all three nodes; B
commits, A accepts, B delivers 50, A confirms; B's track record shows it on every node."""

from __future__ import annotations

import json

import pytest
from harness import Cluster

pytestmark = pytest.mark.slow

REGION = "eu/nl/drenthe"


def _holds_all(node, want: int) -> bool:
    kinds = ("need", "capacity")
    return sum(len(node.call("list", kind=k, all=True)) for k in kinds) >= want


def _unnamed(value):
    if isinstance(value, dict):
        return {k: _unnamed(v) for k, v in value.items() if not k.endswith("name")}
    if isinstance(value, list):
        return [_unnamed(v) for v in value]
    return value


def test_match_commit_deliver_confirm_on_every_node(nodes: Cluster) -> None:
    a = nodes.node("a", scope=f"{REGION}/a", sync_interval=2.0).init().start()
    b = nodes.node("b", scope=f"{REGION}/b", sync_interval=2.0).init(a.addr).start()
    c = nodes.node("c", scope=f"{REGION}/c", sync_interval=2.0).init(a.addr).start()
    three = (a, b, c)
    key = {n.name: n.status()["node_id"] for n in three}
    a.post_need(qty="100")
    b.call("post", kind="capacity", item="potatoes", qty="60", unit="kg", period="2027-Q1")
    c.call("post", kind="capacity", item="potatoes", qty="80", unit="kg", period="2027-Q1")
    for n in three:
        n.wait_for(lambda n: _holds_all(n, 3), 40, "all three intents")
    # who has what, on any node
    held = json.loads(a.cli("capacity", "list", "--scope", REGION, "--item", "potatoes", "--json"))
    assert sorted((r["origin"], r["qty"]) for r in held) == sorted(
        [(key["b"], "60"), (key["c"], "80")]
    )
    # the same matches everywhere (a peer's name shows once its node record arrived)
    shown = [_unnamed(json.loads(n.cli("match", REGION, "--json"))) for n in three]
    assert shown[0] == shown[1] == shown[2]
    split = {m["provider"]: m["qty"] for m in shown[0]["within_region"]}
    assert split == {key["b"]: "42.857143", key["c"]: "57.142857"}  # 100 drawn 60:80

    out = b.cli(
        "commitment", "propose", key["a"], "potatoes", "50", "kg",
        "--period", "2027-Q1", "--due", "2027-03-31", "--note", "collect at the farm gate",
    )  # fmt: skip
    offer = f"{key['b']}.{out.split()[-1]}"

    def listed(n) -> list:
        return [cm for cm in n.call("commitment_list", all=True) if cm["id"] == offer]

    a.wait_for(listed, 40, "B's offer")
    assert listed(a)[0]["state"] != "committed"  # one signature counts for nothing
    a.cli("commitment", "accept", offer)
    b.wait_for(lambda n: listed(n) and listed(n)[0]["state"] == "committed", 40, "A's accept")
    out = b.cli("fulfil", offer, "50", "kg")
    delivery = f"{key['b']}.{out.split()[-1]}"

    def delivered(n) -> bool:
        rows = listed(n)
        return bool(rows and rows[0]["deliveries"])

    a.wait_for(delivered, 40, "B's delivery")
    a.cli("confirm", delivery)
    for n in three:

        def confirmed(n) -> bool:
            (tb,) = json.loads(n.cli("track-record", key["b"], "--json"))["nodes"]
            return (tb["committed"], tb["delivered"], tb["confirmed"]) == (1, 1, 1)

        n.wait_for(confirmed, 40, "B's track record")

    # posted against committed: the balance shows the 50 kg both signed, on every node
    for n in three:
        data = json.loads(n.cli("balance", REGION, "--item", "potatoes", "--json"))
        (row,) = data["levels"][0]["rows"]
        got = (row["needs"], row["committed_in"], row["committed_coverage"])
        assert got == ("100", "50", "0.5")
        assert "c.covered" in n.cli("balance", REGION, "--item", "potatoes")
