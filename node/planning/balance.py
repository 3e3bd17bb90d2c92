"""The balance of needs against capacities, per scope, item and period.

`BalanceIndex` counts each need and capacity in its own scope as the replica changes
(it listens to the replica) and adds up the scopes above when asked, caching the sums
until something under them changes: merging costs the same at every depth, and a
federation's balance after a change re-adds only the changed branch.
`compute_balance` recomputes from records and is the reference the index is tested
against. Sums are exact integers (ticks of a base unit), printed exactly; every
replica holding the same records returns the same figures.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from node import model
from node.crdt.record import Record, intent_fields

INTENT_KINDS = ("need", "capacity")


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """Needs against capacities for one item and period within a scope.

    Attributes:
        item, period: what and when.
        dimension, unit: the dimension and its base unit the sums are in.
        needs_ticks, capacities_ticks: exact totals in ticks (1 / `TICKS` base unit).
        nodes: how many distinct origins contributed.
    """

    scope: str
    item: str
    period: str
    dimension: str
    unit: str
    needs_ticks: int
    capacities_ticks: int
    nodes: int

    @property
    def needs(self) -> Fraction:
        """Exact total in base units."""
        return Fraction(self.needs_ticks, TICKS)

    @property
    def capacities(self) -> Fraction:
        return Fraction(self.capacities_ticks, TICKS)

    @property
    def balance(self) -> Fraction:
        return Fraction(self.capacities_ticks - self.needs_ticks, TICKS)

    @property
    def coverage(self) -> Fraction | None:
        """capacities / needs, or None where nothing is needed."""
        n = self.needs_ticks
        return Fraction(self.capacities_ticks, n) if n else None

    @property
    def deficit(self) -> bool:
        return self.capacities_ticks < self.needs_ticks

    def as_json(self) -> dict[str, object]:
        n, c = self.needs_ticks, self.capacities_ticks
        return {
            "scope": self.scope,
            "item": self.item,
            "period": self.period,
            "dimension": self.dimension,
            "unit": self.unit,
            "needs": ticks_str(n),
            "capacities": ticks_str(c),
            "balance": ticks_str(c - n),
            "coverage": _fixed(c, n, 4) if n else None,
            "nodes": self.nodes,
        }


def decimal_str(x: Fraction, places: int = 6) -> str:
    """A fraction as a plain decimal string, rounded half-even to `places`."""
    return ratio_str(x.numerator, x.denominator, places)


def ratio_str(num: int, den: int, places: int) -> str:
    """`num / den` (den > 0) as `decimal_str` prints it, without making the fraction."""
    return _fixed(num, den, places)


def ticks_str(ticks: int) -> str:
    """An amount in ticks as a plain decimal string of base units (6 places, half-even):
    `decimal_str(Fraction(ticks, TICKS))` in integer arithmetic."""
    whole, part = divmod(ticks, TICKS)
    if not part:  # a whole number of base units (most sums of most items)
        return str(whole)
    q, r = divmod(ticks, _TICKS_PER_MICRO_UNIT)  # floor: 0 <= r < 3000
    if r > 1500 or (r == 1500 and q & 1):
        q += 1
    return _micro_str(q, 6)


def _fixed(num: int, den: int, places: int) -> str:
    # Exact: num / den rounded half-even to `places` decimals in integers.
    q, r = divmod(num * 10**places, den)  # floor division: 0 <= r < den
    if 2 * r > den or (2 * r == den and q & 1):
        q += 1
    return _micro_str(q, places)


def _micro_str(q: int, places: int) -> str:
    """q / 10**places without trailing zeros ("2.5", "100", "0"), as Decimal's
    normalize() and format "f" print it."""
    # By slicing the digits: a deep balance view prints ~30,000 of these.
    if q < 0:
        return "-" + _micro_str(-q, places)
    digits = str(q)
    if len(digits) <= places:
        if not q:
            return "0"
        digits = digits.rjust(places + 1, "0")
    frac = digits[-places:].rstrip("0")
    return f"{digits[:-places]}.{frac}" if frac else digits[:-places]


GroupKey = tuple[str, str, str]  # item, dimension, period
# One row of a balance without its scope: item, dimension, period, needs and capacities
# in ticks, contributing nodes. Views print these straight (no `BalanceRow` each).
Entry = tuple[str, str, str, int, int, int]


# Sums are exact integers in ticks of 1 / TICKS base unit: quantities have at most 6
# decimals and every unit factor's denominator divides 3000 (g, min, ml, Wh, ...).
# Integer sums cost a tenth of Fraction sums on the hot path of every merge.
TICKS = 3000 * 10**6
_TICKS_PER_MICRO_UNIT = TICKS // 10**6  # ticks in a millionth of a base unit
# Ticks in a millionth of one of each unit: a quantity of q millionths is q * this.
_exact = {sym: u.factor * _TICKS_PER_MICRO_UNIT for sym, u in model.UNITS.items()}
assert all(t.denominator == 1 for t in _exact.values()), "unit factor too fine"
_PER_MICRO = {sym: int(t) for sym, t in _exact.items()}
_DIMENSION = {sym: u.dimension for sym, u in model.UNITS.items()}
_MAX_CACHE = 65536
_ticks_cache: dict[tuple[str, str], tuple[int, str]] = {}


@dataclass
class _Acc:
    needs: int = 0  # ticks
    capacities: int = 0
    origins: Counter[bytes] = field(default_factory=Counter)


def _ticks(qty: str, unit: str) -> int:
    """A record's quantity (valid: digits, at most 6 decimals) in ticks."""
    return _amount(qty, unit)[0]


def _amount(qty: str, unit: str) -> tuple[int, str]:
    """(ticks, dimension) of a valid quantity and unit, in integers (no Decimal)."""
    key = (qty, unit)
    got = _ticks_cache.get(key)
    if got is None:
        whole, _, frac = qty.partition(".")
        micro = int(whole) * 10**6 + (int(frac.ljust(6, "0")) if frac else 0)
        got = (micro * _PER_MICRO[unit], _DIMENSION[unit])
        if len(_ticks_cache) < _MAX_CACHE:
            _ticks_cache[key] = got
    return got


def _contribution(r: Record) -> tuple[GroupKey, str, int] | None:
    """(group, kind, amount in ticks) of a need or capacity record, else None."""
    if r.kind not in INTENT_KINDS or r.body is None:
        return None
    b = r.body
    amount, dim = _amount(str(b["qty"]), str(b["unit"]))
    return (str(b["item"]), dim, str(b["period"])), r.kind, amount


# An aggregate: per group [needs ticks, capacities ticks, the contributing origins (a
# set, or a scope's own counts by origin: read only), ...]; read by index, never
# unpacked. A scope's own counts of a group are, while one origin has records there
# (most groups of a commune), a tuple (needs, capacities, (origin,), records): the
# origin alone as a 1-tuple shared by all its groups, read like the set (iterated,
# len, set) for a fifth of the memory (a dict of one is 184 bytes). Such a tuple is
# never changed but replaced, so indexes in one process that count the same records
# may share it (`BalanceIndex`'s `shared`). A group of several origins has a list
# [needs, capacities, {origin: records}].
_Own = dict[GroupKey, Any]  # a scope's own counts: lists, or one origin's tuples
_Sums = dict[GroupKey, list[Any]]
_Read = Mapping[GroupKey, Sequence[Any]]  # either, read only
_Single = tuple[int, int, tuple[bytes], int]


class BalanceIndex:
    """Balance sums for every scope; attach with `replica.add_listener`.

    An update touches only the record's own scope: per (item, dimension, period) its
    sums and a count of records per origin. The sums of a scope with everything under
    it are added up when asked and cached; an update drops the cached sums of its
    scope and of the scopes above it (once: a scope's sums are cached only while
    those of every scope under it are). So merging costs the same at every depth,
    and a query for a federation after a change re-adds only the changed branch.
    `build` fills a fresh index from many records at once.

    Args:
        shared: a map one origin's counts of a group are kept in once, for many
            indexes in one process (the simnet's); None: this index's own.
    """

    def __init__(self, shared: dict[_Single, _Single] | None = None) -> None:
        self._own: dict[str, _Own] = {}  # [needs, caps, {origin: n}] or one origin's
        self._kids: dict[str, set[str]] = {}  # the scope tree of every scope seen
        self._sums: dict[str, _Read] = {}  # cached aggregates
        self._chains: dict[str, list[str]] = {}
        # One key object per group for every scope that counts it (a federation holds
        # thousands of scopes and a few hundred groups); bounded, like `_ticks_cache`.
        self._groups: dict[GroupKey, GroupKey] = {}
        self._sole: dict[bytes, tuple[bytes]] = {}  # one (origin,) per origin
        # One origin's counts, shared by every index given this map (the simnet's
        # replicas each count the same records: one tuple for all of them).
        self._shared = shared

    @classmethod
    def build(cls, records: Iterable[Record]) -> BalanceIndex:
        """An index counting `records` (slot winners), built in one pass."""
        index = cls()
        index.add_all(records)
        return index

    def add_all(self, records: Iterable[Record]) -> None:
        """Count many records (slot winners) left out so far, dropping cached sums once."""
        # `_count(r, +1)` inlined: a store of 100,000 records is counted at start-up.
        # The fields are read as the store was loaded (`intent_fields`), not from bodies.
        own_of, cache = self._own, _ticks_cache
        for r in records:
            kind = r.kind
            if kind != "need" and kind != "capacity":
                continue
            fields = intent_fields(r)
            if fields is None:
                continue
            item, unit, period, qty = fields
            got = cache.get((qty, unit)) if type(qty) is str else None
            if got is None:
                got = _amount(str(qty), str(unit))
            group = (item, got[1], period)
            own = own_of.get(r.scope)
            if own is None:
                own = self._new_scope(r.scope)
            acc = own.get(group)
            if acc is None:
                sole = self._sole_of(r.origin)
                own[self._group(group)] = self._single(
                    (got[0], 0, sole, 1) if kind == "need" else (0, got[0], sole, 1)
                )
            else:
                self._change(own, group, acc, kind, got[0], r.origin, 1)
        self._sums.clear()

    def __call__(self, old: Record | None, new: Record) -> None:
        if old is not None:
            self._apply(old, -1)
        # `_apply(new, +1)`, one call less: every record merged passes here.
        scope = self._count(new, 1)
        if scope is not None and scope in self._sums:
            self._drop(scope)

    def add(self, r: Record) -> None:
        """Count a record (a slot winner) that was left out so far."""
        self._apply(r, +1)

    def remove(self, r: Record) -> None:
        """Stop counting a record counted so far."""
        self._apply(r, -1)

    def _apply(self, r: Record, sign: int) -> None:
        scope = self._count(r, sign)
        if scope is not None and scope in self._sums:
            self._drop(scope)

    def _drop(self, scope: str) -> None:
        """Drop the cached sums of `scope` and the scopes above it, up to the first that
        has none (nothing above that one has any either)."""
        sums = self._sums
        for s in reversed(self._chains[scope]):
            if sums.pop(s, None) is None:
                break

    def _count(self, r: Record, sign: int) -> str | None:
        """Add (sign +1) or take away (-1) a record in its own scope; returns the scope
        if it is a need or capacity."""
        kind = r.kind
        if kind != "need" and kind != "capacity":
            return None
        b: Mapping[str, Any] | None = r.body
        if b is None:
            return None
        qty, unit = b["qty"], b["unit"]
        got = _ticks_cache.get((qty, unit)) if type(qty) is str else None
        if got is None:
            got = _amount(str(qty), str(unit))
        group = (b["item"], got[1], b["period"])
        scope = r.scope
        own = self._own.get(scope)
        if own is None:
            own = self._new_scope(scope)
        acc = own.get(group)
        if acc is None:
            if sign > 0:
                sole = self._sole_of(r.origin)
                own[self._group(group)] = self._single(
                    (got[0], 0, sole, 1) if kind == "need" else (0, got[0], sole, 1)
                )
                return scope
            own[self._group(group)] = acc = [0, 0, {}]
        self._change(own, group, acc, kind, got[0], r.origin, sign)
        return scope

    def _change(
        self, own: _Own, group: GroupKey, acc: Any, kind: str, amount: int, origin: bytes, sign: int
    ) -> None:
        """Count a record in (sign +1) or out (-1) of a group's own counts `acc`."""
        if type(acc) is tuple:
            needs, caps, sole, records = acc
            if sole[0] == origin:  # one origin still: a new tuple
                records += sign
                if records <= 0:
                    del own[group]
                elif kind == "need":
                    own[group] = self._single((needs + sign * amount, caps, sole, records))
                else:
                    own[group] = self._single((needs, caps + sign * amount, sole, records))
                return
            acc = own[group] = [needs, caps, {sole[0]: records}]  # a second origin
        acc[0 if kind == "need" else 1] += sign * amount
        origins = acc[2]
        n = origins.get(origin, 0) + sign
        if n > 0:
            origins[origin] = n
        else:
            del origins[origin]
            if not origins:
                del own[group]

    def _single(self, acc: _Single) -> _Single:
        """One origin's counts of a group (shared if asked)."""
        shared = self._shared
        return acc if shared is None else shared.setdefault(acc, acc)

    def _sole_of(self, origin: bytes) -> tuple[bytes]:
        got = self._sole.get(origin)
        if got is None:
            got = self._sole[origin] = (origin,)
        return got

    def _group(self, group: GroupKey) -> GroupKey:
        got = self._groups.get(group)
        if got is None:
            got = group
            if len(self._groups) < _MAX_CACHE:
                self._groups[group] = group
        return got

    def _new_scope(self, scope: str) -> _Own:
        chain = model.ancestors(scope)
        for i, s in enumerate(chain):
            if s not in self._own:
                self._own[s] = {}
                self._chains[s] = chain[: i + 1]
            self._sums.pop(s, None)  # a new branch: the sums above it change
        for parent, child in itertools.pairwise(chain):
            self._kids.setdefault(parent, set()).add(child)
        return self._own[scope]

    def _sum(self, scope: str) -> _Read:
        got = self._sums.get(scope)
        if got is not None:
            return got
        own = self._own.get(scope, {})
        kids = self._kids.get(scope)
        if not kids:
            # Nothing below (a commune): its sums are its own counts, shared rather than
            # copied (a change drops the scope's cached sums as it changes the counts),
            # which halves what the cache of a large federation holds.
            self._sums[scope] = own
            return own
        out: _Sums = {}
        for group, a in own.items():
            out[group] = [a[0], a[1], set(a[2])]
        for kid in kids:
            for group, a in self._sum(kid).items():
                acc = out.get(group)
                if acc is None:
                    out[group] = [a[0], a[1], set(a[2])]
                else:
                    acc[0] += a[0]
                    acc[1] += a[1]
                    acc[2].update(a[2])
        self._sums[scope] = out
        return out

    def rows(
        self, scope: str, *, period: str | None = None, item: str | None = None
    ) -> list[BalanceRow]:
        """The balance for `scope` (and everything under it), sorted by item and period."""
        return as_rows(scope, self.entries(scope, period=period, item=item))

    def entries(
        self, scope: str, *, period: str | None = None, item: str | None = None
    ) -> list[Entry]:
        """`rows` as plain tuples, made from the cached sums on every call: a view
        prints them straight, and nothing per row is kept (memory)."""
        return _entries(self._sum(scope), period, item)

    def warm(self, chunk: int = 64) -> Iterator[None]:
        """Add up every scope ahead of the first view, yielding after every `chunk`
        scopes (the index may change between steps: a change drops what it touched,
        as always).

        A node calls this after start, off the request path. It does not print the
        rows ahead: every scope's printed rows cost more memory than a small node can
        spare (~18 MB for 1,000 nodes x 50 items); a view prints its rows from the sums
        and keeps nothing of them.
        """
        # Deepest first: a scope's sums are made of its children's, cached by then.
        scopes = sorted(self._own, key=lambda s: -s.count("/"))
        for i, scope in enumerate(scopes):
            self._sum(scope)
            if i % chunk == chunk - 1:
                yield
        yield

    def children(self, scope: str) -> list[str]:
        """Scopes one level below `scope` that hold needs or capacities."""
        return sorted(k for k in self._kids.get(scope, ()) if self._sum(k))


def compute_balance(
    records: Iterable[Record], scope: str, *, period: str | None = None, item: str | None = None
) -> list[BalanceRow]:
    """The balance for `scope` from scratch (the reference for `BalanceIndex`)."""
    accs: dict[GroupKey, _Acc] = {}
    for r in records:
        if not model.in_scope(r.scope, scope):
            continue
        c = _contribution(r)
        if c is None:
            continue
        group, kind, amount = c
        acc = accs.setdefault(group, _Acc())
        if kind == "need":
            acc.needs += amount
        else:
            acc.capacities += amount
        acc.origins[r.origin] += 1
    sums = {g: [a.needs, a.capacities, set(a.origins)] for g, a in accs.items()}
    return as_rows(scope, _entries(sums, period, item))


def as_rows(scope: str, entries: Iterable[Entry]) -> list[BalanceRow]:
    """Entries of `scope` as `BalanceRow`s."""
    units = model.DIMENSIONS
    return [
        BalanceRow(scope, it, per, dim, units[dim], n, c, nodes)
        for it, dim, per, n, c, nodes in entries
    ]


def _entries(sums: _Read, period: str | None, item: str | None) -> list[Entry]:
    if period is not None:
        # Asked for a period: every record of it or of a period inside it counts
        # (months in quarters and years, ISO weeks in the month of their Thursday).
        within: _Sums = {}
        for (it, dim, per), a in sums.items():
            if (item is None or it == item) and model.period_within(per, period):
                total = within.get((it, dim, period))
                if total is None:
                    within[(it, dim, period)] = [a[0], a[1], set(a[2])]
                else:
                    total[0] += a[0]
                    total[1] += a[1]
                    total[2].update(a[2])
        sums = within
    return [
        (it, dim, per, a[0], a[1], len(a[2]))
        for (it, dim, per), a in sorted(sums.items())
        if item is None or it == item
    ]
