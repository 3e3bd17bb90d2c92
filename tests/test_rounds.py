"""Planning rounds and caps as pure functions (issue 14): properties.

A round is independent of the order of its intents; a revision never leaves its range;
where the declared flexibility can close a gap, the rounds close it; no round raises a
capacity past its share; shares add up to the cap exactly."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crdt.replica import Replica
from node.planning.balance import _PER_MICRO
from node.planning.caps import Budget, Cap, Use, budgets, largest_remainder, shares
from node.planning.rounds import (
    RULES,
    Intent,
    intents_from_records,
    plan,
    round_step,
    run_rounds,
    within_shares,
)

STEP = _PER_MICRO["kg"]
KG = STEP * 10**6  # ticks per kg
ITEMS = ("potatoes", "wheat", "rice")


@st.composite
def intents(draw, *, capped: bool = False, n_max: int = 8) -> list[Intent]:
    """Needs and capacities of a few nodes in whole kg; capacities under a cap draw
    1-3 kg of co2 per kg when `capped`."""
    out = []
    n = draw(st.integers(1, n_max))
    for k in range(n):
        kind = draw(st.sampled_from(("need", "capacity")))
        qty = draw(st.integers(1, 200))
        lo = draw(st.integers(1, qty))
        hi = draw(st.integers(qty, 300))
        uses = {}
        if capped and kind == "capacity" and draw(st.booleans()):
            per_kg = draw(st.integers(1, 3))
            uses = {"co2": Use("co2", "mass", Fraction(per_kg, KG))}
        out.append(
            Intent(
                node=f"{draw(st.integers(0, 3)):064x}",
                kind=kind,
                key=f"k{k}",
                scope=f"eu/a/b/{draw(st.sampled_from('xyz'))}",
                item=draw(st.sampled_from(ITEMS)),
                dim="mass",
                period="2027",
                unit="kg",
                qty=qty * KG,
                lo=lo * KG,
                hi=hi * KG,
                step=STEP,
                rank=2 if kind == "need" else -1,
                uses=uses,
            )
        )
    return out


def _budgets(xs: list[Intent], limits: dict[str, int]) -> list[Budget]:
    out = []
    for child, kg in sorted(limits.items()):
        members = frozenset(
            i.id for i in xs if i.uses and i.scope == f"eu/a/b/{child}" and i.kind == "capacity"
        )
        out.append(Budget("cap", child, "co2", "mass", kg, Fraction(kg), members))
    return out


def _use(xs: list[Intent], b: Budget, q: dict) -> Fraction:
    return sum(
        (q.get(i.id, i.qty) * i.uses["co2"].per_tick for i in xs if i.id in b.members), Fraction(0)
    )


limits = st.dictionaries(st.sampled_from("xyz"), st.integers(0, 400), min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), xs=intents(capped=True), lim=limits)
def test_a_round_is_independent_of_order(data, xs, lim) -> None:
    bs = _budgets(xs, lim)
    one = round_step(xs, bs)
    other = round_step(data.draw(st.permutations(xs)), data.draw(st.permutations(bs)))
    assert one == other


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=200, deadline=None)
@given(xs=intents(capped=True), lim=limits)
def test_revisions_never_leave_their_range(xs, lim, rule) -> None:
    bs = _budgets(xs, lim)
    by_id = {i.id: i for i in xs}
    for step in run_rounds(xs, bs, max_rounds=6, rule=rule):
        for k, qty in step.moved.items():
            assert by_id[k].lo <= qty <= by_id[k].hi
            assert qty % STEP == 0
        for k, qty in step.beyond.items():  # suggestions lie outside: members decide
            assert not by_id[k].lo <= qty <= by_id[k].hi
            assert qty % STEP == 0


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=200, deadline=None)
@given(xs=intents(capped=True), lim=limits)
def test_no_round_raises_a_capacity_past_its_share(xs, lim, rule) -> None:
    bs = _budgets(xs, lim)
    q: dict = {}
    current = xs
    for step in run_rounds(xs, bs, max_rounds=6, rule=rule):
        for b in bs:
            before = _use(xs, b, q)
            after = step.use[(b.cap, b.child)]
            # within its share it stays within; over it, it only goes down
            assert after <= b.limit or after <= before
        q.update(step.moved)
    # and trimmed for matching, every budget fits
    trimmed = within_shares(current, bs)
    for b in bs:
        assert _use(xs, b, trimmed) <= b.limit


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=200, deadline=None)
@given(xs=intents())
def test_rounds_close_every_gap_the_ranges_can_close(xs, rule) -> None:
    by_group: dict = {}
    for i in xs:
        by_group.setdefault(i.group, []).append(i)
    feasible = True
    for members in by_group.values():
        d = sum(i.qty for i in members if i.kind == "need")
        s = sum(i.qty for i in members if i.kind == "capacity")
        if d > s:
            room = sum(i.qty - i.lo for i in members if i.kind == "need") + sum(
                i.hi - i.qty for i in members if i.kind == "capacity"
            )
        else:
            room = sum(i.hi - i.qty for i in members if i.kind == "need") + sum(
                i.qty - i.lo for i in members if i.kind == "capacity"
            )
        feasible &= room >= abs(d - s)
    steps = run_rounds(xs, rule=rule)
    if feasible:
        assert steps[-1].converged
        assert len(steps) <= 2  # one round closes it; the second finds it closed
        assert not any(s.beyond for s in steps)
    assert steps[-1].settled or len(steps) == 20


def test_a_shortage_is_shared_by_room() -> None:
    def i(node: str, kind: str, q: int, lo: int, hi: int) -> Intent:
        return Intent(node, kind, "k", "eu/a/b/x", "wheat", "mass", "2027", "kg",
                      q * KG, lo * KG, hi * KG, STEP)  # fmt: skip

    xs = [
        i("a", "need", 100, 70, 100),
        i("b", "capacity", 50, 50, 60),
        i("c", "capacity", 20, 20, 20),
    ]
    step = round_step(xs)
    (g,) = step.groups.values()
    assert g.index == Fraction(30, 170)
    # gap 30: capacities first (b: 10 more), then the need gives the other 20
    assert {k[0]: v // KG for k, v in step.moved.items()} == {"a": 80, "b": 60}
    # shared: room 30 (needs) + 10 (b), 3/4 of each
    step = round_step(xs, rule="shared")
    assert {k[0]: v // KG for k, v in step.moved.items()} == {"a": 77, "b": 57}
    assert step.moved[("a", "need", "k")] == 77 * KG + KG // 2
    # a gap bigger than the room: everything to its end, the rest beyond
    xs[0] = i("a", "need", 200, 150, 200)
    step = round_step(xs)
    assert step.moved == {("a", "need", "k"): 150 * KG, ("b", "capacity", "k"): 60 * KG}
    # the remaining 70 is spread over both sides by quantity (150 : 60 : 20)
    beyond = {k[0]: v for k, v in step.beyond.items()}
    assert beyond == {
        "a": 150 * KG - 45_652_174 * STEP,  # 70 * 150 / 230 = 45.652174 (rounded up)
        "b": 60 * KG + 18_260_870 * STEP,
        "c": 20 * KG + 6_086_957 * STEP,
    }


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 10**15),
    weights=st.dictionaries(
        st.sampled_from([f"eu/a/{c}" for c in "abcdefgh"]),
        st.fractions(min_value=0, max_value=10**6),
        min_size=1,
    ).filter(lambda w: any(w.values())),
)
def test_largest_remainder_sums_to_the_total(total, weights) -> None:
    out = largest_remainder(total, weights)
    assert sum(out.values()) == total
    whole = sum(weights.values())
    for k, v in out.items():
        assert abs(v - total * weights[k] / whole) < 1


@settings(max_examples=200, deadline=None)
@given(
    qty=st.integers(1, 10**15),
    residents=st.lists(st.integers(0, 10**10), min_size=1, max_size=8),
    demand=st.lists(st.integers(0, 10**6), min_size=8, max_size=8),
    equal=st.integers(0, 100),
    need=st.integers(0, 100),
)
def test_shares_sum_to_the_cap(qty, residents, demand, equal, need) -> None:
    if equal + need == 0 or (equal and not sum(residents)):
        return
    children = {f"eu/c{k}": r for k, r in enumerate(residents)}
    cap = Cap("x.cap", "co2", "eu", "2027", qty, "t", children, equal, need, 0)
    got = shares(cap, {f"eu/c{k}": Fraction(d) for k, d in enumerate(demand)})
    assert sum(got.values()) == qty
    assert all(v >= 0 for v in got.values())


def test_shares_mix_residents_and_need() -> None:
    children = {"eu/a": 1, "eu/b": 3}
    per_resident = Cap("x.c", "co2", "eu", "2027", 100, "t", children, 1, 0, 0)
    assert shares(per_resident, {}) == {"eu/a": 25, "eu/b": 75}
    by_need = Cap("x.c", "co2", "eu", "2027", 100, "t", children, 0, 1, 0)
    assert shares(by_need, {"eu/a": Fraction(3), "eu/b": Fraction(1)}) == {"eu/a": 75, "eu/b": 25}
    mixed = Cap("x.c", "co2", "eu", "2027", 101, "t", children, 1, 1, 0)
    # 101 * (1/4 + 3/4) / 2 and 101 * (3/4 + 1/4) / 2: 50.5 each, the tie to eu/a
    assert shares(mixed, {"eu/a": Fraction(3), "eu/b": Fraction(1)}) == {"eu/a": 51, "eu/b": 50}


def test_budgets_cover_the_children_and_the_rest() -> None:
    cap = Cap("x.c", "co2", "eu/a", "2027", 10, "kg", {"eu/a/b/x": 1}, 1, 0, 0)

    def c(scope: str, period: str = "2027-Q2", res: str = "co2") -> Intent:
        use = {res: Use(res, "mass", Fraction(1, KG))}
        return Intent(scope[-1], "capacity", f"{period}-{res}", scope, "wheat", "mass", period,
                      "kg", KG, KG, KG, STEP, uses=use)  # fmt: skip

    xs = [
        c("eu/a/b/x"),
        c("eu/a/b/y"),
        c("eu/a/b/x", "2028"),
        c("eu/a/b/x", res="water"),
        c("eu/z"),
    ]
    (rest, inside) = budgets([cap], xs)  # by child: the rest ("") first
    assert (inside.child, inside.share, inside.members) == ("eu/a/b/x", 10, frozenset({xs[0].id}))
    assert (rest.child, rest.share, rest.members) == ("", 0, frozenset({xs[1].id}))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_replica_plans_alike(data) -> None:
    """Records arriving in any order give the same intents and the same round."""
    authors = [Author(ident, scope=f"eu/a/b/n{k}") for k, ident in enumerate(identities(3))]
    records = []
    for k, a in enumerate(authors):
        n = a.need(f"n{k}", qty=str(50 + k), period="2027")
        body = dict(n.body, min="10", max="90")
        records += [n, a.write("need", f"n{k}", body), a.capacity(f"c{k}", qty="20", period="2027")]
        records.append(a.write("capacity", f"c{k}", dict(records[-1].body, max="40")))
    results = []
    for _ in range(2):
        replica = Replica()
        for r in data.draw(st.permutations(records)):
            replica.receive(r.raw)
        xs = intents_from_records(replica.records(), scope="eu/a/b")
        results.append((xs, round_step(xs)))
    assert results[0] == results[1]
    assert [i.hi for i in results[0][0] if i.kind == "capacity"] == [40 * KG] * 3


@settings(max_examples=150, deadline=None)
@given(data=st.data(), xs=intents(capped=True), lim=limits)
def test_the_plan_does_not_depend_on_which_revisions_are_held(data, xs, lim) -> None:
    """Each node applies its part of the plan when it likes; a node that holds some of
    the others' revisions (any subset) computes the same plan as one holding none."""
    bs = _budgets(xs, lim)
    steps, planned = plan(xs, bs)
    held = data.draw(st.sets(st.sampled_from([i.id for i in xs])))
    revised = [replace(i, qty=planned[i.id], base=i.qty) if i.id in held else i for i in xs]
    again_steps, again = plan(revised, bs)
    assert again == planned
    assert again_steps == steps
    for i in xs:
        assert i.lo <= planned[i.id] <= i.hi


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="rule must be one of"):
        round_step([], rule="loudest-first")
