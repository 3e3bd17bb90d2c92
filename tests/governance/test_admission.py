"""Admission: who counts in a region, a pure function of the records (issue 10).

The rule against a straightforward reference, order independence over arbitrary
endorsement and withdrawal histories, invites (one use, public), and the edge's quota
for strangers.
"""

from __future__ import annotations

import math
import secrets

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.crdt.replica import Replica
from node.governance.admission import Charter, Rule, Status, admit

REGIONS = ["eu/de/berlin", "eu/de/hamburg", "eu/fr/paris"]


def node_rec(a: Author, scope: str):
    return a.write("node", "self", {"name": "n", "kind": "commune", "scope": scope}, scope=scope)


def charter_rec(a: Author, charter: Charter):
    return a.write("charter", charter.id, charter.body(), scope="eu")


def endorse_rec(a: Author, node: bytes, live: bool = True):
    return a.write("endorse", node.hex(), {} if live else None)


def test_karrot_threshold() -> None:
    rule = Rule()
    assert [rule.threshold(k) for k in range(0, 9)] == [1, 1, 1, 2, 2, 3, 3, 3, 3]


def _world(n: int = 6):
    ids = identities(n, seed=11)
    authors = [Author(i, scope=f"eu/de/berlin/c{k}") for k, i in enumerate(ids)]
    charter = Charter.of("Test federation", [authors[0].origin])
    return authors, charter


def test_a_founder_counts_only_once_it_signed_the_charter() -> None:
    (f, *_), charter = _world()
    recs = [node_rec(f, f.scope)]
    assert not admit(charter, recs).is_admitted(f.origin)
    recs.append(charter_rec(f, charter))
    assert admit(charter, recs).is_admitted(f.origin)
    other = Charter.of("Other", [f.origin])
    assert not admit(other, recs).is_admitted(f.origin)  # signed another charter


def test_newcomers_need_the_regions_threshold() -> None:
    (f, *others), charter = _world()
    recs = [charter_rec(f, charter), *(node_rec(x, x.scope) for x in (f, *others))]
    # The founder vouches for all five: with 1 and then 2 admitted nodes its word
    # is enough (one newcomer per round), with 3 a newcomer needs two endorsements.
    recs += [endorse_rec(f, x.origin) for x in others]
    state = admit(charter, recs)
    assert len(state.admitted) == 3
    first, second = sorted(state.admitted - {f.origin})
    waiting = sorted(x.origin for x in others if x.origin not in state.admitted)
    assert first < second < waiting[0]  # equals are taken smallest key first
    for n in waiting:
        assert state.standings[n].needed == 2
        assert state.standings[n].endorsers == (f.origin,)
        assert n in state.sponsored
    second_author = next(x for x in others if x.origin == second)
    recs.append(endorse_rec(second_author, waiting[-1]))
    state = admit(charter, recs)
    assert waiting[-1] in state.admitted  # the best-endorsed goes first
    assert len(state.admitted) == 4  # with 4 admitted, 2 endorsements: the rest wait


def test_a_withdrawn_endorsement_stops_a_node_counting() -> None:
    (f, a, *_), charter = _world()
    recs = [charter_rec(f, charter), node_rec(f, f.scope), node_rec(a, a.scope)]
    recs.append(endorse_rec(f, a.origin))
    assert a.origin in admit(charter, recs).admitted
    recs[-1] = endorse_rec(f, a.origin, live=False)  # the tombstone wins the slot
    state = admit(charter, recs)
    assert a.origin not in state.admitted
    assert state.standings[a.origin].status is Status.PENDING


def test_the_first_node_of_a_region_is_admitted_by_the_founders() -> None:
    (f, *_), charter = _world()
    hh = Author(identities(1, seed=99)[0], scope="eu/de/hamburg/h1")
    paris = Author(identities(1, seed=98)[0], scope="eu/fr/paris/p1")
    recs = [charter_rec(f, charter), node_rec(f, f.scope), node_rec(hh, hh.scope)]
    recs += [node_rec(paris, paris.scope), endorse_rec(f, hh.origin), endorse_rec(f, paris.origin)]
    state = admit(charter, recs)
    assert hh.origin in state.admitted  # eu/de has Berlin's founder
    assert paris.origin in state.admitted  # eu has it too
    assert state.standings[hh.origin].endorsers == (f.origin,)
    # once Hamburg has its own admitted node, Berlin no longer decides there
    late = Author(identities(1, seed=97)[0], scope="eu/de/hamburg/h2")
    recs += [node_rec(late, late.scope), endorse_rec(f, late.origin)]
    state = admit(charter, recs)
    assert (hh.origin in state.admitted) != (late.origin in state.admitted)  # one per round
    first, second = (hh, late) if hh.origin in state.admitted else (late, hh)
    assert state.standings[second.origin].endorsers == (f.origin,)  # no longer enough
    recs.append(endorse_rec(first, second.origin))
    state = admit(charter, recs)
    assert {hh.origin, late.origin} <= state.admitted
    assert first.origin in state.standings[second.origin].endorsers


def test_a_stranger_cannot_admit_anyone() -> None:
    (f, a, b, *_), charter = _world()
    recs = [charter_rec(f, charter), node_rec(f, f.scope), node_rec(a, a.scope)]
    recs += [node_rec(b, b.scope), endorse_rec(a, b.origin), charter_rec(a, charter)]
    state = admit(charter, recs)
    assert state.admitted == {f.origin}  # a is no founder; its endorsement counts for nothing
    assert b.origin not in state.sponsored


def _invite(inviter: Author, key: str = "inv00001"):
    secret = secrets.token_bytes(32)
    rec = inviter.write("invite", key, {"hash": model.invite_hash(secret)})
    return rec, secret


def _apply(a: Author, inviter: Author, key: str, secret: bytes):
    body = {"invite": f"{inviter.origin.hex()}.{key}", "secret": secret.hex()}
    return a.write("apply", "self", body)


def test_an_invite_opens_the_door_and_the_inviter_vouches_once() -> None:
    (f, a, b, *_), charter = _world()
    invite, secret = _invite(f)
    recs = [charter_rec(f, charter), node_rec(f, f.scope), invite]
    app_a = _apply(a, f, "inv00001", secret)
    state = admit(charter, recs)
    assert state.allows(app_a)  # the application shows an open invite's secret
    assert not state.allows(node_rec(a, a.scope))  # nothing else of it yet
    state = admit(charter, [*recs, app_a])
    assert state.allows(node_rec(a, a.scope))  # its node record, once its application is held
    assert not state.allows(a.need("n1"))
    assert a.origin not in state.admitted  # the inviter has not vouched yet
    used = f.write("invite", "inv00001", {**invite.body, "used_by": a.origin.hex()})
    recs = [r for r in recs if r is not invite]  # one record per slot, as a replica holds
    recs += [app_a, node_rec(a, a.scope), endorse_rec(f, a.origin), used]
    state = admit(charter, recs)
    assert a.origin in state.admitted
    assert state.standings[a.origin].invited_by == f.origin
    assert state.open_invites == {}
    leaked = _apply(b, f, "inv00001", secret)  # the code leaked: used already
    assert not state.allows(leaked)
    wrong = _apply(b, f, "inv00001", b"x" * 32)
    assert not admit(charter, [*recs[:2], invite]).allows(wrong)
    stranger_invite, s2 = _invite(a, "inv00002")  # a is admitted: its invites open doors
    assert admit(charter, [*recs, stranger_invite]).allows(_apply(b, a, "inv00002", s2))


def test_the_edge_quota_for_strangers() -> None:
    (f, a, b, *_), charter = _world()
    member_key = identities(1, seed=55)[0]
    member = Author(member_key, scope=f.scope)
    recs = [charter_rec(f, charter), node_rec(f, f.scope)]
    recs.append(f.write("member", member.origin.hex(), {"pseudonym": "m", "consent": True}))
    state = admit(charter, recs)
    need = a.need("n1")
    assert state.allows(f.need("n1"))
    assert not state.allows(need)  # a stranger's need
    assert not state.allows(node_rec(a, a.scope))  # nobody vouches for it
    assert not state.allows(charter_rec(a, charter))  # no founder
    assert state.allows(member.write("vote", "v", {"ballot": ["x"]}))
    assert not state.allows(b.write("vote", "v", {"ballot": ["x"]}))  # no member
    recs.append(endorse_rec(f, a.origin))
    recs.append(endorse_rec(f, b.origin))
    recs.append(node_rec(f, f.scope))  # keeps f's region; a, b lack node records
    state = admit(charter, recs)
    assert a.origin in state.sponsored  # vouched for, no node record yet
    assert state.allows(node_rec(a, a.scope))
    assert not state.allows(need)  # but its needs wait for admission


# --- the rule against a reference, over arbitrary histories -----------------------


def reference(charter: Charter, records) -> set[bytes]:
    """Admission as the module docstring states it, written plainly."""
    winners = {}
    for r in records:
        cur = winners.get(r.slot)
        if cur is None or r.seq > cur.seq or (r.seq == cur.seq and r.rid < cur.rid):
            winners[r.slot] = r
    live = [r for r in winners.values() if r.body is not None]
    scope = {r.origin: r.body["scope"] for r in live if r.kind == "node"}
    founders_signed = {
        r.origin
        for r in live
        if r.kind == "charter" and r.key == charter.id and r.origin in charter.founders
    }
    admitted = set(founders_signed)
    endorses = {(r.origin, bytes.fromhex(r.key)) for r in live if r.kind == "endorse"}
    while True:
        round_: dict[str, tuple[int, bytes]] = {}
        for n in sorted(scope):
            if n in admitted:
                continue
            region = "/".join(scope[n].split("/")[:3])
            counting = {
                a for a in admitted if a in scope and "/".join(scope[a].split("/")[:3]) == region
            }
            if not counting:
                counting = {f for f in founders_signed}
            if not counting:
                continue
            k = len(counting)
            need = min(charter.rule.cap, max(1, math.ceil(k * charter.rule.num / charter.rule.den)))
            have = sum((e, n) in endorses for e in counting)
            if have >= need and (region not in round_ or have > round_[region][0]):
                round_[region] = (have, n)
        if not round_:
            return admitted
        admitted |= {n for _, n in round_.values()}


N_NODES = 7
_people = identities(N_NODES, seed=3)


@st.composite
def histories(draw):
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=N_NODES, max_size=N_NODES))
    authors = [
        Author(p, scope=f"{r}/c{k}") for k, (p, r) in enumerate(zip(_people, regions, strict=True))
    ]
    founders = draw(st.sets(st.integers(0, N_NODES - 1), min_size=1, max_size=2))
    rule = Rule(draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    charter = Charter.of("h", [authors[i].origin for i in founders], rule)
    records = []
    for i in founders:
        if draw(st.booleans()) or i == min(founders):
            records.append(charter_rec(authors[i], charter))
    for a in authors:
        if draw(st.integers(0, 9)) > 0:
            records.append(node_rec(a, a.scope))
    steps = draw(
        st.lists(
            st.tuples(st.integers(0, N_NODES - 1), st.integers(0, N_NODES - 1), st.booleans()),
            max_size=30,
        )
    )
    for e, n, live in steps:
        if e != n:
            records.append(endorse_rec(authors[e], authors[n].origin, live))
    return charter, records


@settings(max_examples=150, deadline=None)
@given(histories(), st.data())
def test_admission_matches_the_reference_in_any_arrival_order(history, data) -> None:
    charter, records = history
    expected = reference(charter, records)
    order = data.draw(st.permutations(records))
    replica = Replica()
    for r in order:
        replica.insert_verified(r)
    assert admit(charter, replica.records()).admitted == expected
    again = Replica()
    for r in reversed(order):
        again.insert_verified(r)
    assert admit(charter, again.records()) == admit(charter, replica.records())
