"""Participatory budgeting over approval ballots: greedy and the Method of Equal Shares.

Inputs are plain: ``costs`` maps project id -> integer cost, each ballot is the set of
project ids a voter approves, ``budget`` is an integer. All money is exact
(``int`` and ``fractions.Fraction``), so every node selects the same projects, and
ballots are only ever summed over, so their order never matters.

Tie-breaking is by project id in ascending code-point order (``"10" < "9"``), the
"lexicographic" tie-breaking of pabutools, so both rules agree with
``pabutools.rules.greedy_utilitarian_welfare`` / ``method_of_equal_shares`` run with
their default tie-breaking.

Equal Shares follows equalshares.net and pabutools: every voter gets ``budget / n``;
a project costing ``c`` is affordable at payment cap ``q`` if its supporters can pay
``c`` with nobody paying more than ``q`` (those with less than ``q`` pay all they have).
With *cost utilities* (the equalshares.net default for approval ballots, and what the
Assen instances use) a supporter values a project at its cost, so the rule picks the
project with the least ``q / c`` (the most "effective votes" ``c / q``); with
*cardinality utilities* every approved project is worth 1, so it picks the least ``q``.
The "add1" completion re-runs the rule with every voter's budget raised by 1 unit at a
time, keeping the last outcome that fits the real budget, and stops early once an
outcome is exhaustive (no supported project still fits): pabutools'
``method_of_equal_shares(..., voter_budget_increment=1)``.

Two conventions differ from pabutools and are named in every result:

* **Free projects** (cost 0). Equal Shares here selects every *supported* free project
  first (payment cap 0: it costs nobody anything); an unsupported one is never
  selected. pabutools' MES with cost utilities never selects a free project (its
  utility is 0), so costs {a: 0, b: 5}, one voter approving both, budget 5 give
  ``(a, b)`` here and ``(b,)`` there. Greedy takes every project that fits, free
  ones included (as pabutools does, in approval order rather than its welfare order).
* **add1 is bounded.** One add1 increment is one full MES run, and the number needed
  grows with the cost per voter (3 voters and a cost of 10^6 need about 170,000).
  The completion makes at most :data:`MAX_ADD1_INCREMENTS` increments, and fewer on
  large instances: at most :data:`MAX_ADD1_WORK` divided by (distinct ballots x
  projects), a deterministic stand-in for the cost of one run (about 0.7 us per unit
  here, so a completion stays under about 40 s). At the limit it keeps the last
  outcome that fit, and the result says so (``stopped_at_limit``): a bounded,
  identical-everywhere answer that may select less than a full add1 run would. The
  official Assen instances need 845 and 271 increments, far below their limits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

from node.governance.errors import GovernanceError

__all__ = [
    "FREE_PROJECTS",
    "MAX_ADD1_INCREMENTS",
    "BudgetResult",
    "Completion",
    "Step",
    "Utility",
    "equal_shares",
    "greedy",
]

MAX_ADD1_INCREMENTS = 10_000
"""The most add1 increments (MES runs) one completion makes."""

MAX_ADD1_WORK = 50_000_000
"""add1 increments x distinct ballots x projects: the work one completion may do."""

FREE_PROJECTS = {
    "mes": "supported-first",  # a supported free project is selected first, cap 0
    "greedy": "if-fits",  # like any project: taken when it fits, supported or not
}
"""How each rule treats projects of cost 0 (named in results)."""

Utility = Literal["cost", "cardinality"]
"""What a supporter gains from a project: its cost, or 1."""

Completion = Literal["none", "add1", "greedy", "add1-greedy"]
"""How Equal Shares spends what it leaves over.

``none``: plain MES. ``add1``: raise voter budgets by 1 until the outcome would exceed
the budget (or is exhaustive). ``greedy``: fill up with :func:`greedy` over the
remaining projects. ``add1-greedy``: ``add1`` then ``greedy``.
"""


@dataclass(frozen=True)
class Step:
    """One selected project and why it was selected.

    Attributes:
        project: the project id.
        cost: its cost.
        rule: ``"mes"`` (bought by its supporters) or ``"greedy"`` (completion).
        payment_cap: for ``"mes"``, the most any one supporter paid; else None.
        effective_votes: for ``"mes"``, ``cost / payment_cap`` (the number of full
            payers it is worth; equals the approval count while budgets are equal);
            for ``"greedy"``, the approval count.
    """

    project: str
    cost: int
    rule: Literal["mes", "greedy"]
    payment_cap: Fraction | None
    effective_votes: Fraction


@dataclass(frozen=True)
class BudgetResult:
    """Outcome of a participatory budget.

    Attributes:
        winners: selected project ids, in selection order.
        spent: total cost of the winners (never more than ``budget``).
        budget: the budget limit.
        votes: approval count of every project.
        steps: one :class:`Step` per winner, same order as ``winners``.
        voter_budget: for Equal Shares, the per-voter endowment of the run that was
            kept (``budget / n`` plus the add1 increments); None for greedy.
        increments: add1 increments tried (MES runs after the first).
        increment_limit: the most increments add1 could make on this instance.
        stopped_at_limit: add1 stopped at its increment limit, not because the
            outcome was exhaustive or the next one would not fit.
    """

    winners: tuple[str, ...]
    spent: int
    budget: int
    votes: Mapping[str, int]
    steps: tuple[Step, ...]
    voter_budget: Fraction | None
    increments: int = 0
    increment_limit: int = 0
    stopped_at_limit: bool = False

    @property
    def support(self) -> Mapping[str, Fraction]:
        """Effective votes of each winner at the moment it was selected."""
        return MappingProxyType({s.project: s.effective_votes for s in self.steps})


def greedy(
    costs: Mapping[str, int], ballots: Iterable[Collection[str]], budget: int
) -> BudgetResult:
    """Greedy utilitarian budgeting: most approved first, skipping what does not fit.

    Projects are taken by approval count, descending (ties by project id); a project
    that no longer fits the remaining budget is skipped and the scan goes on, so the
    outcome is exhaustive. Projects nobody approves are still taken if they fit, like
    pabutools' ``greedy_utilitarian_welfare`` with ``Cost_Sat``.

    Args:
        costs: project id -> cost (non-negative int).
        ballots: one collection of approved project ids per voter.
        budget: the budget limit (non-negative int).

    Returns:
        The selected projects in selection order, the money spent and the votes.

    Raises:
        GovernanceError: on a bad cost or budget, or a ballot naming an unknown
            project or one project twice.
    """
    votes = _votes(costs, ballots, budget)[0]
    steps = _greedy_steps(costs, votes, budget, ())
    return _result(budget, votes, steps, None)


def equal_shares(
    costs: Mapping[str, int],
    ballots: Iterable[Collection[str]],
    budget: int,
    *,
    utility: Utility = "cost",
    completion: Completion = "add1",
    max_increments: int = MAX_ADD1_INCREMENTS,
) -> BudgetResult:
    """The Method of Equal Shares for approval ballots, in exact arithmetic.

    Each round selects the affordable project with the smallest payment cap per unit
    of utility (ties by project id); its supporters pay it, equally up to the cap.
    Supported projects costing 0 are selected first (cap 0). Cost of an ``add1`` run:
    one MES run per unit of per-voter budget added, at most ``max_increments``.

    Args:
        costs: project id -> cost (non-negative int).
        ballots: one collection of approved project ids per voter.
        budget: the budget limit (non-negative int).
        utility: ``"cost"`` (a supporter values a project at its cost) or
            ``"cardinality"`` (at 1).
        completion: see :data:`Completion`.
        max_increments: the most add1 increments (lowered further on large
            instances, see the module docstring); at the limit the last outcome that
            fit is kept and the result says ``stopped_at_limit``.

    Returns:
        The selected projects in selection order, the money spent, the votes, the
        per-voter budget of the kept run and how add1 ended.

    Raises:
        GovernanceError: on a bad cost, budget, ``utility`` or ``completion``, or a
            ballot naming an unknown project or one project twice.
    """
    if utility not in ("cost", "cardinality"):
        raise GovernanceError(f"unknown utility {utility!r}")
    if completion not in ("none", "add1", "greedy", "add1-greedy"):
        raise GovernanceError(f"unknown completion {completion!r}")
    if not _is_int(max_increments) or max_increments < 0:
        raise GovernanceError(f"max_increments {max_increments!r} is not a non-negative integer")
    votes, groups = _votes(costs, ballots, budget)
    n = sum(groups.values())
    increments, stopped = 0, False
    limit = min(max_increments, MAX_ADD1_WORK // max(1, len(groups) * len(costs)))
    if n == 0:
        steps: tuple[Step, ...] = ()
        endowment = None
    else:
        endowment = Fraction(budget, n)
        steps = _mes(costs, groups, endowment, utility)
        if completion in ("add1", "add1-greedy"):
            endowment, steps, increments, stopped = _add1(
                costs, groups, budget, endowment, steps, utility, limit
            )
    if completion in ("greedy", "add1-greedy"):
        steps += _greedy_steps(costs, votes, budget, steps)
    return _result(budget, votes, steps, endowment, increments, stopped, limit)


def _votes(
    costs: Mapping[str, int], ballots: Iterable[Collection[str]], budget: int
) -> tuple[dict[str, int], Counter[frozenset[str]]]:
    """Validate the input; return the approval counts and the distinct ballots."""
    if not _is_int(budget) or budget < 0:
        raise GovernanceError(f"budget {budget!r} is not a non-negative integer")
    for project, cost in costs.items():
        if not isinstance(project, str):
            raise GovernanceError(f"project id {project!r} is not a string")
        if not _is_int(cost) or cost < 0:
            raise GovernanceError(f"cost {cost!r} of {project!r} is not a non-negative integer")
    votes = dict.fromkeys(sorted(costs), 0)
    groups: Counter[frozenset[str]] = Counter()
    for index, ballot in enumerate(ballots):
        approved = frozenset(ballot)
        if len(approved) != len(ballot):
            raise GovernanceError(f"ballot {index}: a project is approved twice")
        for project in approved:
            if project not in votes:
                raise GovernanceError(f"ballot {index}: unknown project {project!r}")
            votes[project] += 1
        groups[approved] += 1
    return votes, groups


def _mes(
    costs: Mapping[str, int],
    groups: Counter[frozenset[str]],
    endowment: Fraction,
    utility: Utility,
) -> tuple[Step, ...]:
    """One run of Equal Shares with every voter starting at ``endowment``."""
    # Voters with the same ballot always hold the same money, so one weighted
    # entry per distinct ballot is exact (and much faster than one per voter).
    ballots = sorted(groups, key=sorted)
    weight = [groups[b] for b in ballots]
    money = [endowment] * len(ballots)
    supporters = {p: [i for i, b in enumerate(ballots) if p in b] for p in sorted(costs)}
    # Money only goes down, so a project's price per unit of utility (rho) only goes
    # up: the last computed rho is a lower bound, and projects whose bound is already
    # worse than the best found this round need not be recomputed.
    bound = {p: Fraction(0) for p in sorted(costs) if supporters[p]}
    steps: list[Step] = []
    while bound:
        best: tuple[Fraction, str, Fraction] | None = None
        for project in sorted(bound, key=lambda p: (bound[p], p)):
            if best is not None and bound[project] > best[0]:
                break
            cost = costs[project]
            cap = _payment_cap(cost, supporters[project], money, weight)
            if cap is None:
                # Money only ever goes down, so it stays unaffordable in this run.
                del bound[project]
                continue
            rho = cap if utility == "cardinality" or cost == 0 else cap / cost
            bound[project] = rho
            if best is None or (rho, project) < best[:2]:
                best = (rho, project, cap)
        if best is None:
            break
        _, project, cap = best
        for i in supporters[project]:
            money[i] -= min(money[i], cap)
        del bound[project]
        cost = costs[project]
        steps.append(Step(project, cost, "mes", cap, Fraction(cost) / cap if cap else Fraction(0)))
    return tuple(steps)


def _payment_cap(
    cost: int, supporters: list[int], money: list[Fraction], weight: list[int]
) -> Fraction | None:
    """Least cap ``q`` with ``sum(min(money_i, q)) == cost`` over supporters, or None.

    Supporters are visited poorest first; whoever cannot pay the current equal share
    pays everything and the rest is shared among the others. If even the richest
    cannot cover the remainder, the supporters together hold less than ``cost``.
    """
    paid = Fraction(0)
    count = sum(weight[i] for i in supporters)
    for i in sorted(supporters, key=money.__getitem__):
        cap = (cost - paid) / count
        if cap <= money[i]:
            return cap
        paid += money[i] * weight[i]
        count -= weight[i]
    return None


def _add1(
    costs: Mapping[str, int],
    groups: Counter[frozenset[str]],
    budget: int,
    endowment: Fraction,
    steps: tuple[Step, ...],
    utility: Utility,
    limit: int,
) -> tuple[Fraction, tuple[Step, ...], int, bool]:
    """Raise the endowment by 1 while the outcome fits and is not exhaustive, at most
    `limit` times; returns the kept endowment and steps, the increments tried and
    whether the limit stopped it."""
    supported = [p for p in sorted(costs) if costs[p] > 0 and any(p in b for b in groups)]
    tried = 0
    while True:
        chosen = {s.project for s in steps}
        left = budget - sum(s.cost for s in steps)
        if all(p in chosen or costs[p] > left for p in supported):
            return endowment, steps, tried, False
        if tried >= limit:
            return endowment, steps, tried, True
        tried += 1
        trial = _mes(costs, groups, endowment + 1, utility)
        if sum(s.cost for s in trial) > budget:
            return endowment, steps, tried, False
        endowment, steps = endowment + 1, trial


def _greedy_steps(
    costs: Mapping[str, int],
    votes: Mapping[str, int],
    budget: int,
    taken: tuple[Step, ...],
) -> tuple[Step, ...]:
    chosen = {s.project for s in taken}
    left = budget - sum(s.cost for s in taken)
    steps: list[Step] = []
    for project in sorted(costs, key=lambda p: (-votes[p], p)):
        if project not in chosen and costs[project] <= left:
            left -= costs[project]
            steps.append(Step(project, costs[project], "greedy", None, Fraction(votes[project])))
    return tuple(steps)


def _result(
    budget: int,
    votes: dict[str, int],
    steps: tuple[Step, ...],
    endowment: Fraction | None,
    increments: int = 0,
    stopped: bool = False,
    limit: int = 0,
) -> BudgetResult:
    spent = sum(s.cost for s in steps)
    # Plain MES cannot overspend and add1 keeps only runs that fit, so this is an
    # internal invariant; checking it here lets every caller rely on it.
    if spent > budget:  # pragma: no cover - a bug, not an input error
        raise AssertionError(f"spent {spent} exceeds budget {budget}")
    return BudgetResult(
        winners=tuple(s.project for s in steps),
        spent=spent,
        budget=budget,
        votes=MappingProxyType(votes),
        steps=steps,
        voter_budget=endowment,
        increments=increments,
        increment_limit=limit,
        stopped_at_limit=stopped,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
