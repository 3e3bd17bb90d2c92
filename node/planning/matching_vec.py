"""The matching of `node.planning.matching` in int64 vectors (numpy): the same
matches in the same order, computed for every group at once, one pass per tree level.

Why vectors: a federation's plan reads a million positions and lists millions of
matches; in plain Python every element of every pass costs tens of nanoseconds, which
bounds `matching.plan` above a second. Here each pass is one numpy call over all groups.

Exactness: every quantity is an int64 and every step is integer arithmetic, so the
result equals the plain-int one (`tests/test_matching.py` checks it against the first
implementation, `tests/test_matching_vec.py` near and beyond the bounds). `plan`
declines (returns None, and the caller uses plain ints) unless every capacity and need
is below 2**50 ticks and each group's supply and demand below about 2**60: then no
sum overflows, and a proportional share, estimated in float64 (error under one tick)
and corrected with the exact remainder, is the exact floor. Two int64 products in
that correction may wrap; two's complement arithmetic is exact modulo 2**64 and the
true remainder lies well inside the int64 range, so the wrapped result is the true
one.

This module imports nothing from `matching` (which loads it only for a large
matching): the types both share, `Plan` among them, are in `matching_types`.

Layout: an entry's key is (group x leaves + leaf) << 3 | slot (slot 0 a surplus, r + 1 a
deficit of rank r), so one sorted key column holds every group in (group, leaf, slot)
order and the pools of one tree level, across all groups, are disjoint key ranges in
order.
"""

from __future__ import annotations

import itertools
from array import array
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from node.planning.matching_types import MatchTable, Party, Plan, Pool, Positions, ScopeTree

if TYPE_CHECKING:
    from node.planning.balance import GroupKey

__all__ = ["VecPlan", "plan"]

_I64 = np.int64
_LIMIT = 1 << 50  # every capacity and every need below: a float64 share errs < 1 tick
_GROUP = 1 << 61  # every group's supply and demand below: sums and remainders fit
_RANKS = 4
Vec = Any  # an int64 numpy array (numpy's own types do not help mypy here)


def plan(
    tree: ScopeTree,
    groups: list[GroupKey],
    listed: list[list[Party]],
    positions: Positions,
) -> VecPlan | None:
    """Match every group (see `matching.plan`), or None where a quantity is too
    large for int64 arithmetic to stay exact."""
    entries = _entries(tree, groups, listed, positions)
    if entries is None:
        return None
    sk, sv, dk, dv = entries
    n = len(tree.leaves)
    if not len(sk) or not len(dk):
        return VecPlan(tree.leaves, [])
    # a group takes part only if it has both surpluses and deficits (as in `matching`)
    ng = len(groups)
    has = np.bincount((sk >> 3) // n, minlength=ng) * np.bincount((dk >> 3) // n, minlength=ng)
    both = np.flatnonzero(has)
    out = VecPlan(tree.leaves, [groups[g] for g in both.tolist()])
    if not len(both):
        return out
    plan_group = np.full(len(groups), -1, _I64)
    plan_group[both] = np.arange(len(both))
    levels: list[tuple[Vec, ...]] = []
    for depth, level in enumerate(tree.levels):
        if not len(sk) or not len(dk):
            break
        lo = np.array([s[1] for s in level], _I64)
        hi = np.array([s[2] for s in level], _I64)
        base = (np.arange(ng, dtype=_I64) * n) << 3
        plo = (base[:, None] + lo[None, :]).ravel()
        phi = (base[:, None] + hi[None, :]).ravel()
        got = _level(sk, sv, dk, dv, plo, phi)
        if got is None:
            continue
        (sk, sv, dk, dv), pools, flat = got
        group = pools // len(level)
        levels.append((plan_group[group], np.full(len(pools), depth), pools % len(level), *flat))
    if levels:
        out.set_pools(tree, levels)
    return out


def _entries(
    tree: ScopeTree,
    groups: list[GroupKey],
    listed: list[list[Party]],
    positions: Positions,
) -> tuple[Vec, Vec, Vec, Vec] | None:
    """Every group's surpluses and deficits as sorted key and positive value columns
    (a party's capacity covering its own needs first, the most urgent first), or
    None when a quantity is out of bounds."""
    n = len(tree.leaves)
    held = [positions[g].values() for g in groups]
    size = sum(map(len, held))
    every = list(chain.from_iterable(held))
    try:
        caps = np.fromiter(map(itemgetter(0), every), _I64, size)
        needs = np.fromiter(
            chain.from_iterable(map(itemgetter(1), every)), _I64, size * _RANKS
        ).reshape(size, _RANKS)
    except (OverflowError, ValueError):  # beyond int64, or not four ranks
        return None
    most = max(int(caps.max()), int(needs.max())) if size else 0
    if size and (most >= _LIMIT or int(caps.min()) < 0 or int(needs.min()) < 0):
        return None
    # the leaf order of each group's parties; groups often list the same parties in
    # the same order, and then share one permutation
    index = tree.index
    gather: list[Vec] = []
    keys: list[Vec] = []
    start = 0
    last: list[Party] | None = None
    perm = leaf = np.zeros(0, _I64)
    for g, parties in enumerate(listed):
        if parties != last:
            leaf_of = np.fromiter(map(index.__getitem__, parties), _I64, len(parties))
            perm = np.argsort(leaf_of, kind="stable")
            leaf = leaf_of[perm]
            last = parties
        gather.append(perm + start)
        keys.append((leaf + g * n) << 3)
        start += len(parties)
    at = np.concatenate(gather) if gather else np.zeros(0, _I64)
    key = np.concatenate(keys) if keys else np.zeros(0, _I64)
    # in the order the positions are held: what the ranks from r to the most urgent
    # need together, r = 3, 2, 1, 0
    upto = [needs[:, _RANKS - 1]]
    for r in range(_RANKS - 2, -1, -1):
        upto.append(upto[-1] + needs[:, r])
    net = (caps - upto[-1])[at]  # in key order
    if most * _RANKS * max(map(len, listed), default=0) >= _GROUP // 2:
        # each group's supply and demand, roughly (float64): far enough below 2**61
        group = (key >> 3) // n
        for side in (np.maximum(net, 0), np.maximum(-net, 0)):
            if np.bincount(group, weights=side.astype(np.float64)).max() >= _GROUP / 2:
                return None
    pos = net > 0
    sk, sv = key[pos], net[pos]
    neg = net < 0
    # A party's capacity covers its most urgent needs first: what stays open of the
    # ranks from r up is max(upto_r - capacity, 0), and of rank r alone the
    # difference to the ranks above it.
    short_of = at[neg]
    c = caps[short_of]
    short = [np.maximum(u[short_of] - c, 0) for u in reversed(upto)]  # r = 0, 1, 2, 3
    left = np.stack([*(a - b for a, b in itertools.pairwise(short)), short[-1]], axis=1)
    keep = left > 0
    slots = np.arange(1, _RANKS + 1, dtype=_I64)
    dk = (key[neg][:, None] | slots[None, :])[keep]
    dv = left[keep]
    return sk, sv, dk, dv


def _level(
    sk: Vec, sv: Vec, dk: Vec, dv: Vec, plo: Vec, phi: Vec
) -> tuple[tuple[Vec, Vec, Vec, Vec], Vec, tuple[Vec, ...]] | None:
    """Match the pools of one level (key ranges plo:phi, in order) and carry what
    stays open. Returns the open columns, the indices of the pools that matched, and
    their givers, gives, takers, takes with the count of each per pool."""
    sa: Vec = np.searchsorted(sk, plo)
    sb: Vec = np.searchsorted(sk, phi)
    da: Vec = np.searchsorted(dk, plo)
    db: Vec = np.searchsorted(dk, phi)
    active = np.flatnonzero((sb > sa) & (db > da))
    if not len(active):
        return None
    sa, sb, da, db = sa[active], sb[active], da[active], db[active]
    supply = _sums(sv, sa, sb)
    demand = _sums(dv, da, db)
    scarce = supply <= demand
    s_pool, s_at = _members(sa, sb)
    d_pool, d_at = _members(da, db)
    have, want = sv[s_at], dv[d_at]
    # plentiful: receivers get all they lack, providers give in proportion
    give = have.copy()
    rich = ~scarce[s_pool]
    if rich.any():
        give[rich] = _shares(have[rich], s_pool[rich], demand, supply)
    # scarce: providers give all, receivers served by rank, in proportion where it runs out
    take = want.copy()
    poor = scarce[d_pool]
    if poor.any():
        take[poor] = _by_rank(dk[d_at][poor], want[poor], d_pool[poor], supply, len(active))
    npools = len(active)
    g_keep, t_keep = give > 0, take > 0
    flat = (
        sk[s_at][g_keep],
        give[g_keep],
        np.bincount(s_pool[g_keep], minlength=npools),
        dk[d_at][t_keep],
        take[t_keep],
        np.bincount(d_pool[t_keep], minlength=npools),
    )
    sv = sv.copy()
    sv[s_at] = have - give
    dv = dv.copy()
    dv[d_at] = want - take
    s_open, d_open = sv > 0, dv > 0
    return (sk[s_open], sv[s_open], dk[d_open], dv[d_open]), active, flat


def _sums(values: Vec, a: Vec, b: Vec) -> Vec:
    """values[a[i]:b[i]] summed, for disjoint non-empty ranges in order."""
    bounds = np.stack([a, b], 1).ravel()
    return np.add.reduceat(np.append(values, 0), bounds)[::2]


def _members(a: Vec, b: Vec) -> tuple[Vec, Vec]:
    """For the ranges a[i]:b[i] (disjoint, in order): each member's range number and
    its index."""
    lens = b - a
    which = np.repeat(np.arange(len(a)), lens)
    first = np.cumsum(lens) - lens
    return which, np.arange(int(lens.sum()), dtype=_I64) + np.repeat(a - first, lens)


def _shares(weights: Vec, seg: Vec, m: Vec, total: Vec) -> Vec:
    """Per segment s (seg sorted), m[s] split in proportion to its weights, which sum
    to total[s] (0 <= m <= total): largest remainder first, ties to the earlier."""
    mm, tt = m[seg], total[seg]
    share = np.floor(weights.astype(np.float64) * (mm / tt)).astype(_I64)
    # the exact remainder (products may wrap; the true value fits: see the module doc)
    rest = weights * mm - share * tt
    low = rest < 0
    share[low] -= 1
    rest[low] += tt[low]
    high = rest >= tt
    share[high] += 1
    rest[high] -= tt[high]
    firsts = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1])))
    got = np.add.reduceat(share, firsts)
    left = np.zeros(len(m), _I64)
    left[seg[firsts]] = m[seg[firsts]] - got
    if left.any():
        # by segment, then largest remainder first, ties in order (two stable sorts;
        # the segment numbers sort by radix when small)
        by_rest = np.argsort(-rest, kind="stable")
        outer = seg[by_rest]
        if len(m) < 1 << 16:
            outer = outer.astype(np.uint16)
        order = by_rest[np.argsort(outer, kind="stable")]
        begin = np.repeat(firsts, np.diff(np.append(firsts, len(seg))))
        rank = np.arange(len(seg)) - begin  # begin: the same in both orders
        share[order] += rank < left[seg[order]]
    return share


def _by_rank(keys: Vec, wants: Vec, seg: Vec, m: Vec, npools: int) -> Vec:
    """What the deficits of scarce pools receive of m[pool] ticks: by rank, most
    urgent first; in proportion within the rank where supply runs out."""
    slot = keys & 7
    flat = np.zeros(npools * 8, _I64)
    np.add.at(flat, seg * 8 + slot, wants)
    per = flat.reshape(npools, 8)
    # from each slot up: what the slots from it to the most urgent need together
    upto = np.zeros((npools, 9), _I64)
    upto[:, :8] = np.cumsum(per[:, ::-1], axis=1)[:, ::-1]
    # served in full: the slots whose `upto` fits; cut: the one where supply runs out
    cut = (upto[:, :8] > m[:, None]).sum(axis=1) - 1
    rest = m - upto[np.arange(npools), cut + 1]
    pool_cut = cut[seg]
    got = np.where(slot > pool_cut, wants, 0)
    at = slot == pool_cut
    if at.any():
        total = per[np.arange(npools), np.maximum(cut, 0)]
        got[at] = _shares(wants[at], seg[at], rest, total)
    return got


class VecPlan(Plan):
    """A plan (see `Plan`) held as columns: per pool (in matching order) its group,
    depth and scope, and flat givers, gives, takers and takes with their counts per
    pool. Public behaviour as `matching.MatchPlan`."""

    def __init__(self, leaves: list[Party], groups: list[GroupKey]) -> None:
        super().__init__(leaves, groups)
        self.pool_group = np.zeros(0, _I64)
        self.scopes: list[str] = []
        z = np.zeros(0, _I64)
        self.givers, self.gives, self.g_count = z, z, z
        self.takers, self.takes, self.t_count = z, z, z

    def set_pools(self, tree: ScopeTree, levels: list[tuple[Vec, ...]]) -> None:
        """Order the pools of every level by group, then depth, then path."""
        group, depth, scope, gk, gq, gc, tk, tq, tc = (
            np.concatenate(col) for col in zip(*levels, strict=True)
        )
        order = np.lexsort((depth, group))
        self.pool_group = group[order]
        names = [[s[0] for s in level] for level in tree.levels]
        self.scopes = [
            names[d][s] for d, s in zip(depth[order].tolist(), scope[order].tolist(), strict=True)
        ]
        n = len(tree.leaves)
        givers, self.gives = _regroup(gk, gq, gc, order)
        takers, self.takes = _regroup(tk, tq, tc, order)
        self.g_count, self.t_count = gc[order], tc[order]
        # keys as leaf << 3 | slot (the group is known per pool)
        self.givers = ((givers >> 3) % n) << 3 | (givers & 7)
        self.takers = ((takers >> 3) % n) << 3 | (takers & 7)

    @property
    def pools(self) -> list[Pool]:
        """The pools as `Pool` tuples."""
        out = []
        gs, ts = np.cumsum(self.g_count).tolist(), np.cumsum(self.t_count).tolist()
        givers, gives = self.givers.tolist(), self.gives.tolist()
        takers, takes = self.takers.tolist(), self.takes.tolist()
        a = b = 0
        for k, (g, scope) in enumerate(zip(self.pool_group.tolist(), self.scopes, strict=True)):
            out.append(
                Pool(
                    g,
                    scope,
                    givers[a : gs[k]],
                    gives[a : gs[k]],
                    takers[b : ts[k]],
                    takes[b : ts[k]],
                )
            )
            a, b = gs[k], ts[k]
        return out

    def total(self) -> int:
        """Ticks matched over all groups."""
        if not len(self.gives):
            return 0
        return sum(np.add.reduceat(self.gives, _firsts(self.g_count)).tolist())

    def _paired(self) -> MatchTable:
        return _pair(self)


def _firsts(counts: Vec) -> Vec:
    return np.cumsum(counts) - counts


def _regroup(keys: Vec, values: Vec, counts: Vec, order: Vec) -> tuple[Vec, Vec]:
    """The entries of segments (of `counts` each, in order) with the segments put in
    `order`."""
    counts2 = counts[order]
    old = _firsts(counts)[order]
    at = np.arange(int(counts.sum()), dtype=_I64) + np.repeat(old - _firsts(counts2), counts2)
    return keys[at], values[at]


def _pair(p: VecPlan) -> MatchTable:
    """Pair each pool's providers with its receivers in key order (north-west corner),
    as `matching._pair` does. Each pool gives what it takes, so the pools laid end to
    end along one line of ticks pair exactly as each alone: the whole plan is paired
    in one pass (in stretches whose ticks fit in int64)."""
    ids = [q[1] for q in p.leaves]
    names = list(dict.fromkeys(ids))
    number = {x: i for i, x in enumerate(names)}
    name_of = np.fromiter(map(number.__getitem__, ids), _I64, len(ids))
    out = MatchTable(p.groups, names)
    out.group = p.pool_group.tolist()
    out.scopes = p.scopes
    if not len(p.gives):
        return out
    providers = name_of[p.givers >> 3]
    receivers = name_of[p.takers >> 3]
    takes, t_count = p.takes, p.t_count
    # one receiver's several ranks, or one party at several leaves, side by side in
    # a pool: one receiver
    pool_of_t = np.repeat(np.arange(len(t_count)), t_count)
    fresh = np.ones(len(receivers), bool)
    fresh[1:] = (receivers[1:] != receivers[:-1]) | (pool_of_t[1:] != pool_of_t[:-1])
    if not fresh.all():
        runs = np.flatnonzero(fresh)
        takes = np.add.reduceat(takes, runs)
        receivers = receivers[runs]
        t_count = np.bincount(pool_of_t[runs], minlength=len(t_count))
    totals = np.add.reduceat(p.gives, _firsts(p.g_count)).tolist()
    provider, receiver, quantity = array("q"), array("q"), array("q")
    starts = [0]
    g_end, t_end = np.cumsum(p.g_count).tolist(), np.cumsum(t_count).tolist()
    k = 0
    while k < len(totals):
        # a stretch of pools whose ticks fit in int64 (at least one pool)
        j, run = k + 1, totals[k]
        while j < len(totals) and run + totals[j] < _GROUP:
            run += totals[j]
            j += 1
        ga, gb = (g_end[k - 1] if k else 0), g_end[j - 1]
        ta, tb = (t_end[k - 1] if k else 0), t_end[j - 1]
        ends = np.concatenate((np.cumsum(p.gives[ga:gb]) << 1, (np.cumsum(takes[ta:tb]) << 1) | 1))
        ends.sort(kind="stable")  # two sorted runs: one merge
        points = ends >> 1
        qty = np.diff(points, prepend=0)
        tag = ends & 1
        before = np.cumsum(tag) - tag  # receivers' ends before each end
        keep = qty > 0
        row = np.flatnonzero(keep)
        provider.frombytes(providers[ga:gb][row - before[keep]].tobytes())
        receiver.frombytes(receivers[ta:tb][before[keep]].tobytes())
        quantity.frombytes(qty[keep].tobytes())
        pool_end = np.cumsum(totals[k:j])
        rows_end = np.searchsorted(points[keep], pool_end, side="right")
        starts += (rows_end + starts[-1]).tolist()
        k = j
    out.provider, out.receiver, out.quantity = provider, receiver, quantity
    out.starts = starts
    return out
