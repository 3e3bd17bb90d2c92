"""A region decides on who counts by vote: suspend a node, change its rule (issue 10)."""

from __future__ import annotations

import pytest
from gov_helpers import SCOPE, FakeDaemon, member, vote

from node.errors import LocalError
from node.governance.admission import Status

HOUR = 3_600_000
REGION = "/".join(SCOPE.split("/")[:3])


@pytest.fixture
def pair(tmp_path):
    a = FakeDaemon(tmp_path / "a", name="a")
    b = FakeDaemon(tmp_path / "b", name="b", clock=a.clock, scope=REGION + "/b")
    a.state.ingest([r.raw for r in b.state.replica.records()])
    yield a, b
    a.close()
    b.close()


def _decide(a: FakeDaemon, decision: dict, ballots: list[str]) -> str:
    pid = a.call(
        "gov_proposal_create",
        key="d" + str(len(a.written)),
        title="decision",
        method="approval",
        options=[{"id": "yes", "name": "yes"}, {"id": "no", "name": "no"}],
        seats=1,
        electorate=REGION,
        closes=a.clock.t + HOUR,
        admission=decision,
    )["proposal"]
    a.clock.t += 1000
    for k, choice in enumerate(ballots):
        m = member(100 + k + len(a.written))
        a.call("gov_member_add", member=m.public.hex(), pseudonym=f"m{k}")
        a.submit(vote(a, m, pid, [choice]))
    return pid


def test_a_region_suspends_a_node_by_vote(pair):
    a, b = pair
    adm = a.state.core.admission
    assert adm.is_admitted(b.state.me)
    pid = _decide(a, {"suspend": b.state.me.hex()}, ["yes", "yes", "no"])
    assert a.state.core.admission.is_admitted(b.state.me)  # open: nothing decided yet
    a.clock.t += HOUR
    a.call("gov_proposal_close", proposal=pid)
    adm = a.state.core.admission
    assert not adm.is_admitted(b.state.me)
    assert adm.standings[b.state.me].status is Status.SUSPENDED
    assert adm.is_admitted(a.state.me)
    # its needs no longer count here
    b.state.post_intent("need", "potatoes", "10", "kg", "2027-Q1", priority="high")
    refused = a.state.ingest([r.raw for r in b.state.replica.records("need")])
    assert refused.rejected == {"not-admitted": 1}


def _swap(a: FakeDaemon, b: FakeDaemon) -> None:
    a.state.ingest([r.raw for r in b.state.replica.records()])
    b.state.ingest([r.raw for r in a.state.replica.records()])


def test_a_suspended_node_keeps_its_track_record(pair):
    # A track record is about what happened: a node that committed, delivered and was
    # confirmed while admitted keeps that record after its region suspends it (and
    # its counterpart keeps the commitment it received).
    a, b = pair
    terms = {"item": "potatoes", "qty": "50", "unit": "kg", "period": "2027-Q1"}
    _swap(a, b)
    offer = b.call("commitment_propose", **{"with": a.state.me.hex()}, **terms, due="2027-03-31")
    ref = f"{b.state.me.hex()}.{offer['id']}"
    _swap(a, b)
    a.call("commitment_accept", id=ref)
    _swap(a, b)
    delivery = b.call("fulfil", id=ref, qty="50", unit="kg", date="2023-11-10")
    _swap(a, b)
    a.call("confirm", id=f"{b.state.me.hex()}.{delivery['id']}")
    before = a.call("track_record", node=b.state.me.hex())["nodes"]
    pid = _decide(a, {"suspend": b.state.me.hex()}, ["yes"])
    a.clock.t += HOUR
    a.call("gov_proposal_close", proposal=pid)
    adm = a.state.core.admission
    assert not adm.is_admitted(b.state.me)
    assert adm.suspended == {b.state.me}
    after = a.call("track_record", node=b.state.me.hex())["nodes"]
    assert after == before
    (tb,) = after
    assert (tb["committed"], tb["delivered"], tb["confirmed"]) == (1, 1, 1)
    (ta,) = a.call("track_record", node=a.state.me.hex())["nodes"]
    assert ta["received"] == 1
    (cm,) = a.call("commitment_list", all=True)
    assert cm["state"] == "committed"
    # nothing new from it is taken
    later = b.call("commitment_propose", **{"with": a.state.me.hex()}, **terms, due="2027-04-30")
    refused = a.state.ingest([r.raw for r in b.state.replica.records("offer")])
    assert refused.rejected == {"not-admitted": 1}
    assert later["id"] not in {c["id"] for c in a.call("commitment_list", all=True)}


def test_a_no_changes_nothing(pair):
    a, b = pair
    pid = _decide(a, {"suspend": b.state.me.hex()}, ["no", "no", "yes"])
    a.clock.t += HOUR
    a.call("gov_proposal_close", proposal=pid)
    assert a.state.core.admission.is_admitted(b.state.me)


def test_a_region_changes_its_rule_by_vote(pair):
    a, _ = pair
    assert a.call("admission", node=a.state.me.hex())["status"] == "admitted"
    pid = _decide(a, {"rule": {"cap": 5, "num": 1, "den": 1}}, ["yes"])
    a.clock.t += HOUR
    a.call("gov_proposal_close", proposal=pid)
    newcomer = FakeDaemon(a.store.path.parent.parent / "n", name="newcomer", scope=REGION + "/n")
    try:
        a.call("endorse", node=newcomer.state.me.hex())  # vouched for: its node record comes in
        a.state.ingest([r.raw for r in newcomer.state.replica.records("node")])
        standing = a.call("admission", node=newcomer.state.me.hex())
        assert standing["status"] == "pending"
        assert standing["needed"] == 2  # min(5, max(1, 2 admitted x 1/1)): both must vouch
    finally:
        newcomer.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "score", "min_score": 0, "max_score": 5}, "approval vote between yes and no"),
        ({"options": [{"id": "yes", "name": "y"}, {"id": "maybe", "name": "m"}]}, "yes and no"),
        ({"electorate": "eu/nl"}, "electorate is a region"),
        ({"admission": {"suspend": "zz"}}, "64 lowercase hex"),
        ({"admission": {"exile": "ab" * 32}}, "suspend: node id"),
        ({"admission": {"rule": {"cap": 0, "num": 1, "den": 1}}}, "cap must be"),
    ],
)
def test_malformed_decisions_are_refused(pair, changes, message):
    a, b = pair
    args = {
        "key": "bad",
        "title": "decision",
        "method": "approval",
        "options": [{"id": "yes", "name": "yes"}, {"id": "no", "name": "no"}],
        "seats": 1,
        "electorate": REGION,
        "closes": a.clock.t + HOUR,
        "admission": {"suspend": b.state.me.hex()},
        **changes,
    }
    with pytest.raises(LocalError, match=message):
        a.call("gov_proposal_create", **args)
