"""Planning rounds: needs and capacities move within their declared ranges until the
plan fits, and no capacity is raised past its share of a cap.

No board: a round is a pure, exact function of the intents a node holds (and the
budgets of the caps in force), so every node holding the same records computes the
same round, and each node's planner applies the part that concerns its own intents
(signed revisions of its own records, `node.ops.plan_ops`). `plan` runs the rounds
from the quantities as *declared* (a revised record keeps its ``base``), so a node's
plan does not depend on which of the others' revisions it has received yet.

One round (`round_step`), per group (item, dimension, period), in integer ticks
(`balance.TICKS`):

1. *Shares first.* A budget (`node.planning.caps`) whose capacities draw more than its
   share is brought back under it: its capacities are cut in proportion to the use
   they can shed within range (cuts round up to the record's precision, so the use
   ends at or below the share). What the ranges cannot shed is *beyond* (below).
2. *Scarcity index* ``(D - S) / (D + S)``: the group's relative excess demand at the
   round's start, in [-1, 1]. A group is *within tolerance* when
   ``|D - S| <= tolerance * max(D, S)`` or when the gap is below the records'
   precision (one millionth of a unit per intent). The plan has *converged* when every
   group is within tolerance or holds a surplus no range can take in (spare capacity
   leaves no need uncovered).
3. *Moves.* A group out of tolerance closes its gap: capacities first (a shortage is
   met by producing more before any need gives way; a surplus by producing less
   before any need grows), then needs -- or, with the rule ``shared``, both sides at
   once. Within a side every intent moves in proportion to its room (towards ``max``
   or ``min``), to the record's precision, what rounding leaves going to the first
   intents with room left; a round never leaves a range, closes a shortage whole when
   the ranges can, and never turns a surplus into a shortage. A capacity's upward
   room is first limited by its budgets' headroom, which goes first to the gaps only
   capped capacities can close, then to the rest in proportion to what is asked; a
   budget is never exceeded. A budget that such a gap needs more of than it has left
   takes headroom back from its capacities in groups that fit and can spare it (they
   close what this opens in the next round).
   *Substitutes* (`node.planning.substitution`): what a shortage's ranges leave open
   is served from the spare surplus of the substitutes its needs declare (group by
   group, need by need in id order, substitute by substitute in declared order), as
   derived needs (`Intent.replaces`), before the surplus groups close theirs -- never
   more than a substitute's surplus at the round's start, never more than the need.
4. *Beyond.* A shortage the ranges and substitutes cannot close is spread, as
   suggestions outside the ranges, over the needs and the uncapped capacities of the
   group in proportion to their quantities. Nothing beyond a range is applied
   without members' approval.

Why no Pequod price: a price converges by repeated small steps (46/98 iterations for
Pequod's two tolerances); here every participant states its range up front, so the
gap can be shared out exactly. With no caps a feasible group closes in one round;
with caps, reclaimed headroom takes a few more (docs/benchmarks.md).
Nothing depends on the order of the intents: they are sorted first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor
from typing import Any

from node import model
from node.crdt.record import Record
from node.planning.balance import _PER_MICRO, GroupKey, _amount
from node.planning.caps import Budget, Use
from node.planning.matching import PRIORITY_RANK, Party, Position
from node.planning.substitution import check_derived, derived_key, part_of, ratio_ticks

__all__ = [
    "DEFAULT_TOLERANCE",
    "RULES",
    "GroupState",
    "Intent",
    "Step",
    "derived_intent",
    "intent_of",
    "intents_from_records",
    "plan",
    "round_step",
    "run_rounds",
    "trim_positions",
    "within_shares",
]

DEFAULT_TOLERANCE = Fraction(1, 100)
# Who gives way in a group out of tolerance: capacities before needs (the default), or
# both sides at once in proportion to their room (measured in docs/benchmarks.md).
RULES = ("capacities-first", "shared")
IntentId = tuple[str, str, str]  # (node hex, kind, key)


@dataclass(frozen=True)
class Intent:
    """A need or capacity as rounds see it; quantities in ticks.

    Attributes:
        node, kind, key: whose record it is.
        scope, item, dim, period, unit: from the record.
        qty, lo, hi: the quantity and its range (``lo == hi == qty``: it does not move).
        step: ticks per millionth of the record's unit (its precision).
        rank: a need's priority rank (capacities: -1).
        uses: per capped resource, what one tick draws.
        round: the round of the plan that set its quantity (0: as declared).
        base: the quantity as declared (rounds start from it).
        subs: a need's substitutes, in declared order: (item, ticks of the item per
            tick of this need), from the declared ratio (`substitution`).
        replaces: a *derived* need (one a round made for a substitute): the key of the
            need of the same node it serves part of; "" for any other intent.
        part: a derived need: the part of that need it serves (ticks of the need's
            item). A derived need's own range is its quantity: only substitution
            moves it.
    """

    node: str
    kind: str
    key: str
    scope: str
    item: str
    dim: str
    period: str
    unit: str
    qty: int
    lo: int
    hi: int
    step: int
    rank: int = -1
    uses: Mapping[str, Use] = field(default_factory=dict)
    round: int = 0
    base: int = -1  # -1: the quantity itself
    subs: tuple[tuple[str, Fraction], ...] = ()
    replaces: str = ""
    part: int = 0

    @property
    def declared(self) -> int:
        return self.qty if self.base < 0 else self.base

    @property
    def id(self) -> IntentId:
        return (self.node, self.kind, self.key)

    @property
    def group(self) -> GroupKey:
        return (self.item, self.dim, self.period)

    def qty_text(self, ticks: int) -> str:
        """`ticks` as a record quantity in this intent's unit (6 decimals at most)."""
        micro = ticks // self.step
        whole, frac = divmod(micro, 10**6)
        return f"{whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else str(whole)


def _uses(body: Mapping[str, Any], unit: str) -> dict[str, Use]:
    ticks_per_unit = _PER_MICRO[unit] * 10**6
    out = {}
    for res, qty, u in body.get("use") or ():
        per_unit = Fraction(Decimal(qty)) * model.unit(u).factor
        out[str(res)] = Use(str(res), model.unit(u).dimension, per_unit / ticks_per_unit)
    return out


def _subs(body: Mapping[str, Any], unit: str) -> tuple[tuple[str, Fraction], ...]:
    return tuple((str(it), ratio_ticks(str(r), unit)) for it, r in body.get("subs") or ())


def _revisions(value: Any) -> int:
    return value if type(value) is int else 0


def intent_of(r: Record) -> Intent | None:
    """The intent a live need or capacity record states, else None."""
    if r.kind not in ("need", "capacity") or r.body is None:
        return None
    b = r.body
    unit = str(b["unit"])
    qty, dim = _amount(str(b["qty"]), unit)
    base = _amount(str(b["base"]), unit)[0] if "base" in b else qty
    lo = _amount(str(b["min"]), unit)[0] if "min" in b else base
    hi = _amount(str(b["max"]), unit)[0] if "max" in b else base
    return Intent(
        node=r.origin.hex(),
        kind=r.kind,
        key=r.key,
        scope=r.scope,
        item=str(b["item"]),
        dim=dim,
        period=str(b["period"]),
        unit=unit,
        qty=qty,
        lo=lo,
        hi=hi,
        step=_PER_MICRO[unit],
        rank=PRIORITY_RANK[str(b["priority"])] if r.kind == "need" else -1,
        uses=_uses(b, unit) if r.kind == "capacity" else {},
        round=_revisions(b.get("round")),
        base=base,
        subs=_subs(b, unit),
        replaces=str(b["replaces"][0]) if "replaces" in b else "",  # type: ignore[index]
    )


def intents_from_records(
    records: Iterable[Record],
    counted: frozenset[bytes] | None = None,
    *,
    scope: str = "",
    period: str | None = None,
) -> list[Intent]:
    """The live intents of counted nodes under `scope` ("" for all) of `period` (None
    for all), sorted by id. A derived need counts only where it is the substitution
    its need declares (`substitution.check_derived`), with the part its need lists."""
    held = []
    for r in records:
        if counted is not None and r.origin not in counted:
            continue
        if scope and not model.in_scope(r.scope, scope):
            continue
        held.append(r)
    needs = {(r.origin, r.key): r for r in held if r.kind == "need"}
    out = []
    for r in held:
        i = intent_of(r)
        if i is None or (period is not None and i.period != period):
            continue
        if i.replaces:
            need = needs.get((r.origin, i.replaces))
            if need is None or need.body is None or check_derived(r, need) is not None:
                continue
            i = replace(i, part=part_of(need.body, i.item))
        out.append(i)
    return sorted(out, key=lambda i: i.id)


@dataclass(frozen=True)
class GroupState:
    """A group at a round's start.

    Attributes:
        needs, capacities: totals in ticks.
        index: the scarcity index (D - S) / (D + S) (0 when both are 0).
        within: within tolerance.
        room: how far the ranges could still close the gap (ticks).
    """

    needs: int
    capacities: int
    index: Fraction
    within: bool
    room: int

    @property
    def gap(self) -> int:
        return self.needs - self.capacities

    @property
    def settled(self) -> bool:
        """Within tolerance, or out of room in the direction that would close it."""
        return self.within or self.room == 0

    @property
    def fits(self) -> bool:
        """Within tolerance, or a surplus no range can take in (spare capacity: it
        leaves no need uncovered)."""
        return self.within or (self.gap < 0 and self.room == 0)


@dataclass(frozen=True)
class Step:
    """One round.

    Attributes:
        round: its number (1 for the first).
        groups: every group at the round's start.
        moved: intent id -> new quantity within its range (changed ones only).
        beyond: intent id -> a suggested quantity outside its range (0: withdraw).
        use: per budget (cap, child), the use after the round, in base units.
        over: the budgets (cap, child) over their share at the round's start.
        subs: every derived need after the round (`Intent.replaces`): what of a need
            its substitutes serve.
    """

    round: int
    groups: Mapping[GroupKey, GroupState]
    moved: Mapping[IntentId, int]
    beyond: Mapping[IntentId, int]
    use: Mapping[tuple[str, str], Fraction]
    over: frozenset[tuple[str, str]] = frozenset()
    subs: Mapping[IntentId, Intent] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        """Every group fits (`GroupState.fits`) and every budget is within its share,
        at the round's start."""
        return not self.over and all(g.fits for g in self.groups.values())

    @property
    def settled(self) -> bool:
        return all(g.settled for g in self.groups.values())


def _floor_to(x: Fraction | int, step: int) -> int:
    return floor(Fraction(x) / step) * step


def _ceil_to(x: Fraction | int, step: int) -> int:
    return ceil(Fraction(x) / step) * step


def _within(needs: int, caps: int, precision: int, tolerance: Fraction) -> bool:
    gap = abs(needs - caps)
    return gap <= precision or gap <= tolerance * max(needs, caps)


def _use(i: Intent, qty: int, b: Budget) -> Fraction:
    return qty * i.uses[b.resource].per_tick


def round_step(
    intents: Sequence[Intent],
    budgets: Sequence[Budget] = (),
    *,
    tolerance: Fraction = DEFAULT_TOLERANCE,
    number: int = 1,
    rule: str = "capacities-first",
) -> Step:
    """Round `number` over `intents` (see the module doc): a pure function of its
    arguments, whatever their order.

    Args:
        intents: the intents held (any order; ids unique).
        budgets: the budgets of the caps in force over these intents.
        tolerance: the relative gap a group may keep.
        number: the round's number (for the result only).
        rule: who gives way first (`RULES`).

    Raises:
        ValueError: an unknown rule.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}")
    ordered = _narrowed(sorted(intents, key=lambda i: i.id))
    by_id = {i.id: i for i in ordered}
    q = {i.id: i.qty for i in ordered}
    beyond: dict[IntentId, int] = {}
    in_budgets: dict[IntentId, list[Budget]] = {}
    for b in sorted(budgets, key=lambda b: (b.cap, b.child)):
        for m in sorted(b.members):
            if m in by_id:
                in_budgets.setdefault(m, []).append(b)

    def members(b: Budget) -> list[Intent]:
        return [by_id[m] for m in sorted(b.members) if m in by_id]

    def use(b: Budget) -> Fraction:
        return sum((_use(i, q[i.id], b) for i in members(b)), Fraction(0))

    # 1. Shares first.
    over_at_start = frozenset((b.cap, b.child) for b in budgets if use(b) > b.limit)
    for b in sorted(budgets, key=lambda b: (b.cap, b.child)):
        over = use(b) - b.limit
        if over <= 0:
            continue
        sheddable = {i.id: _use(i, q[i.id] - i.lo, b) for i in members(b)}
        total = sum(sheddable.values(), Fraction(0))
        for i in members(b):
            if total <= over:
                q[i.id] = i.lo
            elif sheddable[i.id]:
                cut = over * sheddable[i.id] / total / i.uses[b.resource].per_tick
                q[i.id] -= min(q[i.id] - i.lo, _ceil_to(cut, i.step))
        left = use(b) - b.limit
        if left > 0:
            current = {i.id: _use(i, q[i.id], b) for i in members(b)}
            whole = sum(current.values(), Fraction(0))
            for i in members(b):
                if current[i.id]:
                    cut = left * current[i.id] / whole / i.uses[b.resource].per_tick
                    beyond[i.id] = max(0, q[i.id] - _ceil_to(cut, i.step))

    # 2. Scarcity index and tolerance, per group.
    groups: dict[GroupKey, list[Intent]] = {}
    for i in ordered:
        groups.setdefault(i.group, []).append(i)
    start: dict[GroupKey, tuple[int, int, bool]] = {}
    for g, members_g in sorted(groups.items()):
        d = sum(q[i.id] for i in members_g if i.kind == "need")
        s = sum(q[i.id] for i in members_g if i.kind == "capacity")
        precision = sum(i.step for i in members_g)
        start[g] = (d, s, _within(d, s, precision, tolerance))

    # 3. Upward room of capacities in short groups, bounded by their budgets' headroom.
    # Headroom goes first where nothing else can close the gap (what needs and uncapped
    # capacities cannot give), then to the rest in proportion to what is asked.
    short = {g for g, (d, s, ok) in start.items() if not ok and d > s}
    headroom = {(b.cap, b.child): max(Fraction(0), b.limit - use(b)) for b in budgets}
    capped_up = {i.id: i.hi - q[i.id] for i in ordered if i.group in short and i.id in in_budgets}
    must: dict[IntentId, int] = {}
    for g in sorted(short):
        d, s, _ok = start[g]
        other = sum(
            q[i.id] - i.lo if i.kind == "need" else i.hi - q[i.id]
            for i in groups[g]
            if i.kind == "need" or i.id not in in_budgets
        )
        capped = [i for i in groups[g] if i.id in capped_up]
        capped_total = sum(capped_up[i.id] for i in capped)
        needed = d - s - other
        for i in capped:
            part = (
                _ceil_to(Fraction(needed * capped_up[i.id], capped_total), i.step)
                if capped_total
                else 0
            )
            must[i.id] = min(capped_up[i.id], part) if needed > 0 else 0
    granted = {k: 0 for k in capped_up}
    for asks in (must, {k: capped_up[k] - must.get(k, 0) for k in capped_up}):
        factor: dict[tuple[str, str], Fraction] = {}
        for b in budgets:
            asked = sum((_use(i, asks.get(i.id, 0), b) for i in members(b)), Fraction(0))
            h = headroom[(b.cap, b.child)]
            factor[(b.cap, b.child)] = Fraction(1) if asked <= h else h / asked
        for k in sorted(asks):
            i = by_id[k]
            grant = asks[k]
            for b in in_budgets[k]:
                grant = min(grant, _floor_to(asks[k] * factor[(b.cap, b.child)], i.step))
            granted[k] += grant
            for b in in_budgets[k]:
                headroom[(b.cap, b.child)] -= _use(i, grant, b)

    # 3b. Reclaim: a budget whose headroom a gap needs (one only its capacities can
    # close) takes it back from its capacities in groups that fit and can spare it;
    # those groups close the gap this leaves in the next round.
    unmet = {k: must[k] - granted[k] for k in must if must[k] > granted[k]}
    if unmet:
        spare: dict[GroupKey, int] = {}
        for g, (d, s, ok) in start.items():
            if ok:
                spare[g] = max(0, s - d) + sum(
                    q[i.id] - i.lo if i.kind == "need" else i.hi - q[i.id]
                    for i in groups[g]
                    if i.kind == "need" or i.id not in in_budgets
                )
        for b in sorted(budgets, key=lambda b: (b.cap, b.child)):
            want = sum(
                (_use(by_id[k], unmet[k], b) for k in sorted(unmet) if k in b.members),
                Fraction(0),
            )
            for j in members(b):
                if want <= 0:
                    break
                if j.group not in spare or q[j.id] <= j.lo:
                    continue
                need_ticks = _ceil_to(want / j.uses[b.resource].per_tick, j.step)
                give = _floor_to(min(q[j.id] - j.lo, spare[j.group], need_ticks), j.step)
                q[j.id] -= give
                spare[j.group] -= give
                want -= _use(j, give, b)

    def room(i: Intent, up: bool) -> int:
        if not up:
            return q[i.id] - i.lo
        if i.id in in_budgets:
            return granted.get(i.id, 0)
        return i.hi - q[i.id]

    states: dict[GroupKey, GroupState] = {}
    for g, members_g in sorted(groups.items()):
        d, s, ok = start[g]
        index = Fraction(d - s, d + s) if d + s else Fraction(0)
        # In a shortage needs go down and capacities up; in a surplus the reverse.
        rooms = {i.id: room(i, up=(i.kind == "capacity") == (d > s)) for i in members_g}
        states[g] = GroupState(d, s, index, ok, 0 if ok else min(sum(rooms.values()), abs(d - s)))

    def close(members_g: list[Intent]) -> None:
        """Close the group's gap as far as its ranges allow (the gap as it stands)."""
        d = sum(q[i.id] for i in members_g if i.kind == "need")
        s = sum(q[i.id] for i in members_g if i.kind == "capacity")
        if _within(d, s, sum(i.step for i in members_g), tolerance):
            return
        shortage = d > s
        rooms = {i.id: room(i, up=(i.kind == "capacity") == shortage) for i in members_g}
        # Capacities first: a shortage is met by producing more before needs give
        # way, a surplus by producing less before needs grow (RULES).
        tiers = (
            [members_g]
            if rule == "shared"
            else [
                [i for i in members_g if i.kind == "capacity"],
                [i for i in members_g if i.kind == "need"],
            ]
        )
        moves: dict[IntentId, int] = {}
        rest = min(abs(d - s), sum(rooms.values()))
        for tier in tiers:
            moves.update(_share_out(tier, rooms, rest, up=shortage))
            rest -= sum(moves[i.id] for i in tier)
        for i in members_g:
            up = (i.kind == "capacity") == shortage
            q[i.id] += moves[i.id] if up else -moves[i.id]

    # Shortages first, then what their ranges leave short is served by substitutes
    # from the surplus that other items hold at the round's start, then the surpluses
    # close what is left of theirs (so none gives away what a substitute drew on).
    short_groups = [g for g in sorted(groups) if not start[g][2] and start[g][0] > start[g][1]]
    for g in short_groups:
        close(groups[g])
    subs = _substitute(short_groups, groups, by_id, q, tolerance)
    for g in sorted(groups):
        if not start[g][2] and start[g][0] < start[g][1]:
            close(groups[g])

    # 4. Beyond: what the ranges and the substitutes cannot close in a shortage.
    for g in short_groups:
        members_g = groups[g]
        d2 = sum(q[i.id] for i in members_g if i.kind == "need")
        s2 = sum(q[i.id] for i in members_g if i.kind == "capacity")
        short_by = d2 - s2
        if short_by <= 0 or _within(d2, s2, sum(i.step for i in members_g), tolerance):
            continue
        free = [
            i for i in members_g if not i.replaces and (i.kind == "need" or i.id not in in_budgets)
        ]
        weight = sum(q[i.id] for i in free)
        for i in free:
            if not weight:
                break
            share = _ceil_to(Fraction(short_by * q[i.id], weight), i.step)
            beyond[i.id] = max(0, q[i.id] - share) if i.kind == "need" else q[i.id] + share

    moved = {k: v for k, v in q.items() if k not in by_id or v != by_id[k].qty}
    after = {(b.cap, b.child): use(b) for b in budgets}
    return Step(number, states, moved, beyond, after, over_at_start, subs)


def _narrowed(intents: list[Intent]) -> list[Intent]:
    """`intents` with each need's range moved down by what its derived needs serve:
    the need's own quantity moves within what is left of its range (and never
    outside it: a need held without the derived needs its record lists parts for
    does not move that way)."""
    served: dict[IntentId, int] = {}
    for i in intents:
        if i.replaces:
            k = (i.node, "need", i.replaces)
            served[k] = served.get(k, 0) + i.part
    out = []
    for i in intents:
        lo = min(i.qty, max(0, i.lo - served.get(i.id, 0)))
        hi = max(i.qty, i.hi - served.get(i.id, 0))
        out.append(i if (lo, hi) == (i.lo, i.hi) else replace(i, lo=lo, hi=hi))
    return out


def derived_intent(n: Intent, item: str, dim: str, part: int, ratio: Fraction) -> Intent:
    """The derived need by which `part` ticks of need `n` are served by `item`
    (measured in `dim`) at `ratio` (ticks of the item per tick of the need): its
    quantity is ``part * ratio`` rounded up to a millionth of the item's base unit."""
    unit = model.DIMENSIONS[dim]
    step = _PER_MICRO[unit]
    qty = _ceil_to(part * ratio, step)
    return Intent(
        node=n.node,
        kind="need",
        key=derived_key(n.key, item),
        scope=n.scope,
        item=item,
        dim=dim,
        period=n.period,
        unit=unit,
        qty=qty,
        lo=qty,
        hi=qty,
        step=step,
        rank=n.rank,
        replaces=n.key,
        part=part,
    )


def _substitute(
    short_groups: list[GroupKey],
    groups: dict[GroupKey, list[Intent]],
    by_id: Mapping[IntentId, Intent],
    q: dict[IntentId, int],
    tolerance: Fraction,
) -> dict[IntentId, Intent]:
    """Serve what the short groups' ranges left short from the spare surplus of their
    needs' substitutes: group by group, need by need (by id), substitute by substitute
    (in declared order), move part of the need to a derived need for the substitute --
    never more than the substitute's surplus (what its capacities hold beyond its
    needs, derived ones included), never more than the need's own quantity left
    (less a millionth: a need's record keeps a quantity).
    Updates `q` and `groups`; returns every derived need after the round."""
    derived = {i.id: i for i in by_id.values() if i.replaces}
    if not any(i.subs for g in short_groups for i in groups[g]):
        return {k: v for k, v in sorted(derived.items()) if v.qty > 0}
    of_item: dict[tuple[str, str], list[GroupKey]] = {}
    for g in sorted(groups):
        of_item.setdefault((g[0], g[2]), []).append(g)

    needs = {g: sum(q[i.id] for i in ms if i.kind == "need") for g, ms in groups.items()}
    caps = {g: sum(q[i.id] for i in ms if i.kind == "capacity") for g, ms in groups.items()}

    for g in short_groups:
        precision = sum(i.step for i in groups[g])
        for n in [i for i in groups[g] if i.kind == "need" and i.subs]:
            for item, ratio in n.subs:
                d, s = needs[g], caps[g]
                if d <= s or _within(d, s, precision, tolerance) or q[n.id] <= n.step:
                    break
                for gb in of_item.get((item, n.period), ()):
                    top = _floor_to(caps[gb] - needs[gb], _PER_MICRO[model.DIMENSIONS[gb[1]]])
                    did = (n.node, "need", derived_key(n.key, item))
                    old = derived.get(did)
                    if top <= 0 or (old is not None and old.group != gb):
                        continue
                    # Rounded up to the substitute's precision, part * ratio stays <= top.
                    # A need keeps a millionth of its own item (a record's quantity is > 0).
                    own = q[n.id] - n.step
                    part = min(_ceil_to(d - s, n.step), own, _floor_to(top / ratio, n.step))
                    if part <= 0:
                        continue
                    new = derived_intent(n, item, gb[1], part + (old.part if old else 0), ratio)
                    q[n.id] -= part
                    needs[g] -= part
                    needs[gb] += new.qty - q.get(did, 0)
                    q[did] = new.qty
                    derived[did] = new
                    groups[gb] = sorted(
                        [i for i in groups[gb] if i.id != did] + [new], key=lambda i: i.id
                    )
                    break
    return {k: v for k, v in sorted(derived.items()) if v.qty > 0}


def _share_out(
    tier: list[Intent], rooms: Mapping[IntentId, int], amount: int, *, up: bool
) -> dict[IntentId, int]:
    """Moves of `tier` that add up to `amount` (or all their room), in proportion to
    their room, each to its precision; what rounding leaves goes, in id order, to
    whoever has room left -- rounded up when closing a shortage (`up`: a spare
    millionth at most), down when closing a surplus (never into a shortage)."""
    total = sum(rooms[i.id] for i in tier)
    if total <= 0 or amount <= 0:
        return {i.id: 0 for i in tier}
    ratio = Fraction(1) if total <= amount else Fraction(amount, total)
    moves = {i.id: _floor_to(rooms[i.id] * ratio, i.step) for i in tier}
    rest = min(amount, total) - sum(moves.values())
    for i in tier:
        if rest <= 0:
            break
        more = min(rooms[i.id] - moves[i.id], (_ceil_to if up else _floor_to)(rest, i.step))
        moves[i.id] += more
        rest -= more
    return moves


def run_rounds(
    intents: Sequence[Intent],
    budgets: Sequence[Budget] = (),
    *,
    tolerance: Fraction = DEFAULT_TOLERANCE,
    max_rounds: int = 20,
    rule: str = "capacities-first",
) -> list[Step]:
    """Rounds from `intents` as if every node applied its moves after each round,
    until a round starts converged, nothing moves, or `max_rounds`. The last step is
    the state the rounds end in (its `moved` is empty unless `max_rounds` cut it off).
    """
    steps: list[Step] = []
    current = sorted(intents, key=lambda i: i.id)
    for n in range(1, max_rounds + 1):
        step = round_step(current, budgets, tolerance=tolerance, number=n, rule=rule)
        steps.append(step)
        if step.converged or not step.moved:
            break
        kept = [replace(i, qty=step.moved.get(i.id, i.qty)) for i in current if not i.replaces]
        current = sorted([*kept, *step.subs.values()], key=lambda i: i.id)
    return steps


def plan(
    intents: Sequence[Intent],
    budgets: Sequence[Budget] = (),
    *,
    tolerance: Fraction = DEFAULT_TOLERANCE,
    max_rounds: int = 20,
    rule: str = "capacities-first",
) -> tuple[list[Step], dict[IntentId, int]]:
    """The rounds from the *declared* quantities of `intents` and where they end: every
    intent's planned quantity (and in each step's `moved`, its round). Starting from
    what was declared rather than from the revisions held, every node computes the
    same plan whether or not the other nodes' revisions have reached it yet."""
    declared = [replace(i, qty=i.declared) for i in intents if not i.replaces]
    steps = run_rounds(declared, budgets, tolerance=tolerance, max_rounds=max_rounds, rule=rule)
    planned = {i.id: i.qty for i in declared}
    for step in steps:
        planned.update(step.moved)
    return steps, planned


def within_shares(intents: Sequence[Intent], budgets: Sequence[Budget]) -> dict[IntentId, int]:
    """Capacity quantities matching may plan with: each budget's capacities scaled down
    together (to the record's precision) where they draw more than its share.
    Returns only the capacities it trims."""
    by_id = {i.id: i for i in intents}
    q = {i.id: i.qty for i in intents}
    for b in sorted(budgets, key=lambda b: (b.cap, b.child)):
        ms = [by_id[m] for m in sorted(b.members) if m in by_id]
        used = sum((_use(i, q[i.id], b) for i in ms), Fraction(0))
        if used <= b.limit:
            continue
        ratio = b.limit / used
        for i in ms:
            q[i.id] = min(q[i.id], _floor_to(q[i.id] * ratio, i.step))
    return {k: v for k, v in q.items() if v != by_id[k].qty}


def trim_positions(
    positions: Mapping[GroupKey, Mapping[Party, Position]],
    intents: Sequence[Intent],
    budgets: Sequence[Budget],
) -> dict[GroupKey, dict[Party, Position]]:
    """`positions` (`node.planning.matching`) with every capacity trimmed to what its
    budgets allow (`within_shares`), so matching never plans beyond a share."""
    out = {g: dict(parties) for g, parties in positions.items()}
    by_id = {i.id: i for i in intents}
    for k, qty in sorted(within_shares(intents, budgets).items()):
        i = by_id[k]
        party = (i.scope, i.node)
        pos = out.get(i.group, {}).get(party)
        if pos is not None:
            out[i.group][party] = pos._replace(capacity=max(0, pos.capacity - (i.qty - qty)))
    return out
