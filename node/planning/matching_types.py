"""What the two ways of matching share: positions and the scope tree in, a plan and
its table of matches out.

`node.planning.matching` matches in Python ints, `node.planning.matching_vec` in
int64 vectors (numpy); both import their types from here and neither from the other
for them, so `matching` loads `matching_vec` (and numpy) only when a matching is
large. A plan holds per pool who gives and who takes how much; `Plan.table` pairs it
into a `MatchTable` once, and every plan is read the same way from there.

Sort keys: an entry of a group is named by `leaf << SLOT_BITS | slot`, the leaf its
party's index in `ScopeTree.leaves`, the slot 0 for a surplus and r + 1 for a deficit
of need rank r.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, MutableSequence
from itertools import compress, repeat
from operator import or_
from typing import NamedTuple

from node import model
from node.planning.balance import GroupKey

__all__ = [
    "SLOT_BITS",
    "Match",
    "MatchTable",
    "Party",
    "Plan",
    "Pool",
    "Position",
    "Positions",
    "ScopeTree",
]

SLOT_BITS = 3  # a sort key is leaf << SLOT_BITS | slot: eight slots a leaf


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


class ScopeTree:
    """The parties of all groups in (scope path, party id) order, and the scopes that
    may hold a match, each with the range of sort keys of the leaves under it, in
    levels: deepest first, each level in path order."""

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
        # parents: deepest first; scopes of one depth are disjoint.
        scopes = [s for s in lo if hi[s] - lo[s] > 1]
        scopes.sort(key=lambda s: (-s.count("/"), _path(s)))
        self.levels: list[list[tuple[str, int, int]]] = []
        depth = -1
        for s in scopes:
            if s.count("/") != depth:
                depth = s.count("/")
                self.levels.append([])
            self.levels[-1].append((s, lo[s] << SLOT_BITS, hi[s] << SLOT_BITS))


class Pool(NamedTuple):
    """What one pool matched, compactly: its providers and what each gives, its
    receivers and what each takes, each named by its sort key (leaf << 3 | slot), in
    key order. Paired north-west corner, they are the pool's matches."""

    group: int  # index into the plan's groups
    scope: str
    givers: list[int]
    gives: list[int]
    takers: list[int]
    takes: list[int]


class Plan(ABC):
    """Every group's matches in compact form: per pool, who gives and who takes how
    much. `table` pairs them up into the matches, column by column; the plan alone
    already fixes every quantity, so totals need no pairs.

    Attributes:
        leaves: the parties, in (scope path, party id) order.
        groups: the groups matched, sorted.
    """

    def __init__(self, leaves: list[Party], groups: list[GroupKey]) -> None:
        self.leaves = leaves
        self.groups = groups
        self._table: MatchTable | None = None

    @abstractmethod
    def total(self) -> int:
        """Ticks matched over all groups."""

    @abstractmethod
    def _paired(self) -> MatchTable:
        """The pools' providers and receivers paired into matches (north-west corner)."""

    def table(self) -> MatchTable:
        """The matches, as columns of ints (made once, then kept)."""
        if self._table is None:
            self._table = self._paired()
        return self._table

    def __iter__(self) -> Iterator[Match]:
        return iter(self.table())

    def matches(self) -> list[Match]:
        return self.table().matches()


class MatchTable:
    """The matches of a plan as parallel columns: row r ships `quantity[r]` ticks from
    party `names[provider[r]]` to party `names[receiver[r]]`. The rows of pool k are
    `starts[k]:starts[k + 1]`; the pool's group is `groups[group[k]]`, its scope
    `scopes[k]`. Rows are in the order `match` lists them.

    A federation has millions of matches: as columns they are three ints a row (no
    object per match), and `Match` tuples are made only for the rows a caller reads
    (iteration is lazy, pool by pool; `rows` reads a page).
    """

    def __init__(self, groups: list[GroupKey], names: list[str]) -> None:
        self.groups = groups
        self.names = names
        self.group: list[int] = []
        self.scopes: list[str] = []
        self.starts: list[int] = [0]
        # lists, or int64 `array`s when made from vectors (`matching_vec`)
        self.provider: MutableSequence[int] = []
        self.receiver: MutableSequence[int] = []
        self.quantity: MutableSequence[int] = []

    def __len__(self) -> int:
        return len(self.quantity)

    def total(self) -> int:
        """Ticks matched."""
        return sum(self.quantity)

    def __iter__(self) -> Iterator[Match]:
        for k in range(len(self.scopes)):
            yield from self._pool(k, self.starts[k], self.starts[k + 1])

    def matches(self) -> list[Match]:
        """Every match, as `Match` tuples. A Match holds strs and ints only, so a caller
        that makes a million of them may pause the cyclic collector meanwhile (the bench
        does; this core stays free of process-wide state)."""
        return list(self)

    def rows(self, start: int, stop: int) -> list[Match]:
        """The matches of rows start:stop (a page)."""
        start, stop, _ = slice(start, stop).indices(len(self))
        out: list[Match] = []
        k = bisect_right(self.starts, start) - 1
        while start < stop:
            end = min(stop, self.starts[k + 1])
            out += self._pool(k, start, end)
            start, k = end, k + 1
        return out

    def involving(self, parties: Collection[str]) -> list[Match]:
        """The matches whose provider or receiver is one of `parties`, in row order."""
        flag = [n in parties for n in self.names]
        out: list[Match] = []
        for k in range(len(self.scopes)):
            a, b = self.starts[k], self.starts[k + 1]
            keep = list(
                map(
                    or_,
                    map(flag.__getitem__, self.provider[a:b]),
                    map(flag.__getitem__, self.receiver[a:b]),
                )
            )
            if True in keep:
                out += compress(self._pool(k, a, b), keep)
        return out

    def _pool(self, k: int, a: int, b: int) -> Iterator[Match]:
        """Rows a:b, all of pool k, as `Match` tuples."""
        names = self.names
        item, dim, period = self.groups[self.group[k]]
        return map(
            _new,
            repeat(Match),
            zip(
                repeat(item),
                repeat(dim),
                repeat(period),
                map(names.__getitem__, self.provider[a:b]),
                map(names.__getitem__, self.receiver[a:b]),
                self.quantity[a:b],
                repeat(self.scopes[k]),
            ),
        )


_new = tuple.__new__
