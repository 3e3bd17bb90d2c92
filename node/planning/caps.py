"""Caps on scarce resources: decided by vote, shared among children, exact.

A cap is in force when a proposal carrying ``cap`` (`node.model.plan_kinds`) was made
by an admitted node, is closed, and its final result is ``yes`` -- the same rule
`node.governance.admission` applies to a region's decisions. Of several caps on one
resource for one scope and period the one that closes last counts (then the larger
id). Nothing else acts on a passed proposal: a cap is a pure function of the records.

Sharing: each child's quota is ``qty * w_c / sum(w)`` with
``w_c = equal * residents_c / residents + need * need_c / needs`` where ``need_c`` is
what the capacities under the child would draw at their declared maximum (a term whose
total is 0 is left out; with nothing left, children share equally). Quotas round to
whole units of the cap by largest remainder (ties to the earlier child scope), so the
shares add up to the cap exactly. A node under the cap's scope but under no child has a
share of 0.

A *budget* is one child's share with the capacities it covers: those under the child,
whose period lies within the cap's, that declare a use of the resource in its
dimension. Rounds (`node.planning.rounds`) never raise a capacity past its budget, and
`within_shares` trims the capacities matching may plan with so that none is exceeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import floor
from typing import Any

from node import model
from node.crdt.record import Record
from node.governance.errors import GovernanceError
from node.governance.ledger import Ledger, object_id
from node.governance.tally import results

__all__ = [
    "Budget",
    "Cap",
    "budgets",
    "caps_in_force",
    "largest_remainder",
    "shares",
]


@dataclass(frozen=True)
class Cap:
    """A cap in force.

    Attributes:
        id: the proposal that decided it.
        resource: what is capped (e.g. ``co2``).
        scope: the proposal's electorate.
        period: the period it covers (capacities of periods within it count).
        qty: the cap in whole `unit`s.
        unit: its unit.
        children: child scope -> residents.
        equal, need: the weights of sharing per resident and in proportion to need.
        closes: when the proposal closed (ms).
    """

    id: str
    resource: str
    scope: str
    period: str
    qty: int
    unit: str
    children: Mapping[str, int]
    equal: int
    need: int
    closes: int

    @property
    def dimension(self) -> str:
        return model.unit(self.unit).dimension

    def base(self, amount: Fraction) -> Fraction:
        """`amount` in units of the cap, in the base unit of its dimension."""
        return amount * model.unit(self.unit).factor

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "scope": self.scope,
            "period": self.period,
            "qty": str(self.qty),
            "unit": self.unit,
            "children": dict(sorted(self.children.items())),
            "equal": self.equal,
            "need": self.need,
        }


def caps_in_force(records: Iterable[Record], admitted: frozenset[bytes] | None) -> list[Cap]:
    """The caps the records decide, sorted by (resource, scope, period).

    Args:
        records: a replica's records (any order).
        admitted: the admitted nodes (None: every node counts, admission off).
    """
    ledger = Ledger(records, admitted)
    latest: dict[tuple[str, str, str], Cap] = {}
    for p in ledger.of_kind("proposal"):
        body: dict[str, Any] = dict(p.body or {})
        if "cap" not in body:
            continue
        if admitted is not None and p.origin not in admitted:
            continue
        pid = object_id(p.origin, p.key)
        closes = int(body["closes"])
        try:
            res = results(ledger, pid, closes)
        except GovernanceError:
            continue
        if res.status != "final" or res.winners != ("yes",):
            continue
        c = body["cap"]
        cap = Cap(
            id=pid,
            resource=str(c["resource"]),
            scope=str(body["electorate"]),
            period=str(c["period"]),
            qty=int(c["qty"]),
            unit=str(c["unit"]),
            children={str(k): int(v) for k, v in c["children"].items()},
            equal=int(c["equal"]),
            need=int(c["need"]),
            closes=closes,
        )
        slot = (cap.resource, cap.scope, cap.period)
        old = latest.get(slot)
        if old is None or (cap.closes, cap.id) > (old.closes, old.id):
            latest[slot] = cap
    return [latest[k] for k in sorted(latest)]


def largest_remainder(total: int, weights: Mapping[str, Fraction]) -> dict[str, int]:
    """Split whole `total` in proportion to `weights` (not all 0), summing to `total`
    exactly: floors first, then one unit each to the largest remainders (ties to the
    earlier key)."""
    keys = sorted(weights)
    whole = sum(weights.values(), Fraction(0))
    quota = {k: total * weights[k] / whole for k in keys}
    out = {k: floor(q) for k, q in quota.items()}
    left = total - sum(out.values())
    for k in sorted(keys, key=lambda k: (-(quota[k] - out[k]), k))[:left]:
        out[k] += 1
    return out


@dataclass(frozen=True)
class Use:
    """What one capacity draws on a resource: base units of the resource per tick
    (`node.planning.balance.TICKS`) of the capacity, in the resource's dimension."""

    resource: str
    dimension: str
    per_tick: Fraction


def shares(cap: Cap, demand: Mapping[str, Fraction]) -> dict[str, int]:
    """Each child's share of `cap`, in whole units of the cap.

    Args:
        demand: per child, what its capacities would draw at their maximum (any unit:
            only the proportions count).
    """
    children = sorted(cap.children)
    residents = sum(cap.children.values())
    needs = sum((demand.get(c, Fraction(0)) for c in children), Fraction(0))
    weight = {c: Fraction(0) for c in children}
    for c in children:
        if cap.equal and residents:
            weight[c] += Fraction(cap.equal * cap.children[c], residents)
        if cap.need and needs:
            weight[c] += cap.need * demand.get(c, Fraction(0)) / needs
    if not any(weight.values()):
        weight = {c: Fraction(1) for c in children}
    return largest_remainder(cap.qty, weight)


@dataclass(frozen=True)
class Budget:
    """One child's share of a cap, and the capacities it covers.

    Attributes:
        cap: the cap's id; child: the child scope.
        resource, dimension: what it limits.
        share: the share in whole units of the cap; limit: the same in base units.
        members: the ids of the capacities it covers (`node.planning.rounds.Intent.id`).
    """

    cap: str
    child: str
    resource: str
    dimension: str
    share: int
    limit: Fraction
    members: frozenset[tuple[str, str, str]]

    def as_json(self) -> dict[str, Any]:
        return {
            "cap": self.cap,
            "child": self.child,
            "resource": self.resource,
            "share": str(self.share),
            "capacities": len(self.members),
        }


def covers(cap: Cap, scope: str, period: str, uses: Mapping[str, Use]) -> str | None:
    """The child of `cap` a capacity in `scope` and `period` with `uses` counts under,
    or None if the cap does not cover it."""
    use = uses.get(cap.resource)
    if use is None or use.dimension != cap.dimension:
        return None
    if not model.in_scope(scope, cap.scope) or not model.period_within(period, cap.period):
        return None
    for child in sorted(cap.children):
        if model.in_scope(scope, child):
            return child
    return ""  # under the cap, under no child: a share of 0


def budgets(caps: Sequence[Cap], capacities: Sequence[Any]) -> list[Budget]:
    """The budgets of `caps` over `capacities` (objects with id, scope, period, hi and
    uses, like `node.planning.rounds.Intent`), in the order of `caps`, then child."""
    out = []
    for cap in caps:
        members: dict[str, set[tuple[str, str, str]]] = {c: set() for c in cap.children}
        members[""] = set()
        demand: dict[str, Fraction] = {}
        for i in capacities:
            child = covers(cap, i.scope, i.period, i.uses)
            if child is None:
                continue
            members[child].add(i.id)
            demand[child] = demand.get(child, Fraction(0)) + i.hi * i.uses[cap.resource].per_tick
        split = shares(cap, demand)
        split[""] = 0
        for child in sorted(members):
            if child == "" and not members[""]:
                continue
            out.append(
                Budget(
                    cap=cap.id,
                    child=child,
                    resource=cap.resource,
                    dimension=cap.dimension,
                    share=split[child],
                    limit=cap.base(Fraction(split[child])),
                    members=frozenset(members[child]),
                )
            )
    return out
