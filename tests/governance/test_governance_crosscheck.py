"""Cross-check greedy and Equal Shares against pabutools on generated instances.

pabutools is a test-only dependency that needs ``--no-deps`` (its declared
dependencies include gurobipy, which the rules never import); see
``requirements-crosscheck.txt``, which the README's test command installs.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pabutools.election import (
    ApprovalBallot,
    ApprovalProfile,
    Cardinality_Sat,
    Cost_Sat,
    Instance,
    Project,
)
from pabutools.rules import (
    completion_by_rule_combination,
    greedy_utilitarian_welfare,
    method_of_equal_shares,
)

from node.governance.budget import equal_shares, greedy

IDS = ("1", "10", "2", "9", "a", "b", "c", "d")
SAT = {"cost": Cost_Sat, "cardinality": Cardinality_Sat}


@st.composite
def pb_case(draw):
    # Costs start at 1: pabutools' Cost_Sat gives a free project zero utility, so
    # pabutools' MES never funds it, while ours funds supported free projects.
    ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=7, unique=True))
    costs = {p: draw(st.integers(1, 25)) for p in ids}
    ballots = draw(st.lists(st.frozensets(st.sampled_from(ids)), max_size=10))
    budget = draw(st.integers(0, 60))
    return costs, ballots, budget


def reference(costs, ballots, budget, rule, utility="cost"):
    projects = {p: Project(p, c) for p, c in costs.items()}
    instance = Instance(projects.values(), budget_limit=budget)
    profile = ApprovalProfile(
        [ApprovalBallot([projects[p] for p in sorted(b)]) for b in ballots], instance=instance
    )
    sat = SAT[utility]
    if rule == "greedy":
        outcome = greedy_utilitarian_welfare(instance, profile, sat_class=Cost_Sat)
    elif rule == "none":
        outcome = method_of_equal_shares(instance, profile, sat_class=sat)
    elif rule == "add1":
        outcome = method_of_equal_shares(instance, profile, sat_class=sat, voter_budget_increment=1)
    else:
        assert rule == "add1-greedy"
        outcome = completion_by_rule_combination(
            instance,
            profile,
            [method_of_equal_shares, greedy_utilitarian_welfare],
            [{"sat_class": sat, "voter_budget_increment": 1}, {"sat_class": Cost_Sat}],
        )
    return tuple(p.name for p in outcome)


@settings(max_examples=300, deadline=None)
@given(pb_case())
def test_greedy_matches_pabutools(case):
    costs, ballots, budget = case
    assert greedy(costs, ballots, budget).winners == reference(costs, ballots, budget, "greedy")


@settings(max_examples=300, deadline=None)
@given(
    pb_case(),
    st.sampled_from(("none", "add1", "add1-greedy")),
    st.sampled_from(("cost", "cardinality")),
)
def test_equal_shares_matches_pabutools(case, completion, utility):
    costs, ballots, budget = case
    ours = equal_shares(costs, ballots, budget, utility=utility, completion=completion)
    # Same projects in the same selection order (ties: project id, both sides).
    assert ours.winners == reference(costs, ballots, budget, completion, utility)
