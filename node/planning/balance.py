"""The balance of needs against capacities, per scope, item and period.

`BalanceIndex` keeps running sums at every level of the scope tree as the replica
changes (it listens to the replica), so a query for a federation costs as much as
one for a commune. `compute_balance` recomputes from records and is the reference
the index is tested against. Sums are exact fractions in base units; every replica
holding the same records returns the same figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from node import model
from node.crdt.record import Record

INTENT_KINDS = ("need", "capacity")


@dataclass(frozen=True)
class BalanceRow:
    """Needs against capacities for one item and period within a scope.

    Attributes:
        item, period: what and when.
        dimension, unit: the dimension and its base unit the sums are in.
        needs, capacities: exact totals in base units.
        nodes: how many distinct origins contributed.
    """

    scope: str
    item: str
    period: str
    dimension: str
    unit: str
    needs: Fraction
    capacities: Fraction
    nodes: int

    @property
    def balance(self) -> Fraction:
        return self.capacities - self.needs

    @property
    def coverage(self) -> Fraction | None:
        """capacities / needs, or None where nothing is needed."""
        return self.capacities / self.needs if self.needs else None

    @property
    def deficit(self) -> bool:
        return self.capacities < self.needs

    def as_json(self) -> dict[str, object]:
        cov = self.coverage
        return {
            "scope": self.scope,
            "item": self.item,
            "period": self.period,
            "dimension": self.dimension,
            "unit": self.unit,
            "needs": decimal_str(self.needs),
            "capacities": decimal_str(self.capacities),
            "balance": decimal_str(self.balance),
            "coverage": None if cov is None else decimal_str(cov, places=4),
            "nodes": self.nodes,
        }


def decimal_str(x: Fraction, places: int = 6) -> str:
    """A fraction as a plain decimal string, rounded half-even to `places`."""
    d = (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1).scaleb(-places))
    s = format(d.normalize(), "f")
    return s if s != "-0" else "0"


GroupKey = tuple[str, str, str]  # item, dimension, period


# Sums are exact integers in ticks of 1 / TICKS base unit: quantities have at most 6
# decimals and every unit factor's denominator divides 3000 (g, min, ml, Wh, ...).
# Integer sums cost a tenth of Fraction sums on the hot path of every merge.
TICKS = 3000 * 10**6
_TICKS_PER_UNIT = {sym: u.factor * TICKS for sym, u in model.UNITS.items()}
assert all(t.denominator == 1 for t in _TICKS_PER_UNIT.values()), "unit factor too fine"
_MAX_CACHE = 65536
_ticks_cache: dict[tuple[str, str], int] = {}


@dataclass
class _Acc:
    needs: int = 0  # ticks
    capacities: int = 0
    origins: Counter[bytes] = field(default_factory=Counter)

    def empty(self) -> bool:
        return not self.origins


def _ticks(qty: str, unit: str) -> int:
    key = (qty, unit)
    t = _ticks_cache.get(key)
    if t is None:
        exact = Fraction(model.parse_quantity(qty)) * _TICKS_PER_UNIT[unit]
        t = exact.numerator  # 6 decimals at most: a whole number of ticks
        if len(_ticks_cache) < _MAX_CACHE:
            _ticks_cache[key] = t
    return t


def _contribution(r: Record) -> tuple[GroupKey, str, int] | None:
    """(group, kind, amount in ticks) of a need or capacity record, else None."""
    if r.kind not in INTENT_KINDS or r.body is None:
        return None
    b = r.body
    unit = str(b["unit"])
    amount = _ticks(str(b["qty"]), unit)
    return (str(b["item"]), model.UNITS[unit].dimension, str(b["period"])), r.kind, amount


class BalanceIndex:
    """Running balance sums at every scope level; attach with `replica.add_listener`."""

    def __init__(self) -> None:
        self._acc: dict[str, dict[GroupKey, _Acc]] = {}
        self._children: dict[str, Counter[str]] = {}
        self._chains: dict[str, list[str]] = {}

    def __call__(self, old: Record | None, new: Record) -> None:
        if old is not None:
            self._apply(old, -1)
        self._apply(new, +1)

    def add(self, r: Record) -> None:
        """Count a record (a slot winner) that was left out so far."""
        self._apply(r, +1)

    def remove(self, r: Record) -> None:
        """Stop counting a record counted so far."""
        self._apply(r, -1)

    def _apply(self, r: Record, sign: int) -> None:
        c = _contribution(r)
        if c is None:
            return
        group, kind, amount = c
        chain = self._chains.get(r.scope)
        if chain is None:
            chain = self._chains[r.scope] = model.ancestors(r.scope)
        for i, scope in enumerate(chain):
            accs = self._acc.setdefault(scope, {})
            acc = accs.get(group)
            if acc is None:
                acc = accs[group] = _Acc()
            if kind == "need":
                acc.needs += sign * amount
            else:
                acc.capacities += sign * amount
            acc.origins[r.origin] += sign
            if acc.origins[r.origin] <= 0:
                del acc.origins[r.origin]
            if acc.empty():
                del accs[group]
            if i + 1 < len(chain):
                kids = self._children.setdefault(scope, Counter())
                kids[chain[i + 1]] += sign
                if kids[chain[i + 1]] <= 0:
                    del kids[chain[i + 1]]

    def rows(
        self, scope: str, *, period: str | None = None, item: str | None = None
    ) -> list[BalanceRow]:
        """The balance for `scope` (and everything under it), sorted by item and period."""
        return _rows(scope, self._acc.get(scope, {}), period, item)

    def children(self, scope: str) -> list[str]:
        """Scopes one level below `scope` that hold needs or capacities."""
        return sorted(self._children.get(scope, {}))


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
    return _rows(scope, accs, period, item)


def _rows(
    scope: str, accs: dict[GroupKey, _Acc], period: str | None, item: str | None
) -> list[BalanceRow]:
    if period is not None:
        # Asked for a period: every record of it or of a period inside it counts
        # (months in quarters and years, ISO weeks in the month of their Thursday).
        within: dict[GroupKey, _Acc] = {}
        for (it, dim, per), acc in accs.items():
            if model.period_within(per, period):
                total = within.setdefault((it, dim, period), _Acc())
                total.needs += acc.needs
                total.capacities += acc.capacities
                total.origins.update(acc.origins)
        accs, period = within, None
    out = []
    for (it, dim, per), acc in sorted(accs.items()):
        if item is None or it == item:
            out.append(
                BalanceRow(
                    scope,
                    it,
                    per,
                    dim,
                    model.DIMENSIONS[dim],
                    Fraction(acc.needs, TICKS),
                    Fraction(acc.capacities, TICKS),
                    len(acc.origins),
                )
            )
    return out
