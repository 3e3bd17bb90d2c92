"""Regional rollups (issue 11): recomputed figures equal the balance from the records; a
region's rollup counts at a quorum of its attesters with an anchor among them; a split
view or a minority never enters a total; the same rollups give the same view in any
order; strangers place no rollup."""

from __future__ import annotations

from fractions import Fraction

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.planning import compute_balance
from node.planning.balance import TICKS
from node.planning.rollup import (
    RegionStatus,
    RollupTracker,
    RollupView,
    compute_rollups,
    federation_rows,
    rollup_key,
)

HH = "eu/de/hamburg"
PEOPLE = identities(6, seed=21)


def _hamburg_records():
    nodes = [Author(p, scope=f"{HH}/n{k}") for k, p in enumerate(PEOPLE[:3])]
    recs = []
    for k, a in enumerate(nodes):
        recs.append(a.need(f"n{k}", qty=str(100 * (k + 1)), period="2027-Q1"))
        recs.append(a.capacity(f"c{k}", qty="50", period="2027-01"))
        recs.append(a.capacity(f"d{k}", item="milk", unit="l", qty="7", period="2027-Q1"))
    return nodes, recs


def test_a_rollup_is_the_regions_balance_recomputed():
    nodes, recs = _hamburg_records()
    admitted = [a.origin for a in nodes]
    bodies = compute_rollups(recs, HH, admitted)
    assert set(bodies) == {"2027-Q1", "2027-01"}
    every = compute_balance(recs, HH)  # each record in its own period
    for period, body in bodies.items():
        mine = [
            (r.item, r.dimension, r.needs, r.capacities, r.nodes)
            for r in every
            if r.period == period
        ]
        assert [
            (i[0], i[1], Fraction(int(i[2]), TICKS), Fraction(int(i[3]), TICKS), i[4])
            for i in body["items"]
        ] == mine
        assert body["admitted"] == sorted(a.hex() for a in admitted)
    q1 = bodies["2027-Q1"]
    assert q1["records"] == 6
    assert q1["nodes"] == 3
    # a node not admitted counts for nothing
    assert compute_rollups(recs, HH, admitted[:1])["2027-Q1"]["nodes"] == 1


def _signed(attester: Author, body: dict) -> object:
    return attester.write("rollup", rollup_key(body["region"], body["period"]), body, scope="eu")


def test_a_quorum_with_an_anchor_is_accepted_and_summed():
    nodes, recs = _hamburg_records()
    bodies = compute_rollups(recs, HH, [a.origin for a in nodes])
    signed = [_signed(a, b) for a in nodes[:2] for b in bodies.values()]
    anchors = frozenset({nodes[0].origin})
    view = RollupView(signed, anchors, "eu/de/berlin")
    rp = view.pairs[(HH, "2027-Q1")]
    assert rp.status is RegionStatus.UNATTESTED  # 2 of 3: q = min(3, 3)
    signed += [_signed(nodes[2], b) for b in bodies.values()]
    view = RollupView(signed, anchors, "eu/de/berlin")
    rp = view.pairs[(HH, "2027-Q1")]
    assert rp.status is RegionStatus.ACCEPTED
    rows, basis = federation_rows("eu/de", [], True, view, period="2027-Q1")
    potatoes = next(r for r in rows if r.item == "potatoes")
    assert (potatoes.needs, potatoes.capacities) == (600, 150)  # January lies in Q1
    assert basis.attested == {HH: (3, 3)}
    # without an anchor among them the same three signatures count for nothing
    nobody = RollupView(signed, frozenset(), "eu/de/berlin")
    assert nobody.pairs[(HH, "2027-Q1")].status is RegionStatus.UNATTESTED


def test_a_false_minority_is_named_and_a_split_is_never_summed():
    nodes, recs = _hamburg_records()
    body = compute_rollups(recs, HH, [a.origin for a in nodes])["2027-Q1"]
    liar_body = {**body, "items": [[i[0], i[1], "0", i[3], i[4]] for i in body["items"]]}
    honest = [_signed(a, body) for a in nodes]
    anchors = frozenset({nodes[0].origin})
    extra = Author(PEOPLE[3], scope=f"{HH}/n3")
    view = RollupView([*honest[:2], _signed(nodes[2], liar_body)], anchors, "eu/de/berlin")
    assert view.pairs[(HH, "2027-Q1")].status is RegionStatus.UNATTESTED  # 2 and 1: no quorum
    view = RollupView([*honest, _signed(extra, liar_body)], anchors, "eu/de/berlin")
    rp = view.pairs[(HH, "2027-Q1")]
    assert rp.status is RegionStatus.ACCEPTED
    assert rp.contradicting == ()  # extra is not listed as admitted: it is no attester
    # four attesters listed, one of them lies: three outvote it, and it is named
    four = sorted(a.hex() for a in (*(n.origin for n in nodes), extra.origin))
    truth4, lie4 = {**body, "admitted": four}, {**liar_body, "admitted": four}
    signed = [*(_signed(a, truth4) for a in nodes), _signed(extra, lie4)]
    rp = RollupView(signed, anchors, "eu/de/berlin").pairs[(HH, "2027-Q1")]
    assert rp.status is RegionStatus.ACCEPTED
    assert rp.contradicting == (extra.origin,)
    record = RollupView(signed, anchors, "eu/de/berlin").track_record()
    assert record[extra.origin] == (0, 1)
    assert record[nodes[0].origin] == (1, 0)
    # two contents, each with a quorum and an anchor: a split view
    two = Author(PEOPLE[4], scope=f"{HH}/n4")
    admitted = sorted(a.hex() for a in (PEOPLE[0].public, PEOPLE[3].public, PEOPLE[4].public))
    rival = {**liar_body, "admitted": admitted}
    forks = [_signed(a, rival) for a in (nodes[0], extra, two)]
    view = RollupView([*honest, *forks], anchors, "eu/de/berlin")
    rp = view.pairs[(HH, "2027-Q1")]
    assert rp.status is RegionStatus.SPLIT
    assert view.track_record() == {}  # nothing accepted: nobody's record moves
    rows, basis = federation_rows("eu/de", [], True, view, period="2027-Q1")
    assert rows == []
    assert basis.missing == {HH: "split"}
    assert basis.as_json()["status"] == "partial"


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_the_view_is_the_same_in_any_order(data):
    nodes, recs = _hamburg_records()
    bodies = compute_rollups(recs, HH, [a.origin for a in nodes])
    signed = [_signed(a, b) for a in nodes for b in bodies.values()]
    anchors = frozenset({nodes[1].origin})
    order = data.draw(st.permutations(signed))
    a = RollupView(signed, anchors, "eu/de/berlin")
    b = RollupView(order, anchors, "eu/de/berlin")
    assert a.pairs == b.pairs


def test_strangers_place_no_rollup():
    nodes, recs = _hamburg_records()
    body = compute_rollups(recs, HH, [a.origin for a in nodes])["2027-Q1"]
    anchor_rollup = _signed(nodes[0], body)
    listed_rollup = _signed(nodes[1], body)
    stranger = Author(PEOPLE[5], scope=f"{HH}/x")
    strangers = _signed(stranger, {**body, "admitted": sorted([stranger.origin.hex()])})
    tracker = RollupTracker()
    anchors = frozenset({nodes[0].origin})
    assert tracker.allows(anchor_rollup, anchors)
    assert not tracker.allows(listed_rollup, anchors)  # nobody it trusts lists it yet
    assert tracker.allows(listed_rollup, anchors, [anchor_rollup])  # with the anchor's
    tracker(None, anchor_rollup)
    assert tracker.allows(listed_rollup, anchors)
    assert not tracker.allows(strangers, anchors)


def test_an_old_rollup_is_counted_and_marked_stale():
    nodes, recs = _hamburg_records()
    bodies = compute_rollups(recs, HH, [a.origin for a in nodes])
    signed = [_signed(a, b) for a in nodes for b in bodies.values()]
    view = RollupView(signed, frozenset({nodes[0].origin}), "eu/de/berlin")
    newest = max(r.hlc >> 16 for r in signed)
    rows, basis = federation_rows("eu/de", [], True, view, stale_before=newest)
    assert basis.stale == {}  # signed at the mark itself: fresh
    rows_old, basis = federation_rows("eu/de", [], True, view, stale_before=newest + 1)
    assert basis.stale == {HH: newest}  # counted, and marked since when
    assert rows_old == rows
    assert basis.as_json()["status"] == "attested"
    assert basis.as_json()["stale"] == {HH: newest}


def test_a_node_an_anchor_no_longer_lists_places_no_new_rollup():
    nodes, recs = _hamburg_records()
    anchor, listed = nodes[0], nodes[1]
    body = compute_rollups(recs, HH, [a.origin for a in nodes])["2027-Q1"]
    anchors = frozenset({anchor.origin})
    tracker = RollupTracker()
    assert tracker.allows(_signed(anchor, body), anchors)  # anchors' rule set first
    first = _signed(anchor, body)
    tracker(None, first)
    assert tracker.allows(_signed(listed, body), anchors)
    # the anchor's newer rollup of the same slot no longer lists that node
    without = {**body, "admitted": sorted(a.hex() for a in (anchor.origin, nodes[2].origin))}
    tracker(first, _signed(anchor, without))
    assert not tracker.allows(_signed(listed, body), anchors)
    assert tracker.allows(_signed(nodes[2], body), anchors)
