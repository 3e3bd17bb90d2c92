"""Planning rounds and caps through the control ops (issue 14): flexible intents are
posted, the planner revises its own within range, a member approves beyond it, a cap
decided by vote is shared and bounds rounds and matching."""

from __future__ import annotations

import pytest
from governance.gov_helpers import Clock, FakeDaemon, member, vote

from node.errors import LocalError

REGION = "eu/nl/drenthe"
HOUR = 3_600_000


@pytest.fixture
def three(tmp_path):
    clock = Clock()
    nodes = [FakeDaemon(tmp_path / n, name=n, scope=f"{REGION}/{n}", clock=clock) for n in "abc"]
    yield nodes
    for n in nodes:
        n.close()


def _sync(nodes: list[FakeDaemon]) -> None:
    raws = [r.raw for n in nodes for r in n.state.replica.records()]
    for n in nodes:
        n.state.ingest(raws)


def _post(d: FakeDaemon, kind: str, qty: str, **flex) -> str:
    extra = {"priority": "high"} if kind == "need" else {}
    out = d.call(
        "post", kind=kind, item="potatoes", qty=qty, unit="kg", period="2027", **extra, **flex
    )
    return out["id"]


def _qty(d: FakeDaemon, kind: str, key: str) -> str:
    return d.state.replica.get(d.state.me, kind, key).body["qty"]


def test_the_planner_closes_a_deficit_within_ranges(three):
    a, b, c = three
    n = _post(a, "need", "100", min="80")
    cb = _post(b, "capacity", "60", max="70")
    cc = _post(c, "capacity", "20", max="30")
    _sync(three)
    status = a.call("plan_status")
    (g,) = status["groups"]
    assert (g["needs"], g["capacities"], g["within"]) == ("100", "80", False)
    assert g["index"] == "0.1111"  # (100 - 80) / 180
    # capacities first: B and C produce 10 more each; A's need stays whole
    assert status["mine"] == {"revisions": 0, "review": 0}
    assert b.call("plan_status")["mine"] == {"revisions": 1, "review": 0}
    for d in three:
        d.call("plan_revise")
    assert (_qty(a, "need", n), _qty(b, "capacity", cb), _qty(c, "capacity", cc)) == (
        "100",
        "70",
        "30",
    )
    _sync(three)
    assert a.call("plan_status")["converged"]
    assert b.call("plan_revise")["revised"] == []
    rec = b.state.replica.get(b.state.me, "capacity", cb).body
    assert (rec["round"], rec["base"], rec["max"]) == (1, "60", "70")
    # the same view on every node
    assert a.call("plan_status")["groups"] == b.call("plan_status")["groups"]


def test_beyond_the_range_waits_for_members(three):
    a, b, _ = three
    n = _post(a, "need", "100", min="90")
    _post(b, "capacity", "60", max="70")
    _sync(three)
    rounds = a.call("plan_rounds")
    assert not rounds["converged"]
    assert rounds["remaining_deficit"] == "20"
    a.call("plan_revise")
    assert _qty(a, "need", n) == "90"  # its range's end, no further
    (waiting,) = a.call("plan_review")
    assert waiting["min"] == "90"
    assert waiting["suggested"] != "90"
    with pytest.raises(LocalError, match="name the intent"):
        a.call("plan_approve")
    with pytest.raises(LocalError, match="no revision of 'nope'"):
        a.call("plan_approve", id="nope")
    a.call("plan_approve", id=n)
    body = a.state.replica.get(a.state.me, "need", n).body
    assert body["qty"] == body["min"] == waiting["suggested"]


def test_flex_is_checked_when_posting(three):
    a = three[0]
    with pytest.raises(LocalError, match="outside its range"):
        _post(a, "need", "100", min="120")
    with pytest.raises(LocalError, match="min 90 is larger than max 80"):
        _post(a, "need", "85", min="90", max="80")
    with pytest.raises(LocalError, match="unknown substitute item"):
        _post(a, "need", "100", subs=["marzipan:2"])
    with pytest.raises(LocalError, match="item:ratio"):
        _post(a, "need", "100", subs=["rice"])
    with pytest.raises(LocalError, match=r"unexpected field.*use"):
        _post(a, "need", "100", use=["co2:1:kg"])
    key = _post(a, "need", "100", subs=["rice:0.8"], min="50", max="100")
    assert a.state.replica.get(a.state.me, "need", key).body["subs"] == [["rice", "0.8"]]


def _pass_cap(a: FakeDaemon, qty: str, children: dict, **extra) -> str:
    pid = a.call(
        "cap_propose",
        key="co2-2027",
        title="CO2 for 2027",
        scope=REGION,
        resource="co2",
        qty=qty,
        unit="kg",
        period="2027",
        children=children,
        closes=a.clock.t + HOUR,
        **extra,
    )["proposal"]
    a.clock.t += 1000
    for k, choice in enumerate(["yes", "yes", "no"]):
        m = member(500 + k)
        a.call("gov_member_add", member=m.public.hex(), pseudonym=f"m{k}")
        a.submit(vote(a, m, pid, [choice], scope=a.config.scope))
    assert a.call("cap_list") == []  # not decided while the vote is open
    a.clock.t += HOUR
    a.call("gov_proposal_close", proposal=pid)
    return pid


def test_a_cap_decided_by_vote_bounds_rounds_and_matching(three):
    a, b, _c = three
    n = _post(a, "need", "100", min="50")
    # B would raise to 100 kg of potatoes, at 1 kg CO2 each; its share is 70.
    cb = _post(b, "capacity", "60", max="100", use=["co2:1:kg"])
    _sync(three)
    children = {f"{REGION}/a": 1, f"{REGION}/b": 7, f"{REGION}/c": 2}
    pid = _pass_cap(a, "100", children)
    _sync(three)
    (cap,) = b.call("cap_list")
    assert cap["id"] == pid
    assert cap["qty"] == "100"
    shown = b.call("cap_show", id="co2-2027")
    shares = {s["child"]: s for s in shown["shares"]}
    assert shares[f"{REGION}/b"]["share"] == "70"
    assert shares[f"{REGION}/b"]["use"] == "60"
    for d in three:
        d.call("plan_revise")
    _sync(three)
    # the gap of 40: B produces 10 more (its share of 70, not its max of 100), then
    # A's need gives the other 30
    assert _qty(b, "capacity", cb) == "70"
    assert _qty(a, "need", n) == "70"
    assert a.call("plan_status")["converged"]
    with pytest.raises(LocalError, match="no cap"):
        b.call("cap_show", id="nothing")


def test_matching_never_plans_beyond_a_share(three):
    a, b, _ = three
    _post(a, "need", "100")
    _post(b, "capacity", "90", use=["co2:1:kg"])  # posted before the cap, fixed
    _sync(three)
    assert sum(float(m["qty"]) for m in a.call("match")["within_region"]) == 90
    _pass_cap(a, "40", {f"{REGION}/b": 1})
    _sync(three)
    matches = a.call("match")["within_region"]
    assert sum(float(m["qty"]) for m in matches) == 40
    (row,) = [r for r in b.call("plan_status")["budgets"] if r["child"] == f"{REGION}/b"]
    assert row["use"] == "90"
    assert not row["within_share"]
    # the balance shows use against share for the scopes it lists, and none elsewhere
    assert a.call("balance", scope=REGION, depth=0)["caps"] == []
    (shown,) = a.call("balance", scope=f"{REGION}/b", depth=0)["caps"]
    assert (shown["use"], shown["share"], shown["within_share"]) == ("90", "40", False)
    (by_child,) = [
        c for c in a.call("balance", scope=REGION, depth=1)["caps"] if c["child"] == f"{REGION}/b"
    ]
    assert by_child == shown
    b.call("plan_revise")  # its range is fixed: the cut waits for members
    (waiting,) = b.call("plan_review")
    assert waiting["suggested"] == "40"


def test_hostile_plan_and_cap_arguments_are_refused(three):
    a = three[0]
    with pytest.raises(LocalError, match="subs has 9 items"):
        _post(a, "need", "100", subs=[f"rice:{k + 1}" for k in range(9)])
    with pytest.raises(LocalError, match="resource:qty:unit"):
        _post(a, "capacity", "100", use=["co2:1"])
    with pytest.raises(LocalError, match="unknown unit"):
        _post(a, "capacity", "100", use=["co2:1:parsec"])

    def propose(**kw):
        args = {
            "key": "co2",
            "title": "CO2",
            "scope": REGION,
            "resource": "co2",
            "qty": "100",
            "unit": "kg",
            "period": "2027",
            "children": {f"{REGION}/a": 1},
        }
        return a.call("cap_propose", **{**args, **kw})

    with pytest.raises(LocalError, match="does not lie under"):
        propose(children={"us/ca": 1})
    with pytest.raises(LocalError, match="whole number"):
        propose(qty="1.5")
    with pytest.raises(LocalError, match="children has 65 entries"):
        propose(children={f"{REGION}/c{k}": 1 for k in range(65)})
    with pytest.raises(LocalError, match="must be 1-40 lowercase"):
        propose(key="CO2!")
    assert a.state.replica.get(a.state.me, "proposal", "co2") is None  # nothing written
    propose()
    with pytest.raises(LocalError, match="has a proposal co2 already"):
        propose()
    with pytest.raises(LocalError, match="argument 'period'"):
        a.call("plan_status", period=2027)


def test_a_strangers_intents_do_not_count(three):
    """Only admitted nodes' needs and capacities enter a round: a node outside the
    federation's admission moves nobody's plan."""
    from node.planning.rounds import intents_from_records

    a, b, _ = three
    _post(a, "need", "100", min="80")
    _post(b, "capacity", "60", max="200")
    _sync(three)
    records = list(a.state.replica.records())
    counted = frozenset({a.state.me})
    assert {i.node for i in intents_from_records(records, counted)} == {a.state.me.hex()}
    assert {i.node for i in intents_from_records(records, None)} == {
        a.state.me.hex(),
        b.state.me.hex(),
    }


def test_a_node_nobody_admitted_moves_no_plan(three, tmp_path):
    a, b, _ = three
    _post(a, "need", "100", min="80")
    _post(b, "capacity", "90", max="95")
    stranger = FakeDaemon(tmp_path / "zed", name="zed", scope=f"{REGION}/zed", clock=a.clock)
    try:
        _post(stranger, "capacity", "500", min="1")  # a huge surplus, if it counted
        _sync([a, b])
        a.state.ingest([r.raw for r in stranger.state.replica.records()])
        (g,) = a.call("plan_status")["groups"]
        assert (g["needs"], g["capacities"]) == ("100", "90")
        assert a.call("plan_rounds")["remaining_deficit"] == "0"
    finally:
        stranger.close()


def test_an_empty_node_plans_nothing_and_says_so(three):
    a = three[0]
    status = a.call("plan_status")
    assert (status["groups"], status["converged"], status["budgets"]) == ([], True, [])
    assert a.call("plan_rounds")["remaining_deficit"] == "0"
    assert a.call("plan_review") == []
    assert a.call("plan_revise")["revised"] == []
    assert a.call("cap_list") == []
    with pytest.raises(LocalError, match="no revision waits"):
        a.call("plan_approve", all=True)


def _post_item(d: FakeDaemon, kind: str, item: str, qty: str, **flex) -> str:
    extra = {"priority": "high"} if kind == "need" else {}
    out = d.call("post", kind=kind, item=item, qty=qty, unit="kg", period="2027", **extra, **flex)
    return out["id"]


def _body(d: FakeDaemon, key: str) -> dict | None:
    r = d.state.replica.get(d.state.me, "need", key)
    return None if r is None else r.body


def test_a_shortage_is_served_by_a_declared_substitute(three):
    """Potatoes stay 60 kg short with no range to move; rice has 150 kg spare and A's
    need takes 0.8 kg of rice per kg: A's planner moves 60 kg to a derived need for
    48 kg of rice, and takes it back when the rice is gone."""
    a, b, c = three
    n = _post(a, "need", "100", subs=["rice:0.8"])
    _post(b, "capacity", "40")
    rice = _post_item(c, "capacity", "rice", "200")
    _post_item(c, "need", "rice", "50")
    _sync(three)
    status = a.call("plan_status")
    (sub,) = status["substitutions"]
    assert (sub["need"], sub["part"], sub["substitute"], sub["qty"]) == (n, "60", "rice", "48")
    assert status["mine"]["revisions"] == 2  # the need and its derived need
    assert b.call("plan_status")["substitutions"] == status["substitutions"]
    assert a.call("plan_review") == []  # within range: nothing waits for members
    a.call("plan_revise")
    need = _body(a, n)
    assert (need["qty"], need["subbed"], need["base"]) == ("40", [["rice", "60"]], "100")
    derived = _body(a, f"{n}~rice")
    assert (derived["item"], derived["qty"], derived["replaces"]) == ("rice", "48", [n, "0.8"])
    _sync(three)
    for d in three:
        assert d.call("plan_status")["converged"]
        assert d.call("plan_revise")["revised"] == []
    (potatoes, rice_row) = a.call("plan_status")["groups"]
    assert (potatoes["needs"], rice_row["needs"]) == ("40", "98")
    # Matching covers every need: A gets 40 kg of potatoes from B and 48 kg of rice.
    got: dict[str, float] = {}
    for m in a.call("match")["within_region"]:
        if m["receiver"] == a.state.me.hex():
            got[m["item"]] = got.get(m["item"], 0) + float(m["qty"])
    assert got == {"potatoes": 40, "rice": 48}
    # The rice is withdrawn: the plan serves the need from potatoes again (beyond the
    # ranges: it waits for members) and the derived need is withdrawn.
    c.call("withdraw", kind="capacity", key=rice)
    _sync(three)
    assert a.call("plan_status")["substitutions"] == []
    a.call("plan_revise")
    assert _body(a, f"{n}~rice") is None
    need = _body(a, n)
    assert need["qty"] == "100"
    assert "subbed" not in need


def test_a_derived_need_that_does_not_count_is_rewritten(three):
    """A's derived need for rice says 30 kg where its need lists no part (it counts for
    nothing): the planner signs the need's part and the derived need's right quantity
    together, and withdraws a derived need the plan has no use for."""
    a, b, c = three
    n = _post(a, "need", "100", subs=["rice:0.8", "wheat:1"])
    _post(b, "capacity", "40")
    _post_item(c, "capacity", "rice", "200")
    st = a.state
    body = {"item": "rice", "qty": "30", "unit": "kg", "period": "2027", "priority": "high",
            "replaces": [n, "0.8"]}  # fmt: skip
    st.save_and_commit(st.prepare("need", f"{n}~rice", body))
    stray = dict(body, item="wheat", replaces=[n, "1"])
    st.save_and_commit(st.prepare("need", f"{n}~wheat", stray))
    _sync(three)
    assert [s["qty"] for s in a.call("plan_status")["substitutions"]] == ["48"]
    a.call("plan_revise")
    assert _body(a, n)["subbed"] == [["rice", "60"]]
    assert _body(a, f"{n}~rice")["qty"] == "48"
    assert _body(a, f"{n}~wheat") is None
    assert a.call("plan_revise")["revised"] == []
