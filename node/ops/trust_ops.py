"""Control operations of trust: the federation, invites, endorsements, admission.

The rules are `node.governance.admission`'s; these ops read its state and write the
records that feed it.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from node import model
from node.errors import LocalError
from node.governance.admission import Admission, InviteCode, Standing
from node.keys import peer_id_of
from node.ops.base import BOOL, STR, OpContext, OpSpec, Writes, written
from node.state import NodeState

INVITE_KEY_CHARS = "abcdefghijkmnpqrstuvwxyz23456789"


def _node_key(text: Any) -> str:
    if isinstance(text, str) and model.matches(model.HEX64, text.lower()):
        return text.lower()
    raise LocalError("a node is named by its node id: 64 hex digits (see allmende status)")


def standing_json(s: Standing, names: dict[bytes, str]) -> dict[str, Any]:
    return {
        "node": s.node.hex(),
        "name": names.get(s.node),
        "scope": s.scope,
        "status": s.status.value,
        "founder": s.founder,
        "endorsers": [e.hex() for e in s.endorsers],
        "endorser_names": [names.get(e) for e in s.endorsers],
        "needed": s.needed,
        "invited_by": s.invited_by.hex() if s.invited_by is not None else None,
    }


def _federation_json(state: NodeState, adm: Admission) -> dict[str, Any]:
    charter = state.charter
    return {
        "federation": charter.id,
        "name": charter.name,
        "founders": [f.hex() for f in charter.founders],
        "signed": [f.hex() for f in charter.founders if f in adm.admitted],
        "rule": {"cap": charter.rule.cap, "num": charter.rule.num, "den": charter.rule.den},
        "admitted": len(adm.admitted),
        "this_node": {
            "node": state.me.hex(),
            "status": "admitted" if adm.is_admitted(state.me) else "pending",
        },
    }


def federation(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    return _federation_json(ctx.state, ctx.state.core.admission)


def admission(ctx: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """Every node's standing (or one node's), with who endorsed whom."""
    adm = ctx.state.core.admission
    names = ctx.state.node_names()
    if args["node"] is not None:
        node = bytes.fromhex(_node_key(args["node"]))
        found = adm.standings.get(node)
        if found is None:
            raise LocalError(
                f"this node knows nothing of {node.hex()[:12]}: no node record, charter or "
                "endorsement of it is held here (not received yet?)"
            )
        return standing_json(found, names)
    rows = [standing_json(s, names) for s in adm.standings.values()]
    rows.sort(key=lambda r: (r["status"] != "admitted", r["scope"] or "", r["node"]))
    return {**_federation_json(ctx.state, adm), "nodes": rows}


def endorse(ctx: OpContext, args: dict[str, Any]) -> Writes:
    """Vouch for a node (or withdraw the endorsement)."""
    node = _node_key(args["node"])
    state = ctx.state
    if bytes.fromhex(node) == state.me:
        raise LocalError("a node cannot endorse itself")
    current = state.replica.get(state.me, "endorse", node)
    if args["withdraw"]:
        if current is None or current.body is None:
            raise LocalError(f"this node does not endorse {node[:12]}")
        return Writes([state.prepare("endorse", node, None)], written(ctx))
    if not state.core.admission.is_admitted(state.me):
        raise LocalError(
            "this node is not admitted in its federation yet: its endorsement would "
            "count for nothing (see allmende admission)"
        )
    if current is not None and current.body is not None:
        raise LocalError(f"this node endorses {node[:12]} already")
    body: dict[str, Any] = {}
    if args["note"]:
        body["note"] = args["note"]
    scope = state.core.trust_scope(bytes.fromhex(node))
    return Writes([state.prepare("endorse", node, body, scope=scope)], written(ctx))


def invite_create(ctx: OpContext, args: dict[str, Any]) -> Writes:
    """A one-use invite: its record publishes the hash of a secret; the code holds the
    secret, the charter and this node's address."""
    state = ctx.state
    if not state.core.admission.is_admitted(state.me):
        raise LocalError(
            "this node is not admitted in its federation yet: nobody would count its "
            "invite (see allmende admission)"
        )
    address = args["address"] or _dialable(ctx)
    suffix = "/p2p/" + peer_id_of(state.me)
    if not address.endswith(suffix):
        address += suffix
    secret = os.urandom(32)
    key = "".join(secrets.choice(INVITE_KEY_CHARS) for _ in range(16))
    body: dict[str, Any] = {"hash": model.invite_hash(secret)}
    if args["note"]:
        body["note"] = args["note"]
    code = InviteCode(state.charter, address, f"{state.me.hex()}.{key}", secret).encode()

    def reply(records: list[Any]) -> dict[str, Any]:
        return {"invite": key, "code": code, "address": address}

    return Writes([state.prepare("invite", key, body, scope=state.core.trust_scope(None))], reply)


def _dialable(ctx: OpContext) -> str:
    for addr in ctx.net.listen_addrs():
        if "/ip4/0.0.0.0/" not in addr and "/ip6/::/" not in addr:
            return addr
    raise LocalError(
        "this node listens on all interfaces: say where others reach it, "
        "e.g. --address /ip4/192.0.2.10/tcp/7946"
    )


OPS: dict[str, OpSpec] = {
    "federation": OpSpec(federation),
    "admission": OpSpec(admission, {"node": STR(max_len=64)}),
    "endorse": OpSpec(
        endorse,
        {
            "node": STR(required=True, max_len=64),
            "withdraw": BOOL(),
            "note": STR(max_len=model.MAX_NOTE_CHARS),
        },
    ),
    "invite_create": OpSpec(
        invite_create,
        {"note": STR(max_len=model.MAX_NOTE_CHARS), "address": STR(max_len=300)},
    ),
}
