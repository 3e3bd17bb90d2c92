"""Deliberation through the control ops and the pure functions: the thread, statements
and reactions, amendments (accept, reject, promote), versions on votes, moderation,
and hostile records of every new kind."""

from __future__ import annotations

import pytest
from gov_helpers import SCOPE, FakeDaemon, member
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.crdt.record import sign_record
from node.errors import LocalError, ValidationError
from node.governance import deliberation
from node.governance.ledger import Ledger
from node.governance.markup import to_html, to_text
from node.governance.member_sign import sign_member_record

HOUR = 3_600_000


@pytest.fixture
def node(tmp_path):
    d = FakeDaemon(tmp_path / "n")
    yield d
    d.close()


ALICE, BOB, CAROL, STRANGER = member(1), member(2), member(3), member(99)


def setup(d):
    for m, p in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")):
        d.call("gov_member_add", member=m.public.hex(), pseudonym=p)
    return d.call(
        "gov_proposal_create",
        key="park",
        title="Which park?",
        text="Plant trees.",
        method="approval",
        options=[{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        discussion=d.clock.t,
        opens=d.clock.t + HOUR,
        closes=d.clock.t + 2 * HOUR,
    )["proposal"]


def signed(d, who, kind, key, b, *, at=None):
    d.clock.t += 1
    return sign_member_record(
        who,
        kind,
        key,
        SCOPE,
        b,
        now_ms=d.clock.t if at is None else at,
        held_max_seq=d.state.replica.max_seq(who.public),
    )


def contribute(d, who, kind, key, b):
    r = signed(d, who, kind, key, b)
    d.submit(r)
    return deliberation.ref(who.public, key)


def test_thread_statements_and_strangers(node):
    pid = setup(node)
    c1 = contribute(node, ALICE, "comment", "c1", {"proposal": pid, "text": "**Yes** trees"})
    contribute(node, BOB, "comment", "c2", {"proposal": pid, "text": "why?", "reply": c1})
    s1 = contribute(node, ALICE, "statement", "s1", {"proposal": pid, "text": "More shade"})
    for who, r in ((ALICE, "agree"), (BOB, "agree"), (CAROL, "disagree")):
        contribute(node, who, "reaction", "r-s1", {"proposal": pid, "statement": s1, "react": r})
    # Carol changes her mind: the newer reaction in her slot counts.
    contribute(node, CAROL, "reaction", "r-s1", {"proposal": pid, "statement": s1, "react": "pass"})
    # A stranger's records are refused at the edge (not a member of an admitted node)...
    spam = signed(node, STRANGER, "comment", "c3", {"proposal": pid, "text": "spam"})
    assert node.state.ingest([spam.raw]).rejected["not-admitted"] == 1
    # Signed later, sorting first by key and author: the thread goes by signing order.
    late = contribute(node, ALICE, "comment", "a0", {"proposal": pid, "text": "later"})
    r = node.call("delib_discuss", proposal=pid)
    assert [c["ref"] for c in r["thread"]] == [c1, late]
    assert [c["author"] for c in r["thread"][0]["replies"]] == [BOB.public.hex()]
    assert r["statements"][0] == {
        "ref": s1,
        "author": ALICE.public.hex(),
        "text": "More shade",
        "agree": 2,
        "disagree": 0,
        "pass": 1,
    }
    assert r["ignored"] == {}
    # ... and never count where they are held anyway.
    react = signed(
        node, STRANGER, "reaction", "r", {"proposal": pid, "statement": s1, "react": "agree"}
    )
    ledger = Ledger([*node.state.replica.records(), spam, react])
    disc = deliberation.discussion(ledger, pid)
    assert disc.ignored == {"comment": 1, "reaction": 1}
    assert [c.ref for c in disc.thread] == [c1, late]
    ops = node.call("delib_opinions", proposal=pid)
    assert ops["participants"] == 2  # Carol passed: she places nobody
    assert ops["texts"] == {s1: "More shade"}
    assert deliberation.opinions(ledger, pid).participants == 2


def test_prepare_refuses_strangers_and_closed_phases(node):
    pid = setup(node)
    with pytest.raises(LocalError, match="not a member"):
        node.call("delib_prepare", proposal=pid, member=STRANGER.public.hex(), kind="comment")
    info = node.call("delib_prepare", proposal=pid, member=ALICE.public.hex(), kind="amendment")
    assert info["version"] == 1
    node.clock.t += HOUR  # voting opens: comments go on, amendments end
    node.call("delib_prepare", proposal=pid, member=ALICE.public.hex(), kind="comment")
    with pytest.raises(LocalError, match="amendments were due"):
        node.call("delib_prepare", proposal=pid, member=ALICE.public.hex(), kind="amendment")
    node.clock.t += HOUR
    with pytest.raises(LocalError, match="ended"):
        node.call("delib_prepare", proposal=pid, member=ALICE.public.hex(), kind="comment")


def test_votes_in_discussion_are_refused(node):
    pid = setup(node)
    with pytest.raises(LocalError, match="in discussion"):
        node.call("gov_vote_prepare", proposal=pid, member=ALICE.public.hex())


def test_amendments_accept_reject_promote_and_versions_on_votes(node, tmp_path):
    pid = setup(node)
    a1 = contribute(
        node,
        ALICE,
        "amendment",
        "a1",
        {"proposal": pid, "version": 1, "options": [{"id": "c", "name": "C"}], "reason": "more"},
    )
    a2 = contribute(node, BOB, "amendment", "a2", {"proposal": pid, "version": 1, "text": "Pave"})
    with pytest.raises(LocalError, match="only the node that wrote"):
        _other_decides(node, tmp_path, a1)
    node.call("delib_amendment_decide", amendment=a1, accept=True)
    with pytest.raises(LocalError, match="decided already"):
        node.call("delib_amendment_decide", amendment=a1, accept=True)
    with pytest.raises(LocalError, match="only a rejected"):
        node.call("delib_amendment_promote", amendment=a2, key="paving")
    node.call("delib_amendment_decide", amendment=a2, accept=False, reason="we want trees")
    r = node.call("delib_discuss", proposal=pid)
    assert r["version"] == 2
    states = {a["ref"]: a for a in r["amendments"]}
    assert states[a1]["state"] == "accepted"
    assert states[a1]["included_in"] == 2
    assert states[a2]["state"] == "rejected"
    assert states[a2]["decision_reason"] == "we want trees"
    amended = Ledger(node.state.replica.records()).find("proposal", pid).body
    assert [o["id"] for o in amended["options"]] == ["a", "b", "c"]
    assert amended["version"] == 2
    assert amended["amendments"] == [a1]
    new = node.call("delib_amendment_promote", amendment=a2, key="paving")["proposal"]
    r = node.call("delib_discuss", proposal=pid)
    assert {a["ref"]: a["state"] for a in r["amendments"]}[a2] == "promoted"
    assert {a["ref"]: a["promoted_to"] for a in r["amendments"]}[a2] == new
    promoted = Ledger(node.state.replica.records()).find("proposal", new).body
    assert promoted["text"] == "Pave"
    assert promoted["from"] == a2
    # Votes name their version: one for version 1 is reported, not counted.
    node.clock.t += HOUR
    old = signed(node, ALICE, "vote", pid, {"ballot": ["a"], "version": 1})
    node.submit(old)
    node.submit(signed(node, BOB, "vote", pid, {"ballot": ["c"], "version": 2}))
    res = node.call("gov_results", proposal=pid)
    assert res["counted"] == 1
    assert res["excluded"] == {"outdated-version": 1}
    assert res["winners"] == ["c"]


def _other_decides(node, tmp_path, aref):
    """Another node cannot decide on an amendment to this node's proposal."""
    other = FakeDaemon(tmp_path / "o", name="other", clock=node.clock)
    try:
        other.state.ingest([r.raw for r in node.state.replica.records()])
        other.call("delib_amendment_decide", amendment=aref, accept=True)
    finally:
        other.close()


def test_a_decision_by_anybody_but_the_author_is_ignored(node):
    pid = setup(node)
    a1 = contribute(node, ALICE, "amendment", "a1", {"proposal": pid, "version": 1, "text": "x"})
    # Bob (a member, not the proposal's node) signs a decision record himself
    forged = signed(node, BOB, "decision", "d1", {"amendment": a1, "accept": False, "reason": "no"})
    assert node.state.ingest([forged.raw]).rejected["not-admitted"] == 1
    ledger = Ledger([*node.state.replica.records(), forged])
    states = {a.ref: a.state for a in deliberation.discussion(ledger, pid).amendments}
    assert states[a1] == "proposed"


def test_moderation_hides_with_who_and_why(node, tmp_path):
    pid = setup(node)
    c1 = contribute(node, ALICE, "comment", "c1", {"proposal": pid, "text": "rude words"})
    with pytest.raises(LocalError, match="no comment"):
        node.call("delib_hide", comment=c1 + "x", reason="r")
    node.call("delib_hide", comment=c1, reason="insult")
    thread = node.call("delib_discuss", proposal=pid)["thread"]
    assert thread[0]["ref"] == c1
    assert thread[0]["text"] is None
    assert thread[0]["hidden"] == {"by": node.state.me.hex(), "reason": "insult"}
    # another node cannot hide a member it did not admit
    other = FakeDaemon(tmp_path / "o", name="other", clock=node.clock)
    try:
        other.state.ingest([r.raw for r in node.state.replica.records()])
        with pytest.raises(LocalError, match="own members only"):
            other.call("delib_hide", comment=c1, reason="x")
        # and its hide record, written by hand, does not count
        other.state.write("hide", "h1", {"comment": c1, "reason": "censored"})
        node.state.ingest([r.raw for r in other.state.replica.records()])
        assert node.call("delib_discuss", proposal=pid)["thread"][0]["hidden"]["reason"] == "insult"
    finally:
        other.close()


# --- properties ------------------------------------------------------------------------


def _records(d, pid):
    """A small deliberation's records: comments with replies, reactions, amendments."""
    out = []
    people = [ALICE, BOB, CAROL, STRANGER]
    for i, who in enumerate(people):
        b = {"proposal": pid, "text": f"c{i}"}
        if i:
            b["reply"] = deliberation.ref(ALICE.public, "c0")
        out.append(signed(d, who, "comment", f"c{i}", b, at=1000 + i % 2))
        out.append(signed(d, who, "statement", f"s{i}", {"proposal": pid, "text": f"s{i}"}))
        for j, other in enumerate(people):
            out.append(
                signed(
                    d,
                    who,
                    "reaction",
                    f"r{j}",
                    {
                        "proposal": pid,
                        "statement": deliberation.ref(other.public, f"s{j}"),
                        "react": ("agree", "disagree", "pass")[(i * j + i) % 3],
                    },
                )
            )
        out.append(
            signed(d, who, "amendment", f"a{i}", {"proposal": pid, "version": 1, "text": "t"})
        )
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = FakeDaemon(tmp_path_factory.mktemp("w") / "n")
    pid = setup(d)
    base = list(d.state.replica.records())
    extra = _records(d, pid)
    # The author decides on two amendments (held with the members' records).
    d.state.ingest([r.raw for r in extra])
    d.call("delib_amendment_decide", amendment=deliberation.ref(ALICE.public, "a0"), accept=True)
    d.call(
        "delib_amendment_decide",
        amendment=deliberation.ref(BOB.public, "a1"),
        accept=False,
        reason="no",
    )
    held = {r.rid for r in [*base, *extra]}
    extra += [r for r in d.state.replica.records() if r.rid not in held]
    yield base, extra, pid
    d.close()


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_thread_amendments_and_map_do_not_depend_on_arrival_order(world, data):
    base, extra, pid = world
    order = data.draw(st.permutations(extra))
    subset = data.draw(st.integers(0, len(extra)))
    a = Ledger([*base, *extra])
    b = Ledger([*reversed(base), *order])
    assert deliberation.discussion(a, pid) == deliberation.discussion(b, pid)
    states = {x.ref: x.state for x in deliberation.discussion(a, pid).amendments}
    assert states[deliberation.ref(ALICE.public, "a0")] == "accepted"
    assert states[deliberation.ref(BOB.public, "a1")] == "rejected"
    assert deliberation.opinions(a, pid) == deliberation.opinions(b, pid)
    # Whatever subset has arrived, a stranger's contributions never count.
    part = Ledger([*base, *order[:subset]])
    disc = deliberation.discussion(part, pid)
    stranger = STRANGER.public.hex()

    def authors(cs):
        for c in cs:
            yield c.author
            yield from authors(c.replies)

    assert stranger not in set(authors(disc.thread))
    assert stranger not in {s["author"] for s in disc.statements}
    assert stranger not in {x.author for x in disc.amendments}
    omap = deliberation.opinions(part, pid)
    assert stranger not in {m for g in omap.groups for m in g.members}


# --- hostile records -------------------------------------------------------------------

PID = "0123456789abcdef.park"
REF = "ab" * 32 + ".c1"
GOOD = {
    "comment": {"proposal": PID, "text": "hi", "reply": REF},
    "statement": {"proposal": PID, "text": "short"},
    "reaction": {"proposal": PID, "statement": REF, "react": "agree"},
    "amendment": {"proposal": PID, "version": 1, "options": [{"id": "c", "name": "C"}]},
    "decision": {"amendment": REF, "accept": False, "reason": "no"},
    "hide": {"comment": REF, "reason": "insult"},
}
BAD = [
    ("comment", {"proposal": PID, "text": "x" * 2001}, "2000"),
    ("comment", {"proposal": "park", "text": "x"}, "proposal"),
    ("comment", {"proposal": PID, "text": "x", "reply": "cd.c1"}, "reply"),
    ("comment", {"proposal": PID, "text": "x\u202e"}, "text"),
    ("comment", {"proposal": PID, "text": "x", "extra": 1}, "extra"),
    ("statement", {"proposal": PID, "text": "x" * 281}, "280"),
    ("statement", {"proposal": PID, "text": "two\nlines"}, "text"),
    ("reaction", {"proposal": PID, "statement": REF, "react": "love"}, "react"),
    ("reaction", {"proposal": PID, "statement": REF + "\n", "react": "agree"}, "statement"),
    ("amendment", {"proposal": PID, "version": 1}, "text or the options"),
    ("amendment", {"proposal": PID, "version": 0, "text": "t"}, "version"),
    ("amendment", {"proposal": PID, "version": 1, "options": []}, "options"),
    ("amendment", {"proposal": PID, "version": 1, "options": [{"id": "c"}]}, "name"),
    ("amendment", {"proposal": PID, "version": 1, "text": "x" * 4001}, "4000"),
    ("decision", {"amendment": REF, "accept": False}, "reason"),
    ("decision", {"amendment": REF, "accept": True}, "version"),
    ("decision", {"amendment": REF, "accept": "yes", "reason": "r"}, "accept"),
    ("decision", {"amendment": REF, "accept": False, "reason": "r", "version": 2}, "no version"),
    ("hide", {"comment": REF}, "reason"),
    ("hide", {"comment": "x", "reason": "r"}, "comment"),
]


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_valid_bodies(kind):
    model.validate(kind, "k1", SCOPE, GOOD[kind])
    model.validate(kind, "k1", SCOPE, None)


@pytest.mark.parametrize(("kind", "b", "match"), BAD, ids=[f"{k}-{m}" for k, _, m in BAD])
def test_invalid_bodies(kind, b, match):
    with pytest.raises(ValidationError, match=match):
        model.validate(kind, "k1", SCOPE, b)


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_forged_and_oversize_records_are_rejected(node, kind):
    # signed by Bob's key but claiming Alice as origin
    forged = sign_record(BOB.signer(), ALICE.public, kind, "k1", 5, 5, SCOPE, GOOD[kind])
    result = node.state.ingest([forged.raw])
    assert result.rejected
    assert not result.stored
    big = {**GOOD[kind]}
    big["pad"] = "x" * 20_000
    with pytest.raises(ValidationError):
        model.validate(kind, "k1", SCOPE, big)


def test_markup_is_safe():
    src = "**bold** <script>alert(1)</script> *em* `x<y`\n\n- one\n- [two](javascript:x)"
    out = to_html(src)
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    assert "<strong>bold</strong>" in out
    assert "<em>em</em>" in out
    assert "<code>x&lt;y</code>" in out
    assert "<ul><li>one</li><li>[two](javascript:x)</li></ul>" in out
    assert "href" not in out
    assert to_text(src).splitlines()[0] == "bold <script>alert(1)</script> em x<y"
    assert "• one" in to_text(src)


def test_out_of_order_arrivals_settle_to_the_same_view(node):
    pid = setup(node)
    base = list(node.state.replica.records())
    parent = signed(node, ALICE, "comment", "p", {"proposal": pid, "text": "parent"})
    child = signed(
        node,
        BOB,
        "comment",
        "q",
        {"proposal": pid, "text": "child", "reply": deliberation.ref(ALICE.public, "p")},
    )
    stmt = signed(node, ALICE, "statement", "s", {"proposal": pid, "text": "s"})
    react = signed(
        node,
        BOB,
        "reaction",
        "r",
        {"proposal": pid, "statement": deliberation.ref(ALICE.public, "s"), "react": "agree"},
    )
    # the reply and the reaction first: the reply stands at the top, marked as a reply;
    # the reaction waits (ignored) for its statement
    early = deliberation.discussion(Ledger([*base, child, react]), pid)
    assert [c.ref for c in early.thread] == [deliberation.ref(BOB.public, "q")]
    assert early.thread[0].reply == deliberation.ref(ALICE.public, "p")
    assert early.ignored == {"reaction": 1}
    late = deliberation.discussion(Ledger([*base, child, react, parent, stmt]), pid)
    assert [c.ref for c in late.thread] == [deliberation.ref(ALICE.public, "p")]
    assert [c.ref for c in late.thread[0].replies] == [deliberation.ref(BOB.public, "q")]
    assert late.statements[0]["agree"] == 1
    assert late.ignored == {}
