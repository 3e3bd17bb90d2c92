"""The opinion map of a proposal: groups of members who react alike, the statements
that characterise each group and those that bridge them (in the spirit of Polis).

A pure function of the reactions (agree +1, disagree -1, pass 0; a statement a member
did not react to counts as 0), in exact integer arithmetic, with a seed derived from
the proposal id: every replica that holds the same reactions draws the same map.

How, and why this way:

* Clustering is k-means directly on the reaction vectors (no projection first: an
  exact projection would cost more than it saves at this size). Squared distances are
  compared exactly: for a centroid with sums ``m`` over ``n`` members,
  ``n^2 |x - m/n|^2 = n^2 |x|^2 - 2 n x.m + |m|^2``, all integers.
* Speed in pure Python comes from bitsets. Each member's agrees and disagrees are two
  integers with one bit per statement; each statement's agreeing and disagreeing
  members are two integers with one bit per member; a group is a member bitset. A
  centroid's sums are popcounts, and ``x.m`` is a sum over the bit planes of
  ``m + n`` (non-negative) of popcounts of the member's bitsets: about two dozen
  ``int.bit_count`` calls per member and group instead of a loop over statements.
* Initialisation is farthest-first: the first centre is the member with the smallest
  SHA-256(seed, key), each next one the member farthest from the centres chosen
  (ties to the smaller hash). Lloyd's iterations run until no member moves (at most
  MAX_ROUNDS); a member equally near two groups joins the lower-numbered.
* The number of groups k (2..MAX_GROUPS) is the one with the largest
  Calinski-Harabasz index, compared as exact fractions (ties to the smaller k).
* A statement characterises a group when the group's agree (or disagree) share,
  smoothed as (count+1)/(reactions+2), is above one half and above the rest's; it is
  ranked by the ratio of the two shares. A statement bridges when every group's
  smoothed agree share is above BRIDGE (three in five), ranked by the least of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = ["AGREE", "DISAGREE", "PASS", "OpinionMap", "opinion_map"]

AGREE, DISAGREE, PASS = 1, -1, 0
DOMAIN = b"allmende/opinions/1\x00"
MAX_GROUPS = 4
MAX_ROUNDS = 12
TOP = 5
BRIDGE = Fraction(3, 5)


@dataclass(frozen=True)
class Group:
    """One opinion group: its members and the statements that set it apart."""

    members: tuple[str, ...]
    agrees: tuple[str, ...]  # statements it agrees with more than the others
    disagrees: tuple[str, ...]  # statements it disagrees with more than the others


@dataclass(frozen=True)
class OpinionMap:
    """Groups (largest first, ties by first member) and bridging statements."""

    participants: int
    statements: int
    groups: tuple[Group, ...]
    bridging: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "participants": self.participants,
            "statements": self.statements,
            "groups": [
                {
                    "members": list(g.members),
                    "agrees": list(g.agrees),
                    "disagrees": list(g.disagrees),
                }
                for g in self.groups
            ],
            "bridging": list(self.bridging),
        }


def _popcount(x: int) -> int:
    return x.bit_count()


class _Data:
    """The reactions as bitsets (see the module docstring)."""

    def __init__(
        self,
        members: Sequence[str],
        statements: Sequence[str],
        reactions: Mapping[str, Mapping[str, int]],
    ) -> None:
        index = {s: i for i, s in enumerate(statements)}
        self.agree = [0] * len(members)  # per member: statement bits
        self.disagree = [0] * len(members)
        self.s_agree = [0] * len(statements)  # per statement: member bits
        self.s_disagree = [0] * len(statements)
        self.s_seen = [0] * len(statements)
        for p, m in enumerate(members):
            a = d = 0
            for s, r in reactions[m].items():
                i = index[s]
                self.s_seen[i] |= 1 << p
                if r == AGREE:
                    a |= 1 << i
                    self.s_agree[i] |= 1 << p
                elif r == DISAGREE:
                    d |= 1 << i
                    self.s_disagree[i] |= 1 << p
            self.agree[p], self.disagree[p] = a, d
        self.norm = [
            _popcount(a) + _popcount(d) for a, d in zip(self.agree, self.disagree, strict=True)
        ]
        self.n_members, self.n_statements = len(members), len(statements)

    def sums(self, group: int) -> list[int]:
        """Per statement, the sum of the group's reactions."""
        return [
            _popcount(a & group) - _popcount(d & group)
            for a, d in zip(self.s_agree, self.s_disagree, strict=True)
        ]

    def dots(self, sums: Sequence[int], n: int) -> list[int]:
        """Per member, x . sums, through the bit planes of sums + n (>= 0)."""
        shifted = [v + n for v in sums]
        planes = []
        for b in range(max(shifted, default=0).bit_length()):
            bits = 0
            for i, v in enumerate(shifted):
                if v >> b & 1:
                    bits |= 1 << i
            planes.append(bits)
        pairs = list(enumerate(planes))
        pc = int.bit_count
        out = []
        for a, d in zip(self.agree, self.disagree, strict=True):
            acc = 0
            for b, plane in pairs:
                acc += (pc(a & plane) - pc(d & plane)) << b
            out.append(acc - n * (pc(a) - pc(d)))
        return out


def _assign(data: _Data, groups: list[int]) -> tuple[list[int], Fraction]:
    """Each member's nearest centroid, and the within-group sum of squares."""
    cents = []
    for g in groups:
        n = _popcount(g)
        sums = data.sums(g)
        cents.append((n, sums, sum(v * v for v in sums), data.dots(sums, n)))
    labels = []
    for p in range(data.n_members):
        best, best_d, best_n2 = 0, 0, 1
        for k, (n, _, mm, dots) in enumerate(cents):
            if n == 0:
                continue
            d = n * n * data.norm[p] - 2 * n * dots[p] + mm  # n^2 * squared distance
            n2 = n * n
            if k == 0 or cents[best][0] == 0 or d * best_n2 < best_d * n2:
                best, best_d, best_n2 = k, d, n2
        labels.append(best)
    # Within-group sum of squares: sum |x|^2 - |m|^2 / n over the groups as they were.
    wss = Fraction(sum(data.norm))
    for n, _, mm, _ in cents:
        if n:
            wss -= Fraction(mm, n)
    return labels, wss


def _kmeans(data: _Data, order: Sequence[int], k: int) -> tuple[list[int], Fraction]:
    """k groups (bitsets over members) by farthest-first seeding and Lloyd rounds."""
    centres = [order[0]]
    rank = {p: i for i, p in enumerate(order)}

    # Squared distance of each member to its nearest chosen centre (single members).
    def dist2(p: int, q: int) -> int:
        x = (data.agree[p] ^ data.agree[q]) | (data.disagree[p] ^ data.disagree[q])
        both = (data.agree[p] & data.disagree[q]) | (data.disagree[p] & data.agree[q])
        return _popcount(x) + 3 * _popcount(both)  # |x_p - x_q|^2 for +-1/0 entries

    nearest = [dist2(p, centres[0]) for p in range(data.n_members)]
    while len(centres) < k:
        far = max(order, key=lambda p: (nearest[p], -rank[p]))
        if nearest[far] == 0:
            break
        centres.append(far)
        nearest = [min(nearest[p], dist2(p, far)) for p in range(data.n_members)]
    groups = [1 << c for c in centres]
    for _ in range(MAX_ROUNDS):
        labels, wss = _assign(data, groups)
        moved = [0] * len(groups)
        for p, g in enumerate(labels):
            moved[g] |= 1 << p
        moved = [g for g in moved if g]
        if moved == groups:
            return groups, wss
        groups = moved
    return groups, _assign(data, groups)[1]


def _shares(data: _Data, group: int) -> list[tuple[Fraction, Fraction]]:
    """Per statement, the group's smoothed (agree, disagree) shares."""
    out = []
    for a, d, seen in zip(data.s_agree, data.s_disagree, data.s_seen, strict=True):
        v = _popcount(seen & group)
        out.append(
            (Fraction(_popcount(a & group) + 1, v + 2), Fraction(_popcount(d & group) + 1, v + 2))
        )
    return out


def opinion_map(proposal: str, reactions: Mapping[str, Mapping[str, int]]) -> OpinionMap:
    """The opinion map of `proposal` from `reactions` {member: {statement: +1/-1/0}}.

    Members with no agree or disagree are left out (they place nobody). Pure: the
    same reactions give the same map, whatever the order they were given in.
    """
    members = sorted(
        m for m, rs in reactions.items() if any(r in (AGREE, DISAGREE) for r in rs.values())
    )
    statements = sorted({s for m in members for s in reactions[m]})
    if not members:
        return OpinionMap(0, len(statements), (), ())
    data = _Data(members, statements, reactions)
    seed = hashlib.sha256(DOMAIN + proposal.encode()).digest()
    order = sorted(
        range(len(members)), key=lambda p: hashlib.sha256(seed + members[p].encode()).digest()
    )
    everyone = (1 << len(members)) - 1
    all_sums = data.sums(everyone)
    total_ss = sum(data.norm) - Fraction(sum(v * v for v in all_sums), len(members))
    n = len(members)
    best: tuple[Fraction, list[int]] | None = None
    for k in range(2, min(MAX_GROUPS, n) + 1):
        groups, wss = _kmeans(data, order, k)
        found = len(groups)
        if found < 2:  # everybody reacts alike: one group
            ch = Fraction(-1)
        elif wss == 0 or n == found:  # every group reacts as one: nothing to gain
            ch = Fraction(10**30)
        else:
            ch = ((total_ss - wss) / (found - 1)) / (wss / (n - found))
        if best is None or ch > best[0]:
            best = (ch, groups)
    groups = best[1] if best is not None else [everyone]
    groups.sort(key=lambda g: (-_popcount(g), (g & -g).bit_length()))
    result_groups = []
    shares = [_shares(data, g) for g in groups]
    for gi, g in enumerate(groups):
        rest = everyone & ~g
        rest_shares = (
            _shares(data, rest) if rest else [(Fraction(1, 2), Fraction(1, 2))] * len(statements)
        )
        agrees, disagrees = [], []
        for s, ((ai, di), (ao, do)) in enumerate(zip(shares[gi], rest_shares, strict=True)):
            if ai > Fraction(1, 2) and ai > ao:
                agrees.append((-(ai / ao), statements[s]))
            if di > Fraction(1, 2) and di > do:
                disagrees.append((-(di / do), statements[s]))
        result_groups.append(
            Group(
                tuple(members[p] for p in range(len(members)) if g >> p & 1),
                tuple(s for _, s in sorted(agrees)[:TOP]),
                tuple(s for _, s in sorted(disagrees)[:TOP]),
            )
        )
    bridging = sorted(
        (-min(sh[s][0] for sh in shares), statements[s])
        for s in range(len(statements))
        if all(sh[s][0] > BRIDGE for sh in shares)
    )
    return OpinionMap(
        len(members), len(statements), tuple(result_groups), tuple(s for _, s in bridging[:TOP])
    )
