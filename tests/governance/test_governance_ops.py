"""Members, proposals, votes, the close and results through the control ops."""

from __future__ import annotations

import pytest
from gov_helpers import SCOPE, FakeDaemon, member, pid_of, vote

from node.errors import LocalError

HOUR = 3_600_000


@pytest.fixture
def node(tmp_path):
    d = FakeDaemon(tmp_path / "n")
    yield d
    d.close()


def approval_proposal(d, key="park", **kw):
    args = {
        "key": key,
        "title": "Which park?",
        "method": "approval",
        "options": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}, {"id": "c", "name": "C"}],
        "closes": d.clock.t + HOUR,
        **kw,
    }
    return d.call("gov_proposal_create", **args)["proposal"]


def test_vote_close_results(node):
    alice, bob, carol = member(1), member(2), member(3)
    for m, p in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        node.call("gov_member_add", member=m.public.hex(), pseudonym=p, features={"age": "30-44"})
    pid = approval_proposal(node)
    node.clock.t += 1000
    node.submit(vote(node, alice, pid, ["a", "b"]))
    node.submit(vote(node, bob, pid, ["b"]))
    node.submit(vote(node, carol, pid, ["c"]))
    res = node.call("gov_results", proposal=pid)
    assert res["status"] == "provisional"
    assert res["winners"] == ["b"]
    # carol changes her mind: the newer vote replaces hers
    node.clock.t += 1
    node.submit(vote(node, carol, pid, ["a"]))
    with pytest.raises(LocalError, match="still open"):
        node.call("gov_proposal_close", proposal=pid)
    node.clock.t += HOUR
    closed = node.call("gov_proposal_close", proposal=pid)
    assert closed["frozen_votes"] == 3
    res = node.call("gov_results", proposal=pid)
    assert res["status"] == "final"
    assert res["counted"] == 3
    assert res["winners"] == ["a"]
    assert {o["id"]: o["count"] for o in res["detail"]["options"]} == {"a": 2, "b": 2, "c": 0}
    with pytest.raises(LocalError, match="closed already"):
        node.call("gov_proposal_close", proposal=pid, early=True)


def test_vote_prepare_refuses_non_members_and_closed(node):
    pid = approval_proposal(node)
    stranger = member(9)
    with pytest.raises(LocalError, match="not a member"):
        node.call("gov_vote_prepare", proposal=pid, member=stranger.public.hex())
    node.call("gov_member_add", member=stranger.public.hex(), pseudonym="s")
    info = node.call("gov_vote_prepare", proposal=pid, member=stranger.public.hex())
    assert info["scope"] == SCOPE
    assert info["held_max_seq"] == 0
    node.call("gov_proposal_close", proposal=pid, early=True)
    with pytest.raises(LocalError, match="closed"):
        node.call("gov_vote_prepare", proposal=pid, member=stranger.public.hex())


def test_member_remove_and_list(node):
    m = member(5)
    node.call("gov_member_add", member=m.public.hex(), pseudonym="m")
    assert [r["member"] for r in node.call("gov_member_list")] == [m.public.hex()]
    node.call("gov_member_remove", member=m.public.hex())
    assert node.call("gov_member_list") == []
    with pytest.raises(LocalError, match="not a member"):
        node.call("gov_member_remove", member=m.public.hex())
    with pytest.raises(LocalError, match="64 hex"):
        node.call("gov_member_add", member="zz", pseudonym="m")


def test_close_is_for_the_author_only(tmp_path, node):
    pid = approval_proposal(node)
    other = FakeDaemon(tmp_path / "o", name="other", clock=node.clock)
    try:
        other.state.ingest([r.raw for r in node.state.replica.records()])
        with pytest.raises(LocalError, match="only the node that created"):
            other.call("gov_proposal_close", proposal=pid, early=True)
    finally:
        other.close()


def test_proposal_ids_and_validation(node):
    with pytest.raises(LocalError, match="lowercase"):
        approval_proposal(node, key="Bad Key")
    with pytest.raises(LocalError, match="seats"):
        approval_proposal(node, key="k", seats=5)
    pid = approval_proposal(node, key="k")
    assert pid == pid_of(node, "k")
    with pytest.raises(LocalError, match="already"):
        approval_proposal(node, key="k")
    shown = node.call("gov_proposal_show", proposal=pid)
    assert shown["phase"] == "open"
    assert shown["votes_held"] == 0
    with pytest.raises(LocalError, match="no proposal"):
        node.call("gov_proposal_show", proposal="0123456789abcdef.nope")


# --- "was my vote counted" (gov_vote_receipt) and the assembly list -------------------


def test_vote_receipt_op_follows_a_vote_through_the_close(node):
    alice, stranger = member(11), member(12)
    node.call("gov_member_add", member=alice.public.hex(), pseudonym="alice")
    pid = approval_proposal(node)
    r = node.call("gov_vote_receipt", proposal=pid, member=alice.public.hex())
    assert (r["status"], r["final"], r["ballot"]) == ("no-vote", False, None)
    node.clock.t += 1000
    node.submit(vote(node, alice, pid, ["a"]))
    r = node.call("gov_vote_receipt", proposal=pid, member=alice.public.hex())
    assert (r["status"], r["ballot"]) == ("counts", ["a"])
    node.clock.t += HOUR
    node.call("gov_proposal_close", proposal=pid)
    r = node.call("gov_vote_receipt", proposal=pid, member=alice.public.hex())
    assert (r["status"], r["final"]) == ("counted", True)
    # A key the node never admitted has no vote here (its records are refused).
    r = node.call("gov_vote_receipt", proposal=pid, member=stranger.public.hex())
    assert r["status"] == "no-vote"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"member": "ab" * 31}, "64 hex"),
        ({"member": "zz" * 32}, "64 hex"),
        ({"member": "ab" * 33}, "characters long"),
        ({"proposal": "ffffffffffffffff.nothing"}, "no proposal"),
        ({"proposal": "not an id"}, "is not an id"),
        ({"extra": 1}, "unknown argument"),
    ],
)
def test_vote_receipt_op_refuses_malformed_requests(node, args, message):
    pid = approval_proposal(node)
    full = {"proposal": pid, "member": member(1).public.hex(), **args}
    with pytest.raises(LocalError, match=message):
        node.call("gov_vote_receipt", **full)


def test_assembly_list_op(node):
    assert node.call("gov_assembly_list") == []
    others = [member(20 + i).public.hex() for i in range(2)]
    aid = node.call(
        "gov_assembly_create",
        key="council",
        title="Council",
        size=2,
        quotas={},
        committers=[node.state.me.hex(), *others],
    )["assembly"]
    [a] = node.call("gov_assembly_list")
    assert (a["assembly"], a["title"], a["volunteers"], a["panel"]) == (aid, "Council", 0, None)
    with pytest.raises(LocalError, match="unknown argument"):
        node.call("gov_assembly_list", all=True)
