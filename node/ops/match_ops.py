"""Control operations from balance to plan: who has what, matches, commitments,
fulfilment and track records (issue 13). Thin: the rules live in
`node.planning.matching` and `node.planning.commitments`."""

from __future__ import annotations

import datetime
from fractions import Fraction
from typing import Any, TypeVar

from node import model
from node.errors import LocalError
from node.ops.base import BOOL, STR, OpContext, OpSpec, Writes, written
from node.ops.plan_ops import within_caps
from node.planning.balance import TICKS, decimal_str
from node.planning.commitments import (
    Commitment,
    TrackRecord,
    committed_fields,
    committed_totals,
    track_records,
)
from node.planning.matching import (
    Match,
    match_table,
    positions_from_records,
    positions_from_rollups,
)
from node.state import NodeState

_SCOPE = STR(max_len=200)
_T = TypeVar("_T")
_REF = STR(required=True, max_len=120)


def _counted(state: NodeState) -> frozenset[bytes]:
    return frozenset(state.core.admission.admitted)


def _today(ctx: OpContext) -> datetime.date:
    return datetime.datetime.fromtimestamp(ctx.now_ms() / 1000, tz=datetime.UTC).date()


def _qty(ticks: int) -> str:
    return decimal_str(Fraction(ticks, TICKS))


def _names(state: NodeState) -> dict[str, str]:
    return {k.hex(): v for k, v in state.node_names().items()}


def _check_filters(ctx: OpContext, args: dict[str, Any]) -> tuple[str, str | None, str | None]:
    scope = args.get("scope") or model.partition_of(ctx.config.scope)
    model.check_scope(scope)
    period, item = args.get("period"), args.get("item")
    if period is not None:
        model.check_period(period)
    if item is not None and item not in ctx.state.items():
        raise LocalError(f"unknown item {item!r}; see `allmende item list`")
    return scope, period, item


def _match_json(m: Match, names: dict[str, str]) -> dict[str, Any]:
    return {
        "item": m.item,
        "period": m.period,
        "provider": m.provider,
        "provider_name": names.get(m.provider, ""),
        "receiver": m.receiver,
        "receiver_name": names.get(m.receiver, ""),
        "qty": _qty(m.quantity),
        "unit": model.DIMENSIONS[m.dimension],
        "scope": m.scope,
    }


def match_op(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """Matches under a scope: node to node inside this node's region (from its
    records), region to region above it (from accepted rollups)."""
    state = ctx.state
    scope, period, item = _check_filters(ctx, args)
    region = state.core.region
    inside = model.in_scope(scope, region) or model.in_scope(region, scope)
    positions = positions_from_records(state.replica.records(), _counted(state), scope=region)
    positions = within_caps(state, positions)  # never beyond a share of a cap (issue 14)

    def keep(group: tuple[str, str, str]) -> bool:
        return (item is None or group[0] == item) and (period is None or group[2] == period)

    where: dict[str, set[str]] = {}
    for parties in positions.values():
        for at, node in parties:
            where.setdefault(node, set()).add(at)

    def touches(node: str) -> bool:
        return any(model.in_scope(at, scope) for at in where.get(node, ()))

    # the matches stay columns (`MatchTable`) until the few shown are picked out
    within: list[Match] = []
    if inside:
        table = match_table({g: p for g, p in positions.items() if keep(g)})
        within = table.involving({n for n in table.names if touches(n)})
    across: list[Match] = []
    if not model.in_scope(scope, region):
        regional = positions_from_rollups(state.core.rollup_view(), positions, region)
        table = match_table({g: p for g, p in regional.items() if keep(g)})
        across = table.involving({n for n in table.names if model.in_scope(n, scope)})
    names = _names(state)
    return {
        "scope": scope,
        "within_region": [_match_json(m, names) for m in within],
        "across_regions": [_match_json(m, names) for m in across],
        "track_records": _records_of(ctx, {n for m in within for n in (m.provider, m.receiver)}),
    }


def _records_of(ctx: OpContext, nodes: set[str]) -> list[dict[str, Any]]:
    """The track records of the nodes a match proposes as counterparts (an empty one
    for a node without commitments yet), so that over-promising shows where it
    matters."""
    if not nodes:
        return []
    state = ctx.state
    records = track_records(state.commitments(), _today(ctx))
    names = _names(state)
    return [
        {**records.get(n, TrackRecord(n)).as_json(), "name": names.get(n, "")}
        for n in sorted(nodes)
    ]


def capacities(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Who has what: per node under a scope, its capacity and what is left of it after
    its own needs (its surplus), per item and period."""
    state = ctx.state
    scope, period, item = _check_filters(ctx, args)
    positions = positions_from_records(state.replica.records(), _counted(state), scope=scope)
    positions = within_caps(state, positions)  # never beyond a share of a cap (issue 14)
    names = _names(state)
    out = []
    for (it, dim, per), parties in sorted(positions.items()):
        if (item is not None and it != item) or (period is not None and per != period):
            continue
        for (where, node), pos in sorted(parties.items()):
            if not pos.capacity:
                continue
            out.append(
                {
                    "node": node,
                    "name": names.get(node, ""),
                    "scope": where,
                    "item": it,
                    "period": per,
                    "unit": model.DIMENSIONS[dim],
                    "capacity": _qty(pos.capacity),
                    "surplus": _qty(max(0, pos.capacity - sum(pos.needs))),
                }
            )
    return out


def short_id(key: str) -> str:
    """How an offer or delivery is shown and may be named: its id's free prefix."""
    return key.split("-", 1)[0]


def _one(found: list[_T], what: str, ref: str) -> _T:
    if len(found) == 1:
        return found[0]
    if not found:
        raise LocalError(f"no {what} {ref!r} here; see `allmende commitment list`")
    raise LocalError(f"{what} {ref!r} is ambiguous here: give its full id (see --json)")


def _find(state: NodeState, ref: str) -> Commitment:
    """An offer named by its full id (<offerer hex>.<offer id>), its offer id, or the
    short id `commitment list` shows."""
    comms = state.commitments()
    for c in comms:
        if c.ref == ref:
            return c
    offerer, _, key = ref.rpartition(".")
    found = [c for c in comms if c.ref.split(".", 1)[1] == key and c.offerer.startswith(offerer)]
    if not found and "-" not in key and not offerer:
        found = [c for c in comms if short_id(c.ref.split(".", 1)[1]) == key]
    return _one(found, "offer", ref)


def _node(state: NodeState, who: str) -> tuple[str, str]:
    """A node named by its key (hex), a unique key prefix (8 hex digits or more) or
    its unique name; returns (key hex, scope) from its node record."""
    scopes = state.node_scopes()
    if who in scopes:
        return who, scopes[who]
    names = _names(state)
    found = [k for k in scopes if len(who) >= 8 and k.startswith(who)]
    found = found or [k for k in scopes if names.get(k) == who]
    key = _one(found, "node", who) if found else None
    if key is None:
        raise LocalError(
            f"node {who!r} is unknown here (no node record held); give its key or name"
        )
    return key, scopes[key]


def _meeting_scope(a: str, b: str) -> str:
    """Where both parties' records meet: their common scope, at most a region deep,
    so that the records replicate to both (a common region, or the partition of the
    scope above both regions)."""
    common = []
    for x, y in zip(a.split("/"), b.split("/"), strict=False):
        if x != y:
            break
        common.append(x)
    if not common:
        raise LocalError("the two nodes share no scope")
    return "/".join(common[: model.REGION_DEPTH])


def _fresh_key(state: NodeState, kind: str, scope: str, body: dict[str, Any]) -> str:
    """A new offer's or delivery's id (`model.content_key`), unused by this node."""
    while True:
        key = model.content_key(state.core.new_key(kind[0], kind), scope, body)
        if state.replica.get(state.me, kind, key) is None:
            return key


def propose(ctx: OpContext, args: dict[str, Any]) -> Writes:
    state = ctx.state
    other, where = _node(state, args["with"])
    if other == state.me.hex():
        raise LocalError("a commitment needs another node")
    if args["role"] not in model.ROLES:
        raise LocalError(f"role must be one of {', '.join(model.ROLES)}")
    catalog = state.items()
    if args["item"] not in catalog:
        raise LocalError(f"unknown item {args['item']!r}; see `allmende item list`")
    if model.unit(args["unit"]).dimension != catalog[args["item"]].dimension:
        raise LocalError(f"{args['unit']} does not measure {args['item']}")
    body: dict[str, Any] = {
        "role": args["role"],
        "with": other,
        "item": args["item"],
        "qty": model.normalise_quantity(args["qty"]),
        "unit": args["unit"],
        "period": args["period"],
        "due": args["due"],
    }
    if args["note"]:
        body["note"] = args["note"]
    scope = _meeting_scope(ctx.config.scope, where)
    key = _fresh_key(state, "offer", scope, body)
    return Writes([state.prepare("offer", key, body, scope)], written(ctx))


def _reply(ctx: OpContext, ref: str, kind: str, reason: str | None) -> Writes:
    state = ctx.state
    c = _find(state, ref)
    me = state.me.hex()
    offer_key = c.ref.split(".", 1)[1]
    if kind == "accept":
        if me == c.offerer or me not in (c.provider, c.receiver):
            raise LocalError("only the counterpart of an offer can accept it")
        if c.state != "offered":
            raise LocalError(f"offer {ref} is {c.state} already")
        body: dict[str, Any] = {"by": c.offerer, "offer": offer_key}
    else:
        if me not in (c.provider, c.receiver):
            raise LocalError("only a party to an offer can decline it")
        body = {"by": c.offerer, "offer": offer_key}
        if reason:
            body["reason"] = reason
    key = model.reply_key(c.offerer, offer_key)
    return Writes([state.prepare(kind, key, body, c.scope)], written(ctx))


def accept(ctx: OpContext, args: dict[str, Any]) -> Writes:
    return _reply(ctx, args["id"], "accept", None)


def decline(ctx: OpContext, args: dict[str, Any]) -> Writes:
    return _reply(ctx, args["id"], "decline", args["reason"])


def list_commitments(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    me = state.me.hex()
    names = _names(state)
    out = []
    for c in state.commitments():
        if not args["all"] and me not in (c.provider, c.receiver):
            continue
        j = c.as_json()
        j["provider_name"] = names.get(c.provider, "")
        j["receiver_name"] = names.get(c.receiver, "")
        out.append(j)
    return out


def fulfil(ctx: OpContext, args: dict[str, Any]) -> Writes:
    state = ctx.state
    c = _find(state, args["id"])
    if c.provider != state.me.hex():
        raise LocalError("only the provider records a delivery")
    if c.state != "committed":
        raise LocalError(f"offer {c.ref} is {c.state}, not committed: both sides must sign first")
    if model.unit(args["unit"]).dimension != c.dimension:
        raise LocalError(f"{args['unit']} does not measure {c.item}")
    day = args["date"] or _today(ctx).isoformat()
    body: dict[str, Any] = {
        "offer": c.ref,
        "qty": model.normalise_quantity(args["qty"]),
        "unit": args["unit"],
        "date": day,
    }
    if args["note"]:
        body["note"] = args["note"]
    key = _fresh_key(state, "deliver", c.scope, body)
    return Writes([state.prepare("deliver", key, body, c.scope)], written(ctx))


def confirm(ctx: OpContext, args: dict[str, Any]) -> Writes:
    """Confirm (or with a reason, dispute) a delivery named ``<provider hex>.<id>``,
    by its id, or by the short id `commitment list` shows."""
    state = ctx.state
    ref = str(args["id"])
    me = state.me.hex()
    held = [(c, d) for c in state.commitments() if c.receiver == me for d in c.deliveries]
    provider, _, key = ref.rpartition(".")
    found = [(c, d) for c, d in held if d.key == key and c.provider.startswith(provider)]
    if not found and "-" not in key and not provider:
        found = [(c, d) for c, d in held if short_id(d.key) == key]
    if not found:
        raise LocalError(
            f"no delivery {ref!r} to this node here (only the receiver confirms or disputes "
            "a delivery); see `allmende commitment list`"
        )
    c, delivery = _one(found, "delivery", ref)
    provider, key = c.provider, delivery.key
    r = state.replica.get(bytes.fromhex(provider), "deliver", key)
    if r is None or r.body is None:  # cannot be: `commitments` read it from the replica
        raise LocalError(f"no delivery {ref!r} here")
    reply_key = model.reply_key(provider, key)
    if args["dispute"]:
        body: dict[str, Any] = {"by": provider, "delivery": key, "reason": args["dispute"]}
        kind = "dispute"
    else:
        b = r.body
        body = {
            "by": provider,
            "delivery": key,
            "qty": b["qty"],
            "unit": b["unit"],
            "date": b["date"],
        }
        kind = "confirm"
    return Writes([state.prepare(kind, reply_key, body, c.scope)], written(ctx))


def track_record(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    records = track_records(state.commitments(), _today(ctx))
    names = _names(state)
    node = args["node"]
    if node is not None:
        found = [k for k in records if k.startswith(node)] or [
            k for k, n in names.items() if n == node and k in records
        ]
        records = {k: records[k] for k in found}
    return {
        "today": _today(ctx).isoformat(),
        "nodes": [{**t.as_json(), "name": names.get(k, "")} for k, t in records.items()],
    }


def committed(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Posted against committed quantities under a scope (posted coverage vs committed
    coverage); `balance` shows the same columns."""
    state = ctx.state
    scope, period, item = _check_filters(ctx, args)
    totals = committed_totals(state.commitments(), state.node_scopes(), scope)
    return [
        {
            **row.as_json(),
            **committed_fields(
                row.needs_ticks, totals.get((row.item, row.dimension, row.period), (0, 0))
            ),
        }
        for row in state.index.rows(scope, period=period, item=item)
    ]


OPS: dict[str, OpSpec] = {
    "match": OpSpec(
        match_op, {"scope": _SCOPE, "period": STR(max_len=16), "item": STR(max_len=64)}
    ),
    "capacities": OpSpec(
        capacities, {"scope": _SCOPE, "period": STR(max_len=16), "item": STR(max_len=64)}
    ),
    "commitment_propose": OpSpec(
        propose,
        {
            "with": STR(required=True, max_len=max(64, model.MAX_NAME_CHARS)),
            "role": STR(max_len=16, default="provide"),
            "item": STR(required=True, max_len=64),
            "qty": STR(required=True, max_len=32),
            "unit": STR(required=True, max_len=16),
            "period": STR(required=True, max_len=16),
            "due": STR(required=True, max_len=10),
            "note": STR(max_len=model.MAX_NOTE_CHARS),
        },
    ),
    "commitment_accept": OpSpec(accept, {"id": _REF}),
    "commitment_decline": OpSpec(
        decline, {"id": _REF, "reason": STR(max_len=model.MAX_NOTE_CHARS)}
    ),
    "commitment_list": OpSpec(list_commitments, {"all": BOOL()}),
    "fulfil": OpSpec(
        fulfil,
        {
            "id": _REF,
            "qty": STR(required=True, max_len=32),
            "unit": STR(required=True, max_len=16),
            "date": STR(max_len=10),
            "note": STR(max_len=model.MAX_NOTE_CHARS),
        },
    ),
    "confirm": OpSpec(confirm, {"id": _REF, "dispute": STR(max_len=model.MAX_NOTE_CHARS)}),
    "track_record": OpSpec(track_record, {"node": STR(max_len=100)}),
    "committed": OpSpec(
        committed, {"scope": _SCOPE, "period": STR(max_len=16), "item": STR(max_len=64)}
    ),
}
