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

`plan` does the matching and keeps its result compact (per pool, who gives and who
takes how much); `match` lists the matches themselves. A federation's plan has
millions of matches, so `plan` runs in int64 vectors for all groups at once
(`node.planning.matching_vec`) wherever the quantities keep that exact, and otherwise
here, in Python ints on flat lists in C-level passes (`plan_exact`);
`tests/matching_reference.py` is the first, plainer implementation, which both must
equal match for match. The types both share (`Position`, `Match`, `Plan`,
`MatchTable`, ...) live in `node.planning.matching_types` and are re-exported here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate, chain, compress, count, islice, repeat
from math import gcd
from operator import add, and_, floordiv, gt, lshift, lt, mod, mul, or_, rshift, sub

from node import model
from node.crdt.record import Record
from node.planning.balance import GroupKey, _contribution
from node.planning.matching_types import (
    SLOT_BITS,
    Match,
    MatchTable,
    Party,
    Plan,
    Pool,
    Position,
    Positions,
    ScopeTree,
)
from node.planning.rollup import RollupView

__all__ = [
    "PRIORITY_RANK",
    "Match",
    "MatchPlan",
    "MatchTable",
    "Party",
    "Plan",
    "Pool",
    "Position",
    "match",
    "match_table",
    "matches_from_records",
    "matches_from_rollups",
    "plan",
    "plan_exact",
    "positions_from_records",
    "positions_from_rollups",
]

# Need priorities, least urgent first: the index is the rank (critical is served first).
PRIORITY_RANK = {p: i for i, p in enumerate(model.PRIORITIES)}
_RANKS = len(model.PRIORITIES)
_SHIFT = SLOT_BITS  # a sort key is leaf << _SHIFT | slot (a surplus takes slot 0)
_SLOTS = 1 << _SHIFT  # rank slots per leaf
assert _RANKS < _SLOTS


class MatchPlan(Plan):
    """A plan in Python ints (see `Plan`), made by `plan_exact`, and by `plan` below
    the vectors' bounds.

    Attributes:
        pools: in matching order: by group, then deepest scope first, then by path.
        split: the groups where one receiver has deficits of several ranks open.
    """

    def __init__(self, leaves: list[Party]) -> None:
        super().__init__(leaves, [])
        self.pools: list[Pool] = []
        self.split: set[int] = set()

    def total(self) -> int:
        """Ticks matched over all groups."""
        return sum(sum(p.gives) for p in self.pools)

    def _paired(self) -> MatchTable:
        return _pair(self)


def _pair(plan: MatchPlan) -> MatchTable:
    """Pair each pool's providers with its receivers in key order (north-west corner):
    lay both out along one line of the pool's ticks; each stretch between consecutive
    ends is one match, one per (provider, receiver) pair that ships something."""
    ids = [p[1] for p in plan.leaves]
    names = list(dict.fromkeys(ids))
    # a leaf's party, as an index into names (None: one leaf per party, the same index)
    name_of = None
    if len(names) < len(ids):
        number = {n: i for i, n in enumerate(names)}
        name_of = list(map(number.__getitem__, ids))
    out = MatchTable(plan.groups, names)
    provider, receiver, quantity = out.provider, out.receiver, out.quantity
    for pool in plan.pools:
        providers = list(map(rshift, pool.givers, repeat(_SHIFT)))
        receivers = list(map(rshift, pool.takers, repeat(_SHIFT)))
        takes = pool.takes
        if name_of is not None:
            providers = list(map(name_of.__getitem__, providers))
            receivers = list(map(name_of.__getitem__, receivers))
        # one receiver's several ranks, or one party at several leaves, side by side
        if (name_of is not None or pool.group in plan.split) and len(set(receivers)) < len(
            receivers
        ):
            receivers, takes = _merged(receivers, takes)
        # the ends along the line, 2x + 0 for a provider's, 2x + 1 for a receiver's:
        # sorted, a provider's end comes before a receiver's at the same point
        ends = [
            *map(lshift, accumulate(pool.gives), repeat(1)),
            *map(or_, map(lshift, accumulate(takes), repeat(1)), repeat(1)),
        ]
        ends.sort()
        points = list(map(rshift, ends, repeat(1)))
        qty = list(map(sub, points, chain((0,), points)))
        # before each end: how many receivers' (providers') ends lie before it
        before = list(accumulate(map(and_, ends, repeat(1)), initial=0))
        provider += map(providers.__getitem__, compress(map(sub, count(), before), qty))
        receiver += map(receivers.__getitem__, compress(before, qty))
        quantity += compress(qty, qty)
        out.group.append(pool.group)
        out.scopes.append(pool.scope)
        out.starts.append(len(quantity))
    return out


VECTOR_MIN = 20_000  # positions from which `plan` works in vectors (a daemon's own region
# stays below it and never loads numpy: ~15 MB of memory on a Raspberry Pi)


def plan(positions: Positions) -> Plan:
    """Match every group's surpluses with its deficits, bottom-up over the scope tree,
    into a compact `Plan` (`match` lists the matches themselves).

    From `VECTOR_MIN` positions the work is done in int64 vectors (a `VecPlan` of
    `matching_vec`) where every quantity is small enough for that to be exact, else in
    Python ints (a `MatchPlan`, as `plan_exact`): the same matches either way."""
    groups = sorted(positions)
    listed = [list(positions[g]) for g in groups]
    tree = _tree(listed)
    if sum(map(len, listed)) >= VECTOR_MIN:
        # numpy: loaded only for a large matching
        from node.planning.matching_vec import plan as vector_plan

        got = vector_plan(tree, groups, listed, positions)
        if got is not None:
            return got
    return _plan_ints(tree, groups, listed, positions)


def plan_exact(positions: Positions) -> MatchPlan:
    """`plan` in Python ints whatever the quantities (the fallback of `plan`)."""
    groups = sorted(positions)
    listed = [list(positions[g]) for g in groups]
    return _plan_ints(_tree(listed), groups, listed, positions)


def _tree(listed: list[list[Party]]) -> ScopeTree:
    # groups often list the same parties: a list equal to the one before adds none
    fresh = [p for k, p in enumerate(listed) if k == 0 or p != listed[k - 1]]
    return ScopeTree(chain.from_iterable(fresh))


def _plan_ints(
    tree: ScopeTree, groups: list[GroupKey], listed: list[list[Party]], positions: Positions
) -> MatchPlan:
    out = MatchPlan(tree.leaves)
    order = _Order(tree)
    for group, parties in zip(groups, listed, strict=True):
        _match_group(tree, group, positions[group], parties, order, out)
    return out


def match(positions: Positions) -> list[Match]:
    """Match every group's surpluses with its deficits, bottom-up over the scope tree.

    Args:
        positions: per group (item, dimension, period), per party (scope, party id),
            its `Position` in ticks.

    Returns:
        The matches, sorted by group, then in the order the pools were matched
        (deepest scope first, then by path), providers and receivers in (scope,
        party) order. Quantities are positive ticks.
    """
    return plan(positions).matches()


def match_table(positions: Positions) -> MatchTable:
    """The matches of `match`, as columns (`MatchTable`): for callers that filter,
    count or page through many matches without a tuple per match."""
    return plan(positions).table()


# The hot loops below run over every party of every group: they are written as
# C-level passes (map, compress, accumulate, sorted) over flat lists of ints, except
# one comprehension that reads each position once, the rank totals of a scarce pool
# with several ranks, and the parties whose needs span several priorities.
_DOWN = range(_RANKS - 1, -1, -1)
_MASK = _SLOTS - 1


class _Order:
    """The leaf order of a group's parties: groups often list the same parties in
    the same order, so the permutation into leaf order is kept for the next group
    (for one `plan` call only)."""

    def __init__(self, tree: ScopeTree) -> None:
        self.tree = tree
        self.parties: list[Party] = []
        self.perm: list[int] | None = None  # dict position of each leaf-ordered party
        self.keys: list[int] = []  # their sort keys (leaf << 3)

    def of(self, listed: list[Party]) -> tuple[list[int] | None, list[int]]:
        """The permutation into leaf order of the parties `listed` (None: already
        in leaf order), and their sort keys in leaf order."""
        if listed != self.parties:
            leaf = list(map(self.tree.index.__getitem__, listed))
            perm = sorted(range(len(leaf)), key=leaf.__getitem__)
            self.parties = listed
            self.perm = None if perm == list(range(len(perm))) else perm
            ordered = leaf if self.perm is None else list(map(leaf.__getitem__, perm))
            self.keys = list(map(lshift, ordered, repeat(_SHIFT)))
        return self.perm, self.keys


def _entries(
    order: _Order, parties: Mapping[Party, Position], listed: list[Party]
) -> tuple[list[int], list[int], list[int], list[int], bool]:
    """The surpluses and the deficits of a group, each as sort keys (leaf << 3 | slot)
    in key order and their ticks (positive): a surplus at slot 0, a deficit of rank r
    at slot r + 1. A party's capacity covers its own needs first, the most urgent
    first. The flag: some party has deficits at several ranks."""
    perm, keys = order.of(listed)
    # One pass over the positions (they are read once, in the order they are held):
    # each party's net; a deficit's as net << 3 | slot, slot the rank + 1 when all its
    # needs are at one rank, 7 when they span several (split below).
    codes = [
        c - s if c >= (s := sum(n)) else (c - s) << _SHIFT | (n.index(s) + 1 if s in n else _MASK)
        for c, n in parties.values()
    ]
    if perm is not None:
        codes = list(map(codes.__getitem__, perm))
    pos = list(map(gt, codes, repeat(0)))
    sk = list(compress(keys, pos))
    sv = list(compress(codes, pos))
    neg = list(map(lt, codes, repeat(0)))
    dc = list(compress(codes, neg))
    slots = list(map(and_, dc, repeat(_MASK)))
    dk = list(map(or_, compress(keys, neg), slots))
    dv = list(map(rshift, map(sub, repeat(_MASK), dc), repeat(_SHIFT)))  # -(net)
    if _MASK not in slots:
        return sk, sv, dk, dv, False
    n = len(dk)
    dk, dv = _split_ranks(order.tree.leaves, parties, dk, dv)
    return sk, sv, dk, dv, len(dk) > n


def _split_ranks(
    leaves: list[Party], parties: Mapping[Party, Position], dk: list[int], dv: list[int]
) -> tuple[list[int], list[int]]:
    """The deficits with those over several ranks (slot 7) split by rank: the capacity
    covers the most urgent needs first; what stays open is a deficit at its rank."""
    keys: list[int] = []
    values: list[int] = []
    for key, v in zip(dk, dv, strict=True):
        if key & _MASK != _MASK:
            keys.append(key)
            values.append(v)
            continue
        base = key - _MASK
        left, needs = parties[leaves[key >> _SHIFT]]
        split: list[tuple[int, int]] = []
        for rank in _DOWN:
            d = needs[rank]
            if d:
                if left >= d:
                    left -= d
                else:
                    split.append((base + rank + 1, d - left))
                    left = 0
        for k, q in reversed(split):
            keys.append(k)
            values.append(q)
    return keys, values


def _match_group(
    tree: ScopeTree,
    group: GroupKey,
    parties: Mapping[Party, Position],
    listed: list[Party],
    order: _Order,
    out: MatchPlan,
) -> None:
    # What is still open on each side, in key order: each level's pools match theirs
    # and leave what stays open (one side only) for the levels above.
    sk, sv, dk, dv, several = _entries(order, parties, listed)
    if not sk or not dk:
        return
    gi = len(out.groups)
    out.groups.append(group)
    if several:
        out.split.add(gi)
    pools = out.pools
    for level in tree.levels:
        if not sk or not dk:
            break
        s_next: tuple[list[int], list[int]] = ([], [])
        d_next: tuple[list[int], list[int]] = ([], [])
        s_done = d_done = 0  # entries before these are carried to the next level
        for scope, lo, hi in level:
            sa = bisect_left(sk, lo, s_done)
            sb = bisect_left(sk, hi, sa)
            if sa == sb:
                continue
            da = bisect_left(dk, lo, d_done)
            db = bisect_left(dk, hi, da)
            if da == db:
                continue
            givers, have = sk[sa:sb], sv[sa:sb]
            takers, wants = dk[da:db], dv[da:db]
            s_pool, d_pool = sum(have), sum(wants)
            if s_pool <= d_pool:
                # scarce: every provider gives all it has, deficits stay open
                takes = _scarce(takers, wants, s_pool)
                left = list(map(sub, wants, takes))
                pools.append(Pool(gi, scope, givers, have, *_positive(takers, takes)))
                _carry(s_next, sk, sv, s_done, sa, [], [])
                _carry(d_next, dk, dv, d_done, da, takers, left)
            else:
                # plentiful: every receiver gets all it lacks, surpluses stay open
                gives = _shares(have, d_pool)
                left = list(map(sub, have, gives))
                pools.append(Pool(gi, scope, *_positive(givers, gives), takers, wants))
                _carry(s_next, sk, sv, s_done, sa, givers, left)
                _carry(d_next, dk, dv, d_done, da, [], [])
            s_done, d_done = sb, db
        if s_done:
            _carry(s_next, sk, sv, s_done, len(sk), [], [])
            _carry(d_next, dk, dv, d_done, len(dk), [], [])
            (sk, sv), (dk, dv) = s_next, d_next


def _carry(
    into: tuple[list[int], list[int]],
    keys: list[int],
    values: list[int],
    start: int,
    stop: int,
    open_keys: list[int],
    left: list[int],
) -> None:
    """Carry the untouched entries keys[start:stop] and then a pool's entries that
    stay open (`left` > 0) on to the next level."""
    nk, nv = into
    nk += keys[start:stop]
    nv += values[start:stop]
    if not left:
        return
    if 0 not in left:
        nk += open_keys
        nv += left
        return
    still = list(map(gt, left, repeat(0)))
    nk += compress(open_keys, still)
    nv += compress(left, still)


def _scarce(takers: list[int], wants: list[int], m: int) -> list[int]:
    """What the deficits `takers` (sort keys, wanting `wants`) receive of `m` scarce
    ticks, by rank, most urgent first; in proportion within the rank where `m` runs
    out."""
    slots = list(map(and_, takers, repeat(_MASK)))
    if slots.count(slots[0]) == len(slots):  # one rank
        return _shares(wants, m)
    total = [0] * _SLOTS  # per slot
    for slot, w in zip(slots, wants, strict=True):
        total[slot] += w
    served = [0] * _SLOTS  # 1 for the slots served in full
    for slot in range(_RANKS, 0, -1):
        if total[slot] > m:
            break
        served[slot] = 1
        m -= total[slot]
    got = list(map(mul, wants, map(served.__getitem__, slots)))
    if m:  # the slot where supply runs out: in proportion
        same = list(map(slot.__eq__, slots))
        for j, q in zip(
            compress(range(len(got)), same), _shares(list(compress(wants, same)), m), strict=True
        ):
            got[j] = q
    return got


def _positive(ids: list[int], qty: list[int]) -> tuple[list[int], list[int]]:
    """The entries with a positive quantity."""
    if 0 not in qty:
        return ids, qty
    keep = list(map(gt, qty, repeat(0)))
    return list(compress(ids, keep)), list(compress(qty, keep))


def _shares(weights: list[int], m: int) -> list[int]:
    """`m` split in proportion to `weights` (0 < m <= sum), largest remainder first,
    ties to the earlier weight. No share exceeds its weight."""
    total = sum(weights)
    if m == total:
        return weights
    # m / total in lowest terms: the same shares and remainder order, smaller ints
    # (quantities are often whole units of many ticks)
    g = gcd(m, total)
    products = list(map(mul, weights, repeat(m // g)))
    shares = list(map(floordiv, products, repeat(total // g)))
    left = m - sum(shares)  # 0 <= left < len(weights): one more tick each for these
    if not left:
        return shares
    rests = list(map(mod, products, repeat(total // g)))
    # the `left` largest remainders: every one above the threshold, and of those equal
    # to it the earliest
    cut = sorted(rests, reverse=True)[left - 1]
    above = list(map(lt, repeat(cut), rests))
    shares = list(map(add, shares, above))
    ties = left - above.count(True)
    if ties == 1:
        shares[rests.index(cut)] += 1
    else:
        for j in islice(compress(range(len(rests)), map(cut.__eq__, rests)), ties):
            shares[j] += 1
    return shares


def _merged(names: list[int], qty: list[int]) -> tuple[list[int], list[int]]:
    """Adjacent entries of one name summed."""
    out_n: list[int] = []
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
