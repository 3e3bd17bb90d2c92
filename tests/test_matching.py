"""Matching: bounded by what each side has, maximal at every scope, independent of
arrival order, and as cheap as an integer min-cost flow on the scope tree."""

from collections import defaultdict

import matching_reference
import networkx as nx
import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.planning.balance import TICKS
from node.planning.matching import (
    Match,
    Position,
    match,
    match_table,
    matches_from_records,
    matches_from_rollups,
    plan,
    positions_from_records,
)
from node.planning.rollup import RollupView, compute_rollups, rollup_key

G = ("potatoes", "mass", "2027-Q1")
KG = TICKS  # ticks per kg
IDS = identities(6, seed=5)


def _pos(cap=0, low=0, med=0, high=0, crit=0):
    return Position(cap, (low, med, high, crit))


def test_issue_example_plentiful_supply_is_drawn_in_proportion():
    # A needs 100 kg, B has 60 kg, C has 80 kg: 140 for 100, drawn 60:80.
    out = match(
        {
            G: {
                ("eu/de/berlin/c1", "a"): _pos(high=100 * KG),
                ("eu/de/berlin/c2", "b"): _pos(cap=60 * KG),
                ("eu/de/berlin/c3", "c"): _pos(cap=80 * KG),
            }
        }
    )
    assert out == [
        # 42.857142857142.. kg and 57.142857142857.. kg: the larger remainder gets the tick
        Match(*G, "b", "a", 100 * KG * 60 // 140, "eu/de/berlin"),
        Match(*G, "c", "a", 100 * KG * 80 // 140 + 1, "eu/de/berlin"),
    ]
    assert sum(m.quantity for m in out) == 100 * KG


def test_scarce_supply_goes_by_priority_then_in_proportion():
    parties = {
        ("eu/x/r/a", "crit"): _pos(crit=30),
        ("eu/x/r/b", "high1"): _pos(high=20),
        ("eu/x/r/c", "high2"): _pos(high=10),
        ("eu/x/r/d", "low"): _pos(low=50),
        ("eu/x/r/e", "p"): _pos(cap=41),
    }
    got = defaultdict(int)
    for m in match({G: parties}):
        got[m.receiver] += m.quantity
    # 30 to the critical need, 11 left for 30 of high needs: 20:10 -> 7.33 : 3.67 -> 7, 4
    assert dict(got) == {"crit": 30, "high1": 7, "high2": 4}


def test_local_supply_first_then_up_the_tree():
    parties = {
        ("eu/de/berlin/a", "a"): _pos(high=10),
        ("eu/de/berlin/b", "b"): _pos(cap=4),
        ("eu/de/hamburg/c", "c"): _pos(cap=100),
        ("eu/fr/paris/d", "d"): _pos(cap=100),
    }
    out = match({G: parties})
    assert out[0] == Match(*G, "b", "a", 4, "eu/de/berlin")
    assert out[1] == Match(*G, "c", "a", 6, "eu/de")


def test_own_capacity_covers_own_needs_first_most_urgent_first():
    parties = {
        ("eu/a/b/c", "self"): _pos(cap=5, low=10, crit=3),
        ("eu/a/b/d", "other"): _pos(cap=100),
    }
    (m,) = match({G: parties})
    assert (m.provider, m.receiver, m.quantity) == ("other", "self", 8)


def test_from_records_counts_admitted_live_intents_only():
    a, b, c = (Author(IDS[i], f"eu/de/berlin/c{i}") for i in range(3))
    recs = [
        a.need("n", qty="100"),
        b.capacity("c", qty="60"),
        c.capacity("c", qty="80"),
        c.write("capacity", "gone", None),
    ]
    counted = frozenset({a.origin, b.origin})
    out = matches_from_records(recs, counted)
    assert [(m.provider, m.receiver, m.quantity) for m in out] == [
        (b.origin.hex(), a.origin.hex(), 60 * KG)
    ]
    assert len(matches_from_records(recs)) == 2


# --- properties --------------------------------------------------------------------

SEGMENTS = ["a", "b", "c"]


@st.composite
def instances(draw, max_parties=12):
    """Random trees (scopes 1-4 deep from one root) and random positions."""
    n = draw(st.integers(1, max_parties))
    parties = {}
    for i in range(n):
        depth = draw(st.integers(0, 3))
        scope = "/".join(
            ["eu", *draw(st.lists(st.sampled_from(SEGMENTS), min_size=depth, max_size=depth))]
        )
        cap = draw(st.integers(0, 50))
        needs = tuple(draw(st.lists(st.integers(0, 40) | st.just(0), min_size=4, max_size=4)))
        parties[(scope, f"p{i:02d}")] = Position(cap, needs)
    return parties


def _net(pos):
    net = pos.capacity - sum(pos.needs)
    return max(net, 0), max(-net, 0)


def _check_bounds_and_maximality(parties, out):
    sent = defaultdict(int)
    got = defaultdict(int)
    scope_of = {p: s for s, p in parties}
    for m in out:
        assert m.quantity > 0
        assert m.provider != m.receiver
        assert model.in_scope(scope_of[m.provider], m.scope)
        assert model.in_scope(scope_of[m.receiver], m.scope)
        sent[m.provider] += m.quantity
        got[m.receiver] += m.quantity
    for (_, p), pos in parties.items():
        surplus, deficit = _net(pos)
        assert sent[p] <= surplus
        assert got[p] <= deficit
    scopes = {a for s, _ in parties for a in model.ancestors(s)}
    for t in scopes:
        inside = [pos for (s, _), pos in parties.items() if model.in_scope(s, t)]
        supply = sum(_net(p)[0] for p in inside)
        demand = sum(_net(p)[1] for p in inside)
        matched = sum(m.quantity for m in out if model.in_scope(m.scope, t))
        assert matched == min(supply, demand), t


@settings(max_examples=300, deadline=None)
@given(instances())
def test_bounded_and_maximal_at_every_scope(parties):
    _check_bounds_and_maximality(parties, match({G: parties}))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_independent_of_input_order(data):
    parties = data.draw(instances())
    order = data.draw(st.permutations(list(parties)))
    groups = data.draw(st.permutations([G, ("milk", "volume", "2027"), ("eggs", "count", "2027")]))
    shuffled = {g: {p: parties[p] for p in order} for g in groups}
    straight = {g: parties for g in sorted(groups)}
    assert match(shuffled) == match(straight)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_records_in_any_order_give_the_same_matches(data):
    authors = [Author(IDS[i], f"eu/de/{'ab'[i % 2]}/c{i}") for i in range(6)]
    recs = []
    for i, a in enumerate(authors):
        for k in range(data.draw(st.integers(0, 2))):
            qty = str(data.draw(st.integers(1, 99)))
            if data.draw(st.booleans()):
                recs.append(a.need(f"n{k}", qty=qty))
            else:
                recs.append(a.capacity(f"c{k}", qty=qty, unit=["kg", "g", "t"][i % 3]))
    order = data.draw(st.permutations(recs))
    assert matches_from_records(order) == matches_from_records(recs)
    assert positions_from_records(order) == positions_from_records(recs)


def _uniform_depth(parties):
    return max(s.count("/") for s, _ in parties) + 1


def _cost(parties, out):
    """Quantity x tree distance, every party hung at one depth below its scope."""
    h = _uniform_depth(parties)
    return sum(m.quantity * 2 * (h - m.scope.count("/")) for m in out)


def _min_cost_flow(parties):
    """An integer min-cost flow shipping min(supply, demand) over the padded tree."""
    h = _uniform_depth(parties)
    g = nx.DiGraph()
    supply = demand = 0

    def edge(u, v):
        g.add_edge(u, v, weight=1)
        g.add_edge(v, u, weight=1)

    for (scope, p), pos in parties.items():
        for a, b in zip(model.ancestors(scope), model.ancestors(scope)[1:], strict=False):
            edge(("s", a), ("s", b))
        # the party's chain down to depth h, one edge per level
        prev = ("s", scope)
        for level in range(scope.count("/") + 1, h):
            nxt = ("pad", p, level)
            edge(prev, nxt)
            prev = nxt
        edge(prev, ("p", p))
        s, d = _net(pos)
        g.add_node(("p", p), demand=d - s)
        supply += s
        demand += d
    # whatever is not shipped goes to (or comes from) a free dummy
    if supply > demand:
        g.add_node("dummy", demand=supply - demand)
        for (_, p), pos in parties.items():
            if _net(pos)[0]:
                g.add_edge(("p", p), "dummy", weight=0)
    elif demand > supply:
        g.add_node("dummy", demand=supply - demand)
        for (_, p), pos in parties.items():
            if _net(pos)[1]:
                g.add_edge("dummy", ("p", p), weight=0)
    cost, _ = nx.network_simplex(g)
    return cost


@settings(max_examples=500, deadline=None)
@given(instances(max_parties=10))
def test_cost_equals_min_cost_flow(parties):
    out = match({G: parties})
    assert _cost(parties, out) == _min_cost_flow(parties)


@pytest.mark.parametrize("n", [2, 7])
def test_many_pools_pair_few_matches(n):
    parties = {(f"eu/r{i}/x/c", f"s{i}"): _pos(cap=10) for i in range(n)}
    parties |= {(f"eu/r{i}/y/c", f"d{i}"): _pos(med=3) for i in range(n)}
    out = match({G: parties})
    _check_bounds_and_maximality(parties, out)
    assert len(out) <= 2 * n


def test_across_regions_each_region_is_one_party():
    # Hamburg (attested by a quorum with an anchor) needs 600 kg potatoes and has 150;
    # the reader's own region, Berlin, has 1000 spare: Berlin ships 450 to Hamburg.
    hh = [Author(p, f"eu/de/hamburg/n{k}") for k, p in enumerate(IDS[:3])]
    recs = []
    for k, a in enumerate(hh):
        recs.append(a.need(f"n{k}", qty=str(100 * (k + 1))))
        recs.append(a.capacity(f"c{k}", qty="50"))
    bodies = compute_rollups(recs, "eu/de/hamburg", [a.origin for a in hh])
    signed = [
        a.write("rollup", rollup_key(b["region"], b["period"]), b, scope="eu")
        for a in hh
        for b in bodies.values()
    ]
    view = RollupView(signed, frozenset({hh[0].origin}), "eu/de/berlin")
    berlin = Author(IDS[4], "eu/de/berlin/b1")
    own = positions_from_records([berlin.capacity("c", qty="1000")])
    assert matches_from_rollups(view, own, "eu/de/berlin") == [
        Match(*G, "eu/de/berlin", "eu/de/hamburg", 450 * KG, "eu/de")
    ]
    # unattested (no anchor among the signers): Hamburg counts nowhere
    nobody = RollupView(signed, frozenset(), "eu/de/berlin")
    assert matches_from_rollups(nobody, own, "eu/de/berlin") == []


@st.composite
def multi_group_instances(draw):
    """Several groups over one set of parties, each party in some of them."""
    parties = draw(instances(max_parties=14))
    groups = {}
    for g in range(draw(st.integers(1, 3))):
        chosen = {p: pos for p, pos in parties.items() if draw(st.booleans())}
        shuffled = draw(st.permutations(sorted(chosen)))
        key = (f"item-{g}", "mass", draw(st.sampled_from(["2027-Q1", "2027-Q2"])))
        groups[key] = {p: chosen[p] for p in shuffled}
    return groups


@settings(max_examples=500, deadline=None)
@given(multi_group_instances())
def test_equal_to_the_first_implementation_match_for_match(positions):
    # the faster matching (flat lists, one pass per level) changes no match nor order
    assert match(positions) == matching_reference.match(positions)
    assert plan(positions).total() == sum(m.quantity for m in match(positions))
    assert list(plan(positions)) == match(positions)


@st.composite
def repeated_party_instances(draw):
    """Several groups listing the same parties in the same order (the leaf order is
    kept from one group to the next), some party ids at several scopes (one node
    with records in two scopes), quantities in whole units of many ticks or not."""
    unit = draw(st.sampled_from([1, KG, 7 * 10**6]))
    n = draw(st.integers(1, 14))
    keys = []
    for i in range(n):
        depth = draw(st.integers(0, 3))
        scope = "/".join(
            ["eu", *draw(st.lists(st.sampled_from(SEGMENTS), min_size=depth, max_size=depth))]
        )
        keys.append((scope, f"p{draw(st.integers(0, max(0, i - 1))) if i % 3 else i:02d}"))
    keys = list(dict.fromkeys(keys))
    groups = {}
    for g in range(draw(st.integers(1, 4))):
        parties = {}
        one_rank = draw(st.booleans())  # every need at one rank: no receiver's ranks to merge
        for key in keys:
            needs = draw(st.lists(st.integers(0, 40), min_size=4, max_size=4))
            if one_rank:
                rank = draw(st.integers(0, 3))
                needs = [sum(needs) * (r == rank) for r in range(4)]
            parties[key] = Position(draw(st.integers(0, 50)) * unit, tuple(q * unit for q in needs))
        groups[(f"item-{g}", "mass", "2027-Q1")] = parties
    return groups


@settings(max_examples=500, deadline=None)
@given(repeated_party_instances())
def test_equal_to_the_first_implementation_on_repeated_parties(positions):
    # the leaf order kept across groups, the shares in lowest terms, and one party at
    # several leaves (its receivers' rows merged by party) change no match nor order
    listed = matching_reference.match(positions)
    assert match(positions) == listed
    table = match_table(positions)
    ids = {p for parties in positions.values() for _, p in parties}
    assert sorted(table.names) == sorted(ids)  # each party once
    assert [
        (table.names[a], table.names[b], q)
        for a, b, q in zip(table.provider, table.receiver, table.quantity, strict=True)
    ] == [(m.provider, m.receiver, m.quantity) for m in listed]


@settings(max_examples=300, deadline=None)
@given(multi_group_instances(), st.data())
def test_the_columns_hold_the_same_matches_read_whole_by_page_or_by_party(positions, data):
    # the columnar result is the list of matches, whichever way a caller reads it
    listed = matching_reference.match(positions)
    table = match_table(positions)
    assert len(table) == len(listed)
    assert table.matches() == listed
    assert table.total() == sum(m.quantity for m in listed)
    start = data.draw(st.integers(-2, len(listed) + 2))
    stop = data.draw(st.integers(-2, len(listed) + 2))
    assert table.rows(start, stop) == listed[start:stop]
    some = set(data.draw(st.lists(st.sampled_from(table.names or ["x"]))))
    assert table.involving(some) == [m for m in listed if m.provider in some or m.receiver in some]


def test_the_columns_are_read_lazily_pool_by_pool():
    parties = {(f"eu/r{i}/x/c", f"s{i}"): _pos(cap=10) for i in range(3)}
    parties |= {(f"eu/r{i}/x/d", f"d{i}"): _pos(med=3) for i in range(3)}
    table = match_table({G: parties})
    rows = iter(table)
    assert next(rows) == Match(*G, "s0", "d0", 3, "eu/r0/x")
    assert table.starts == [0, 1, 2, 3]
    assert [table.names[i] for i in table.provider] == ["s0", "s1", "s2"]
    assert table.rows(2, 3) == [Match(*G, "s2", "d2", 3, "eu/r2/x")]


def test_equal_to_the_first_implementation_on_a_bench_sized_item():
    import random

    rng = random.Random(7)
    parties = {}
    for k in range(3000):
        needs = [0, 0, 0, 0]
        for _ in range(rng.randrange(3)):  # several priorities, some parties
            needs[rng.randrange(4)] += rng.randrange(1, 10**6)
        scope = f"eu/c{k % 3}/r{k % 7}/k{k:05d}"
        parties[(scope, f"n{k:05d}")] = Position(
            rng.randrange(2 * 10**6) * (k % 3 != 0), tuple(needs)
        )
    positions = {G: parties}
    assert match(positions) == matching_reference.match(positions)
    table = match_table(positions)
    listed = match(positions)
    third, half = len(listed) // 3, len(listed) // 2
    assert table.rows(third, half) == listed[third:half]
