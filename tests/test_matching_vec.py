"""The matching in int64 vectors (`matching_vec`) and in Python ints (`plan_exact`)
give the first implementation's matches, in order: at small quantities, at quantities
near the int64 bounds (float-estimated shares, wrapped products, pairing in
stretches), and beyond them (the vectors decline and Python ints match)."""

import random
import subprocess
import sys

import matching_reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_matching import SEGMENTS, multi_group_instances, repeated_party_instances

from node.planning import matching
from node.planning.matching import MatchPlan, Position, match_table, plan, plan_exact
from node.planning.matching_vec import VecPlan


@pytest.fixture(scope="module", autouse=True)
def vectors_from_the_first_position():
    """Small instances take the vector path here (by default only large ones do)."""
    before, matching.VECTOR_MIN = matching.VECTOR_MIN, 0
    yield
    matching.VECTOR_MIN = before


def test_a_small_matching_does_not_load_numpy():
    """A daemon's own region matches in Python ints: numpy stays out of its memory."""
    code = (
        "import sys, node.daemon, web.app\n"
        "from node.planning.matching import Position, plan\n"
        "g = ('potato', 'mass', '2026')\n"
        "p = {g: {('eu/a/x', 'x'): Position(5, (0,)), ('eu/a/y', 'y'): Position(0, (3,))}}\n"
        "assert plan(p).total() == 3\n"
        "assert 'numpy' not in sys.modules, 'numpy loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


BIG = 2**44 + 12_345  # a unit with many ticks: shares of odd remainders, under 2**50


def _rows(table):
    return [
        (table.names[a], table.names[b], q)
        for a, b, q in zip(table.provider, table.receiver, table.quantity, strict=True)
    ]


def _same_as_reference(positions):
    listed = matching_reference.match(positions)
    got = plan(positions)
    assert got.matches() == listed
    assert got.total() == sum(m.quantity for m in listed)
    return got


@settings(max_examples=300, deadline=None)
@given(repeated_party_instances())
def test_python_ints_equal_the_first_implementation(positions):
    # the fallback keeps the same matches (several ranks, one party at several leaves)
    exact = plan_exact(positions)
    assert isinstance(exact, MatchPlan)
    assert exact.matches() == matching_reference.match(positions)
    assert _rows(exact.table()) == _rows(match_table(positions))
    assert plan(positions).pools == exact.pools  # the same pools, before pairing


@st.composite
def scaled(draw):
    """Instances with every quantity times a unit, small to far beyond int64."""
    positions = draw(st.one_of(multi_group_instances(), repeated_party_instances()))
    unit = draw(st.sampled_from([1, 3, BIG, 2**49 // 50, 2**50, 2**61, 2**70]))
    return unit, {
        g: {p: Position(x.capacity * unit, tuple(n * unit for n in x.needs)) for p, x in ps.items()}
        for g, ps in positions.items()
    }


@settings(max_examples=300, deadline=None)
@given(scaled())
def test_vectors_where_exact_else_python_ints(case):
    unit, positions = case
    got = _same_as_reference(positions)
    biggest = max(
        (max(x.capacity, *x.needs) for ps in positions.values() for x in ps.values()), default=0
    )
    if biggest >= 2**50:
        assert isinstance(got, MatchPlan)  # beyond the bounds: Python ints
    elif unit <= BIG:
        assert isinstance(got, VecPlan)


def _federation(groups, parties, top, seed):
    rng = random.Random(seed)
    scopes = [f"eu/{SEGMENTS[k % 3]}/r{k % 7}/k{k:04d}" for k in range(parties)]
    out = {}
    for g in range(groups):
        group = {}
        for k, scope in enumerate(scopes):
            needs = [0, 0, 0, 0]
            for _ in range(rng.randrange(3)):
                needs[rng.randrange(4)] += rng.randrange(top)
            group[(scope, f"n{k:04d}")] = Position(rng.randrange(top), tuple(needs))
        out[(f"item-{g:02d}", "mass", "2027-Q1")] = group
    return out


def test_many_groups_whose_ticks_together_exceed_int64():
    # every group within the bounds, all of them together far beyond 2**63: the
    # pairing runs in stretches that fit
    positions = _federation(groups=240, parties=500, top=2**49 - 3, seed=3)
    got = _same_as_reference(positions)
    assert isinstance(got, VecPlan)
    assert got.total() > 2**63


def test_a_group_whose_supply_nears_int64_is_matched_in_python_ints():
    positions = _federation(groups=1, parties=16000, top=2**49 - 3, seed=4)
    supply = max(
        sum(max(x.capacity - sum(x.needs), 0) for x in ps.values()) for ps in positions.values()
    )
    assert supply >= 2**60
    assert isinstance(_same_as_reference(positions), MatchPlan)
