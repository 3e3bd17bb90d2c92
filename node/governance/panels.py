"""The best panel composition for given weights: exact branch and bound.

Column generation for the maximin lottery (:mod:`node.governance.sortition`) asks,
again and again: among panel *compositions* (how many volunteers of each type) that
meet the quotas, which maximises a weighted sum of the counts, and does any beat a
threshold? For a few quota features the compositions can be listed; for a pool of
hundreds with four features there are too many, and this module answers the
question without listing them.

Branch and bound over the types, heaviest first, each count tried from high to low.
The bound at a node is the smallest, over the quota features, of the best the
remaining types could add if only that feature's quotas held (a greedy fill is exact
for one feature: its values split the types into groups with a minimum and maximum
each). A node whose bound does not beat the best found (or the threshold) is cut, as
is one that can no longer meet a minimum or fill the panel. Weights are integers, the
order is fixed by weight then type index: the answer is a pure function of the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.governance.errors import GovernanceError

__all__ = ["Problem", "best_composition"]

# Nodes of the search tree before it gives up (with a message; never a silent guess).
MAX_NODES = 5_000_000
INFEASIBLE = -1


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


class _Found(Exception):
    """Unwinds the search at the first composition wanted."""


def _one_feature_bound(
    order: Sequence[int],
    start: int,
    weights: Sequence[int],
    caps: Sequence[int],
    group: Sequence[int],
    bounds: Sequence[tuple[int, int]],
    have: Sequence[int],
    left: int,
) -> int:
    """The most the types order[start:] can add when only one feature's quotas hold;
    INFEASIBLE if even that cannot meet the minimums and fill `left` seats."""
    need = [max(0, lo - h) for (lo, _), h in zip(bounds, have, strict=True)]
    room = [hi - h for (_, hi), h in zip(bounds, have, strict=True)]
    if any(r < 0 for r in room) or sum(need) > left:
        return INFEASIBLE
    total = 0
    taken = [0] * len(order)
    # First the minimums, each from its heaviest types.
    for j in range(start, len(order)):
        t = order[j]
        g = group[t]
        if g >= 0 and need[g]:
            k = min(need[g], caps[t])
            need[g] -= k
            room[g] -= k
            left -= k
            taken[j] = k
            total += k * weights[t]
    if any(need):
        return INFEASIBLE
    # Then the heaviest units left, within each value's maximum.
    for j in range(start, len(order)):
        if left == 0:
            break
        t = order[j]
        g = group[t]
        k = min(caps[t] - taken[j], left, room[g] if g >= 0 else left)
        if k > 0:
            if g >= 0:
                room[g] -= k
            left -= k
            total += k * weights[t]
    return INFEASIBLE if left else total


def best_composition(
    problem: Problem,
    weights: Sequence[int],
    threshold: int | None = None,
    *,
    first: bool = False,
    budget: int | None = None,
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

    def bound(j: int, left: int) -> int:
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
        out: int | None = None
        for f in features:
            b = _one_feature_bound(
                order, j, weights, usable, problem.groups[f], problem.bounds[f], have[f], left
            )
            if b == INFEASIBLE:
                return INFEASIBLE
            out = b if out is None else min(out, b)
        if out is None:  # no quota features: the heaviest units
            out, rest = 0, left
            for t in order[j:]:
                k = min(caps[t], rest)
                out += k * weights[t]
                rest -= k
            if rest:
                return INFEASIBLE
        return out

    found_at = [0]

    def walk(j: int, left: int, value: int) -> None:
        nodes[0] += 1
        if budget is not None and best_counts[0] is not None and nodes[0] - found_at[0] > budget:
            raise _Found
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
        b = bound(j, left)
        top = best_value[0]
        if b == INFEASIBLE or (top is not None and value + b <= top):
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
