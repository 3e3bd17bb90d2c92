"""The first matching implementation (commit 391e5d3, before it was made faster),
kept as the reference the current one must equal exactly, match for match and in
the same order (`test_matching.py`). Test-only."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate
from operator import sub

from node import model
from node.planning.balance import GroupKey
from node.planning.matching import Match, Position

__all__ = ["match"]

# Need priorities, least urgent first: the index is the rank (critical is served first).
_RANKS = len(model.PRIORITIES)
_SLOTS = 8  # rank slots per leaf in a sort key (a surplus takes slot 0)
assert _RANKS < _SLOTS


Party = tuple[str, str]  # (scope, party id): a node's key in hex, or a region's path
Positions = Mapping[GroupKey, Mapping[Party, Position]]


def _path(scope: str) -> tuple[str, ...]:
    return tuple(scope.split("/"))


class _Tree:
    """The parties of all groups in (scope path, party id) order, and per scope that may
    hold a match the range of leaves under it, deepest scopes first."""

    def __init__(self, parties: Iterable[Party]) -> None:
        leaves = sorted(set(parties), key=lambda p: (_path(p[0]), p[1]))
        self.leaves = leaves
        self.index = {p: i for i, p in enumerate(leaves)}
        lo: dict[str, int] = {}
        hi: dict[str, int] = {}
        for i, (scope, _) in enumerate(leaves):
            for a in model.ancestors(scope):
                lo.setdefault(a, i)
                hi[a] = i + 1
        # A scope over a single leaf can match nothing: leave it out. Children before
        # parents: deepest first, then in path order (any order within a depth works).
        scopes = [s for s in lo if hi[s] - lo[s] > 1]
        scopes.sort(key=lambda s: (-s.count("/"), _path(s)))
        self.scopes = [(s, lo[s] * _SLOTS, hi[s] * _SLOTS) for s in scopes]
        parent: dict[str, int] = {}
        for k, s in enumerate(scopes):
            parent[s] = k
        # for each scope, the nearest kept ancestor (its pool receives the leftovers)
        self.up: list[int] = []
        for s in scopes:
            anc = model.ancestors(s)[:-1]
            found = -1
            for a in reversed(anc):
                if a in parent:
                    found = parent[a]
                    break
            self.up.append(found)


def match(positions: Positions) -> list[Match]:
    """Match every group's surpluses with its deficits, bottom-up over the scope tree.

    Args:
        positions: per group (item, dimension, period), per party (scope, party id),
            its `Position` in ticks.

    Returns:
        The matches, sorted by group, then in the order the pools were matched
        (deepest scope first), providers and receivers in (scope, party) order.
        Quantities are positive ticks.
    """
    tree = _Tree(p for group in positions.values() for p in group)
    out: list[Match] = []
    for group in sorted(positions):
        _match_group(tree, group, positions[group], out)
    return out


def _amounts(index: dict[Party, int], parties: Mapping[Party, Position]) -> dict[int, int]:
    """Sort key (leaf * _SLOTS + slot) -> signed ticks: + a surplus (slot 0), - a deficit
    of rank r (slot r + 1). A party's capacity covers its own needs first, the most
    urgent first."""
    amounts: dict[int, int] = {}
    ranks = range(_RANKS - 1, -1, -1)
    for party, (left, needs) in parties.items():
        base = index[party] * _SLOTS
        for rank in ranks:
            d = needs[rank]
            if d:
                if left >= d:
                    left -= d
                else:
                    amounts[base + rank + 1] = left - d
                    left = 0
        if left:
            amounts[base] = left
    return amounts


def _match_group(
    tree: _Tree, group: GroupKey, parties: Mapping[Party, Position], out: list[Match]
) -> None:
    amounts = _amounts(tree.index, parties)
    if not amounts:
        return
    keys = sorted(amounts)
    rem = [amounts[k] for k in keys]
    sup = list(accumulate((a if a > 0 else 0 for a in rem), initial=0))
    dem = list(accumulate((-a if a < 0 else 0 for a in rem), initial=0))
    # below[k]: what scope k's subtree matched inside itself, the part of the pool at
    # its nearest kept ancestor that is gone already
    below = [0] * len(tree.scopes)
    up_of = tree.up
    for k, (scope, lo, hi) in enumerate(tree.scopes):
        a, b = bisect_left(keys, lo), bisect_left(keys, hi)
        if b - a < 2:
            continue
        inner = below[k]
        s_pool = sup[b] - sup[a] - inner
        d_pool = dem[b] - dem[a] - inner
        m = min(s_pool, d_pool)
        up = up_of[k]
        if up >= 0:
            below[up] += inner + m
        if m <= 0:
            continue
        span = range(a, b)
        if s_pool <= d_pool:
            givers = [i for i in span if rem[i] > 0]
            gives = [rem[i] for i in givers]
            takers, takes = _scarce(keys, rem, span, m)
        else:
            takers = [i for i in span if rem[i] < 0]
            takes = [-rem[i] for i in takers]
            givers = [i for i in span if rem[i] > 0]
            gives = _shares([rem[i] for i in givers], m)
        for i, q in zip(givers, gives, strict=True):
            rem[i] -= q
        for i, q in zip(takers, takes, strict=True):
            rem[i] += q
        _pair(tree, keys, givers, gives, takers, takes, (*group, scope), out)


def _scarce(keys: list[int], rem: list[int], span: range, m: int) -> tuple[list[int], list[int]]:
    """What the deficits in `span` receive of `m` scarce ticks, by rank, most urgent
    first; in proportion within the rank where `m` runs out. Returns (positions, ticks)
    in position order."""
    by_rank: list[list[int]] = [[] for _ in range(_RANKS)]
    for i in span:
        if rem[i] < 0:
            by_rank[keys[i] % _SLOTS - 1].append(i)
    got: list[tuple[int, int]] = []
    for rank in range(_RANKS - 1, -1, -1):
        ids = by_rank[rank]
        if not ids:
            continue
        wants = [-rem[i] for i in ids]
        total = sum(wants)
        if total <= m:
            got.extend(zip(ids, wants, strict=True))
            m -= total
            if not m:
                break
        else:
            got.extend((i, q) for i, q in zip(ids, _shares(wants, m), strict=True) if q)
            break
    got.sort()
    return [i for i, _ in got], [q for _, q in got]


def _shares(weights: list[int], m: int) -> list[int]:
    """`m` split in proportion to `weights` (0 < m <= sum), largest remainder first,
    ties to the earlier weight. No share exceeds its weight."""
    total = sum(weights)
    if m == total:
        return list(weights)
    shares = []
    rests = []
    for w in weights:
        q, r = divmod(m * w, total)
        shares.append(q)
        rests.append(r)
    left = m - sum(shares)
    if left:
        order = sorted(range(len(weights)), key=lambda j: -rests[j])  # stable: ties keep order
        for j in order[:left]:
            shares[j] += 1
    return shares


_new = tuple.__new__


def _pair(
    tree: _Tree,
    keys: list[int],
    givers: list[int],
    gives: list[int],
    takers: list[int],
    takes: list[int],
    where: tuple[str, str, str, str],
    out: list[Match],
) -> None:
    """Pair providers with receivers in position order (north-west corner): lay both
    out along one line of `m` ticks; each stretch between consecutive ends is one match.
    One match per (provider, receiver) pair that ships something."""
    leaves = tree.leaves
    providers = [leaves[keys[i] // _SLOTS][1] for i in givers]
    receivers = [leaves[keys[i] // _SLOTS][1] for i in takers]
    if len(receivers) > 1 and len(set(receivers)) < len(receivers):
        receivers, takes = _merged(receivers, takes)  # one receiver's several ranks
    # ends along the line, 2x + 0 for a provider's, 2x + 1 for a receiver's: sorted,
    # a provider's end comes before a receiver's at the same point
    ends = sorted([e * 2 for e in accumulate(gives)] + [e * 2 + 1 for e in accumulate(takes)])
    points = [e >> 1 for e in ends]
    gi = accumulate((1 - (e & 1) for e in ends), initial=0)
    ti = accumulate((e & 1 for e in ends), initial=0)
    item, dim, period, scope = where
    qty = map(sub, points, [0, *points[:-1]])
    out.extend(
        [
            _new(Match, (item, dim, period, providers[g], receivers[t], q, scope))
            for q, g, t in zip(qty, gi, ti, strict=False)
            if q
        ]
    )


def _merged(names: list[str], qty: list[int]) -> tuple[list[str], list[int]]:
    """Adjacent entries of one name summed."""
    out_n: list[str] = []
    out_q: list[int] = []
    for n, q in zip(names, qty, strict=True):
        if out_n and out_n[-1] == n:
            out_q[-1] += q
        else:
            out_n.append(n)
            out_q.append(q)
    return out_n, out_q
