"""Commitments, their fulfilment and each node's track record: pure functions of the
offer, accept, decline, deliver, confirm and dispute records held
(`node.model.commit_kinds`).

The rules, the same on every replica whatever order the records arrived in:

* an offer counts only from a counted (admitted) node, naming another node;
* it is **committed** when the counterpart (the origin of the accept must be the
  offer's ``with``) accepts it; the offer's id binds its terms, and neither record
  can be withdrawn (`node.model.commit_kinds`), so a commitment once made stays in
  every track record. A decline by either party voids the offer (after an accept:
  cancelled, and the decliner is named);
* a delivery counts only from the provider of a committed offer, in a unit of the
  item's dimension; a confirm only from the receiver, repeating the delivery's
  quantity, unit and date; a dispute only from the receiver. If the receiver wrote
  both a confirm and a dispute of one delivery, its later one (higher seq) stands;
* a commitment is fulfilled **on time** when confirmed deliveries dated on or before
  its due date add up to its quantity.

`today` is injected: it only decides whether a commitment not yet fulfilled is still
open or overdue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from node import model
from node.crdt.record import Record
from node.planning.balance import _ticks, decimal_str, ticks_str

__all__ = [
    "COMMIT_KIND_NAMES",
    "Commitment",
    "Delivery",
    "TrackRecord",
    "commitments",
    "committed_fields",
    "committed_totals",
    "track_records",
]

COMMIT_KIND_NAMES = tuple(model.COMMIT_KINDS)


@dataclass(frozen=True)
class Delivery:
    key: str
    qty: str
    unit: str
    ticks: int
    date: date
    status: str  # "recorded", "confirmed" or "disputed"
    reason: str = ""


@dataclass
class Commitment:
    """One offer and what became of it (state: offered, committed, declined, cancelled)."""

    ref: str  # <offerer key hex>.<offer id>
    offerer: str
    provider: str
    receiver: str
    item: str
    dimension: str
    qty: str
    unit: str
    period: str
    due: date
    ticks: int
    scope: str
    note: str
    state: str = "offered"
    declined_by: str = ""
    deliveries: list[Delivery] = field(default_factory=list)

    def _sum(self, status: str | None = None, by: date | None = None) -> int:
        return sum(
            d.ticks
            for d in self.deliveries
            if (status is None or d.status == status) and (by is None or d.date <= by)
        )

    @property
    def delivered(self) -> int:
        """Ticks the provider recorded as delivered (confirmed or not)."""
        return self._sum()

    @property
    def confirmed(self) -> int:
        return self._sum("confirmed")

    @property
    def disputed(self) -> int:
        return self._sum("disputed")

    @property
    def on_time(self) -> bool:
        return self.state == "committed" and self._sum("confirmed", self.due) >= self.ticks

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.ref,
            "state": self.state,
            "provider": self.provider,
            "receiver": self.receiver,
            "item": self.item,
            "qty": self.qty,
            "unit": self.unit,
            "period": self.period,
            "due": self.due.isoformat(),
            "scope": self.scope,
            "note": self.note,
            "declined_by": self.declined_by,
            "deliveries": [
                {
                    "id": d.key,
                    "qty": d.qty,
                    "unit": d.unit,
                    "date": d.date.isoformat(),
                    "status": d.status,
                    "reason": d.reason,
                }
                for d in self.deliveries
            ],
        }


def commitments(
    records: Iterable[Record], counted: frozenset[bytes] | None = None
) -> list[Commitment]:
    """Every offer held and what became of it, sorted by id.

    Args:
        records: the records held (slot winners; tombstones and other kinds ignored).
        counted: the admitted nodes (None: all count, admission off).
    """
    by_kind: dict[str, list[Record]] = {k: [] for k in COMMIT_KIND_NAMES}
    for r in records:
        counts = counted is None or r.origin in counted
        if r.kind in by_kind and r.body is not None and counts:
            by_kind[r.kind].append(r)
    offers: dict[str, Commitment] = {}
    for r in by_kind["offer"]:
        b = r.body or {}
        me, other = r.origin.hex(), str(b["with"])
        if other == me:
            continue
        provider, receiver = (me, other) if b["role"] == "provide" else (other, me)
        unit = str(b["unit"])
        dim = model.UNITS[unit].dimension
        builtin = model.STARTER_CATALOG.get(str(b["item"]))
        if builtin is not None and builtin.dimension != dim:
            continue
        offers[model.offer_ref(me, r.key)] = Commitment(
            model.offer_ref(me, r.key),
            me,
            provider,
            receiver,
            str(b["item"]),
            dim,
            str(b["qty"]),
            unit,
            str(b["period"]),
            model.check_date(b["due"]),
            _ticks(str(b["qty"]), unit),
            r.scope,
            str(b.get("note", "")),
        )
    for r in by_kind["accept"]:
        b = r.body or {}
        got = offers.get(model.offer_ref(str(b["by"]), str(b["offer"])))
        if got is not None and r.origin.hex() == _counterpart(got):
            got.state = "committed"
    for r in sorted(by_kind["decline"], key=lambda r: (r.origin, r.key)):
        b = r.body or {}
        no = offers.get(model.offer_ref(str(b["by"]), str(b["offer"])))
        if no is None or r.origin.hex() not in (no.provider, no.receiver) or no.declined_by:
            continue
        no.state = "cancelled" if no.state == "committed" else "declined"
        no.declined_by = r.origin.hex()
    # replies to deliveries, per (replier, provider, delivery): a replier's later word
    # stands (only the receiver's is read below)
    replies: dict[tuple[str, str, str], Record] = {}
    for r in by_kind["confirm"] + by_kind["dispute"]:
        b = r.body or {}
        k = (r.origin.hex(), str(b["by"]), str(b["delivery"]))
        cur = replies.get(k)
        if cur is None or cur.seq < r.seq:
            replies[k] = r
    for r in sorted(by_kind["deliver"], key=lambda r: (r.origin, r.key)):
        b = r.body or {}
        cm = offers.get(str(b["offer"]))
        unit = str(b["unit"])
        if cm is None or cm.state != "committed" or r.origin.hex() != cm.provider:
            continue
        if model.UNITS[unit].dimension != cm.dimension:
            continue
        day = model.check_date(b["date"])
        status, reason = "recorded", ""
        reply = replies.get((cm.receiver, cm.provider, r.key))
        if reply is not None:
            rb = reply.body or {}
            if reply.kind == "dispute":
                status, reason = "disputed", str(rb["reason"])
            elif (rb["qty"], rb["unit"], rb["date"]) == (b["qty"], b["unit"], b["date"]):
                status = "confirmed"
        cm.deliveries.append(
            Delivery(r.key, str(b["qty"]), unit, _ticks(str(b["qty"]), unit), day, status, reason)
        )
    return [offers[k] for k in sorted(offers)]


def _counterpart(c: Commitment) -> str:
    return c.receiver if c.offerer == c.provider else c.provider


@dataclass
class TrackRecord:
    """What one node promised as a provider and what became of it.

    Attributes:
        committed: commitments it is the provider of (both signed, not cancelled).
        delivered: of those, how many it recorded as delivered in full.
        confirmed: how many the receiver confirmed in full.
        on_time: how many were confirmed in full by their due date.
        overdue: past due (before `today`) and not confirmed in full.
        disputed: deliveries of it the receivers disputed.
        cancelled: commitments it cancelled after both had signed (as either party).
        received: commitments it is the receiver of.
        share: confirmed / committed quantity over its commitments due before `today`
            (None when none is due yet).
    """

    node: str
    committed: int = 0
    delivered: int = 0
    confirmed: int = 0
    on_time: int = 0
    overdue: int = 0
    disputed: int = 0
    cancelled: int = 0
    received: int = 0
    share: Fraction | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {k: v for k, v in self.__dict__.items() if k != "share"}
        out["share"] = None if self.share is None else decimal_str(self.share, places=4)
        return out


def track_records(comms: Iterable[Commitment], today: date) -> dict[str, TrackRecord]:
    """Per node (key hex) its track record, from `commitments`."""
    out: dict[str, TrackRecord] = {}
    due_sum: dict[str, list[Fraction]] = {}

    def get(node: str) -> TrackRecord:
        t = out.get(node)
        if t is None:
            t = out[node] = TrackRecord(node)
        return t

    for c in comms:
        if c.state == "cancelled":
            get(c.declined_by).cancelled += 1
            continue
        if c.state != "committed":
            continue
        p = get(c.provider)
        get(c.receiver).received += 1
        p.committed += 1
        p.disputed += sum(1 for d in c.deliveries if d.status == "disputed")
        confirmed = c.confirmed
        if c.delivered >= c.ticks:
            p.delivered += 1
        if confirmed >= c.ticks:
            p.confirmed += 1
        if c.on_time:
            p.on_time += 1
        elif c.due < today and confirmed < c.ticks:
            p.overdue += 1
        if c.due < today:
            acc = due_sum.setdefault(c.provider, [Fraction(0), Fraction(0)])
            acc[0] += Fraction(min(confirmed, c.ticks), c.ticks)
            acc[1] += 1
    for node, (got, n) in due_sum.items():
        out[node].share = got / n
    return dict(sorted(out.items()))


def committed_totals(
    comms: Iterable[Commitment], scope_of: Mapping[str, str], scope: str
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """Committed quantities under `scope`, to show next to the posted ones: per (item,
    dimension, period) the ticks committed *to* receivers in `scope` and *by*
    providers in `scope` (live commitments: committed, not cancelled).

    Args:
        scope_of: a node's scope (key hex -> scope, from its `node` record); a node
            without one is placed nowhere.
    """
    out: dict[tuple[str, str, str], list[int]] = {}
    for c in comms:
        if c.state != "committed":
            continue
        key = (c.item, c.dimension, c.period)
        for side, node in ((0, c.receiver), (1, c.provider)):
            where = scope_of.get(node)
            if where is not None and model.in_scope(where, scope):
                out.setdefault(key, [0, 0])[side] += c.ticks
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def committed_fields(needs_ticks: int, totals: tuple[int, int] | None) -> dict[str, object]:
    """The committed columns of one balance row, next to its posted ones.

    Args:
        needs_ticks: the row's posted needs.
        totals: (committed to receivers, committed by providers) of the row's group
            under its scope, from `committed_totals`; None where this node does not
            hold every commitment of the scope (the figures are then null, not partial).

    Returns:
        ``committed_in`` and ``committed_out`` in base units, and ``committed_coverage``:
        committed_in / needs (null where nothing is needed).
    """
    if totals is None:
        return {"committed_in": None, "committed_out": None, "committed_coverage": None}
    to_rx, by_px = totals
    return {
        "committed_in": ticks_str(to_rx),
        "committed_out": ticks_str(by_px),
        "committed_coverage": decimal_str(Fraction(to_rx, needs_ticks), places=4)
        if needs_ticks
        else None,
    }
