"""The best panel composition for given weights: exact branch and bound.

Column generation for the maximin lottery (:mod:`node.governance.sortition`) asks,
again and again: among panel *compositions* (how many volunteers of each type) that
meet the quotas, which maximises a weighted sum of the counts, and does any beat a
threshold? For a few quota features the compositions can be listed; for a pool of
hundreds with four features there are too many, and this module answers the
question without listing them.

Branch and bound over the types, heaviest first, each count tried from high to low.
The bound at a node is the smallest of two kinds of bound on what the remaining
types can add. Per quota feature, the best fill if only that feature's quotas held
(a greedy fill is exact for one feature: its values split the types into groups
with a minimum and maximum each). And per kept feature, a Lagrangian bound: the
other features' quotas move into the weights, priced by integer multipliers, and the
kept feature's greedy fill under the adjusted weights plus the multipliers' worth of
the quotas bounds every composition meeting all of them (for any multipliers; good
ones, found once per call by integer subgradient steps, make it close to the linear
relaxation's). A node whose bound does not beat the best found (or the threshold) is
cut, as is one that can no longer meet a minimum or fill the panel. Weights,
multipliers and bounds are integers, every order is fixed by weight then type index:
the answer is a pure function of the input, the same on every node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.governance.errors import GovernanceError

__all__ = [
    "Problem",
    "SearchLimit",
    "best_composition",
    "improve",
    "lagrangian_bound",
    "meets",
]

# Nodes of the search tree before it gives up (with a message; never a silent guess).
MAX_NODES = 5_000_000
# Subgradient steps that choose the Lagrange multipliers of one call.
ITERATIONS = 40


@dataclass(frozen=True)
class Problem:
    """Compositions of `size` over types with `caps` volunteers each.

    Attributes:
        caps: volunteers per type.
        size: the panel size.
        groups: per quota feature, the value index of each type (-1: the type's value
            has no quota, any count).
        bounds: per quota feature, per value index, (min, max).
    """

    caps: tuple[int, ...]
    size: int
    groups: tuple[tuple[int, ...], ...]
    bounds: tuple[tuple[tuple[int, int], ...], ...]


class SearchLimit(Exception):
    """The search reached the node limit its caller set."""


class _Found(Exception):
    """Unwinds the search at the first composition wanted."""


def _fill(
    types: Sequence[int],
    weights: Sequence[int],
    caps: Sequence[int],
    group: Sequence[int],
    bounds: Sequence[tuple[int, int]],
    have: Sequence[int],
    left: int,
    taken: list[int] | None = None,
) -> int | None:
    """The most `types` (heaviest first) can add when only one feature's quotas hold
    (exact: the feature's values split the types into groups with a minimum and
    maximum each); None if even that cannot meet the minimums and fill `left` seats.
    If `taken` is given, the counts per type are written into it."""
    need = [max(0, lo - h) for (lo, _), h in zip(bounds, have, strict=True)]
    room = [hi - h for (_, hi), h in zip(bounds, have, strict=True)]
    if any(r < 0 for r in room) or sum(need) > left:
        return None
    total = 0
    got = [0] * len(types)
    # First the minimums, each from its heaviest types.
    if any(need):
        for j, t in enumerate(types):
            g = group[t]
            if g >= 0 and need[g]:
                k = min(need[g], caps[t])
                need[g] -= k
                room[g] -= k
                left -= k
                got[j] = k
                total += k * weights[t]
        if any(need):
            return None
    # Then the heaviest units left, within each value's maximum.
    for j, t in enumerate(types):
        if left == 0:
            break
        g = group[t]
        k = min(caps[t] - got[j], left, room[g] if g >= 0 else left)
        if k > 0:
            if g >= 0:
                room[g] -= k
            left -= k
            got[j] += k
            total += k * weights[t]
    if left:
        return None
    if taken is not None:
        for j, t in enumerate(types):
            taken[t] = got[j]
    return total


def _adjusted(
    problem: Problem, weights: Sequence[int], kept: int, pi: Sequence[Sequence[int]]
) -> list[int]:
    """The weights less, per type, the multipliers of its values in every feature but
    `kept` (the objective of the Lagrangian relaxation of those features' quotas)."""
    adjusted = list(weights)
    for f, groups in enumerate(problem.groups):
        if f != kept:
            for t, g in enumerate(groups):
                if g >= 0:
                    adjusted[t] -= pi[f][g]
    return adjusted


def _priced_quotas(
    bounds: Sequence[tuple[int, int]], have: Sequence[int], pi: Sequence[int], left: int
) -> int:
    """The most ``sum(pi[g] * count[g])`` can be over the counts still to come of a
    relaxed feature: each count lies in [max(0, min - have), min(left, max - have)],
    so a positive multiplier takes the top, a negative one the bottom."""
    out = 0
    for (lo, hi), h, p in zip(bounds, have, pi, strict=True):
        if p > 0:
            out += p * min(left, hi - h)
        elif p < 0:
            out += p * max(0, lo - h)
    return out


def lagrangian_bound(
    problem: Problem, weights: Sequence[int], kept: int, pi: Sequence[Sequence[int]]
) -> int | None:
    """An upper bound on the best composition's value for any integer multipliers `pi`
    (per feature, per value; those of `kept` are ignored); None: not even feature
    `kept`'s quotas can be met (so no composition can).

    For a composition meeting every quota, ``sum(w[t] * x[t])`` equals
    ``sum(adjusted[t] * x[t]) + sum(pi[f][g] * count[f][g])`` over the other features;
    the second sum is at most `_priced_quotas`, the first at most the greedy fill under
    feature `kept`'s quotas alone (exact for one feature). Only integers are involved.
    """
    adjusted = _adjusted(problem, weights, kept, pi)
    order = sorted(range(len(problem.caps)), key=lambda t: (-adjusted[t], t))
    kept_bounds = problem.bounds[kept]
    inner = _fill(
        order,
        adjusted,
        problem.caps,
        problem.groups[kept],
        kept_bounds,
        [0] * len(kept_bounds),
        problem.size,
    )
    if inner is None:
        return None
    zero = [0] * max((len(b) for b in problem.bounds), default=0)
    return inner + sum(
        _priced_quotas(b, zero[: len(b)], pi[f], problem.size)
        for f, b in enumerate(problem.bounds)
        if f != kept
    )


def _multipliers(
    problem: Problem, weights: Sequence[int], kept: int, target: int | None
) -> list[list[int]]:
    """Lagrange multipliers for the quotas of every feature but `kept`: integers on the
    scale of `weights`. Any multipliers give a valid bound (`lagrangian_bound`), good
    ones a bound close to the linear relaxation's; these come from ITERATIONS
    subgradient steps, every one in integers. A step moves each multiplier by the
    quota it breaks (the count outside its quota) times ``ceil(gap / (norm * 2**h))``:
    `gap` is how far the bound lies above `target` (without one, a twentieth of the
    bound), `norm` the squared length of the breaches, and `h` grows by one after
    every four steps that did not lower the best bound. The best multipliers seen are
    returned: a pure function of the input, the same on every node."""
    n_types = len(problem.caps)
    features = [f for f in range(len(problem.groups)) if f != kept]
    pi = [[0] * len(b) for b in problem.bounds]
    best_pi = [row[:] for row in pi]
    best: int | None = None
    group0, bounds0 = problem.groups[kept], problem.bounds[kept]
    zero0 = [0] * len(bounds0)
    halvings, calm = 0, 0
    taken = [0] * n_types
    scale = max((abs(w) for w in weights), default=0)
    for _ in range(ITERATIONS):
        adjusted = _adjusted(problem, weights, kept, pi)
        order = sorted(range(n_types), key=lambda t: (-adjusted[t], t))
        inner = _fill(order, adjusted, problem.caps, group0, bounds0, zero0, problem.size, taken)
        if inner is None:
            break
        value = inner + sum(
            _priced_quotas(problem.bounds[f], [0] * len(problem.bounds[f]), pi[f], problem.size)
            for f in features
        )
        if best is None or value < best:
            best, best_pi, calm = value, [row[:] for row in pi], 0
        else:
            calm += 1
            if calm >= 4:
                halvings, calm = halvings + 1, 0
        if target is not None and best <= target:
            break
        # The subgradient in pi[f][g]: the side of the quota its term was priced at
        # less the relaxed solution's count (zero when the count is within the quota
        # and the multiplier is zero).
        grad: list[tuple[int, int, int]] = []
        norm = 0
        for f in features:
            counts = [0] * len(problem.bounds[f])
            groups = problem.groups[f]
            for t in range(n_types):
                if groups[t] >= 0 and taken[t]:
                    counts[groups[t]] += taken[t]
            for g, (lo, hi) in enumerate(problem.bounds[f]):
                p = pi[f][g]
                if p == 0 and lo <= counts[g] <= hi:
                    continue
                side = min(hi, problem.size) if p > 0 or (p == 0 and counts[g] > hi) else lo
                d = side - counts[g]
                if d:
                    grad.append((f, g, d))
                    norm += d * d
        if norm == 0:
            break  # the relaxed solution meets every quota: the bound is attained
        gap = value - target if target is not None else abs(value) // 20 + scale // 1000 + 1
        step = -(-max(gap, 1) // (norm << halvings))
        for f, g, d in grad:
            pi[f][g] -= step * d
    return best_pi


def best_composition(
    problem: Problem,
    weights: Sequence[int],
    threshold: int | None = None,
    *,
    first: bool = False,
    budget: int | None = None,
    lagrangian: bool = True,
    limit: int | None = None,
) -> tuple[int, tuple[int, ...]] | None:
    """The composition maximising ``sum(weights[t] * count[t])`` under the quotas.

    Args:
        problem: the types, panel size and quotas.
        weights: one integer per type.
        threshold: if given, only a composition whose value exceeds it is wanted
            (the search cuts everything that cannot); None: any feasible one.
        first: return the first composition found that beats `threshold` (still a
            pure function of the input) instead of searching on for the best.
        budget: once a composition beating `threshold` is found, search at most this
            many more nodes for a better one (counted, so still a pure function).
        limit: give up after this many nodes and raise `SearchLimit` (counted, so
            still a pure function); None: MAX_NODES, then GovernanceError.
        lagrangian: use the Lagrangian bounds too (False: the one-feature bounds
            alone; the same best composition, found through more nodes).

    Returns:
        (value, counts per type), or None if no composition meets the quotas (and
        beats `threshold`). Ties go to the composition found first in the fixed
        search order (heavier types fuller).

    Raises:
        GovernanceError: the search exceeds MAX_NODES.
    """
    caps, n_types = problem.caps, len(problem.caps)
    order = sorted(range(n_types), key=lambda t: (-weights[t], t))
    features = range(len(problem.groups))
    have = [[0] * len(b) for b in problem.bounds]
    counts = [0] * n_types
    best_value: list[int | None] = [threshold]
    best_counts: list[tuple[int, ...] | None] = [None]
    nodes = [0]

    # Lagrangian bounds: per kept feature, integer multipliers for the others' quotas
    # (computed once per call) and the types in order of their adjusted weights.
    position = {t: j for j, t in enumerate(order)}
    relaxations = []
    if problem.groups and n_types and lagrangian:
        for kept in features:
            pi = _multipliers(problem, weights, kept, threshold)
            adjusted = _adjusted(problem, weights, kept, pi)
            by_adjusted = sorted(range(n_types), key=lambda t: (-adjusted[t], t))
            relaxations.append((kept, pi, adjusted, by_adjusted))

    def promising(j: int, left: int, need: int | None) -> bool:
        """Whether the types order[j:] can fill `left` seats within the quotas adding
        more than `need` (None: anything), by every bound; the first bound that says
        no ends the check (the Lagrangian ones first: they are the tightest)."""
        # What each remaining type can still take: its volunteers, the seats left, and
        # the room every feature's maximum leaves its value (tightens each one-feature
        # bound by the others' maximums).
        room = [
            [hi - h for (_, hi), h in zip(problem.bounds[f], have[f], strict=True)]
            for f in features
        ]
        usable = list(caps)
        for t in order[j:]:
            u = min(caps[t], left)
            for f in features:
                g = problem.groups[f][t]
                if g >= 0:
                    u = min(u, room[f][g])
            usable[t] = max(u, 0)
        for kept, pi, adjusted, by_adjusted in relaxations:
            free = [t for t in by_adjusted if position[t] >= j]
            b = _fill(
                free, adjusted, usable, problem.groups[kept], problem.bounds[kept], have[kept], left
            )
            if b is None:
                return False
            if need is not None:
                b += sum(
                    _priced_quotas(problem.bounds[f], have[f], pi[f], left)
                    for f in features
                    if f != kept
                )
                if b <= need:
                    return False
        rest_types = order[j:]
        for f in features:
            b = _fill(
                rest_types, weights, usable, problem.groups[f], problem.bounds[f], have[f], left
            )
            if b is None or (need is not None and b <= need):
                return False
        if not problem.groups:  # no quota features: the heaviest units
            b, rest = 0, left
            for t in rest_types:
                k = min(caps[t], rest)
                b += k * weights[t]
                rest -= k
            if rest or (need is not None and b <= need):
                return False
        return True

    found_at = [0]

    def walk(j: int, left: int, value: int) -> None:
        nodes[0] += 1
        if budget is not None and best_counts[0] is not None and nodes[0] - found_at[0] > budget:
            raise _Found
        if limit is not None and nodes[0] > limit:
            raise SearchLimit
        if nodes[0] > MAX_NODES:
            raise GovernanceError(
                "the quotas leave too many kinds of panel for an exact draw; "
                "use fewer quota features or values"
            )
        if left == 0:
            for f in features:
                for (lo, _), h in zip(problem.bounds[f], have[f], strict=True):
                    if h < lo:
                        return
            top = best_value[0]
            if top is None or value > top:
                if best_counts[0] is None:
                    found_at[0] = nodes[0]
                best_value[0], best_counts[0] = value, tuple(counts)
                if first:
                    raise _Found
            return
        if j == n_types:
            return
        top = best_value[0]
        if not promising(j, left, None if top is None else top - value):
            return
        t = order[j]
        for k in range(min(caps[t], left), -1, -1):
            ok = True
            for f in features:
                g = problem.groups[f][t]
                if g >= 0 and have[f][g] + k > problem.bounds[f][g][1]:
                    ok = False
            if not ok:
                continue
            counts[t] = k
            for f in features:
                g = problem.groups[f][t]
                if g >= 0:
                    have[f][g] += k
            walk(j + 1, left - k, value + k * weights[t])
            for f in features:
                g = problem.groups[f][t]
                if g >= 0:
                    have[f][g] -= k
        counts[t] = 0

    # (contextlib.suppress would do; the cores import only what the purity test allows)
    try:  # noqa: SIM105
        walk(0, problem.size, 0)
    except _Found:
        pass
    counts_found, value_found = best_counts[0], best_value[0]
    if counts_found is None or value_found is None:
        return None
    return value_found, counts_found


def meets(problem: Problem, counts: Sequence[int]) -> bool:
    """Whether `counts` is a composition of the panel size within the caps and quotas."""
    if len(counts) != len(problem.caps) or sum(counts) != problem.size:
        return False
    if any(not 0 <= k <= cap for k, cap in zip(counts, problem.caps, strict=True)):
        return False
    for groups, bounds in zip(problem.groups, problem.bounds, strict=True):
        have = [0] * len(bounds)
        for t, g in enumerate(groups):
            if g >= 0:
                have[g] += counts[t]
        if any(not lo <= h <= hi for (lo, hi), h in zip(bounds, have, strict=True)):
            return False
    return True


def improve(
    problem: Problem, weights: Sequence[int], start: Sequence[int]
) -> tuple[int, tuple[int, ...]]:
    """A local optimum near `start` (a composition meeting the quotas): moves one
    volunteer's seat from a type to a heavier one while the quotas still hold, the
    move gaining most first (ties: the lighter type given up first, then the lower
    type index), until no move gains. A heuristic: the result meets the quotas and
    is worth at least `start`, but need not be the best composition.

    Returns:
        (value, counts per type).
    """
    counts = list(start)
    n_types = len(counts)
    features = range(len(problem.groups))
    have = [[0] * len(b) for b in problem.bounds]
    for f in features:
        for t, g in enumerate(problem.groups[f]):
            if g >= 0:
                have[f][g] += counts[t]
    heavy = sorted(range(n_types), key=lambda t: (-weights[t], t))
    light = sorted(range(n_types), key=lambda t: (weights[t], t))

    def movable(a: int, b: int) -> bool:
        for f in features:
            ga, gb = problem.groups[f][a], problem.groups[f][b]
            if ga == gb:
                continue
            if ga >= 0 and have[f][ga] - 1 < problem.bounds[f][ga][0]:
                return False
            if gb >= 0 and have[f][gb] + 1 > problem.bounds[f][gb][1]:
                return False
        return True

    while True:
        best: tuple[int, int, int] | None = None  # (gain, from, to)
        lightest = next((t for t in light if counts[t]), None)
        if lightest is None:
            break
        for b in heavy:
            if counts[b] >= problem.caps[b]:
                continue
            if weights[b] - weights[lightest] <= (best[0] if best else 0):
                break  # every later b gains less
            for a in light:
                gain = weights[b] - weights[a]
                if gain <= (best[0] if best else 0):
                    break
                if counts[a] and a != b and movable(a, b):
                    best = (gain, a, b)
                    break
        if best is None:
            break
        _, a, b = best
        counts[a] -= 1
        counts[b] += 1
        for f in features:
            ga, gb = problem.groups[f][a], problem.groups[f][b]
            if ga >= 0:
                have[f][ga] -= 1
            if gb >= 0:
                have[f][gb] += 1
    return sum(w * k for w, k in zip(weights, counts, strict=True)), tuple(counts)
