"""Control operations of the node itself: status, intents, items, balance, peers."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

from node import model
from node.clock import LOGICAL_BITS, hlc_millis
from node.control import JsonText
from node.core import IngestResult
from node.crdt.encoding import MAX_RECORD_BYTES
from node.errors import LocalError
from node.keys import public_of_peer_id
from node.net.dialable import dialable, interface_ips
from node.net.discovery import split_p2p_addr
from node.ops.balance_text import level_text, rows_text
from node.ops.base import (
    BOOL,
    INT,
    LIST,
    STR,
    Job,
    OpContext,
    OpSpec,
    Progress,
    Submit,
    Writes,
    written,
)
from node.ops.plan_ops import cap_uses
from node.planning.balance import ticks_str
from node.planning.commitments import committed_totals
from node.state import BalanceLevel, NodeState, record_json

MAX_DEPTH = model.MAX_SCOPE_DEPTH
MAX_PAGE = 100_000  # scopes listed below each scope of a balance
MAX_OFFSET = 10**9
DAY_MS = 86_400_000
_EPOCH = datetime.date(1970, 1, 1)


def status(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    s = ctx.state
    net = ctx.net.statistics()
    rejected: Counter[str] = Counter(net.rejected)
    for c in ctx.counters.values():
        rejected.update(c)
    return {
        "node_id": s.identity.public.hex(),
        "peer_id": ctx.net.peer_id,
        "name": ctx.config.name,
        "kind": ctx.config.kind,
        "scope": ctx.config.scope,
        "federation": s.charter.id,
        "federation_name": s.charter.name,
        "admitted": s.core.admission.is_admitted(s.me),
        "partitions": s.partitions,
        "listen": addresses(ctx),
        "bound": ctx.net.listen_addrs(),
        "peers": net.peers,
        "records": len(s.replica),
        "own_records": sum(1 for r in s.replica.records() if r.origin == s.me),
        "writes_since_start": s.core.writes,
        "origins": len({r.origin for r in s.replica.records()}),
        "flagged_origins": [o.hex() for o in sorted(s.replica.flagged)],
        "digest": s.replica.digest(s.partitions).hex(),
        "sync": {"ok": net.sync_ok, "failed": net.sync_failed},
        "gossip": {
            "messages_in": net.gossip_messages_in,
            "bytes_in": net.gossip_bytes_in,
            "messages_out": net.gossip_messages_out,
            "bytes_out": net.gossip_bytes_out,
            "records_accepted": ctx.counters["gossip_accepted"]["records"],
        },
        "rejected": {k: v for k, v in rejected.items() if k != "records"},
        "uptime_s": round(ctx.uptime(), 1),
    }


def post(ctx: OpContext, args: dict[str, Any]) -> Writes:
    pending = ctx.state.intent_pending(
        args["kind"],
        args["item"],
        args["qty"],
        args["unit"],
        args["period"],
        priority=args["priority"],
        note=args["note"],
        flex=_flex(args),
    )
    return Writes([pending], written(ctx))


def _flex(args: dict[str, Any]) -> dict[str, Any]:
    """How far an intent can move, from `post`'s arguments (min and max as typed,
    subs as ``item:ratio``, use as ``resource:qty:unit``)."""
    out: dict[str, Any] = {}
    for bound in ("min", "max"):
        if args.get(bound) is not None:
            out[bound] = model.normalise_quantity(args[bound])
    for name, parts in (("subs", 2), ("use", 3)):
        given = args.get(name)
        if not given:
            continue
        entries = [str(v).split(":") for v in given]
        if any(len(e) != parts for e in entries):
            form = "item:ratio" if parts == 2 else "resource:qty:unit"
            raise LocalError(f"each of {name} is written {form}")
        out[name] = [[e[0], model.normalise_quantity(e[1]), *e[2:]] for e in entries]
    return out


def withdraw(ctx: OpContext, args: dict[str, Any]) -> Writes:
    return Writes([ctx.state.withdraw_pending(args["kind"], args["key"])], written(ctx))


def list_intents(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    """This node's needs or capacities, or everyone's held under a scope. Asked for an
    item, also the other regions' totals of it from their accepted rollups (the
    node's view beyond its region: who has what, region by region)."""
    kind = args["kind"]
    if kind not in ("need", "capacity"):
        raise LocalError("kind must be need or capacity")
    scope = args["scope"]
    if scope is not None:
        model.check_scope(scope)
    names = ctx.state.node_names()
    records = ctx.state.intents(
        kind, scope=scope, mine=not args["all"], withdrawn=args["withdrawn"]
    )
    item = args["item"]
    out = [
        {**record_json(r, names), "source": "record"}
        for r in records
        if item is None or (r.body is not None and r.body.get("item") == item)
    ]
    if item is not None:
        out += _region_totals(ctx, kind, item, scope or "")
    return out


def _region_totals(ctx: OpContext, kind: str, item: str, scope: str) -> list[dict[str, Any]]:
    """Per other region under `scope` ("" for all) and period, its total of `item`'s
    needs or capacities, from its accepted rollup (split or unattested ones are left
    out: never summed)."""
    try:
        view = ctx.state.core.rollup_view()
    except LocalError:  # admission off: no rollups
        return []
    rows = []
    for (region, period), rp in sorted(view.pairs.items()):
        content = rp.accepted
        if content is None or (scope and not model.in_scope(region, scope)):
            continue
        for it, dim, needs, caps, nodes in content.body["items"]:
            total = int(needs if kind == "need" else caps)
            if it != item or not total:
                continue
            rows.append(
                {
                    "source": "rollup",
                    "kind": kind,
                    "region": region,
                    "scope": region,
                    "item": it,
                    "period": period,
                    "qty": ticks_str(total),
                    "unit": model.DIMENSIONS[dim],
                    "nodes": nodes,
                    "attested_by": len(content.attesters),
                }
            )
    return rows


def items(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [asdict(i) for i in sorted(ctx.state.items().values(), key=lambda i: i.id)]


def item_add(ctx: OpContext, args: dict[str, Any]) -> Writes:
    pending = ctx.state.item_pending(args["id"], args["name"], args["dimension"])
    return Writes([pending], written(ctx))


def balance(ctx: OpContext, args: dict[str, Any]) -> JsonText:
    scope = args["scope"] or model.partition_of(ctx.config.scope)
    model.check_scope(scope)
    period, item = args["period"], args["item"]
    if period is not None:
        model.check_period(period)
    if item is not None and item not in ctx.state.items():
        raise LocalError(f"unknown item {item!r}; see `allmende item list`")
    levels = ctx.state.balance(
        scope,
        period=period,
        item=item,
        depth=args["depth"],
        limit=args["limit"],
        offset=args["offset"],
    )
    records, nodes = ctx.state.left_out(scope)
    # Printed as JSON text here (`balance_text`): a deep view has thousands of rows.
    return JsonText(
        f'{{"scope": {json.dumps(scope)}, "levels": {_levels_text(ctx.state, levels)}, '
        f'"left_out": {json.dumps({"records": records, "nodes": nodes})}, '
        f'"caps": {json.dumps(cap_uses(ctx.state, {lv.scope for lv in levels}))}}}'
    )


def _levels_text(state: NodeState, levels: list[BalanceLevel]) -> str:
    """The levels as a JSON array, each row with its committed quantities next to the
    posted ones (`committed_fields`). Only a scope inside this node's region has them:
    its commitment records are all held here; elsewhere they are null."""
    region = state.core.region
    own = [lv for lv in levels if model.in_scope(lv.scope, region)]
    totals = {}
    if own:
        comms, scopes = state.commitments(), state.node_scopes()
        totals = {lv.scope: committed_totals(comms, scopes, lv.scope) for lv in own}
    return (
        "["
        + ", ".join(
            level_text(
                lv.scope,
                lv.level,
                rows_text(lv.scope, lv.entries, totals.get(lv.scope)),
                lv.basis,
                lv.more,
            )
            for lv in levels
        )
        + "]"
    )


def rollups(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """Other regions' rollups as this node sees them: per region and period, the
    status, each content's attesters, and who contradicts an accepted one."""
    view = ctx.state.core.rollup_view()
    names = ctx.state.node_names()
    out = []
    for rp in view.pairs.values():
        if args["region"] is not None and rp.region != args["region"]:
            continue
        out.append(
            {
                "region": rp.region,
                "period": rp.period,
                "status": rp.status.value,
                "contents": [
                    {
                        "digest": c.digest,
                        "accepted": c.accepted,
                        "attesters": [a.hex() for a in c.attesters],
                        "attester_names": [names.get(a) for a in c.attesters],
                        "quorum": c.quorum,
                        "anchored": c.anchored,
                        "records": c.body["records"],
                        "nodes": c.body["nodes"],
                    }
                    for c in rp.contents
                ],
                "contradicting": [a.hex() for a in rp.contradicting],
            }
        )
    record = {
        a.hex(): {"name": names.get(a), "accepted": agreed, "contradicted": contradicted}
        for a, (agreed, contradicted) in view.track_record().items()
    }
    return {"own_region": view.own_region, "rollups": out, "track_record": record}


def addresses(ctx: OpContext) -> list[str]:
    """Where peers can dial this node: configured public addresses, then each
    interface's address in place of a wildcard listen address."""
    return dialable(ctx.net.listen_addrs(), interface_ips(), ctx.config.announce, ctx.net.peer_id)


def _node_of(ctx: OpContext, peer_id: str) -> dict[str, Any]:
    """A peer with what its node record says (name, kind, scope), if held here."""
    key = public_of_peer_id(peer_id)
    r = None if key is None else ctx.state.replica.get(key, "node", "self")
    b = {} if r is None or r.body is None else r.body
    return {
        "peer_id": peer_id,
        "node_id": None if key is None else key.hex(),
        "name": b.get("name"),
        "kind": b.get("kind"),
        "scope": b.get("scope"),
    }


def history(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """Records held, per UTC day of their stamp (when their authors wrote them, by
    the hybrid clock) over the last `days` days, and per kind."""
    today = ctx.now_ms() // DAY_MS
    first = today - args["days"] + 1
    records = list(ctx.state.replica.records())
    # Counted by Counter's C loop over generators: a third of a for loop's time.
    kinds = Counter(r.kind for r in records)
    shift, day_ms = LOGICAL_BITS, DAY_MS  # hlc_millis, inline: one call per record saved
    all_days = Counter((r.hlc >> shift) // day_ms for r in records)
    per_day = {d: all_days.get(d, 0) for d in range(first, today + 1)}
    return {
        "days": [
            {"day": (_EPOCH + datetime.timedelta(days=d)).isoformat(), "records": n}
            for d, n in per_day.items()
        ],
        "kinds": dict(sorted(kinds.items())),
    }


def peers(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "connected": ctx.net.connected_peers(),
        "nodes": [_node_of(ctx, p) for p in ctx.net.connected_peers()],
        "listen": addresses(ctx),
        "bootstrap": list(ctx.config.bootstrap),
    }


def peers_add(ctx: OpContext, args: dict[str, Any]) -> Job:
    """Dial the peer now; remember it only if the dial succeeds (or `keep`)."""
    addr = args["addr"]
    peer_id, _ = split_p2p_addr(addr)
    if peer_id == ctx.net.peer_id:
        raise LocalError("that address is this node itself")

    async def run(progress: Progress) -> dict[str, Any]:
        progress(0, 1, "dialling")
        connected = await ctx.net.connect(addr)
        if not connected and not args["keep"]:
            raise LocalError(
                f"could not connect to {addr}; nothing was saved. Check the address and "
                "that the peer runs and its port is open, or add --keep to save it and "
                "keep trying"
            )
        if addr not in ctx.config.bootstrap:
            ctx.save_config(replace(ctx.config, bootstrap=(*ctx.config.bootstrap, addr)))
        ctx.net.add_bootstrap(addr)  # redialled with backoff whenever it drops
        return {"added": addr, "peer_id": peer_id, "connected": connected}

    return Job(run)


def peers_remove(ctx: OpContext, args: dict[str, Any]) -> Job:
    """Forget a peer (by peer id or address): config, remembered peers, connection."""
    given = args["peer"]
    peer_id = split_p2p_addr(given)[0] if given.startswith("/") else given
    kept = tuple(a for a in ctx.config.bootstrap if split_p2p_addr(a)[0] != peer_id)
    removed = [a for a in ctx.config.bootstrap if a not in kept]
    if not removed and peer_id not in ctx.net.connected_peers():
        raise LocalError(f"{peer_id} is neither a configured nor a connected peer")

    async def run(progress: Progress) -> dict[str, Any]:
        if removed:
            ctx.save_config(replace(ctx.config, bootstrap=kept))
        await ctx.net.remove_peer(peer_id)
        return {"peer_id": peer_id, "removed": removed}

    return Job(run)


def nodes(ctx: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes this node knows under a scope: kind, last seen (the newest clock of
    their records), records held, and whether they count here."""
    scope = args["scope"] or model.partition_of(ctx.config.scope)
    model.check_scope(scope)
    s = ctx.state
    count: Counter[bytes] = Counter()
    last: dict[bytes, int] = {}
    for r in s.replica.records():
        count[r.origin] += 1
        last[r.origin] = max(last.get(r.origin, 0), r.hlc)
    out = []
    for r in s.replica.records("node"):
        if r.key != "self" or r.body is None or not model.in_scope(str(r.body["scope"]), scope):
            continue
        out.append(
            {
                "node_id": r.origin.hex(),
                "name": r.body.get("name"),
                "kind": r.body.get("kind"),
                "scope": r.body.get("scope"),
                "last_seen_ms": hlc_millis(last[r.origin]),
                "records": count[r.origin],
                "admitted": s.core.admission.is_admitted(r.origin),
                "this_node": r.origin == s.me,
            }
        )
    return sorted(out, key=lambda n: (n["scope"], n["name"] or "", n["node_id"]))


def digest(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    s = ctx.state
    return {"digest": s.replica.digest(s.partitions).hex(), "records": len(s.replica)}


def submit(ctx: OpContext, args: dict[str, Any]) -> Submit:
    """Take a record signed elsewhere (a member's own key), hex-encoded.

    It is checked like any record from the network, stored durably, then gossiped.
    """
    try:
        raw = bytes.fromhex(args["record"])
    except ValueError:
        raise LocalError("record must be hex-encoded wire bytes") from None

    def reply(result: IngestResult) -> dict[str, Any]:
        if result.rejected:
            raise LocalError(f"record rejected: {', '.join(sorted(result.rejected))}")
        if not result.stored:
            raise LocalError("record not stored: this node holds it or a newer one already")
        return record_json(result.stored[0], ctx.state.node_names())

    return Submit([raw], reply)


_SCOPE = STR(max_len=200)
OPS: dict[str, OpSpec] = {
    "status": OpSpec(status),
    "post": OpSpec(
        post,
        {
            "kind": STR(required=True, max_len=16),
            "item": STR(required=True, max_len=64),
            "qty": STR(required=True, max_len=32),
            "unit": STR(required=True, max_len=16),
            "period": STR(required=True, max_len=16),
            "priority": STR(max_len=16),
            "note": STR(max_len=model.MAX_NOTE_CHARS),
            "min": STR(max_len=32),
            "max": STR(max_len=32),
            "subs": LIST(str, 8),
            "use": LIST(str, 4),
        },
    ),
    "withdraw": OpSpec(
        withdraw, {"kind": STR(required=True, max_len=16), "key": STR(required=True, max_len=64)}
    ),
    "list": OpSpec(
        list_intents,
        {
            "kind": STR(required=True, max_len=16),
            "scope": _SCOPE,
            "all": BOOL(),
            "withdrawn": BOOL(),
            "item": STR(max_len=64),
        },
    ),
    "items": OpSpec(items),
    "item_add": OpSpec(
        item_add,
        {
            "id": STR(required=True, max_len=64),
            "name": STR(required=True, max_len=model.MAX_NAME_CHARS),
            "dimension": STR(required=True, max_len=16),
        },
    ),
    "balance": OpSpec(
        balance,
        {
            "scope": _SCOPE,
            "period": STR(max_len=16),
            "item": STR(max_len=64),
            "depth": INT(0, MAX_DEPTH, default=0),
            "limit": INT(1, MAX_PAGE, default=None),
            "offset": INT(0, MAX_OFFSET, default=0),
        },
    ),
    "peers": OpSpec(peers),
    "history": OpSpec(history, {"days": INT(1, 366, default=14)}),
    "rollups": OpSpec(rollups, {"region": _SCOPE}),
    "peers_add": OpSpec(peers_add, {"addr": STR(required=True, max_len=400), "keep": BOOL()}),
    "peers_remove": OpSpec(peers_remove, {"peer": STR(required=True, max_len=400)}),
    "nodes": OpSpec(nodes, {"scope": _SCOPE}),
    "digest": OpSpec(digest),
    "submit": OpSpec(submit, {"record": STR(required=True, max_len=2 * MAX_RECORD_BYTES)}),
}
