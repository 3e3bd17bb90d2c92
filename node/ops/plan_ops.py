"""Control operations of planning rounds and caps (issue 14). Thin: the rules live in
`node.planning.rounds` and `node.planning.caps`.

A round is computed over the records this node holds for its region (every period at
once: a cap's budget spans the periods inside its own). The planner (`plan_revise`)
signs revisions of this node's own intents that lie within their declared ranges;
what lies beyond waits for a member (`plan_review`, `plan_approve`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from fractions import Fraction
from typing import Any

from node import model
from node.errors import LocalError
from node.governance.ledger import check_local_key
from node.model.plan_kinds import MAX_ROUND
from node.ops.base import BOOL, DICT, INT, STR, OpContext, OpSpec, Writes, written
from node.planning.balance import TICKS, GroupKey, decimal_str
from node.planning.caps import Budget, Cap, budgets, caps_in_force
from node.planning.matching import Party, Position
from node.planning.rounds import (
    Intent,
    IntentId,
    Step,
    intent_of,
    intents_from_records,
    plan,
    round_step,
    trim_positions,
)
from node.planning.substitution import part_of
from node.state import NodeState

log = logging.getLogger("allmende.plan")

_SCOPE = STR(max_len=200)
_PERIOD = STR(max_len=16)
_MAX_ROUNDS = 50


def _counted(state: NodeState) -> frozenset[bytes]:
    return frozenset(state.core.admission.admitted)


class _View:
    """The planning view of one node's records: intents of its region, caps, budgets."""

    def __init__(self, state: NodeState) -> None:
        records = list(state.replica.records())
        counted = _counted(state)
        self.region = state.core.region
        self.intents = intents_from_records(records, counted, scope=self.region)
        self.caps = caps_in_force(records, counted)
        self.budgets = budgets(self.caps, [i for i in self.intents if i.kind == "capacity"])
        self.by_id = {i.id: i for i in self.intents}

    def step(self) -> Step:
        """The round over the quantities held now (where the records stand)."""
        return round_step(self.intents, self.budgets)

    def plan(self, max_rounds: int = 20) -> tuple[list[Step], dict[IntentId, int]]:
        """The rounds from the declared quantities, and every intent's planned one."""
        return plan(self.intents, self.budgets, max_rounds=max_rounds)

    def round_of(self, steps: list[Step], k: IntentId) -> int:
        """The round that last moved intent `k` in `steps` (0: none)."""
        return max((s.round for s in steps if k in s.moved), default=0)


def within_caps(
    state: NodeState, positions: dict[GroupKey, dict[Party, Position]]
) -> dict[GroupKey, dict[Party, Position]]:
    """`positions` with capacities trimmed to their shares of the caps in force."""
    view = _View(state)
    if not view.budgets:
        return positions
    return trim_positions(positions, view.intents, view.budgets)


def _qty(ticks: int | Fraction) -> str:
    return decimal_str(Fraction(ticks, TICKS))


def _filters(args: dict[str, Any]) -> str | None:
    period = args.get("period")
    if period is not None:
        model.check_period(period)
    return period


def _groups_json(step: Step, period: str | None) -> list[dict[str, Any]]:
    return [
        {
            "item": item,
            "period": per,
            "unit": model.DIMENSIONS[dim],
            "needs": _qty(g.needs),
            "capacities": _qty(g.capacities),
            "surplus": _qty(-g.gap) if g.gap <= 0 else "-" + _qty(g.gap),
            "index": decimal_str(g.index, places=4),
            "within": g.within,
            "settled": g.settled,
            "fits": g.fits,
        }
        for (item, dim, per), g in sorted(step.groups.items())
        if period is None or per == period
    ]


def _budgets_json(view: _View, step: Step | None = None) -> list[dict[str, Any]]:
    caps = {c.id: c for c in view.caps}
    out = []
    for b in view.budgets:
        cap = caps[b.cap]
        used = sum(
            (view.by_id[m].qty * view.by_id[m].uses[b.resource].per_tick for m in b.members),
            Fraction(0),
        )
        row = {
            **b.as_json(),
            "unit": cap.unit,
            "use": decimal_str(used / model.unit(cap.unit).factor),
            "within_share": used <= b.limit,
        }
        if step is not None:
            after = step.use[(b.cap, b.child)] / model.unit(cap.unit).factor
            row["use_after_round"] = decimal_str(after)
        out.append(row)
    return out


def status(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """Where the plan of this node's region stands: per group the totals, the scarcity
    index and the tolerance; what this node's planner would revise; use vs share."""
    period = _filters(args)
    view = _View(ctx.state)
    step = view.step()
    steps, planned = view.plan()
    me = ctx.state.me.hex()
    return {
        "scope": view.region,
        "period": period,
        "round": max((i.round for i in view.intents), default=0),
        "rounds": len(steps),
        "converged": step.converged,
        "groups": _groups_json(step, period),
        "mine": {
            "revisions": len(_mine(ctx.state, view, steps, planned)),
            "review": sum(1 for k in steps[-1].beyond if k[0] == me) if steps else 0,
        },
        "budgets": _budgets_json(view, step),
        "substitutions": _subs_json(view, steps, period),
    }


def _subs_json(view: _View, steps: list[Step], period: str | None) -> list[dict[str, Any]]:
    """The plan's substitutions: which need a substitute serves part of, how much."""
    out = []
    for d in steps[-1].subs.values() if steps else ():
        if period is not None and d.period != period:
            continue
        n = view.by_id[(d.node, "need", d.replaces)]
        out.append(
            {
                "node": d.node,
                "need": n.key,
                "item": n.item,
                "unit": n.unit,
                "part": n.qty_text(d.part),
                "substitute": d.item,
                "substitute_unit": d.unit,
                "qty": d.qty_text(d.qty),
                "derived": d.key,
                "period": d.period,
            }
        )
    return out


def rounds(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """The rounds of the plan, from the quantities as declared to where they end:
    per round, per group, the surplus."""
    period = _filters(args)
    view = _View(ctx.state)
    steps, _ = view.plan(args["max_rounds"])
    last = steps[-1] if steps else None
    return {
        "scope": view.region,
        "period": period,
        "converged": bool(last and last.converged),
        "settled": bool(last and last.settled),
        "rounds": [
            {
                "round": s.round,
                "converged": s.converged,
                "moved": len(s.moved),
                "beyond": len(s.beyond),
                "substituted": len(s.subs),
                "groups": _groups_json(s, period),
            }
            for s in steps
        ],
        "remaining_deficit": _qty(sum(max(0, g.gap) for g in last.groups.values()) if last else 0),
    }


def _revision(
    ctx: OpContext,
    i: Intent,
    qty: int,
    number: int,
    *,
    widen: bool,
    subbed: tuple[tuple[str, str], ...] = (),
) -> Any:
    state = ctx.state
    if i.replaces:
        return _derived(ctx, i, qty, number)
    r = state.replica.get(state.me, i.kind, i.key)
    if r is None or r.body is None:  # pragma: no cover - the view came from the replica
        raise LocalError(f"{i.kind} {i.key} is gone")
    if qty <= 0:
        return state.prepare(i.kind, i.key, None, scope=r.scope)
    body = dict(r.body)
    text = i.qty_text(qty)
    body["qty"] = text
    body["base"] = i.qty_text(i.declared)
    body.pop("subbed", None)
    if subbed:
        body["subbed"] = [list(p) for p in subbed]
    if number:
        body["round"] = min(number, MAX_ROUND)
    if widen:  # members approved a quantity beyond the range: bound and new base
        served = qty + sum(_ticks(i, p) for _item, p in subbed)
        if served < i.lo:
            body["min"] = i.qty_text(served)
        if served > i.hi:
            body["max"] = i.qty_text(served)
        body["base"] = i.qty_text(served)
        body.pop("round", None)
    return state.prepare(i.kind, i.key, body, scope=r.scope)


def _ticks(i: Intent, text: str) -> int:
    return part_of({"subbed": [["x", text]], "unit": i.unit}, "x")


def _derived(ctx: OpContext, i: Intent, qty: int, number: int) -> Any:
    """The derived need `i` (a substitute serving part of one of this node's needs)
    at `qty`, or its tombstone at 0."""
    state = ctx.state
    held = state.replica.get(state.me, "need", i.key)
    need = state.replica.get(state.me, "need", i.replaces)
    if qty <= 0 or need is None or need.body is None:
        return state.prepare("need", i.key, None, scope=held.scope if held else i.scope)
    subs: Any = need.body["subs"]
    ratio = next(str(r) for it, r in subs if it == i.item)
    body: dict[str, Any] = {
        "item": i.item,
        "qty": i.qty_text(qty),
        "unit": i.unit,
        "period": i.period,
        "priority": need.body["priority"],
        "replaces": [i.replaces, ratio],
    }
    if number:
        body["round"] = min(number, MAX_ROUND)
    return state.prepare("need", i.key, body, scope=need.scope)


# (intent as held, planned quantity, its round, its substituted parts (item, qty text))
Revision = tuple[Intent, int, int, tuple[tuple[str, str], ...]]


def _subbed(view: _View, steps: list[Step], i: Intent) -> tuple[tuple[str, str], ...]:
    """The parts of need `i` its substitutes serve in the plan, in declared order."""
    parts = {
        d.item: d.part
        for d in (steps[-1].subs.values() if steps else ())
        if (d.node, d.replaces) == (i.node, i.key)
    }
    return tuple((item, i.qty_text(parts[item])) for item, _r in i.subs if item in parts)


def due(state: NodeState) -> tuple[list[Revision], bool, int]:
    """This node's part of the plan where it differs from its records: (revisions,
    whether the records held have converged, how many wait beyond a range). A
    substitution revises the need (its ``subbed`` parts) and writes, revises or
    withdraws its derived needs. Reads only: the daemon computes it off its event
    loop."""
    view = _View(state)
    steps, planned = view.plan()
    me = state.me.hex()
    review = sum(1 for k in steps[-1].beyond if k[0] == me) if steps else 0
    return _mine(state, view, steps, planned), view.step().converged, review


def _mine(
    state: NodeState, view: _View, steps: list[Step], planned: dict[IntentId, int]
) -> list[Revision]:
    """This node's revisions: its needs and capacities whose planned quantity or
    substituted parts differ from their records, and its derived needs to write,
    revise (also one held that does not count: its need is revised with it) or
    withdraw."""
    me = state.me.hex()
    mine: list[Revision] = []
    for i in view.intents:
        if i.node != me or i.replaces:
            continue
        subbed = _subbed(view, steps, i) if i.kind == "need" else ()
        body = _body(state, i)
        held = tuple(
            (item, i.qty_text(part_of(body, item))) for item, _r in i.subs if part_of(body, item)
        )
        if planned[i.id] != i.qty or subbed != held:
            mine.append((i, planned[i.id], view.round_of(steps, i.id), subbed))
    derived = {k: d for k, d in (steps[-1].subs.items() if steps else ()) if d.node == me}
    for r in state.replica.records("need"):
        if r.origin != state.me or not r.body or "replaces" not in r.body:
            continue
        was = intent_of(r)
        k = (me, "need", r.key)
        if was is not None and k not in derived:  # the plan no longer substitutes it
            mine.append((was, 0, 0, ()))
    for k, d in sorted(derived.items()):
        held_record = state.replica.get(state.me, "need", d.key)
        was = intent_of(held_record) if held_record is not None else None
        if was is None or was.qty != d.qty or k not in view.by_id:
            held_qty = was.qty if was is not None else 0
            mine.append((replace(d, qty=held_qty), d.qty, view.round_of(steps, k), ()))
    return mine


def _body(state: NodeState, i: Intent) -> dict[str, Any]:
    r = state.replica.get(state.me, i.kind, i.key)
    return dict(r.body) if r is not None and r.body is not None else {}


def sign_revisions(ctx: OpContext, revisions: list[Revision]) -> Writes | None:
    """Sign `revisions` (from `due`) whose records have not changed since; None if
    none is left."""
    state = ctx.state
    pendings = []
    for i, qty, number, subbed in revisions:
        r = state.replica.get(state.me, i.kind, i.key)
        now = None if r is None or r.body is None else r.body.get("qty")
        held = i.qty_text(i.qty) if i.qty > 0 else None  # None: a derived need to write
        if now != held:
            continue  # changed meanwhile: the next round sees it
        pendings.append(_revision(ctx, i, qty, number, widen=False, subbed=subbed))
        log.info(
            "event=plan.revised kind=%s key=%s item=%s from=%s to=%s round=%d%s",
            i.kind, i.key, i.item, held or "0", i.qty_text(qty), number,
            "".join(f" subbed={item}:{p}" for item, p in subbed),
        )  # fmt: skip
    if not pendings:
        return None
    base = written(ctx)

    def reply(records: list[Any]) -> dict[str, Any]:
        return {**base(records), "revised": [r.key for r in records], "converged": False}

    return Writes(pendings, reply)


def revise(ctx: OpContext, args: dict[str, Any]) -> Any:
    """This node's planner: sign the plan's quantities of its own intents (all within
    their ranges) where they differ from what its records say."""
    mine, converged, review = due(ctx.state)
    writes = sign_revisions(ctx, mine)
    if writes is None:
        return {"revised": [], "converged": converged, "review": review}
    return writes


def has_flexible(state: NodeState) -> bool:
    """Whether this node has a need or capacity with a range or substitutes (its
    planner has work)."""
    return any(
        r.origin == state.me
        and r.body is not None
        and not r.body.keys().isdisjoint(("min", "max", "subs"))
        for kind in ("need", "capacity")
        for r in state.replica.records(kind)
    )


def review(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Revisions of this node's intents beyond their ranges, waiting for members."""
    view = _View(ctx.state)
    steps, planned = view.plan()
    me = ctx.state.me.hex()
    out = []
    for k, qty in sorted(steps[-1].beyond.items() if steps else ()):
        if k[0] != me:
            continue
        i = view.by_id[k]
        out.append(
            {
                "kind": i.kind,
                "id": i.key,
                "item": i.item,
                "period": i.period,
                "unit": i.unit,
                "qty": i.qty_text(i.qty),
                "planned": i.qty_text(planned[k]),
                "min": i.qty_text(i.lo),
                "max": i.qty_text(i.hi),
                "suggested": i.qty_text(qty),
                "withdraw": qty == 0,
                "subbed": [list(p) for p in _subbed(view, steps, i)] if i.kind == "need" else [],
            }
        )
    return out


def approve(ctx: OpContext, args: dict[str, Any]) -> Writes:
    """Apply a revision beyond its range that a member approved (`id`, or every one)."""
    view = _View(ctx.state)
    steps, _ = view.plan()
    me = ctx.state.me.hex()
    beyond = steps[-1].beyond if steps else {}
    waiting = {k: q for k, q in sorted(beyond.items()) if k[0] == me}
    if args["id"] is not None:
        waiting = {k: q for k, q in waiting.items() if k[2] == args["id"]}
        if not waiting:
            raise LocalError(
                f"no revision of {args['id']!r} waits for approval; see `allmende plan review`"
            )
    elif not args["all"]:
        raise LocalError("name the intent to approve, or give --all")
    if not waiting:
        raise LocalError("no revision waits for approval")
    pendings = [
        _revision(ctx, view.by_id[k], q, 0, widen=True, subbed=_subbed(view, steps, view.by_id[k]))
        for k, q in waiting.items()
    ]
    for k, q in waiting.items():
        log.info("event=plan.approved key=%s to=%s", k[2], view.by_id[k].qty_text(q))
    return Writes(pendings, written(ctx))


def _find_cap(caps: list[Cap], ref: str) -> Cap:
    found = [c for c in caps if c.id == ref or c.id.endswith("." + ref)]
    if len(found) != 1:
        raise LocalError(f"no cap {ref!r} in force here; see `allmende cap list`")
    return found[0]


def cap_uses(state: NodeState, scopes: set[str]) -> list[dict[str, Any]]:
    """Each share of a cap in force held by one of `scopes`, with its use (for the
    balance: use against share). Empty, and cheap, while no proposal carries a cap."""
    if not any("cap" in (p.body or {}) for p in state.kinds.records("proposal")):
        return []
    view = _View(state)
    return [r for r in _budgets_json(view) if r["child"] in scopes]


def cap_list(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The caps in force: passed proposals carrying a cap."""
    return [c.as_json() for c in caps_in_force(ctx.state.replica.records(), _counted(ctx.state))]


def cap_show(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """One cap, its shares and each child's use of it (from this region's records)."""
    view = _View(ctx.state)
    cap = _find_cap(view.caps, args["id"])
    mine: list[Budget] = [b for b in view.budgets if b.cap == cap.id]
    shown = {r["child"]: r for r in _budgets_json(view) if r["cap"] == cap.id}
    return {**cap.as_json(), "shares": [shown[b.child] for b in mine]}


def cap_propose(ctx: OpContext, args: dict[str, Any]) -> Writes:
    """Propose a cap: an approval between yes and no for one seat, its electorate the
    scope it caps."""
    state = ctx.state
    key = check_local_key(args["key"])
    if state.replica.get(state.me, "proposal", key) is not None:
        raise LocalError(f"this node has a proposal {key} already; choose another id")
    now = ctx.now_ms()
    body: dict[str, Any] = {
        "title": args["title"],
        "method": "approval",
        "options": [{"id": "yes", "name": "yes"}, {"id": "no", "name": "no"}],
        "seats": 1,
        "electorate": args["scope"] or ctx.config.scope,
        "opens": now,
        "closes": args["closes"] or now + 7 * 24 * 3_600_000,
        "cap": {
            "resource": args["resource"],
            "qty": args["qty"],
            "unit": args["unit"],
            "period": args["period"],
            "children": args["children"],
            "equal": args["equal"],
            "need": args["need"],
        },
    }
    model.validate("proposal", key, body["electorate"], body)
    scope = model.partition_of(body["electorate"])
    base = written(ctx)
    pid = f"{state.me.hex()[:16]}.{key}"

    def reply(records: list[Any]) -> dict[str, Any]:
        return {**base(records), "proposal": pid}

    return Writes([state.prepare("proposal", key, body, scope)], reply)


OPS: dict[str, OpSpec] = {
    "plan_status": OpSpec(status, {"period": _PERIOD}),
    "plan_rounds": OpSpec(
        rounds, {"period": _PERIOD, "max_rounds": INT(1, _MAX_ROUNDS, default=20)}
    ),
    "plan_revise": OpSpec(revise),
    "plan_review": OpSpec(review),
    "plan_approve": OpSpec(approve, {"id": STR(max_len=64), "all": BOOL()}),
    "cap_list": OpSpec(cap_list),
    "cap_show": OpSpec(cap_show, {"id": STR(required=True, max_len=120)}),
    "cap_propose": OpSpec(
        cap_propose,
        {
            "key": STR(required=True, max_len=40),
            "title": STR(required=True, max_len=200),
            "scope": _SCOPE,
            "resource": STR(required=True, max_len=32),
            "qty": STR(required=True, max_len=20),
            "unit": STR(required=True, max_len=16),
            "period": STR(required=True, max_len=16),
            "children": DICT(64, required=True),
            "equal": INT(0, 100, default=1),
            "need": INT(0, 100, default=0),
            "closes": INT(0, 2**48 - 1),
        },
    ),
}
