"""The plain add1 loop: one full Equal Shares run per unit of per-voter budget.

This is ``node/governance/budget.py`` as it was before the completion learned to skip
increments (issue 12): a reference for the property test that the fast completion
picks the same outcome, and the "old" column of ``bench/bench_mes.py``. It is
deliberately naive and slow; do not optimise it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from fractions import Fraction

from node.governance.budget import Step, Utility


def mes(
    costs: Mapping[str, int],
    groups: Counter[frozenset[str]],
    endowment: Fraction,
    utility: Utility,
) -> tuple[Step, ...]:
    """One run of Equal Shares with every voter starting at ``endowment``."""
    ballots = sorted(groups, key=sorted)
    weight = [groups[b] for b in ballots]
    money = [endowment] * len(ballots)
    supporters = {p: [i for i, b in enumerate(ballots) if p in b] for p in sorted(costs)}
    bound = {p: Fraction(0) for p in sorted(costs) if supporters[p]}
    steps: list[Step] = []
    while bound:
        best: tuple[Fraction, str, Fraction] | None = None
        for project in sorted(bound, key=lambda p: (bound[p], p)):
            if best is not None and bound[project] > best[0]:
                break
            cost = costs[project]
            cap = payment_cap(cost, supporters[project], money, weight)
            if cap is None:
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


def payment_cap(
    cost: int, supporters: list[int], money: list[Fraction], weight: list[int]
) -> Fraction | None:
    """Least cap ``q`` with ``sum(min(money_i, q)) == cost`` over supporters, or None."""
    paid = Fraction(0)
    count = sum(weight[i] for i in supporters)
    for i in sorted(supporters, key=money.__getitem__):
        cap = (cost - paid) / count
        if cap <= money[i]:
            return cap
        paid += money[i] * weight[i]
        count -= weight[i]
    return None


def add1(
    costs: Mapping[str, int],
    groups: Counter[frozenset[str]],
    budget: int,
    utility: Utility,
    limit: int,
) -> tuple[Fraction, tuple[Step, ...], int, bool]:
    """Plain add1 from ``budget / n``: raise the endowment by 1 while the outcome fits
    and is not exhaustive, at most ``limit`` times; returns the kept endowment and
    steps, the increments tried and whether the limit stopped it."""
    endowment = Fraction(budget, sum(groups.values()))
    steps = mes(costs, groups, endowment, utility)
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
        trial = mes(costs, groups, endowment + 1, utility)
        if sum(s.cost for s in trial) > budget:
            return endowment, steps, tried, False
        endowment, steps = endowment + 1, trial
