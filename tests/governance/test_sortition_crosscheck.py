"""Cross-check the maximin lottery (node/governance/sortition.py) against
sortition-algorithms' ``find_distribution_maximin`` (HiGHS, float).

sortition-algorithms is a test-only dependency installed ``--no-deps`` (see
``requirements-crosscheck.txt``, which the README's test command installs).

What is compared, and why only that:

* Feasibility: ours raises exactly when theirs reports infeasible quotas.
* Quotas: every panel in either support meets the quotas, checked by the other
  side's representation (theirs against ``meets_quotas``, ours against their
  ``FeatureValueMinMax`` collection).
* The maximin value is unique. Ours is exact; theirs stops its column generation
  once the dual bound is within ``EPS`` = 5e-4, so v* - EPS <= theirs <= v*.
  Theirs above ours would mean ours is not optimal.
* Per-person probabilities of a maximin distribution are NOT unique (only the
  minimum is; on the 48-volunteer pool below the two solvers' per-person
  probabilities differ by up to 0.4 while both are optimal). What every
  distribution over quota-meeting panels does fix: probabilities sum to the panel
  size, each lies in [v*, 1], and the expected count of each feature value lies in
  its [min, max] (exactly min when min == max). When v* = size/n, every person's
  probability is pinned to size/n, so there we compare them one by one.
* A volunteer on no feasible panel: theirs maximises the minimum over the others
  (Flanigan et al.'s "covered agents"), ours reports minimum 0 and then keeps an
  arbitrary lottery. Only what both define is asserted there: such volunteers get 0.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sortition_algorithms.committee_generation import find_distribution_maximin
from sortition_algorithms.committee_generation.common import EPS, EPS2
from sortition_algorithms.errors import InfeasibleQuotasCantRelaxError, InfeasibleQuotasError
from sortition_algorithms.features import FeatureValueMinMax
from sortition_algorithms.people import People
from sortition_algorithms.utils import set_random_provider

from node.governance import sortition
from node.governance.errors import GovernanceError

FLOAT = 1e-7  # HiGHS' feasibility tolerance is 1e-7


def their_features(pool, size, quotas):
    """Our quotas as their FeatureCollection: every value a volunteer has must be
    listed; values our quotas leave out are unconstrained ([0, size])."""
    fc = {}
    for f, q in quotas.items():
        values = sorted({p[f] for p in pool} | set(q))
        fc[f] = {
            v: FeatureValueMinMax(min=q.get(v, (0, size))[0], max=q.get(v, (0, size))[1])
            for v in values
        }
    return fc


def theirs(pool, size, quotas):
    """(committees with probability >= EPS2 as index sets, their probabilities,
    per-person probability), or None if sortition-algorithms finds no panel."""
    fc = their_features(pool, size, quotas)
    people = People([])
    for i, p in enumerate(pool):
        people.add(str(i), {f: p[f] for f in quotas}, fc, i + 1)
    state = random.getstate()
    set_random_provider(20240601)  # seeds the solver and `random` (restored below)
    try:
        committees, probs, _ = find_distribution_maximin(fc, people, size, [])
    except (InfeasibleQuotasError, InfeasibleQuotasCantRelaxError):
        return None
    finally:
        set_random_provider(None)
        random.setstate(state)
    support = [
        (sorted(int(i) for i in c), p) for c, p in zip(committees, probs, strict=True) if p >= EPS2
    ]
    per = [0.0] * len(pool)
    for c, p in support:
        for i in c:
            per[i] += p
    return support, per


def ours(pool, size, quotas):
    """(distribution, per-person probability) or None if ours finds no panel."""
    try:
        dist = sortition.distribution(pool, size, quotas)
    except GovernanceError as e:
        if "no panel meets the quotas" not in str(e):
            raise
        return None
    per = [dist.probability[dist.types.index(sortition.type_of(p, dist.features))] for p in pool]
    return dist, per


def their_quota_problems(panel, size, fc):
    """Check a panel (feature dicts) against their representation of the quotas."""
    problems = [] if len(panel) == size else ["size"]
    for f, values in fc.items():
        have = Counter(p[f] for p in panel)
        problems += [f"{f}={v}" for v, mm in values.items() if not mm.min <= have[v] <= mm.max]
    return problems


def cross_check(pool, size, quotas):
    """Assert everything both sides define; return (ours, theirs) maximin values over
    the volunteers some panel can include, and the per-person probabilities."""
    mine, other = ours(pool, size, quotas), theirs(pool, size, quotas)
    assert (mine is None) == (other is None), (mine, other)
    if mine is None:
        return None
    dist, my_per = mine
    support, their_per = other
    fc = their_features(pool, size, quotas)

    # Every panel either side can draw meets the quotas, as the other side reads them.
    for comp, p in dist.compositions:
        assert p > 0
        panel = [
            dict(zip(dist.features, t, strict=True))
            for t, k in zip(dist.types, comp, strict=True)
            for _ in range(k)
        ]
        assert their_quota_problems(panel, size, fc) == []
    for c, _ in support:
        assert sortition.meets_quotas([pool[i] for i in c], size, quotas) == []
    assert abs(sum(p for _, p in support) - 1) < FLOAT

    # Probabilities sum to the panel size; each feature value's expected count is
    # within its quota (exactly min when min == max).
    assert sum(my_per) == size
    assert abs(sum(their_per) - size) < 1e-6
    for f, q in quotas.items():
        for v, (lo, hi) in q.items():
            group = [i for i, p in enumerate(pool) if p[f] == v]
            mine_v = sum((my_per[i] for i in group), Fraction(0))
            theirs_v = sum(their_per[i] for i in group)
            assert lo <= mine_v <= hi
            assert lo - 1e-6 <= theirs_v <= hi + 1e-6
            if lo == hi:
                assert mine_v == lo
                assert abs(theirs_v - lo) < 1e-6

    # Volunteers on no feasible panel get 0 on both sides; both sides maximise the
    # least probability over everyone else.
    uncovered = {i for i, p in enumerate(their_per) if p < EPS2}
    assert uncovered == {i for i, p in enumerate(my_per) if p == 0}
    covered = [i for i in range(len(pool)) if i not in uncovered]

    # The maximin value: theirs is within EPS below the exact optimum, never above.
    v, w = float(dist.minimum), min(their_per[i] for i in covered)
    assert w <= v + FLOAT, f"sortition-algorithms beats ours: {w} > {v}"
    assert v - w <= EPS + FLOAT, f"maximin values differ: ours {v}, theirs {w}"
    assert min(my_per[i] for i in covered) == dist.minimum
    assert all(dist.minimum <= my_per[i] <= 1 for i in covered)
    assert all(w - FLOAT <= their_per[i] <= 1 + FLOAT for i in covered)
    # Unique per-person probabilities when every selectable volunteer can get
    # size/m (the probabilities of the m selectable ones sum to the panel size).
    if dist.minimum == Fraction(size, len(covered)):
        assert all(my_per[i] == dist.minimum for i in covered)
        assert max(abs(their_per[i] - v) for i in covered) < 1e-6
    return v, w, my_per, their_per


# --- example pools --------------------------------------------------------------------


def example_pool():
    """48 volunteers, three features; every fifth is old."""
    rng = random.Random(7)
    return [
        {
            "age": rng.choice(["young", "mid", "old"]) if i % 5 else "old",
            "gender": rng.choice(["f", "m", "f", "m", "x"]),
            "region": rng.choice(["north", "south"]),
        }
        for i in range(48)
    ]


def test_example_pool_three_features():
    quotas = {
        "age": {"young": [3, 4], "mid": [3, 4], "old": [2, 4]},
        "gender": {"f": [4, 5], "m": [4, 5], "x": [0, 1]},
        "region": {"north": [5, 5], "south": [5, 5]},
    }
    v, w, _, _ = cross_check(example_pool(), 10, quotas)
    assert v == 0.1  # exact 1/10: ten x-gender volunteers share at most one seat
    assert abs(v - w) < 1e-9


def test_example_pool_uniform_is_feasible_so_probabilities_are_unique():
    pool = [
        {"age": a, "sex": s, "region": r}
        for a in ("young", "mid", "old")
        for s in ("f", "m")
        for r, n in (("north", 4), ("south", 2))
        for _ in range(n)
    ]
    quotas = {
        "age": {"young": [2, 4], "mid": [2, 4], "old": [2, 4]},
        "sex": {"f": [4, 5], "m": [4, 5]},
        "region": {"north": [5, 7]},
    }
    v, w, _, _ = cross_check(pool, 9, quotas)
    assert v == 9 / 36
    assert abs(v - w) < 1e-9


def test_example_pool_skewed_quotas():
    pool = [
        {"age": a, "sex": s}
        for a, s, n in [("young", "f", 3), ("young", "m", 5), ("old", "f", 6), ("old", "m", 2)]
        for _ in range(n)
    ]
    quotas = {"age": {"young": [3, 3], "old": [3, 3]}, "sex": {"f": [3, 3], "m": [3, 3]}}
    v, w, _, _ = cross_check(pool, 6, quotas)
    assert v == pytest.approx(1 / 3, abs=1e-12)
    assert abs(v - w) < 1e-9


def test_a_volunteer_on_no_panel_does_not_spoil_the_lottery():
    """One volunteer the quotas exclude gets 0; everyone else still gets maximin 1/2."""
    pool = [{"age": a} for a, n in (("young", 4), ("old", 4), ("child", 1)) for _ in range(n)]
    quotas = {"age": {"young": [1, 3], "old": [1, 3], "child": [0, 0]}}
    v, w, mine, other = cross_check(pool, 4, quotas)
    assert (mine[-1], other[-1]) == (0, 0.0)
    assert v == 0.5
    assert abs(w - 0.5) < EPS


def test_infeasible_quotas_on_both_sides():
    pool = [{"age": "old"}] * 5 + [{"age": "young"}]
    assert cross_check(pool, 3, {"age": {"young": [2, 3], "old": [0, 3]}}) is None


# --- generated small pools ------------------------------------------------------------

values = st.sampled_from(["a", "b", "c"])


@settings(max_examples=60, deadline=None)
@given(
    pool=st.lists(
        st.fixed_dictionaries({"x": values, "y": st.sampled_from(["p", "q"])}),
        min_size=3,
        max_size=12,
    ),
    size=st.integers(1, 5),
    data=st.data(),
)
def test_generated_pools_agree(pool, size, data):
    # Low minimums keep most cases feasible; infeasible ones are still compared.
    bound = st.integers(0, size // 2).flatmap(
        lambda lo: st.tuples(st.just(lo), st.integers(max(lo, 1), size))
    )
    quotas = {"x": {v: data.draw(bound) for v in "ab"}, "y": {"p": data.draw(bound)}}
    result = cross_check(pool, size, quotas)
    # Independently of both solvers: who is on some feasible panel (by enumeration).
    on_some = {
        i
        for c in itertools.combinations(range(len(pool)), size)
        if not sortition.meets_quotas([pool[i] for i in c], size, quotas)
        for i in c
    }
    if result is None:
        assert not on_some
        return
    _, _, mine, other = result
    assert {i for i, p in enumerate(other) if p >= EPS2} == on_some
    assert {i for i, p in enumerate(mine) if p > 0} <= on_some


# --- a pool too large to list its panels ------------------------------------------------


def pool_of_300():
    """300 volunteers, four features (81 types present), a panel of 30 with quotas
    around each value's share."""
    rng = random.Random(1)
    features = {
        "age": (["16-29", "30-44", "45-64", "65+"], [3, 3, 3, 2]),
        "gender": (["f", "m", "x"], [10, 10, 1]),
        "region": (["north", "south", "east"], [4, 3, 2]),
        "edu": (["low", "mid", "high"], [2, 3, 2]),
    }
    pool = [{f: rng.choices(v, weights=w)[0] for f, (v, w) in features.items()} for _ in range(300)]
    quotas = {}
    for f in features:
        quotas[f] = {}
        for v in sorted({p[f] for p in pool}):
            share = sum(p[f] == v for p in pool) * 30 // 300
            quotas[f][v] = [max(0, share - 1), min(30, share + 2)]
    return pool, quotas


def test_a_300_volunteer_pool_with_four_features():
    """Too many compositions to list: the branch-and-bound pricing and the integer
    simplex take over. The exact value equals sortition-algorithms' within 1e-9."""
    import time

    pool, quotas = pool_of_300()
    start = time.perf_counter()
    dist = sortition.distribution(pool, 30, quotas)
    took = time.perf_counter() - start
    assert len(dist.types) > 60
    _, per = theirs(pool, 30, quotas)
    w = min(p for p in per if p >= EPS2)
    assert abs(float(dist.minimum) - w) < 1e-9
    assert sum(p for _, p in dist.compositions) == 1
    for comp, _ in dist.compositions:
        panel = [
            dict(zip(dist.features, t, strict=True))
            for t, k in zip(dist.types, comp, strict=True)
            for _ in range(k)
        ]
        assert sortition.meets_quotas(panel, 30, quotas) == []
    # Goal 30 s on one core (measured 10.7 s CPU); the bound here only guards against a
    # regression by an order of magnitude on a loaded machine.
    assert took < 120, took
