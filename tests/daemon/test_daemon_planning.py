"""Planning rounds over real daemons on 127.0.0.1 (issue 14): A needs 100 kg of potatoes
(it could live with 70), B has 50 (could grow to 60), C has 30 (could grow to 35): 20 kg
short. Capacities go first: B and C to their maximum, then A's need gives the last 5.
Each daemon's planner revises only its own records, by itself; after the rounds the
plan has converged on all three, and matching covers every need, the same on every
node."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from harness import Cluster

pytestmark = pytest.mark.slow

REGION = "eu/nl/drenthe"


def _held(node) -> list[dict]:
    return [r for k in ("need", "capacity") for r in node.call("list", kind=k, all=True)]


def _status(node) -> dict:
    return json.loads(node.cli("plan", "status", "--json"))


def test_rounds_close_a_deficit_and_matching_covers_every_need(nodes: Cluster) -> None:
    a = nodes.node("a", scope=f"{REGION}/a", sync_interval=2.0).init().start()
    b = nodes.node("b", scope=f"{REGION}/b", sync_interval=2.0).init(a.addr).start()
    c = nodes.node("c", scope=f"{REGION}/c", sync_interval=2.0).init(a.addr).start()
    three = (a, b, c)
    a.cli("need", "add", "potatoes", "100", "kg", "--period", "2027", "--min", "70",
          "--priority", "high")  # fmt: skip
    b.cli("capacity", "add", "potatoes", "50", "kg", "--period", "2027", "--max", "60")
    c.cli("capacity", "add", "potatoes", "30", "kg", "--period", "2027", "--max", "35")
    for n in three:
        n.wait_for(lambda n: len(_held(n)) >= 3, 40, "all three intents")
    # (the planners may act on part of the records first; they follow the plan of
    # whatever they hold, and end at the plan of all records)

    def settled(n) -> bool:
        held = _held(n)
        return len(held) == 3 and all("round" in r for r in held) and _status(n)["converged"]

    # Each daemon's planner signs its own part of the plan on its own, whichever of
    # the others' revisions it holds already: the plan runs from the declared quantities.
    for n in three:
        n.wait_for(settled, 20, "the revisions of all three")
    assert all(r["round"] == 1 for r in _held(a))  # one round, each node its own
    assert "Nothing to revise" in b.cli("plan", "revise")
    for n in three:
        assert "event=plan.revised" in n.log()  # logged where it was signed
    qty = {n.name: Fraction(next(r["qty"] for r in _held(a) if r["origin"] == n.node_id))
           for n in three}  # fmt: skip
    assert qty == {"a": 95, "b": 60, "c": 35}
    # every node computes the same round from the same records
    assert _status(b)["groups"] == _status(c)["groups"] == _status(a)["groups"]
    # matching covers A's need on every node, and all three agree
    shown = []
    for n in three:
        m = json.loads(n.cli("match", REGION, "--json"))["within_region"]
        shown.append(sorted((x["provider"], x["receiver"], x["qty"]) for x in m))
        to_a = sum(Fraction(x["qty"]) for x in m if x["receiver"] == a.node_id)
        assert to_a == qty["a"]
    assert shown[0] == shown[1] == shown[2]
    rounds = json.loads(b.cli("plan", "rounds", "--json"))
    assert rounds["converged"]
    assert rounds["remaining_deficit"] == "0"


def test_a_substitute_closes_a_deficit_no_range_can(nodes: Cluster) -> None:
    """A needs 100 kg of potatoes and takes 0.8 kg of rice per kg instead; B has 40 kg
    of potatoes, C 200 kg of rice and needs 50. No range can close the 60 kg: A's
    planner moves them to a derived need for 48 kg of rice, and matching covers both
    of A's needs, the same on every node."""
    a = nodes.node("a", scope=f"{REGION}/a", sync_interval=2.0).init().start()
    b = nodes.node("b", scope=f"{REGION}/b", sync_interval=2.0).init(a.addr).start()
    c = nodes.node("c", scope=f"{REGION}/c", sync_interval=2.0).init(a.addr).start()
    three = (a, b, c)
    a.cli("need", "add", "potatoes", "100", "kg", "--period", "2027", "--sub", "rice:0.8",
          "--priority", "high")  # fmt: skip
    b.cli("capacity", "add", "potatoes", "40", "kg", "--period", "2027")
    c.cli("capacity", "add", "rice", "200", "kg", "--period", "2027")
    c.cli("need", "add", "rice", "50", "kg", "--period", "2027", "--priority", "high")

    def settled(n) -> bool:
        return len(_held(n)) == 5 and _status(n)["converged"]

    for n in three:
        n.wait_for(settled, 40, "the substitution on every node")
    assert "event=plan.revised" in a.log()
    mine = {r["item"]: r for r in _held(b) if r["origin"] == a.node_id}
    assert (mine["potatoes"]["qty"], mine["rice"]["qty"]) == ("40", "48")
    (sub,) = _status(c)["substitutions"]
    assert (sub["part"], sub["substitute"], sub["qty"]) == ("60", "rice", "48")
    shown = []
    for n in three:
        m = json.loads(n.cli("match", REGION, "--json"))["within_region"]
        shown.append(sorted((x["provider"], x["receiver"], x["item"], x["qty"]) for x in m))
        to_a = {x["item"]: Fraction(x["qty"]) for x in m if x["receiver"] == a.node_id}
        assert to_a == {"potatoes": 40, "rice": 48}
    assert shown[0] == shown[1] == shown[2]
