"""Substitutes in planning rounds (issue 14): a short item's needs served in part by a
declared substitute's spare surplus. Properties of the pure rounds, then the records
that carry a substitution and where they meet, with hostile cases."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import ceil

import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.crdt.replica import Replica
from node.errors import Rejected, ValidationError
from node.planning.balance import _PER_MICRO
from node.planning.rounds import Intent, intents_from_records, plan, round_step, run_rounds
from node.planning.substitution import check_derived, derived_key, ratio_ticks

STEP = _PER_MICRO["kg"]
KG = STEP * 10**6
ITEMS = ("potatoes", "rice", "wheat")
RATIOS = ("0.5", "0.8", "1", "1.25", "2", "0.333333")


def _intent(node: int, kind: str, key: str, item: str, qty: int, lo: int, hi: int, **kw) -> Intent:
    return Intent(
        node=f"{node:064x}",
        kind=kind,
        key=key,
        scope="eu/a/b/x",
        item=item,
        dim="mass",
        period="2027",
        unit="kg",
        qty=qty * KG,
        lo=lo * KG,
        hi=hi * KG,
        step=STEP,
        rank=2 if kind == "need" else -1,
        **kw,
    )


@st.composite
def intents(draw, n_max: int = 8) -> list[Intent]:
    """Needs (some with substitutes) and capacities of a few nodes, in whole kg."""
    out = []
    for k in range(draw(st.integers(1, n_max))):
        kind = draw(st.sampled_from(("need", "capacity")))
        item = draw(st.sampled_from(ITEMS))
        qty = draw(st.integers(1, 200))
        lo = draw(st.integers(1, qty))
        hi = draw(st.integers(qty, 300))
        subs: tuple = ()
        if kind == "need":
            others = [x for x in ITEMS if x != item]
            chosen = draw(st.lists(st.sampled_from(others), unique=True, max_size=2))
            subs = tuple((x, ratio_ticks(draw(st.sampled_from(RATIOS)), "kg")) for x in chosen)
        node = draw(st.integers(0, 3))
        out.append(_intent(node, kind, f"k{k}", item, qty, lo, hi, subs=subs))
    return out


def _totals(xs: list[Intent]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for i in xs:
        d, s = out.get(i.item, (0, 0))
        out[i.item] = (d + i.qty, s) if i.kind == "need" else (d, s + i.qty)
    return out


def _apply(xs: list[Intent], step) -> list[Intent]:
    kept = [replace(i, qty=step.moved.get(i.id, i.qty)) for i in xs if not i.replaces]
    return [*kept, *step.subs.values()]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), xs=intents())
def test_substitution_is_independent_of_order(data, xs) -> None:
    assert round_step(xs) == round_step(data.draw(st.permutations(xs)))
    steps, planned = plan(xs)
    again_steps, again = plan(data.draw(st.permutations(xs)))
    assert (steps, planned) == (again_steps, again)


@settings(max_examples=200, deadline=None)
@given(xs=intents())
def test_substitution_never_takes_more_than_the_surplus_nor_serves_more_than_the_need(xs) -> None:
    current = sorted(xs, key=lambda i: i.id)
    declared = {i.id: i for i in xs}
    for step in run_rounds(xs):
        before = _totals(current)
        held = {c.id: c.qty for c in current if c.replaces}
        drawn: dict[str, int] = {}
        for d in step.subs.values():
            drawn[d.item] = drawn.get(d.item, 0) + d.qty - held.get(d.id, 0)
        current = _apply(current, step)
        for item, qty in drawn.items():
            # What substitutes draw on an item is at most its surplus at the round's start.
            assert 0 <= qty <= before[item][1] - before[item][0]
        parts: dict = {}
        for d in step.subs.values():
            n = declared[(d.node, "need", d.replaces)]
            ratio = dict(n.subs)[d.item]
            assert d.key == derived_key(n.key, d.item)
            assert d.part > 0
            assert d.qty == ceil(d.part * ratio / d.step) * d.step
            parts[n.id] = parts.get(n.id, 0) + d.part
        for i in current:
            if i.replaces:
                continue
            served = i.qty + parts.get(i.id, 0)
            assert i.qty > 0
            assert i.lo <= served <= i.hi  # never more than the need, never out of range


@settings(max_examples=200, deadline=None)
@given(
    short=st.integers(1, 100),
    own=st.integers(0, 50),
    spare_b=st.integers(0, 400),
    ratio=st.sampled_from(RATIOS),
)
def test_a_shortage_only_a_substitute_can_close_is_closed(short, own, spare_b, ratio) -> None:
    """A fixed need, fixed capacities: only rice's surplus can close the potatoes gap.
    Closed whenever rice holds enough; otherwise rice's whole surplus is used."""
    r = ratio_ticks(ratio, "kg")
    need = _intent(0, "need", "n", "potatoes", own + short, own + short, own + short)
    xs = [
        replace(need, subs=(("rice", r),)),
        *([_intent(1, "capacity", "c", "potatoes", own, own, own)] if own else []),
        _intent(1, "capacity", "r", "rice", 100 + spare_b, 100 + spare_b, 100 + spare_b),
        _intent(2, "need", "m", "rice", 100, 100, 100),
    ]
    steps, planned = plan(xs)
    last = steps[-1]
    derived = next(iter(last.subs.values()), None)
    if short * KG * r <= spare_b * KG:
        assert last.converged
        assert derived is not None
        assert derived.part >= min(short * KG, (own + short) * KG - STEP)
    if derived is not None:
        assert derived.qty <= spare_b * KG  # never more of rice than its surplus
        assert planned[derived.id] == derived.qty
        assert planned[need.id] + derived.part == need.qty


def test_a_worked_substitution() -> None:
    """100 kg potatoes needed, 40 kg offered; rice (0.8 kg per kg of potatoes) has
    150 kg spare: 60 kg of the need move to 48 kg of rice."""
    xs = [
        _intent(
            0, "need", "n", "potatoes", 100, 100, 100, subs=(("rice", ratio_ticks("0.8", "kg")),)
        ),
        _intent(1, "capacity", "c", "potatoes", 40, 40, 40),
        _intent(1, "capacity", "r", "rice", 200, 200, 200),
        _intent(2, "need", "m", "rice", 50, 50, 50),
    ]
    steps, planned = plan(xs)
    assert steps[-1].converged
    (d,) = steps[-1].subs.values()
    assert (d.key, d.item, d.part, d.qty, d.replaces) == ("n~rice", "rice", 60 * KG, 48 * KG, "n")
    assert planned[xs[0].id] == 40 * KG
    assert steps[0].beyond == {}


def test_ranges_come_before_substitutes() -> None:
    """Where a need's own range closes the gap, no substitute is drawn on."""
    xs = [
        _intent(0, "need", "n", "potatoes", 100, 50, 100, subs=(("rice", ratio_ticks("1", "kg")),)),
        _intent(1, "capacity", "c", "potatoes", 60, 60, 60),
        _intent(1, "capacity", "r", "rice", 200, 200, 200),
    ]
    steps, planned = plan(xs)
    assert steps[-1].subs == {}
    assert planned[xs[0].id] == 60 * KG


def test_substitutes_are_tried_in_declared_order_and_needs_by_id() -> None:
    sub = (("rice", ratio_ticks("1", "kg")), ("wheat", ratio_ticks("1", "kg")))
    xs = [
        _intent(0, "need", "b", "potatoes", 50, 50, 50, subs=sub),
        _intent(0, "need", "a", "potatoes", 50, 50, 50, subs=sub[::-1]),
        _intent(1, "capacity", "r", "rice", 30, 30, 30),
        _intent(1, "capacity", "w", "wheat", 30, 30, 30),
    ]
    subs = {d.key: d.part for d in plan(xs)[0][-1].subs.values()}
    # need a (first by id) draws wheat first, then rice; b takes what rice has left.
    assert subs == {"a~wheat": 30 * KG, "a~rice": 20 * KG - STEP, "b~rice": 10 * KG + STEP}


# Records: a substitution in two signed records, checked where they meet.

A, B = (Author(i, scope="eu/a/b/x") for i in identities(2))


def _need_body(**kw) -> dict:
    body = {"item": "potatoes", "qty": "40", "unit": "kg", "period": "2027", "priority": "high"}
    body.update(subs=[["rice", "0.8"]], subbed=[["rice", "60"]], base="100", min="100", max="100")
    body.update(kw)
    return body


def _derived_body(**kw) -> dict:
    body = {"item": "rice", "qty": "48", "unit": "kg", "period": "2027", "priority": "high"}
    body["replaces"] = ["n1", "0.8"]
    body.update(kw)
    return body


def test_a_substitution_is_two_valid_records_that_agree() -> None:
    model.validate("need", "n1", "eu/a/b/x", _need_body())
    model.validate("need", "n1~rice", "eu/a/b/x", _derived_body())
    need, derived = A.write("need", "n1", _need_body()), A.write("need", "n1~rice", _derived_body())
    assert check_derived(derived, need) is None
    xs = intents_from_records([need, derived])
    got = {i.key: i for i in xs}
    assert got["n1~rice"].part == 60 * KG
    assert (got["n1"].qty, got["n1~rice"].qty) == (40 * KG, 48 * KG)
    # The plan starts from the declared need; a derived record is not declared.
    _steps, planned = plan(xs)
    assert planned[got["n1"].id] == 100 * KG


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"subbed": [["wheat", "10"]]}, "no declared substitute"),
        ({"subbed": [["rice", "10"], ["rice", "5"]]}, "named twice"),
        ({"subbed": [["rice", "0"]]}, "greater than zero"),
        ({"subbed": [["rice"]]}, "\\[item, qty\\]"),
        ({"subbed": []}, "1 to 8"),
        ({"subbed": "rice"}, "1 to 8"),
        ({"subbed": [["rice", "61"]]}, "outside its range"),  # exceeds the need
        ({"subbed": [["rice", "59"]]}, "outside its range"),
    ],
)
def test_malformed_substituted_parts_are_refused(fields, error) -> None:
    with pytest.raises(ValidationError, match=error):
        model.validate("need", "n1", "eu/a/b/x", _need_body(**fields))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"replaces": "n1"}, "\\[need key, ratio\\]"),
        ({"replaces": ["n1"]}, "\\[need key, ratio\\]"),
        ({"replaces": ["n1~x", "0.8"]}, "no need key"),
        ({"replaces": [7, "0.8"]}, "no need key"),
        ({"replaces": ["n1", "-1"]}, "decimal number|greater than zero"),
        ({"replaces": ["n1", 0.8]}, "decimal number"),
        ({"min": "10"}, "has no min"),
        ({"subs": [["wheat", "1"]]}, "has no subs"),
        ({"subbed": [["wheat", "1"]]}, "has no subbed"),
        ({"qty": "0"}, "greater than zero"),
        ({"replaces": ["n" * 65, "0.8"]}, "no need key"),  # oversize
        ({"replaces": ["n1", "1" * 17]}, "decimal number"),  # oversize
        ({"replaces": ["n1", "0.8", "x"]}, "\\[need key, ratio\\]"),
    ],
)
def test_malformed_derived_needs_are_refused(fields, error) -> None:
    with pytest.raises(ValidationError, match=error):
        model.validate("need", "n1~rice", "eu/a/b/x", _derived_body(**fields))


@pytest.mark.parametrize(
    ("need", "derived", "key", "error"),
    [
        (None, {}, "n1~rice", "does not hold"),
        ({}, {"replaces": ["n1", "0.9"]}, "n1~rice", "not the ratio 0.8"),
        ({}, {"qty": "49"}, "n1~rice", "quantity is not the part"),  # more than moved
        ({}, {"qty": "47"}, "n1~rice", "quantity is not the part"),
        ({"subbed": None}, {}, "n1~rice", "no part served"),
        ({"subs": [["wheat", "0.8"]], "subbed": None}, {}, "n1~rice", "declares no substitute"),
        ({}, {}, "n1~other", "key is not n1~rice"),
        ({}, {"period": "2028"}, "n1~rice", "period or scope"),
        ({}, {"unit": "g", "qty": "48000"}, "n1~rice", "base unit"),
    ],
)
def test_a_derived_need_that_does_not_match_its_need_counts_for_nothing(
    need, derived, key, error
) -> None:
    n = None
    if need is not None:
        body = _need_body(**need)
        body = {k: v for k, v in body.items() if v is not None}
        if "subbed" not in body:
            body["qty"] = "100"
        n = A.write("need", "n1", body)
    d = A.write("need", key, _derived_body(**derived))
    assert error in (check_derived(d, n) or "")
    held = [d] if n is None else [n, d]
    assert [i.key for i in intents_from_records(held)] == ([] if n is None else ["n1"])


def test_a_derived_need_naming_another_nodes_need_counts_for_nothing() -> None:
    theirs = B.write("need", "n1", _need_body())
    mine = A.write("need", "n1~rice", _derived_body())
    assert check_derived(mine, theirs) == "names another node's need"
    # Where records meet, a derived need is looked up under its own origin: A holds no n1.
    assert [(i.node, i.key) for i in intents_from_records([theirs, mine])] == [
        (B.origin.hex(), "n1")
    ]


def test_a_derived_need_naming_a_derived_need_counts_for_nothing() -> None:
    first = A.write("need", "n1~rice", _derived_body())
    second = A.write("need", "n1~rice~rice", _derived_body(replaces=["n1~rice", "1"]))
    with pytest.raises(ValidationError, match="no need key"):
        model.validate("need", second.key, "eu/a/b/x", second.body)
    assert check_derived(second, first) == "names a derived need"


def test_ratio_ticks_keeps_the_documented_meaning() -> None:
    """One unit of the need, in its own unit, is `ratio` units of the substitute's base
    unit: 0.8 per kg of potatoes is 0.8 kg of rice per kg, 800 per t."""
    assert ratio_ticks("0.8", "kg") == Fraction(4, 5)
    assert ratio_ticks("800", "t") == Fraction(4, 5)
    assert ratio_ticks("0.8", "g") == Fraction(800)


def test_a_derived_need_counts_only_from_a_counted_node() -> None:
    """From a stranger (not admitted, not counted), neither record counts."""
    need, derived = A.write("need", "n1", _need_body()), A.write("need", "n1~rice", _derived_body())
    assert intents_from_records([need, derived], counted=frozenset({B.origin})) == []
    keys = [i.key for i in intents_from_records([need, derived], counted=frozenset({A.origin}))]
    assert keys == ["n1", "n1~rice"]


def test_a_forged_derived_need_is_refused_by_the_replica() -> None:
    replica = Replica()
    good = A.write("need", "n1~rice", _derived_body())
    forged = bytearray(good.raw)
    forged[-1] ^= 1
    with pytest.raises(Rejected):
        replica.receive(bytes(forged))
    assert list(replica.records()) == []


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_records_in_any_order_give_the_same_substitution(data) -> None:
    """A derived need that arrives before the revision of its need does not count (the
    need held lists no part for it); once both are held it does, whatever the order,
    and the plan is the same all along."""
    author = Author(identities(1, seed=7)[0], scope="eu/a/b/x")
    first = author.write("need", "n1", _need_body(qty="100", subbed=None, base=None))
    first = author.write("need", "n1", {k: v for k, v in first.body.items() if v is not None})
    records = [
        first,
        author.write("need", "n1", _need_body()),
        author.write("need", "n1~rice", _derived_body()),
        author.capacity("c1", qty="40", period="2027"),
        author.capacity("r1", qty="200", item="rice", period="2027"),
    ]
    order = data.draw(st.permutations(records))
    replica = Replica()
    plans = []
    for r in order:
        replica.receive(r.raw)
        xs = intents_from_records(replica.records())
        derived = [i for i in xs if i.replaces]
        need = replica.get(author.origin, "need", "n1")
        if derived:  # counted only with the need's revision that lists its part
            assert need is not None
            assert need.body.get("subbed") == [["rice", "60"]]
        if len(replica) == 4:
            plans.append(plan(xs))
    final = intents_from_records(replica.records())
    assert [i.key for i in final if i.replaces] == ["n1~rice"]
    assert plans[0] == plan(final)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), xs=intents())
def test_the_plan_does_not_depend_on_which_substitutions_are_held(data, xs) -> None:
    """Nodes that applied their part of the plan (revised needs, derived needs) or not,
    in any subset: every node computes the same plan."""
    steps, planned = plan(xs)
    nodes = data.draw(st.sets(st.sampled_from(sorted({i.node for i in xs}))))
    held = [replace(i, qty=planned[i.id], base=i.qty) if i.node in nodes else i for i in xs]
    held += [d for d in steps[-1].subs.values() if d.node in nodes]
    assert plan(held) == (steps, planned)


def test_a_need_held_without_its_derived_need_keeps_its_quantity() -> None:
    """The need's revision (40 kg, 60 by rice) is held, its derived need is not: the
    round over what is held has no room to move it down (its range is 100..100)."""
    need = A.write("need", "n1", _need_body())
    xs = intents_from_records([need, A.capacity("c1", qty="20", period="2027")])
    (n,) = [i for i in xs if i.kind == "need"]
    assert (n.qty, n.lo, n.hi) == (40 * KG, 100 * KG, 100 * KG)
    step = round_step(xs)
    assert n.id not in step.moved
    assert step.groups[("potatoes", "mass", "2027")].room == 0


@settings(max_examples=200, deadline=None)
@given(xs=intents())
def test_no_shortage_is_left_that_a_substitute_could_close(xs) -> None:
    """Where the rounds end, a group still short out of tolerance has no need that a
    spare surplus of one of its substitutes could serve any further."""
    steps, planned = plan(xs)
    final = [replace(i, qty=planned[i.id]) for i in xs] + list(steps[-1].subs.values())
    totals = _totals(final)
    assume_rounds_ended = len(steps) < 20
    for i in final:
        if not (i.subs and assume_rounds_ended):
            continue
        d, s = totals[i.item]
        if d <= s or abs(d - s) <= Fraction(1, 100) * max(d, s) or i.qty <= i.step:
            continue
        for item, ratio in i.subs:
            db, sb = totals.get(item, (0, 0))
            spare = (sb - db) // STEP * STEP
            assert spare < ceil(i.step * ratio / STEP) * STEP, (i.key, item)
