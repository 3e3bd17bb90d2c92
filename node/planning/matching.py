"""Matching deficits with surpluses, bottom-up over the scope tree ("buy local").

For each item, dimension and period (a *group*), every party -- a node inside a region,
a whole region across regions -- has a position: what it can provide and what it
needs (per priority), in integer ticks of the base unit (`balance.TICKS`). A party's
own capacity covers its own needs first (most urgent first); what is left is a
surplus or a deficit. Then, from the deepest scope up, each scope pools the leftovers
of everything under it and matches them there; what is left passes up. A match is
made at the lowest scope where provider and receiver meet.

Cost and optimality: hang every party below its scope so that all parties sit at one
depth; the distance of two parties is then twice the climb from them to the scope
where they meet. With that tree metric, matching as much as possible at every scope
from the bottom up has the least total cost (quantity x distance) of any way to ship
min(supply, demand): the amount matched at or below each scope is the most possible,
and the split inside a pool does not change the cost (every pair in a pool meets at
the pool's scope). `tests/test_matching.py` checks it against a min-cost flow.

The split inside a pool is a declared rule, in exact integers:

* scarce supply (pooled supply <= pooled deficit): every provider gives all it has;
  receivers are served by need priority (critical first), and within the priority
  where supply runs out, in proportion to their deficits;
* plentiful supply: every receiver gets all it lacks; providers give in proportion to
  their surpluses.

Proportional shares round by largest remainder; ties go to the party earlier in
(scope path, party id) order. Providers and receivers of a pool are then paired in that
same order (north-west corner: few matches). Everything depends only on the positions,
never on the order records arrived in, so every replica holding the same records
computes the same matches.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate
from operator import sub
from typing import NamedTuple

from node import model
from node.crdt.record import Record
from node.planning.balance import GroupKey, _contribution
from node.planning.rollup import RollupView

__all__ = [
    "PRIORITY_RANK",
    "Match",
    "Position",
    "match",
    "matches_from_records",
    "matches_from_rollups",
    "positions_from_records",
    "positions_from_rollups",
]

# Need priorities, least urgent first: the index is the rank (critical is served first).
PRIORITY_RANK = {p: i for i, p in enumerate(model.PRIORITIES)}
_RANKS = len(model.PRIORITIES)
_SLOTS = 8  # rank slots per leaf in a sort key (a surplus takes slot 0)
assert _RANKS < _SLOTS


class Position(NamedTuple):
    """What one party has and needs of one group, in ticks.

    Attributes:
        capacity: what it can provide.
        needs: what it needs, per priority rank (low, medium, high, critical).
    """

    capacity: int
    needs: tuple[int, ...]


Party = tuple[str, str]  # (scope, party id): a node's key in hex, or a region's path
Positions = Mapping[GroupKey, Mapping[Party, Position]]


class Match(NamedTuple):
    """A provider ships `quantity` ticks of a group to a receiver; they met at `scope`."""

    item: str
    dimension: str
    period: str
    provider: str
    receiver: str
    quantity: int
    scope: str

    def as_json(self) -> dict[str, object]:
        return self._asdict()


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
    ranks = range(len(PRIORITY_RANK) - 1, -1, -1)
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


# --- building positions ----------------------------------------------------------


def positions_from_records(
    records: Iterable[Record], counted: frozenset[bytes] | None = None, *, scope: str = ""
) -> dict[GroupKey, dict[Party, Position]]:
    """Positions of nodes from their live needs and capacities (slot winners).

    Args:
        records: a replica's records (only needs and capacities are read).
        counted: the admitted nodes (None: every origin counts, admission off).
        scope: only records in this scope ("" for all).

    Returns:
        per group, per (record scope, node key hex), the node's position there.
    """
    acc: dict[GroupKey, dict[Party, list[int]]] = {}
    for r in records:
        if counted is not None and r.origin not in counted:
            continue
        if scope and not model.in_scope(r.scope, scope):
            continue
        c = _contribution(r)
        if c is None:
            continue
        group, kind, amount = c
        row = acc.setdefault(group, {}).setdefault((r.scope, r.origin.hex()), [0] * (_RANKS + 1))
        if kind == "need":
            body = r.body or {}
            row[1 + PRIORITY_RANK[str(body["priority"])]] += amount
        else:
            row[0] += amount
    return {
        g: {p: Position(v[0], tuple(v[1:])) for p, v in parties.items()}
        for g, parties in acc.items()
    }


def positions_from_rollups(
    view: RollupView,
    own: Mapping[GroupKey, Mapping[Party, Position]] | None = None,
    own_region: str = "",
) -> dict[GroupKey, dict[Party, Position]]:
    """Positions of regions, each one party (its id and scope: its path), from the
    accepted rollups of `view` and, for the reader's own region, its nodes' positions.

    A rollup carries no priorities: a region's needs count at the lowest rank. A region
    and period whose rollups are split or unattested is left out.
    """
    acc: dict[GroupKey, dict[Party, list[int]]] = {}
    for (region, period), rp in view.pairs.items():
        content = rp.accepted
        if content is None:
            continue
        for it, dim, needs, caps, _nodes in content.body["items"]:
            row = acc.setdefault((it, dim, period), {}).setdefault((region, region), [0, 0])
            row[0] += int(caps)
            row[1] += int(needs)
    if own is not None and own_region:
        for group, parties in own.items():
            for _party, pos in parties.items():
                row = acc.setdefault(group, {}).setdefault((own_region, own_region), [0, 0])
                row[0] += pos.capacity
                row[1] += sum(pos.needs)
    low = (0,) * (_RANKS - 1)
    return {
        g: {p: Position(cap, (need, *low)) for p, (cap, need) in parties.items()}
        for g, parties in acc.items()
    }


def matches_from_records(
    records: Iterable[Record], counted: frozenset[bytes] | None = None, *, scope: str = ""
) -> list[Match]:
    """Node-to-node matches of the needs and capacities held (see `positions_from_records`)."""
    return match(positions_from_records(records, counted, scope=scope))


def matches_from_rollups(
    view: RollupView,
    own: Mapping[GroupKey, Mapping[Party, Position]] | None = None,
    own_region: str = "",
) -> list[Match]:
    """Region-to-region matches (see `positions_from_rollups`)."""
    return match(positions_from_rollups(view, own, own_region))
