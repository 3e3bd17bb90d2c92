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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from node.governance.errors import GovernanceError

__all__ = ["Problem", "best_composition"]

# Nodes of the search tree before it gives up (with a message; never a silent guess).
MAX_NODES = 5_000_000
# Subgradient steps that choose the Lagrange multipliers of one call.
ITERATIONS = 40

_N = TypeVar("_N", int, float)


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


def _fill(
    types: Sequence[int],
    weights: Sequence[_N],
    caps: Sequence[int],
    group: Sequence[int],
    bounds: Sequence[tuple[int, int]],
    have: Sequence[int],
    left: int,
    taken: list[int] | None = None,
) -> _N | None:
    """The most `types` (heaviest first) can add when only one feature's quotas hold
    (exact: the feature's values split the types into groups with a minimum and
    maximum each); None if even that cannot meet the minimums and fill `left` seats.
    If `taken` is given, the counts per type are written into it."""
    need = [max(0, lo - h) for (lo, _), h in zip(bounds, have, strict=True)]
    room = [hi - h for (_, hi), h in zip(bounds, have, strict=True)]
    if any(r < 0 for r in room) or sum(need) > left:
        return None
    total: _N = weights[types[0]] * 0 if types else 0
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


def _multipliers(
    problem: Problem, weights: Sequence[int], kept: int, target: int | None
) -> list[list[int]]:
    """Lagrange multipliers for the quotas of every feature but `kept`, as integers on
    the scale of `weights`: any multipliers give a valid bound (below), good ones a
    bound close to the linear relaxation's. Found by subgradient steps on floats
    scaled to [-1, 1]; IEEE arithmetic in a fixed order, so the same on every node,
    and the bound they give is then computed exactly in integers."""
    n_types = len(problem.caps)
    scale = max((abs(w) for w in weights), default=0) or 1
    wf = [w / scale for w in weights]
    goal = None if target is None else target / scale
    features = [f for f in range(len(problem.groups)) if f != kept]
    pi = [[0.0] * len(b) for b in problem.bounds]
    best_pi = [row[:] for row in pi]
    best = math.inf
    group0, bounds0 = problem.groups[kept], problem.bounds[kept]
    zero0 = [0] * len(bounds0)
    theta, calm = 1.0, 0
    taken = [0] * n_types
    for _ in range(ITERATIONS):
        adjusted = wf[:]
        const = 0.0
        for f in features:
            for g, (lo, hi) in enumerate(problem.bounds[f]):
                p = pi[f][g]
                const += p * hi if p > 0 else p * lo
            groups = problem.groups[f]
            for t in range(n_types):
                g = groups[t]
                if g >= 0:
                    adjusted[t] -= pi[f][g]
        order = sorted(range(n_types), key=lambda t: (-adjusted[t], t))
        inner = _fill(order, adjusted, problem.caps, group0, bounds0, zero0, problem.size, taken)
        if inner is None:
            break
        value = const + inner
        if value < best:
            best, best_pi, calm = value, [row[:] for row in pi], 0
        else:
            calm += 1
            if calm >= 4:
                theta, calm = theta / 2, 0
        if goal is not None and best <= goal:
            break
        # Subgradient of the bound in pi[f][g]: the quota side minus the count.
        grad: list[tuple[int, int, float]] = []
        norm = 0.0
        for f in features:
            counts = [0] * len(problem.bounds[f])
            groups = problem.groups[f]
            for t in range(n_types):
                if groups[t] >= 0 and taken[t]:
                    counts[groups[t]] += taken[t]
            for g, (lo, hi) in enumerate(problem.bounds[f]):
                p = pi[f][g]
                side = hi if p > 0 or (p == 0 and counts[g] > hi) else lo
                if p == 0 and lo <= counts[g] <= hi:
                    continue
                d = float(side - counts[g])
                grad.append((f, g, d))
                norm += d * d
        if norm == 0.0:
            break  # the relaxed solution meets every quota: the bound is attained
        gap = value - goal if goal is not None else 0.05 * abs(value) + 1e-3
        step = theta * max(gap, 1e-9) / norm
        for f, g, d in grad:
            pi[f][g] -= step * d
    return [[int(p * 2**52) * scale // 2**52 if p else 0 for p in row] for row in best_pi]


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

    # Lagrangian bounds: per kept feature, integer multipliers for the others' quotas
    # (computed once per call) and the types in order of their adjusted weights.
    position = {t: j for j, t in enumerate(order)}
    relaxations = []
    if problem.groups and n_types:
        for kept in range(len(problem.groups)):
            pi = _multipliers(problem, weights, kept, threshold)
            adjusted = list(weights)
            for f in features:
                if f != kept:
                    for t in range(n_types):
                        g = problem.groups[f][t]
                        if g >= 0:
                            adjusted[t] -= pi[f][g]
            by_adjusted = sorted(range(n_types), key=lambda t: (-adjusted[t], t))
            relaxations.append((kept, pi, adjusted, by_adjusted))

    def bound(j: int, left: int) -> int | None:
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
        rest_types = order[j:]
        for f in features:
            b = _fill(
                rest_types, weights, usable, problem.groups[f], problem.bounds[f], have[f], left
            )
            if b is None:
                return None
            out = b if out is None else min(out, b)
        for kept, pi, adjusted, by_adjusted in relaxations:
            const = 0
            for f in features:
                if f != kept:
                    for (lo, hi), h, p in zip(problem.bounds[f], have[f], pi[f], strict=True):
                        if p:
                            const += p * (hi - h) if p > 0 else p * (lo - h)
            free = [t for t in by_adjusted if position[t] >= j]
            b = _fill(
                free, adjusted, usable, problem.groups[kept], problem.bounds[kept], have[kept], left
            )
            if b is None:
                return None
            b += const
            out = b if out is None else min(out, b)
        if out is None:  # no quota features: the heaviest units
            out, rest = 0, left
            for t in order[j:]:
                k = min(caps[t], rest)
                out += k * weights[t]
                rest -= k
            if rest:
                return None
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
        if b is None or (top is not None and value + b <= top):
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
