"""Greedy and Equal Shares: worked examples and Hypothesis properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mes_reference import add1 as plain_add1
from mes_reference import mes as plain_mes

from node.governance.budget import (
    MIN_MES_RUNS,
    _Classes,
    _mes,
    _profile,
    _votes,
    equal_shares,
    greedy,
)
from node.governance.errors import GovernanceError

IDS = ("1", "10", "2", "9", "a", "b", "c")


@st.composite
def pb_case(draw, min_cost=0):
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=6, unique=True))
    costs = {p: draw(st.integers(min_cost, 30)) for p in ids}
    ballots = draw(st.lists(st.frozensets(st.sampled_from(ids)), max_size=8))
    budget = draw(st.integers(0, 60))
    return costs, ballots, budget


COMPLETIONS = ("none", "add1", "greedy", "add1-greedy")


def test_greedy_example():
    costs = {"a": 6, "b": 5, "c": 3, "d": 1}
    ballots = [{"a", "b"}, {"a", "b", "c"}, {"a", "c", "d"}, {"b"}]
    result = greedy(costs, ballots, 10)
    # votes a=3, b=3, c=2, d=1: a fits (6), b does not (11), c fits (9), d fits (10)
    assert result.winners == ("a", "c", "d")
    assert result.spent == 10
    assert result.votes == {"a": 3, "b": 3, "c": 2, "d": 1}
    assert result.voter_budget is None
    assert all(s.rule == "greedy" for s in result.steps)


def test_equal_shares_example():
    # 4 voters, budget 8 (2 each). {1,2} back x (cost 4), {3,4} back y (cost 4) and
    # everyone backs z (cost 6): MES funds x and y, greedy would fund z first.
    costs = {"x": 4, "y": 4, "z": 6}
    ballots = [{"x", "z"}, {"x", "z"}, {"y", "z"}, {"y", "z"}]
    plain = equal_shares(costs, ballots, 8, completion="none")
    assert plain.winners == ("z",)  # z: cap 3/2 per unit of 6 = 1/4 < x: 2/4
    assert plain.steps[0].payment_cap == Fraction(3, 2)
    assert plain.steps[0].effective_votes == 4
    assert plain.voter_budget == 2
    assert greedy(costs, ballots, 8).winners == ("z",)
    card = equal_shares(costs, ballots, 8, utility="cardinality", completion="none")
    assert card.winners == ("z",)


def test_equal_shares_proportional_example():
    # 3 voters like a (cost 3) and b (3); 1 voter likes c (3). Budget 8, 2 each.
    costs = {"a": 3, "b": 3, "c": 3}
    ballots = [{"a", "b"}] * 3 + [{"c"}]
    assert equal_shares(costs, ballots, 8, completion="none").winners == ("a", "b")
    # add1 raises every voter to 3, then c alone is affordable but a+b+c = 9 > 8.
    result = equal_shares(costs, ballots, 8, completion="add1")
    assert result.winners == ("a", "b")
    assert result.voter_budget == 2


def test_add1_reaches_a_further_project():
    # Budget 10 over 5 voters (2 each); d (cost 3) has only 1 supporter, so needs
    # one add1 step (3 each) before it is bought; a+b+d = 10 fits.
    costs = {"a": 3, "b": 4, "d": 3}
    ballots = [{"a", "b"}] * 4 + [{"d"}]
    assert equal_shares(costs, ballots, 10, completion="none").winners == ("a", "b")
    result = equal_shares(costs, ballots, 10)
    assert set(result.winners) == {"a", "b", "d"}
    assert result.voter_budget == 3


def test_add1_stops_at_its_limit_and_says_so():
    costs = {"a": 3, "b": 4, "d": 3}
    ballots = [{"a", "b"}] * 4 + [{"d"}]
    full = equal_shares(costs, ballots, 10)
    assert (full.increments, full.stopped_at_limit) == (1, False)
    assert full.increment_limit == 10_000
    capped = equal_shares(costs, ballots, 10, max_increments=0)
    assert capped.winners == ("a", "b")
    assert (capped.increments, capped.stopped_at_limit) == (0, True)
    # The run limit shrinks with the work of one run (approvals), down to a floor.
    many = {str(i): 1 for i in range(200)}
    wide = [frozenset({str(i), str(j)}) for i in range(200) for j in range(i + 1, 200, 7)]
    assert equal_shares(costs, ballots, 10).run_limit > equal_shares(many, wide, 10).run_limit
    assert equal_shares(many, wide, 10).run_limit >= MIN_MES_RUNS
    with pytest.raises(GovernanceError, match="max_increments"):
        equal_shares(costs, ballots, 10, max_increments=-1)


def test_supported_free_projects_are_selected_first():
    result = equal_shares({"a": 0, "b": 5, "c": 0}, [{"a", "b"}, {"b"}], 5)
    assert result.winners[0] == "a"
    assert "c" not in result.winners  # nobody asked for it
    assert greedy({"a": 0, "b": 5, "c": 0}, [{"a"}], 0).winners == ("a", "c")


def test_no_ballots():
    assert equal_shares({"a": 1}, [], 5).winners == ()
    assert equal_shares({"a": 1}, [], 5, completion="add1-greedy").winners == ("a",)


@pytest.mark.parametrize(
    ("costs", "ballots", "budget", "kwargs", "message"),
    [
        ({"a": -1}, [], 5, {}, "cost -1 of 'a'"),
        ({"a": 1.5}, [], 5, {}, "cost 1.5 of 'a'"),
        ({"a": 1}, [], -1, {}, "budget -1"),
        ({"a": 1}, [{"b"}], 5, {}, "ballot 0: unknown project 'b'"),
        ({"a": 1}, [["a", "a"]], 5, {}, "ballot 0: a project is approved twice"),
        ({"a": 1}, [], 5, {"utility": "money"}, "unknown utility"),
        ({"a": 1}, [], 5, {"completion": "add2"}, "unknown completion"),
    ],
)
def test_bad_input(costs, ballots, budget, kwargs, message):
    with pytest.raises(GovernanceError, match=message):
        equal_shares(costs, ballots, budget, **kwargs)


@settings(max_examples=200, deadline=None)
@given(st.data(), pb_case())
def test_invariant_under_ballot_permutation(data, case):
    costs, ballots, budget = case
    shuffled = data.draw(st.permutations(ballots))
    assert greedy(costs, shuffled, budget) == greedy(costs, ballots, budget)
    completion = data.draw(st.sampled_from(COMPLETIONS))
    utility = data.draw(st.sampled_from(("cost", "cardinality")))
    first = equal_shares(costs, ballots, budget, utility=utility, completion=completion)
    again = equal_shares(costs, shuffled, budget, utility=utility, completion=completion)
    assert first == again


@settings(max_examples=200, deadline=None)
@given(pb_case(), st.sampled_from(COMPLETIONS), st.sampled_from(("cost", "cardinality")))
def test_never_over_budget(case, completion, utility):
    costs, ballots, budget = case
    for result in (
        greedy(costs, ballots, budget),
        equal_shares(costs, ballots, budget, utility=utility, completion=completion),
    ):
        assert result.spent == sum(costs[p] for p in result.winners) <= budget
        assert len(set(result.winners)) == len(result.winners)
        assert result.winners == tuple(s.project for s in result.steps)


@settings(max_examples=200, deadline=None)
@given(pb_case())
def test_greedy_is_exhaustive_and_ordered_by_votes(case):
    costs, ballots, budget = case
    result = greedy(costs, ballots, budget)
    left = budget - result.spent
    assert all(costs[p] > left for p in costs if p not in result.winners)
    keys = [(-result.votes[p], p) for p in result.winners]
    assert keys == sorted(keys)


@settings(max_examples=200, deadline=None)
@given(pb_case(), st.sampled_from(("cost", "cardinality")))
def test_greedy_completions_are_exhaustive(case, utility):
    costs, ballots, budget = case
    for completion in ("greedy", "add1-greedy"):
        result = equal_shares(costs, ballots, budget, utility=utility, completion=completion)
        left = budget - result.spent
        assert all(costs[p] > left for p in costs if p not in result.winners)


@settings(max_examples=200, deadline=None)
@given(pb_case(min_cost=1))
def test_mes_payments_fit_voter_budgets(case):
    # Replays the payments: nobody pays more than they hold, every project is paid.
    costs, ballots, budget = case
    result = equal_shares(costs, ballots, budget, completion="none")
    if not ballots:
        return
    money = [Fraction(budget, len(ballots))] * len(ballots)
    for step in result.steps:
        paid = Fraction(0)
        for i, ballot in enumerate(ballots):
            if step.project in ballot:
                share = min(money[i], step.payment_cap)
                money[i] -= share
                paid += share
        assert paid == step.cost
        assert all(m >= 0 for m in money)


@settings(max_examples=400, deadline=None)
@given(
    pb_case(),
    st.sampled_from(("cost", "cardinality")),
    st.sampled_from((0, 1, 3, 10_000)),
    st.integers(1, 50),
)
def test_skipping_add1_matches_the_plain_loop(case, utility, limit, scale):
    # The completion skips increments a later run vouches for; the plain loop
    # (tests/governance/mes_reference.py) runs every one. Same endowment, steps,
    # increments and limit flag. `scale` spreads costs so that strides get long.
    costs, ballots, budget = case
    costs = {p: c * scale for p, c in costs.items()}
    budget *= scale
    if not ballots:
        return
    ours = equal_shares(costs, ballots, budget, utility=utility, max_increments=limit)
    groups = _votes(costs, ballots, budget)[1]
    assert (ours.voter_budget, ours.steps, ours.increments, ours.stopped_at_limit) == plain_add1(
        costs, groups, budget, utility, limit
    )
    assert ours.runs <= 2 * ours.increments + 1  # a probe that cannot vouch costs a run
    assert _profile(costs, groups).voters == len(ballots)


@settings(max_examples=300, deadline=None)
@given(
    pb_case(min_cost=1),
    st.sampled_from(("cost", "cardinality")),
    st.lists(st.integers(0, 40), min_size=1, max_size=8),
    st.sampled_from((0, 3, 10**6)),
)
def test_runs_sharing_classes_match_the_plain_run(case, utility, ks, limit):
    # add1's runs share the counts of each project's supporters per class, kept per
    # set of winners (whatever order a run picked them in) and dropped beyond
    # `limit`. Runs at endowments in any order (so winners change both ways) must
    # each equal a plain run of Equal Shares at that endowment
    # (tests/governance/mes_reference.py).
    costs, ballots, budget = case
    if not ballots:
        return
    groups = _votes(costs, ballots, budget)[1]
    profile = _profile(costs, groups)
    classes = _Classes(profile, limit)
    n = len(ballots)
    for k in ks:
        run = _mes(profile, classes, budget, k, utility)
        assert run is not None
        assert run.steps(profile) == plain_mes(costs, groups, Fraction(budget + k * n, n), utility)
        assert classes.held == sum(len(ids) for ids, _ in classes.cache.values())
        assert classes.held <= limit or len(classes.cache) == 1
