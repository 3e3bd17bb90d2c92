"""Tallies from records: order independence, signatures, the close, removals."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from factories import Author, identities
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.clock import pack_hlc
from node.crdt.record import Record, sign_record
from node.governance import tally
from node.governance.ledger import Ledger, object_id

SCOPE = "eu/nl/drenthe/assen"
OPENS, CLOSES = 1_000_000, 2_000_000
OPTIONS = ["a", "b", "c", "d"]
PEOPLE = identities(12, seed=7)
NODE, OTHER_NODE, ATTACKER = identities(3, seed=8)


@dataclass
class Scenario:
    node: Author = field(default_factory=lambda: Author(NODE, SCOPE))
    records: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.records.append(
            self.node.write("node", "self", {"name": "assen", "kind": "commune", "scope": SCOPE})
        )
        self.records.append(
            self.node.write(
                "proposal",
                "park",
                {
                    "title": "Park",
                    "method": "approval",
                    "electorate": "eu/nl",
                    "options": [{"id": o, "name": o.upper()} for o in OPTIONS],
                    "seats": 1,
                    "opens": OPENS,
                    "closes": CLOSES,
                },
                hlc=pack_hlc(OPENS, 0),
            )
        )
        self.pid = object_id(NODE.public, "park")

    def add_member(self, i: int) -> None:
        self.records.append(
            self.node.write(
                "member", PEOPLE[i].public.hex(), {"pseudonym": f"p{i}", "consent": True}
            )
        )

    def remove_member(self, i: int) -> None:
        self.records.append(self.node.write("member", PEOPLE[i].public.hex(), None))

    def vote(
        self, i: int, ballot: list[str], at: int = OPENS + 1, *, seq: int | None = None, signer=None
    ) -> Record:
        who = PEOPLE[i]
        r = sign_record(
            (signer or who).signer(),
            who.public,
            "vote",
            self.pid,
            seq or at,
            pack_hlc(at, 0),
            SCOPE,
            {"ballot": ballot},
        )
        self.records.append(r)
        return r

    def close(self, extra_votes: list[bytes] = ()) -> None:
        plan = tally.close_plan(Ledger(self.records), self.pid)
        if extra_votes:  # a misbehaving author freezing votes it should not
            from node.governance.freeze import chunk_entries, freeze_hash

            raws = [e for _, _, b in plan[:-1] for e in b["votes"]] + list(extra_votes)
            chunks = chunk_entries(raws)
            plan = [("closeset", f"park/{i}", {"votes": c}) for i, c in enumerate(chunks)]
            plan.append(
                (
                    "close",
                    "park",
                    {"chunks": len(chunks), "count": len(raws), "hash": freeze_hash(raws)},
                )
            )
        for kind, key, body in plan:
            self.records.append(self.node.write(kind, key, body, hlc=pack_hlc(CLOSES, 0)))

    def results(self, records=None, now=CLOSES + 1) -> tally.Results:
        return tally.results(Ledger(self.records if records is None else records), self.pid, now)


ballots = st.lists(st.lists(st.sampled_from(OPTIONS), unique=True), min_size=1, max_size=8)


def scenario_with(bs: list[list[str]], *, closed: bool = True) -> Scenario:
    s = Scenario()
    for i, b in enumerate(bs):
        s.add_member(i)
        s.vote(i, b)
    if closed:
        s.close()
    return s


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bs=ballots, closed=st.booleans(), data=st.data())
def test_tally_does_not_depend_on_record_order(bs, closed, data):
    s = scenario_with(bs, closed=closed)
    # A replaced vote and a duplicate too: the ledger keeps the slot winner like a replica.
    s.vote(0, ["d"], at=OPENS + 2) if not closed else None
    shuffled = data.draw(st.permutations(s.records + s.records[:3]))
    assert s.results(shuffled) == s.results()


@settings(max_examples=30, deadline=None)
@given(bs=ballots, forged=st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True))
def test_a_vote_signed_by_anyone_but_the_member_never_counts(bs, forged):
    s = scenario_with(bs, closed=False)
    honest = s.results(now=CLOSES + 1).detail
    extra = []
    for i in forged:
        if i >= len(bs):
            s.add_member(i)
        # The author freezes a vote "by" member i that the attacker signed.
        extra.append(s.vote(i, ["a", "b", "c", "d"], at=OPENS + 5, signer=ATTACKER).raw)
        s.records.pop()  # never held as a live vote (the replica would reject it)
    s.close(extra_votes=extra)
    res = s.results()
    assert res.status == "final"
    assert res.excluded.get("bad-signature") == len(forged)
    assert res.counted == len(bs)
    assert res.detail["options"] == honest["options"]


@settings(max_examples=30, deadline=None)
@given(
    bs=ballots,
    late=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.lists(st.sampled_from(OPTIONS), unique=True),
            st.integers(OPENS, CLOSES + 10),
        ),
        max_size=5,
    ),
)
def test_votes_after_the_close_never_count(bs, late):
    s = scenario_with(bs)
    before = s.results()
    for i, b, at in late:  # arrive after the close, back-dated or not
        if i >= len(bs):
            s.add_member(i)
        s.vote(i, b, at=at, seq=CLOSES + 100 + at)
    after = s.results()
    assert (after.winners, after.detail, after.counted) == (
        before.winners,
        before.detail,
        before.counted,
    )
    assert after.uncounted == len({i for i, _, _ in late})


@settings(max_examples=30, deadline=None)
@given(bs=ballots, removed=st.sets(st.integers(0, 7)), before_close=st.booleans())
def test_removed_members_votes_never_count(bs, removed, before_close):
    removed = {i for i in removed if i < len(bs)}
    s = scenario_with(bs, closed=False)
    if before_close:
        for i in removed:
            s.remove_member(i)
        s.close()
    else:
        s.close()
        for i in removed:
            s.remove_member(i)
    res = s.results()
    expected = scenario_with([b for i, b in enumerate(bs) if i not in removed] or [[]])
    counts = {o["id"]: o["count"] for o in res.detail["options"]}
    want = {o["id"]: o["count"] for o in expected.results().detail["options"]}
    assert counts == want
    assert res.counted == len(bs) - len(removed)


def test_missing_chunk_or_member_makes_the_result_incomplete():
    s = scenario_with([["a"], ["b"], ["a", "b"]])
    full = s.results()
    assert full.status == "final"
    assert full.winners == ("a",)
    no_chunk = [r for r in s.records if r.kind != "closeset"]
    res = s.results(no_chunk)
    assert res.status == "incomplete"
    assert res.missing == 3
    assert res.winners == ()
    no_member = [
        r for r in s.records if not (r.kind == "member" and r.key == PEOPLE[1].public.hex())
    ]
    res = s.results(no_member)
    assert res.status == "incomplete"
    assert res.missing == 1
    assert "member records" in res.problem


def test_tampered_chunk_is_inconsistent():
    s = scenario_with([["a"], ["b"]])
    chunk = next(r for r in s.records if r.kind == "closeset")
    s.records.append(s.node.write("closeset", chunk.key, {"votes": chunk.body["votes"][:1]}))
    res = s.results()
    assert res.status == "inconsistent"
    assert res.winners == ()


def test_votes_outside_the_electorate_or_window_are_excluded():
    s = Scenario()
    far = Author(OTHER_NODE, "eu/de/berlin")
    s.records.append(
        far.write("node", "self", {"name": "b", "kind": "commune", "scope": "eu/de/berlin"})
    )
    s.records.append(
        far.write("member", PEOPLE[0].public.hex(), {"pseudonym": "x", "consent": True})
    )
    s.vote(0, ["a"])
    s.add_member(1)
    s.vote(1, ["b"], at=OPENS - 5)  # before opening
    s.add_member(2)
    s.vote(2, ["zz"])  # unknown option
    res = s.results(now=OPENS + 10)
    assert res.status == "provisional"
    assert res.excluded == {"ineligible": 1, "outside-window": 1, "invalid-ballot": 1}
    s.close()
    assert s.results().counted == 0


@pytest.mark.parametrize(
    ("method", "extra", "ballots", "winners"),
    [
        (
            "score",
            {
                "options": [{"id": "x", "name": "X"}, {"id": "y", "name": "Y"}],
                "seats": 1,
                "min_score": 0,
                "max_score": 5,
            },
            [{"x": 5}, {"y": 3, "x": 1}],
            ("x",),
        ),
        (
            "ranked",
            {
                "options": [
                    {"id": "x", "name": "X"},
                    {"id": "y", "name": "Y"},
                    {"id": "z", "name": "Z"},
                ],
                "seats": 1,
            },
            [[["y"], ["x"]], [["y", "z"], ["x"]], [["x"], ["y"]]],
            ("y",),
        ),
        (
            "greedy",
            {
                "projects": [
                    {"id": "x", "name": "X", "cost": 60},
                    {"id": "y", "name": "Y", "cost": 50},
                ],
                "budget": 100,
            },
            [["x"], ["x", "y"], ["y"], ["y"]],
            ("y",),
        ),
    ],
)
def test_other_methods(method, extra, ballots, winners):
    node = Author(NODE, SCOPE)
    records = [
        node.write("node", "self", {"name": "n", "kind": "commune", "scope": SCOPE}),
        node.write(
            "proposal",
            "p",
            {
                "title": "t",
                "method": method,
                "electorate": SCOPE,
                "opens": OPENS,
                "closes": CLOSES,
                **extra,
            },
        ),
    ]
    pid = object_id(NODE.public, "p")
    for i, b in enumerate(ballots):
        records.append(
            node.write("member", PEOPLE[i].public.hex(), {"pseudonym": "m", "consent": True})
        )
        records.append(
            sign_record(
                PEOPLE[i].signer(),
                PEOPLE[i].public,
                "vote",
                pid,
                5,
                pack_hlc(OPENS + 1, 0),
                SCOPE,
                {"ballot": b},
            )
        )
    res = tally.results(Ledger(records), pid, OPENS + 2)
    assert res.winners == winners, res
    assert res.counted == len(ballots)


# --- no vote, no winner; the budget conventions (issues 9.9, 18.2, 18.3) --------------

NO_VOTE_CASES = {
    "approval": {"options": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}], "seats": 1},
    "score": {
        "options": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        "seats": 1,
        "min_score": 0,
        "max_score": 5,
    },
    "ranked": {"options": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}], "seats": 1},
    "mes": {
        "projects": [{"id": "a", "name": "A", "cost": 0}, {"id": "b", "name": "B", "cost": 5}],
        "budget": 10,
    },
    "greedy": {
        "projects": [{"id": "a", "name": "A", "cost": 0}, {"id": "b", "name": "B", "cost": 5}],
        "budget": 10,
    },
}


def _proposal(method: str, extra: dict, *, voter: int | None = None, member: bool = True):
    node = Author(NODE, SCOPE)
    records = [
        node.write("node", "self", {"name": "n", "kind": "commune", "scope": SCOPE}),
        node.write(
            "proposal",
            "p",
            {
                "title": "t",
                "method": method,
                "electorate": SCOPE,
                "opens": OPENS,
                "closes": CLOSES,
                **extra,
            },
        ),
    ]
    pid = object_id(NODE.public, "p")
    if voter is not None:
        if member:
            records.append(
                node.write(
                    "member", PEOPLE[voter].public.hex(), {"pseudonym": "m", "consent": True}
                )
            )
        ids = [e["id"] for e in extra.get("options") or extra["projects"]]
        ballot = {i: 5 for i in ids} if method == "score" else [[i] for i in ids]
        if method in ("approval", "mes", "greedy"):
            ballot = ids
        records.append(
            sign_record(
                PEOPLE[voter].signer(),
                PEOPLE[voter].public,
                "vote",
                pid,
                5,
                pack_hlc(OPENS + 1, 0),
                SCOPE,
                {"ballot": ballot},
            )
        )
    return node, records, pid


@pytest.mark.parametrize("method", sorted(NO_VOTE_CASES))
@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("why", ["no vote", "a non-member's vote"])
def test_no_counted_vote_names_no_winner(method, closed, why):
    node, records, pid = _proposal(
        method, NO_VOTE_CASES[method], voter=None if why == "no vote" else 0, member=False
    )
    now = OPENS + 2
    if closed:
        for kind, key, b in tally.close_plan(Ledger(records), pid):
            records.append(node.write(kind, key, b))
        now = CLOSES + 1
    res = tally.results(Ledger(records), pid, now)
    assert res.status == ("final" if closed else "provisional")
    assert res.counted == 0
    assert res.winners == ()
    data = res.as_json()
    assert data["winners"] == []
    assert "no vote was counted, so there is no winner" in data["notes"]
    if method in ("mes", "greedy"):
        assert data["detail"]["spent"] == 0
        assert not any(p["selected"] for p in data["detail"]["projects"])
    else:
        assert data["detail"]["tie_broken"] is False


@pytest.mark.parametrize("method", sorted(NO_VOTE_CASES))
def test_one_counted_vote_names_a_winner(method):
    _, records, pid = _proposal(method, NO_VOTE_CASES[method], voter=0)
    res = tally.results(Ledger(records), pid, OPENS + 2)
    assert res.counted == 1
    assert res.winners
    assert res.notes == ()


def test_free_projects_convention_is_named_in_results():
    """Issue 18.2: costs {a: 0, b: 5}, one voter approving both, budget 5: (a, b) here,
    (b,) in pabutools' MES with cost utilities."""
    extra = {
        "projects": [{"id": "a", "name": "A", "cost": 0}, {"id": "b", "name": "B", "cost": 5}],
        "budget": 5,
    }
    _, records, pid = _proposal("mes", extra, voter=0)
    res = tally.results(Ledger(records), pid, OPENS + 2).as_json()
    assert res["winners"] == ["a", "b"]
    assert res["detail"]["free_projects"] == "supported-first"
    _, records, pid = _proposal("greedy", extra, voter=0)
    res = tally.results(Ledger(records), pid, OPENS + 2).as_json()
    assert res["detail"]["free_projects"] == "if-fits"
    assert "add1" not in res["detail"]


def test_add1_is_bounded_and_says_so():
    """Issue 18.3: 3 voters and costs of 10^15 would need ~10^14 add1 increments."""
    import time

    node = Author(NODE, SCOPE)
    extra = {
        "projects": [
            {"id": "a", "name": "A", "cost": 10**15},
            {"id": "b", "name": "B", "cost": 10**15 - 1},
        ],
        "budget": 10**15,
    }
    records = [
        node.write("node", "self", {"name": "n", "kind": "commune", "scope": SCOPE}),
        node.write(
            "proposal",
            "p",
            {"title": "t", "method": "mes", "electorate": SCOPE, "opens": OPENS, "closes": CLOSES}
            | extra,
        ),
    ]
    pid = object_id(NODE.public, "p")
    for i, b in enumerate((["a"], ["a"], ["b"])):
        records.append(
            node.write("member", PEOPLE[i].public.hex(), {"pseudonym": "m", "consent": True})
        )
        records.append(
            sign_record(
                PEOPLE[i].signer(),
                PEOPLE[i].public,
                "vote",
                pid,
                5,
                pack_hlc(OPENS + 1, 0),
                SCOPE,
                {"ballot": b},
            )
        )
    started = time.monotonic()
    res = tally.results(Ledger(records), pid, OPENS + 2).as_json()
    assert time.monotonic() - started < 10
    add1 = res["detail"]["add1"]
    assert add1["stopped_at_limit"] is True
    assert add1["increments"] == add1["limit"] <= 10_000
    assert any("add1 completion stopped at its limit" in n for n in res["notes"])


@pytest.mark.parametrize(
    ("method", "ballot", "problem"),
    [
        ("approval", [], "the ballot is empty"),
        ("approval", ["x"], "unknown option 'x'"),
        ("approval", ["a", "a"], "'a' is named twice"),
        ("score", {}, "the ballot is empty"),
        ("score", {"a": 9}, "score 9 for 'a' is outside 0..5"),
        ("score", {"a": True}, "score True for 'a' is outside 0..5"),
        ("ranked", [["a"], ["a"]], "'a' is named twice"),
        ("ranked", [["a"], [""]], "unknown option ''"),
        ("mes", ["zz"], "unknown option 'zz'"),
    ],
)
def test_ballot_problem_says_what_is_wrong(method, ballot, problem):
    prop = {"method": method, **NO_VOTE_CASES[method]}
    assert tally.ballot_problem(prop, ballot).startswith(problem)


@pytest.mark.parametrize(
    ("method", "ballot"),
    [("approval", ["a"]), ("score", {"a": 0, "b": 5}), ("ranked", [["b"], ["a"]]), ("mes", ["b"])],
)
def test_ballot_problem_accepts_good_ballots(method, ballot):
    prop = {"method": method, **NO_VOTE_CASES[method]}
    assert tally.ballot_problem(prop, ballot) is None
    assert tally.check_ballot(prop, ballot) is not None


@pytest.mark.parametrize("bad", ["abc\n", "abc\r", "Abc", "\u0661\u0662", "a" * 41, "-a", ""])
def test_local_keys_are_matched_whole_and_ascii(bad):
    from node.governance.errors import GovernanceError
    from node.governance.ledger import check_local_key, split_id

    with pytest.raises(GovernanceError):
        check_local_key(bad)
    with pytest.raises(GovernanceError):
        split_id(f"0123456789abcdef.{bad}")
    with pytest.raises(GovernanceError):
        split_id("0123456789abcdef.park\n")
    assert check_local_key("park-2027") == "park-2027"
    assert split_id("0123456789abcdef.park") == ("0123456789abcdef", "park")


# --- "was my vote counted": the per-member receipt agrees with the tally ----------


def _receipts(s: Scenario, now: int) -> dict[int, tally.Receipt]:
    ledger = Ledger(s.records)
    return {i: tally.vote_receipt(ledger, s.pid, p.public, now) for i, p in enumerate(PEOPLE)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bs=ballots,
    closed=st.booleans(),
    removed=st.sets(st.integers(0, 7)),
    late=st.sets(st.integers(0, 11)),
)
def test_receipts_say_counted_exactly_for_the_counted_votes(bs, closed, removed, late):
    s = scenario_with(bs, closed=closed)
    for i in removed & set(range(len(bs))):
        s.remove_member(i)
    for i in late:  # after the close (or still inside the window when not closed)
        if i >= len(bs):
            s.add_member(i)
        s.vote(i, ["a"], at=CLOSES - 1, seq=CLOSES + 50)
    now = CLOSES + 1 if closed else OPENS + 10
    res = s.results(now=now)
    receipts = _receipts(s, now)
    yes = {"counted"} if closed else {"counts"}
    assert sum(r.status in yes for r in receipts.values()) == res.counted
    assert all(r.final == closed for r in receipts.values())
    for i, r in receipts.items():
        voted = i < len(bs) or i in late
        assert (r.status == "no-vote") == (not voted)
        if closed and i in late and i >= len(bs):
            assert (r.status, r.reason) == ("not-counted", "not-frozen")
        if i in removed and i < len(bs):
            assert r.status == "not-counted"
            assert r.reason == "ineligible"


def test_receipt_names_the_counted_ballot_not_a_later_one():
    s = scenario_with([["b"]])
    s.vote(0, ["c"], at=CLOSES - 1, seq=CLOSES + 50)  # arrives after the close
    r = tally.vote_receipt(Ledger(s.records), s.pid, PEOPLE[0].public, CLOSES + 1)
    assert (r.status, r.ballot, r.final) == ("counted", ["b"], True)


def test_receipt_of_a_forged_frozen_vote_is_not_counted():
    s = scenario_with([["a"]], closed=False)
    s.add_member(1)
    forged = s.vote(1, ["d"], at=OPENS + 5, signer=ATTACKER).raw
    s.records.pop()
    s.close(extra_votes=[forged])
    r = tally.vote_receipt(Ledger(s.records), s.pid, PEOPLE[1].public, CLOSES + 1)
    assert r.status != "counted"


def test_receipt_of_an_unknown_proposal_is_refused():
    s = scenario_with([["a"]])
    with pytest.raises(tally.GovernanceError):
        tally.vote_receipt(Ledger(s.records), s.pid + "x", PEOPLE[0].public, CLOSES + 1)
