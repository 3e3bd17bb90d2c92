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
* **add1 is bounded.** One add1 increment is one more unit of per-voter budget, and
  the number needed grows with the cost per voter (3 voters and a cost of 10^6 need
  about 170,000). The completion counts at most :data:`MAX_ADD1_INCREMENTS`
  increments, and makes at most :data:`MAX_MES_WORK` / (approvals on the distinct
  ballots) Equal Shares runs (at least :data:`MIN_MES_RUNS`). It does not run every
  increment: a run j increments ahead that *vouches* for the ones in between (see
  ``_mes``) lets it skip them, so it lands on exactly the outcome, endowment and
  increment count of the plain loop. At a limit it keeps the last outcome that fit,
  and the result says so (``stopped_at_limit``): a bounded, identical-everywhere
  answer that may select less than a full add1 run would. The official Assen
  instances need 844 and 270 increments, far below their limits.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from itertools import compress, repeat
from math import gcd
from operator import mul
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

MAX_MES_WORK = 2_000_000_000
"""add1 runs x approvals on the distinct ballots: the work one completion may do."""

MIN_MES_RUNS = 100
"""add1 may always make this many runs."""

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
        increments: add1 increments tried, counted as the plain add1 loop counts
            them (one per unit added, whether or not it needed a run of its own).
        increment_limit: the most increments add1 could make.
        stopped_at_limit: add1 stopped at its increment limit or its run limit, not
            because the outcome was exhaustive or the next one would not fit.
        runs: Equal Shares runs made (add1 runs only where the outcome may change).
        run_limit: the most runs add1 could make on this instance.
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
    runs: int = 0
    run_limit: int = 0

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
    profile = _profile(costs, groups)
    n = profile.voters
    increments, stopped, runs = 0, False, 0
    run_limit = _run_limit(profile)
    if n == 0:
        steps: tuple[Step, ...] = ()
        endowment = None
    elif completion in ("add1", "add1-greedy"):
        endowment, steps, increments, stopped, runs = _add1(
            profile, budget, utility, max_increments, run_limit
        )
    else:
        endowment, steps, runs = (
            Fraction(budget, n),
            _plain(profile, budget, utility).steps(profile),
            1,
        )
    if completion in ("greedy", "add1-greedy"):
        steps += _greedy_steps(costs, votes, budget, steps)
    return _result(
        budget, votes, steps, endowment, increments, stopped, max_increments, runs, run_limit
    )


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


@dataclass(frozen=True)
class _Profile:
    """The distinct ballots of an election, indexed once for every Equal Shares run.

    Projects are numbered in code-point order of their ids, so comparing numbers is
    the tie-breaking order.
    """

    names: tuple[str, ...]
    costs: tuple[int, ...]
    ballots: tuple[tuple[int, ...], ...]  # distinct ballots, as project numbers
    weight: tuple[int, ...]  # voters per distinct ballot
    supporters: tuple[frozenset[int], ...]  # per project: the ballots approving it
    votes: tuple[int, ...]  # per project: voters approving it
    voters: int


def _profile(costs: Mapping[str, int], groups: Counter[frozenset[str]]) -> _Profile:
    names = tuple(sorted(costs))
    number = {p: i for i, p in enumerate(names)}
    # Distinct ballots in order of their sorted project numbers (ids in code-point order).
    numbered = sorted((tuple(sorted(number[p] for p in b)), w) for b, w in groups.items())
    ballots = tuple(b for b, _ in numbered)
    weight = tuple(w for _, w in numbered)
    supporters: list[set[int]] = [set() for _ in names]
    votes = [0] * len(names)
    for g, ballot in enumerate(ballots):
        for p in ballot:
            supporters[p].add(g)
            votes[p] += weight[g]
    return _Profile(
        names=names,
        costs=tuple(costs[p] for p in names),
        ballots=ballots,
        weight=weight,
        supporters=tuple(frozenset(s) for s in supporters),
        votes=tuple(votes),
        voters=sum(weight),
    )


# Skipping add1 increments. Within one run money only goes down, and with the order
# of the winners fixed every voter's money after every round is a non-decreasing
# function of the endowment (a supporter keeps max(0, m - q), and the cap q falls
# when anyone's money rises), so every project's price per unit of utility (rho)
# is non-increasing in it. Take the run at endowment E and a run at E + j: if in
# every round each other project's rho at E + j is above the winner's rho at E (or
# equal with a later id), and the run at E + j ends where the run at E ended, then
# by induction every endowment in between makes the same choices in every round
# (the winner's rho there is at most its rho at E, every other project's at least
# its rho at E + j). So one run at E + j can vouch for the j - 1 increments before
# it. The check is exact: rationals as integers over a common denominator.

_Cap = tuple[int, int, int]
"""A selected project and its payment cap x / den: (project, x, den)."""


@dataclass
class _Run:
    """One Equal Shares run at endowment ``(budget + k*n) / n``."""

    k: int
    caps: list[_Cap]
    rhos: list[Fraction]  # the winner's rho, per round after the free projects
    vouches: bool  # every endowment from the reference's to this one has this outcome

    def steps(self, profile: _Profile) -> tuple[Step, ...]:
        out = []
        for p, x, den in self.caps:
            cost = profile.costs[p]
            cap = Fraction(x, den)
            out.append(Step(profile.names[p], cost, "mes", cap, cost / cap if cap else Fraction(0)))
        return tuple(out)


class _Classes:
    """Voters grouped by the winners they approve, shared by the runs of one election.

    Given the set of winners so far, a class is the voters who approve the same subset
    of them, named by that subset as a bit mask (bit p for project p). Which voters
    are alike depends on the set of winners alone, not on their order nor on anyone's
    money, so add1's runs share the grouping of every winner set any of them reached
    (two runs that pick the same winners in another order meet again). A project's
    supporters per class are counted when a run first prices it at a winner set, and
    kept for the sets used most recently, up to ``limit`` counts in all.
    """

    def __init__(self, profile: _Profile, limit: int = 1_000_000) -> None:
        self.profile = profile
        self.limit = limit  # the most (winner set, project, class) counts kept
        # Per project: the bit masks of its supporters' distinct ballots, those of one
        # voter apart from those of several.
        self.single: list[list[int]] = [[] for _ in profile.costs]
        self.several: list[list[tuple[int, int]]] = [[] for _ in profile.costs]
        for ballot, w in zip(profile.ballots, profile.weight, strict=True):
            mask = sum(1 << p for p in ballot)
            for p in ballot:
                if w == 1:
                    self.single[p].append(mask)
                else:
                    self.several[p].append((mask, w))
        self.cache: OrderedDict[tuple[int, int], tuple[list[int], list[int]]] = OrderedDict()
        self.held = 0

    def holders(self, chosen: int, p: int) -> tuple[list[int], list[int]]:
        """The classes holding voters who approve p when the winners so far are
        ``chosen`` (a bit mask), and how many such voters each holds."""
        key = (chosen, p)
        got = self.cache.get(key)
        if got is not None:
            self.cache.move_to_end(key)
            return got
        counts = Counter(map(chosen.__and__, self.single[p]))
        for mask, w in self.several[p]:
            counts[mask & chosen] += w
        got = list(counts), list(counts.values())
        self.cache[key] = got
        self.held += len(counts)
        while self.held > self.limit and len(self.cache) > 1:
            self.held -= len(self.cache.popitem(last=False)[1][0])
        return got


def _mes(
    profile: _Profile,
    classes: _Classes,
    budget: int,
    k: int,
    utility: Utility,
    reference: _Run | None = None,
    probe: bool = False,
) -> _Run | None:
    """Equal Shares with every voter starting at ``budget / n + k``; with a
    ``reference`` run at a lower endowment, also whether this run vouches for every
    endowment in between (see above). A ``probe`` is only wanted if it vouches: it
    stops (None) as soon as it cannot."""
    n = profile.voters
    costs = profile.costs
    # Voters with the same money stay alike (see _Classes). A class's money is
    # cash[slot[c]] over the common denominator den (slot 0: none; a class whose
    # money reaches 0 pays nothing more and is left out).
    den = n
    slot = {0: 1}
    cash = [0, budget + k * n]
    chosen = 0  # the winners so far (free projects aside), as a bit mask
    caps: list[_Cap] = []
    rhos: list[Fraction] = []
    vouches = reference is not None
    # Supported free projects first, in id order: their cap is 0 for everyone.
    for p, cost in enumerate(costs):
        if cost == 0 and profile.votes[p]:
            caps.append((p, 0, 1))
    # Candidates: project -> its last rho, a lower bound of its current one.
    bound = {p: Fraction(0) for p, cost in enumerate(costs) if cost and profile.votes[p]}
    while bound:
        depth = len(rhos)
        # To vouch, every project whose rho could be at or below the reference
        # winner's must be priced, not only those that could win here.
        if vouches and reference is not None and depth < len(reference.rhos):
            line: Fraction | None = reference.rhos[depth]
            line_p = reference.caps[len(caps)][0]
        else:
            line, line_p = None, -1
            vouches = False
            if probe:
                return None
        best: tuple[Fraction, int] | None = None
        best_pay: tuple[int, int, list[int], list[int]] | None = None
        for p in sorted(bound, key=lambda p: (bound[p], p)):
            if best is not None and bound[p] > best[0] and (line is None or bound[p] > line):
                break
            cost = costs[p]
            need = cost * den
            ids, ws = classes.holders(chosen, p)
            vals = list(map(cash.__getitem__, map(slot.get, ids, repeat(0))))
            count = sum(compress(ws, vals))
            if not count:
                del bound[p]
                continue
            if min(filter(None, vals)) * count >= need:
                x = need  # nobody holds less than an equal share
            elif sum(map(mul, vals, ws)) < need:  # the supporters hold less than the cost
                del bound[p]
                continue
            else:
                # Those holding less than the cap pay all they hold, poorest first.
                paid = 0
                for i in sorted(range(len(ids)), key=vals.__getitem__)[vals.count(0) :]:
                    v, w = vals[i], ws[i]
                    if need - paid <= v * count:
                        break
                    paid += v * w
                    count -= w
                x = need - paid
            rho = Fraction(x, count * den * (cost if utility == "cost" else 1))
            bound[p] = rho
            if line is not None and p != line_p and (rho, p) <= (line, line_p):
                vouches = False
                if probe:
                    return None
            if best is None or (rho, p) < best:
                best = (rho, p)
                best_pay = (x, count, ids, vals)
        if best is None or best_pay is None:
            break
        rho, win = best
        del bound[win]
        if win != line_p:
            vouches = False
            if probe:
                return None
        x, count, ids, vals = best_pay
        # The cap is x / (count * den): move every amount to that denominator. A
        # supporter holding less pays all it holds (x * count > v * count * f).
        g = gcd(x, count)
        f = count // g
        x, den = x // g, den * f
        caps.append((win, x, den))
        rhos.append(rho)
        if f != 1:
            cash = list(map(f.__mul__, cash))
        bit = 1 << win
        for c, v in zip(ids, vals, strict=True):
            # c keeps those not approving the winner; c | bit is those who do.
            if v * f > x:
                slot[c | bit] = len(cash)
                cash.append(v * f - x)
        chosen |= bit
    if reference is not None and len(caps) != len(reference.caps):
        vouches = False
        if probe:
            return None
    return _Run(k, caps, rhos, vouches)


def _plain(profile: _Profile, budget: int, utility: Utility) -> _Run:
    """One Equal Shares run at ``budget / n``."""
    run = _mes(profile, _Classes(profile), budget, 0, utility)
    assert run is not None  # only a probe stops early
    return run


def _run_limit(profile: _Profile) -> int:
    """The most runs one add1 completion makes: :data:`MAX_MES_WORK` over the
    approvals of the distinct ballots (a deterministic stand-in for one run's cost)."""
    approvals = sum(len(b) for b in profile.ballots)
    return max(MIN_MES_RUNS, MAX_MES_WORK // max(1, approvals))


def _add1(
    profile: _Profile, budget: int, utility: Utility, limit: int, run_limit: int
) -> tuple[Fraction, tuple[Step, ...], int, bool, int]:
    """add1 from ``budget / n``: raise the endowment by 1 while the outcome fits and is
    not exhaustive, at most ``limit`` times, with at most ``run_limit`` runs.

    Runs land on add1's steps; a run j steps ahead that vouches for the ones in
    between skips them (the stride doubles after a skip and halves after a miss).
    Returns the kept endowment and steps, the increments the plain add1 loop would
    have tried, whether a limit stopped it, and the runs made."""
    n = profile.voters
    costs = profile.costs
    supported = [p for p, c in enumerate(costs) if c > 0 and profile.votes[p]]

    def spent(run: _Run) -> int:
        return sum(costs[c[0]] for c in run.caps)

    def exhaustive(run: _Run) -> bool:
        chosen = {c[0] for c in run.caps}
        left = budget - sum(costs[p] for p in chosen)
        return all(p in chosen or costs[p] > left for p in supported)

    def kept(
        run: _Run, tried: int, stopped: bool
    ) -> tuple[Fraction, tuple[Step, ...], int, bool, int]:
        return Fraction(budget + run.k * n, n), run.steps(profile), tried, stopped, runs

    # The stride doubles after each vouched run; after a run that could not vouch it
    # falls back to 1 and stays there for a few increments (changes come in bursts).
    classes = _Classes(profile)
    base = _mes(profile, classes, budget, 0, utility)
    assert base is not None  # only a probe stops early
    runs, stride, calm = 1, 1, 0
    while True:
        # `base` fits; add1 has reached it with base.k increments tried.
        if exhaustive(base):
            return kept(base, base.k, False)
        if base.k >= limit or runs >= run_limit:
            return kept(base, base.k, True)
        stride = max(1, min(stride, limit - base.k))
        # Only a run that skips increments has to vouch for them.
        probe = stride > 1
        trial = _mes(
            profile, classes, budget, base.k + stride, utility, base if probe else None, probe
        )
        runs += 1
        if trial is None:
            stride, calm = 1, _CALM
            continue
        # Every endowment after base up to trial's has trial's outcome (stride 1:
        # there is none in between), and base's fits and is not exhaustive.
        if spent(trial) > budget:
            return kept(base, base.k + 1, False)
        base = trial
        if calm:
            calm -= 1
        else:
            stride *= 2


_CALM = 2
"""Increments made one at a time after a run that could not vouch for its stride."""


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
    runs: int = 0,
    run_limit: int = 0,
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
        runs=runs,
        run_limit=run_limit,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
