"""The composition search (node/governance/panels.py), the integer simplex, and the
maximin lottery on pools too large to list, against enumeration and each other."""

from __future__ import annotations

import ast
import functools
import itertools
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.governance import panels, sortition
from node.governance.errors import GovernanceError
from node.governance.panels import (
    Problem,
    SearchLimit,
    best_composition,
    improve,
    lagrangian_bound,
    meets,
)
from node.governance.simplex import IntegerSimplex, maximize


def compositions(problem):
    """Every composition meeting the quotas, by enumeration."""
    out = []
    for counts in itertools.product(*(range(c + 1) for c in problem.caps)):
        if sum(counts) != problem.size:
            continue
        ok = True
        for groups, bounds in zip(problem.groups, problem.bounds, strict=True):
            for g, (lo, hi) in enumerate(bounds):
                n = sum(k for k, gt in zip(counts, groups, strict=True) if gt == g)
                ok = ok and lo <= n <= hi
        if ok:
            out.append(counts)
    return out


@st.composite
def problems(draw):
    n_types = draw(st.integers(1, 5))
    caps = tuple(draw(st.lists(st.integers(0, 3), min_size=n_types, max_size=n_types)))
    size = draw(st.integers(0, sum(caps)))
    groups, bounds = [], []
    for _ in range(draw(st.integers(0, 3))):
        n_values = draw(st.integers(1, 3))
        groups.append(
            tuple(draw(st.lists(st.integers(-1, n_values - 1), min_size=n_types, max_size=n_types)))
        )
        bs = []
        for _ in range(n_values):
            lo = draw(st.integers(0, size))
            bs.append((lo, draw(st.integers(lo, size))))
        bounds.append(tuple(bs))
    return Problem(caps, size, tuple(groups), tuple(bounds))


@settings(max_examples=300, deadline=None)
@given(problems(), st.data())
def test_best_composition_is_the_enumerated_maximum(problem, data):
    weights = data.draw(
        st.lists(st.integers(0, 20), min_size=len(problem.caps), max_size=len(problem.caps))
    )
    listed = compositions(problem)
    found = best_composition(problem, weights)
    if not listed:
        assert found is None
        return
    best = max(sum(w * k for w, k in zip(weights, c, strict=True)) for c in listed)
    assert found is not None
    assert found[0] == best
    assert found[1] in listed
    assert found[0] == sum(w * k for w, k in zip(weights, found[1], strict=True))
    # A threshold at the optimum leaves nothing; just below it, the optimum.
    assert best_composition(problem, weights, best) is None
    assert best_composition(problem, weights, best - 1)[0] == best
    # `first` returns some composition beating the threshold.
    first = best_composition(problem, weights, best - 1, first=True)
    assert first is not None
    assert first[0] > best - 1
    assert first[1] in listed


def weights_for(problem, data, low=0):
    return data.draw(
        st.lists(st.integers(low, 20), min_size=len(problem.caps), max_size=len(problem.caps))
    )


@settings(max_examples=300, deadline=None)
@given(problems(), st.data())
def test_lagrangian_bound_holds_for_any_multipliers(problem, data):
    """Whatever the integer multipliers, no composition meeting the quotas is worth
    more than the bound: the search may cut by it without losing an optimum."""
    if not problem.groups:
        return
    weights = weights_for(problem, data, low=-20)
    kept = data.draw(st.integers(0, len(problem.groups) - 1))
    pi = [
        data.draw(st.lists(st.integers(-30, 30), min_size=len(b), max_size=len(b)))
        for b in problem.bounds
    ]
    listed = compositions(problem)
    b = lagrangian_bound(problem, weights, kept, pi)
    if b is None:
        assert not listed
        return
    for c in listed:
        assert sum(w * k for w, k in zip(weights, c, strict=True)) <= b


@settings(max_examples=300, deadline=None)
@given(problems(), st.data())
def test_the_multipliers_chosen_give_a_valid_bound(problem, data):
    """The multipliers the search computes (integer subgradient steps) bound every
    composition, and the bound is at most the one-feature bound of feature `kept`
    (the multipliers start at zero and only the best seen is kept)."""
    if not problem.groups:
        return
    weights = weights_for(problem, data)
    threshold = data.draw(st.none() | st.integers(-5, 60))
    listed = compositions(problem)
    for kept in range(len(problem.groups)):
        pi = panels._multipliers(problem, weights, kept, threshold)
        assert all(type(p) is int for row in pi for p in row)
        b = lagrangian_bound(problem, weights, kept, pi)
        zero = lagrangian_bound(problem, weights, kept, [[0] * len(r) for r in pi])
        if b is None:
            assert zero is None
            assert not listed
            continue
        assert b <= zero
        for c in listed:
            assert sum(w * k for w, k in zip(weights, c, strict=True)) <= b


@settings(max_examples=300, deadline=None)
@given(problems(), st.data())
def test_the_lagrangian_bounds_change_no_answer_of_a_full_search(problem, data):
    """With and without the Lagrangian bounds a full search returns the same
    composition (the first optimal one in the fixed order), threshold or not."""
    weights = weights_for(problem, data)
    threshold = data.draw(st.none() | st.integers(-1, 60))
    with_bound = best_composition(problem, weights, threshold)
    assert with_bound == best_composition(problem, weights, threshold, lagrangian=False)
    assert with_bound == best_composition(problem, weights, threshold)  # the same twice


def test_the_search_uses_no_floating_point():
    """Every step of the composition search is exact: no float literal, no true
    division, no float() or math (whose functions return floats) in panels.py."""
    tree = ast.parse(Path(panels.__file__).read_text())
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), node.lineno
        assert not isinstance(node, ast.Div), "true division"
        assert not (isinstance(node, ast.Name) and node.id in ("float", "math")), node.lineno


def test_search_gives_up_with_a_message(monkeypatch):
    problem = Problem((3,) * 8, 12, ((0, 1) * 4,), (((2, 8), (2, 8)),))
    assert best_composition(problem, list(range(8))) is not None
    monkeypatch.setattr("node.governance.panels.MAX_NODES", 3)
    with pytest.raises(GovernanceError, match="too many kinds of panel"):
        best_composition(problem, list(range(8)))


def test_a_node_limit_stops_the_search_by_count():
    problem = Problem((3,) * 8, 12, ((0, 1) * 4,), (((2, 8), (2, 8)),))
    with pytest.raises(SearchLimit):
        best_composition(problem, list(range(8)), limit=3)
    assert best_composition(problem, list(range(8)), limit=10_000) == best_composition(
        problem, list(range(8))
    )


@st.composite
def lps(draw):
    m = draw(st.integers(1, 5))
    n = draw(st.integers(1, 5))
    a = [draw(st.lists(st.integers(-5, 9), min_size=n, max_size=n)) for _ in range(m)]
    # a bounded program: every variable appears in a row with a positive bound
    a.append([1] * n)
    b = [*draw(st.lists(st.integers(0, 20), min_size=m, max_size=m)), draw(st.integers(0, 20))]
    c = draw(st.lists(st.integers(-5, 9), min_size=n, max_size=n))
    return a, b, c


@settings(max_examples=200, deadline=None)
@given(lps(), st.integers(0, 4))
def test_integer_simplex_matches_the_fraction_simplex(lp, split):
    a, b, c = lp
    want = maximize([Fraction(v) for v in c], [[Fraction(v) for v in r] for r in a], b)
    assert IntegerSimplex(a, b, c).solve().value == want.value
    # columns added after a first solve reach the same optimum
    k = min(split, len(c))
    s = IntegerSimplex([r[:k] for r in a], b, c[:k])
    s.solve()
    for j in range(k, len(c)):
        s.add_column([r[j] for r in a], c[j])
        s.solve()
    sol = s.solve()
    assert sol.value == want.value
    # the solution is feasible and attains the value; the duals certify it
    assert all(x >= 0 for x in sol.x)
    for row, bound in zip(a, b, strict=True):
        assert sum(v * x for v, x in zip(row, sol.x, strict=True)) <= bound
    assert sum(v * x for v, x in zip(c, sol.x, strict=True)) == sol.value
    assert all(y >= 0 for y in sol.duals)
    assert sum(y * v for y, v in zip(sol.duals, b, strict=True)) == sol.value


values = st.sampled_from(["a", "b", "c"])


@settings(max_examples=60, deadline=None)
@given(
    pool=st.lists(
        st.fixed_dictionaries(
            {"x": values, "y": st.sampled_from(["p", "q"]), "z": st.sampled_from(["u", "v"])}
        ),
        min_size=3,
        max_size=14,
    ),
    size=st.integers(1, 6),
    data=st.data(),
)
def test_searched_lottery_equals_the_listed_one(pool, size, data):
    bound = st.integers(0, size // 2).flatmap(
        lambda lo: st.tuples(st.just(lo), st.integers(max(lo, 1), size))
    )
    quotas = {
        "x": {v: list(data.draw(bound)) for v in "ab"},
        "y": {"p": list(data.draw(bound))},
        "z": {"u": list(data.draw(bound))},
    }
    try:
        listed = sortition.distribution(pool, size, quotas)
    except GovernanceError:
        listed = None
    saved = sortition.MAX_LISTED
    sortition.MAX_LISTED = 0  # every pool goes to the search
    try:
        searched = sortition.distribution(pool, size, quotas)
    except GovernanceError:
        searched = None
    finally:
        sortition.MAX_LISTED = saved
    assert (searched is None) == (listed is None)
    if searched is None or listed is None:
        return
    assert searched.minimum == listed.minimum
    assert sum(p for _, p in searched.compositions) == 1
    # the volunteers no panel can include are the same (probability 0 on both)
    assert [p == 0 for p in searched.probability] == [p == 0 for p in listed.probability]
    for comp, _ in searched.compositions:
        people = [
            dict(zip(searched.features, t, strict=True))
            for t, k in zip(searched.types, comp, strict=True)
            for _ in range(k)
        ]
        assert not sortition.meets_quotas(people, size, quotas)


def _lottery(pool, size, quotas, *, lagrangian=True):
    """The searched lottery (every pool to the search), with or without the
    Lagrangian bounds; None if no panel meets the quotas."""
    saved = sortition.MAX_LISTED, sortition.best_composition
    sortition.MAX_LISTED = 0
    if not lagrangian:
        sortition.best_composition = functools.partial(best_composition, lagrangian=False)
    try:
        return sortition.distribution(pool, size, quotas)
    except GovernanceError:
        return None
    finally:
        sortition.MAX_LISTED, sortition.best_composition = saved


@settings(max_examples=60, deadline=None)
@given(
    pool=st.lists(
        st.fixed_dictionaries(
            {
                "x": values,
                "y": st.sampled_from(["p", "q"]),
                "z": st.sampled_from(["u", "v", "w"]),
                "k": st.sampled_from(["m", "n"]),
            }
        ),
        min_size=3,
        max_size=16,
    ),
    size=st.integers(1, 7),
    data=st.data(),
)
def test_the_lottery_value_is_the_same_with_and_without_the_lagrangian_bound(pool, size, data):
    """Four quota features (three relaxed per Lagrangian bound): the maximin value with
    the bounds equals the value without them, exactly; the lottery is identical run
    twice and for the pool in any order."""
    bound = st.integers(0, size // 2).flatmap(
        lambda lo: st.tuples(st.just(lo), st.integers(max(lo, 1), size))
    )
    quotas = {
        "x": {v: list(data.draw(bound)) for v in "ab"},
        "y": {"p": list(data.draw(bound))},
        "z": {v: list(data.draw(bound)) for v in "uv"},
        "k": {"m": list(data.draw(bound))},
    }
    with_bound = _lottery(pool, size, quotas)
    without = _lottery(pool, size, quotas, lagrangian=False)
    assert (with_bound is None) == (without is None)
    if with_bound is None or without is None:
        return
    assert with_bound.minimum == without.minimum
    assert [p == 0 for p in with_bound.probability] == [p == 0 for p in without.probability]
    assert _lottery(pool, size, quotas) == with_bound
    assert _lottery(data.draw(st.permutations(pool)), size, quotas) == with_bound


@settings(max_examples=300, deadline=None)
@given(problems(), st.data())
def test_the_heuristic_panel_meets_the_quotas_and_never_loses(problem, data):
    """From any composition meeting the quotas, the local search ends on one that meets
    them too (checked against the enumeration), worth at least the start and at most
    the exact best, and with no single seat move left that gains and keeps the quotas."""
    listed = compositions(problem)
    if not listed:
        return
    weights = data.draw(
        st.lists(st.integers(-5, 20), min_size=len(problem.caps), max_size=len(problem.caps))
    )
    start = data.draw(st.sampled_from(listed))

    def worth(c):
        return sum(w * k for w, k in zip(weights, c, strict=True))

    value, counts = improve(problem, weights, start)
    assert counts in listed
    assert meets(problem, counts)
    assert value == worth(counts)
    assert worth(start) <= value <= max(worth(c) for c in listed)
    for a, b in itertools.permutations(range(len(counts)), 2):
        moved = list(counts)
        moved[a] -= 1
        moved[b] += 1
        if tuple(moved) in listed:
            assert worth(moved) <= value
    assert improve(problem, weights, start) == (value, counts)


@settings(max_examples=300, deadline=None)
@given(problems(), st.data())
def test_meets_is_membership_in_the_enumeration(problem, data):
    counts = tuple(
        data.draw(
            st.lists(st.integers(0, 3), min_size=len(problem.caps), max_size=len(problem.caps))
        )
    )
    assert meets(problem, counts) == (counts in compositions(problem))


def _lottery_heuristic(pool, size, quotas, starts):
    """The searched lottery with `starts` heuristic starts a round (0: exact search
    alone); None if no panel meets the quotas."""
    saved = sortition.MAX_LISTED, sortition.HEURISTIC_STARTS
    sortition.MAX_LISTED, sortition.HEURISTIC_STARTS = 0, starts
    try:
        return sortition.distribution(pool, size, quotas)
    except GovernanceError:
        return None
    finally:
        sortition.MAX_LISTED, sortition.HEURISTIC_STARTS = saved


@settings(max_examples=60, deadline=None)
@given(
    pool=st.lists(
        st.fixed_dictionaries(
            {
                "x": values,
                "y": st.sampled_from(["p", "q"]),
                "z": st.sampled_from(["u", "v", "w"]),
                "k": st.sampled_from(["m", "n"]),
            }
        ),
        min_size=3,
        max_size=30,
    ),
    size=st.integers(1, 7),
    starts=st.integers(1, 8),
    data=st.data(),
)
def test_the_lottery_value_is_the_same_with_and_without_the_heuristic(pool, size, starts, data):
    """The heuristic columns change how the column generation gets there, not where:
    the maximin value with the local search (any number of starts) equals the value
    of the exact search alone and of the listed lottery; every panel of the lottery
    meets the quotas; the lottery is the same run twice."""
    bound = st.integers(0, size // 2).flatmap(
        lambda lo: st.tuples(st.just(lo), st.integers(max(lo, 1), size))
    )
    quotas = {
        "x": {v: list(data.draw(bound)) for v in "ab"},
        "y": {"p": list(data.draw(bound))},
        "z": {v: list(data.draw(bound)) for v in "uv"},
        "k": {"m": list(data.draw(bound))},
    }
    with_heuristic = _lottery_heuristic(pool, size, quotas, starts)
    exact_only = _lottery_heuristic(pool, size, quotas, 0)
    try:
        listed = sortition.distribution(pool, size, quotas)
    except GovernanceError:
        listed = None
    assert (with_heuristic is None) == (exact_only is None) == (listed is None)
    if with_heuristic is None or exact_only is None or listed is None:
        return
    assert with_heuristic.minimum == exact_only.minimum == listed.minimum
    assert [p == 0 for p in with_heuristic.probability] == [p == 0 for p in exact_only.probability]
    assert sum(p for _, p in with_heuristic.compositions) == 1
    for comp, _ in with_heuristic.compositions:
        people = [
            dict(zip(with_heuristic.features, t, strict=True))
            for t, k in zip(with_heuristic.types, comp, strict=True)
            for _ in range(k)
        ]
        assert not sortition.meets_quotas(people, size, quotas)
    assert _lottery_heuristic(pool, size, quotas, starts) == with_heuristic
