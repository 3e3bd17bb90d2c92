"""Governance control operations, registered in ``node.daemon.EXTRA_OPS``.

Each op is ``fn(daemon, args) -> JSON``: it builds a :class:`Ledger` from the node's
replica, asks the pure modules what to write or report, and writes through
``NodeState.write`` (validated, signed, durable, then gossiped). Member-signed records
arrive already signed, through the daemon's ``submit`` op.

It lives at the edge, beside the daemon, and not in the pure ``node.governance``
package; ``node.daemon`` imports it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from node import daemon as _daemon
from node.clock import hlc_millis
from node.control import InThread
from node.crdt.record import Record, sign_record
from node.errors import LocalError
from node.governance import sortition, tally
from node.governance.ledger import Ledger, body, check_local_key, object_id
from node.governance.lifecycle import Action, decide, phase
from node.governance.pbimport import plan_import

if TYPE_CHECKING:
    from node.daemon import Daemon

Op = Callable[["Daemon", dict[str, Any]], Any]
OPS: dict[str, Op] = {}
__all__ = ["OPS"]


def op(name: str) -> Callable[[Op], Op]:
    def register(fn: Op) -> Op:
        OPS[name] = fn
        return fn

    return register


def _ledger(d: Daemon) -> Ledger:
    return Ledger(d.state.replica.records())


def _now(d: Daemon) -> int:
    return d.state.clock.now_ms()


def _arg(args: dict[str, Any], name: str, default: Any = ...) -> Any:
    if name in args and args[name] is not None:
        return args[name]
    if default is ...:
        raise LocalError(f"missing argument {name!r}")
    return default


def _member_key(text: Any) -> str:
    if not isinstance(text, str) or len(text) != 64:
        raise LocalError("a member key is 64 hex digits (from `allmende member keygen`)")
    try:
        return bytes.fromhex(text).hex()
    except ValueError:
        raise LocalError("a member key is 64 hex digits") from None


# --- members -------------------------------------------------------------------


@op("gov_member_add")
def member_add(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    key = _member_key(_arg(args, "member"))
    body: dict[str, Any] = {"pseudonym": _arg(args, "pseudonym"), "consent": True}
    features = _arg(args, "features", {})
    if features:
        body["features"] = features
    return d._written(d.state.write("member", key, body))


@op("gov_member_remove")
def member_remove(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    key = _member_key(_arg(args, "member"))
    current = d.state.replica.get(d.state.me, "member", key)
    if current is None or current.body is None:
        raise LocalError(f"{key[:12]}... is not a member of this node")
    return d._written(d.state.write("member", key, None, scope=current.scope))


@op("gov_member_list")
def member_list(d: Daemon, args: dict[str, Any]) -> list[dict[str, Any]]:
    ledger = _ledger(d)
    mine = not _arg(args, "all", False)
    names = d.state.node_names()
    out = []
    for r in ledger.of_kind("member"):
        if r.body is None or (mine and r.origin != d.state.me):
            continue
        out.append(
            {
                "member": r.key,
                "pseudonym": r.body["pseudonym"],
                "features": r.body.get("features") or {},
                "node": r.origin.hex(),
                "node_name": names.get(r.origin),
                "scope": r.scope,
            }
        )
    return out


# --- proposals -----------------------------------------------------------------

_PROPOSAL_FIELDS = (
    "title",
    "text",
    "method",
    "options",
    "projects",
    "budget",
    "electorate",
    "opens",
    "closes",
    "min_score",
    "max_score",
    "seats",
)


@op("gov_proposal_create")
def proposal_create(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    key = check_local_key(_arg(args, "key"))
    if d.state.replica.get(d.state.me, "proposal", key) is not None:
        raise LocalError(f"this node has a proposal {key} already; choose another id")
    prop = {k: args[k] for k in _PROPOSAL_FIELDS if args.get(k) is not None}
    prop.setdefault("electorate", d.config.scope)
    prop.setdefault("opens", _now(d))
    if prop.get("method") not in ("mes", "greedy"):
        prop.setdefault("seats", 1)
    out = d._written(d.state.write("proposal", key, prop))
    return {**out, "proposal": object_id(d.state.me, key)}


def _proposal_json(d: Daemon, ledger: Ledger, r: Record) -> dict[str, Any]:
    b = body(r)
    pid = object_id(r.origin, r.key)
    closed = ledger.live(r.origin, "close", r.key) is not None
    return {
        "proposal": pid,
        "origin": r.origin.hex(),
        "scope": r.scope,
        "phase": phase(b, _now(d), closed=closed).value,
        "votes_held": sum(1 for v in ledger.keyed("vote", pid) if v.body is not None),
        **b,
    }


@op("gov_proposal_list")
def proposal_list(d: Daemon, args: dict[str, Any]) -> list[dict[str, Any]]:
    ledger = _ledger(d)
    return [_proposal_json(d, ledger, r) for r in ledger.of_kind("proposal") if r.body is not None]


@op("gov_proposal_show")
def proposal_show(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    return _proposal_json(d, ledger, ledger.find("proposal", _arg(args, "proposal")))


@op("gov_proposal_close")
def proposal_close(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    proposal = ledger.find("proposal", _arg(args, "proposal"))
    if proposal.origin != d.state.me:
        raise LocalError("only the node that created a proposal can close it")
    closed = ledger.live(proposal.origin, "close", proposal.key) is not None
    action = Action.CLOSE_EARLY if _arg(args, "early", False) else Action.CLOSE
    verdict = decide(phase(body(proposal), _now(d), closed=closed), action)
    if not verdict.allowed:
        raise LocalError(verdict.message)
    pid = object_id(proposal.origin, proposal.key)
    return _write_close(d, ledger, pid, proposal.scope)


def _write_close(d: Daemon, ledger: Ledger, pid: str, scope: str) -> dict[str, Any]:
    plan = tally.close_plan(ledger, pid)
    last: Record | None = None
    for kind, key, b in plan:  # chunks first: a close is never held without its chunks
        last = d.state.write(kind, key, b, scope=scope)
    assert last is not None
    d._written(last)
    return {
        "proposal": pid,
        "frozen_votes": body(last)["count"],
        "chunks": body(last)["chunks"],
        "hash": body(last)["hash"],
    }


@op("gov_vote_prepare")
def vote_prepare(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    """What a member's CLI needs to sign a vote: the proposal and the member's seq floor."""
    ledger = _ledger(d)
    proposal = ledger.find("proposal", _arg(args, "proposal"))
    member = bytes.fromhex(_member_key(_arg(args, "member")))
    b = body(proposal)
    closed = ledger.live(proposal.origin, "close", proposal.key) is not None
    verdict = decide(phase(b, _now(d), closed=closed), Action.VOTE)
    if not verdict.allowed:
        raise LocalError(verdict.message)
    elig = ledger.eligibility(member, str(b["electorate"]))
    if elig.value != "eligible":
        raise LocalError(
            f"this key is not a member under {b['electorate']} as far as this "
            f"node knows ({elig.value}); ask your commune to add it"
        )
    return {
        "proposal": object_id(proposal.origin, proposal.key),
        "scope": proposal.scope,
        "body": b,
        "held_max_seq": d.state.replica.max_seq(member),
        "now": _now(d),
    }


@op("gov_results")
def results(d: Daemon, args: dict[str, Any]) -> InThread:
    # An Equal Shares tally can take seconds: count a snapshot (records are
    # immutable) in a worker thread, so the node keeps gossiping meanwhile.
    snapshot, proposal, now = list(d.state.replica.records()), _arg(args, "proposal"), _now(d)
    return InThread(lambda: tally.results(Ledger(snapshot), proposal, now).as_json())


# --- pabulib import ----------------------------------------------------------------


def _ingest_signed(d: Daemon, records: list[Record]) -> int:
    result = d.state.ingest([r.raw for r in records])
    if result.rejected:
        raise LocalError(f"{len(result.rejected)} record(s) rejected: {result.rejected[0]}")
    d.state.outbox.extend(result.changed)
    return len(result.changed)


@op("gov_budget_import")
def budget_import(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(_arg(args, "data"))
    plan = plan_import(data)
    me, scope = d.state.me, d.config.scope
    if d.state.replica.get(me, "proposal", plan.key) is not None:
        raise LocalError(f"this file was imported already as {object_id(me, plan.key)}")
    opens = _now(d)
    for ident, member_body in plan.members:
        key = ident.public.hex()
        current = d.state.replica.get(me, "member", key)
        if current is None or current.body != member_body:
            d.state.write("member", key, member_body)
    pid = object_id(me, plan.key)
    votes = []
    for ident, approved in plan.ballots:
        hlc = d.state.clock.tick()
        seq = max(hlc_millis(hlc), d.state.replica.max_seq(ident.public) + 1)
        votes.append(
            sign_record(
                ident.signer(), ident.public, "vote", pid, seq, hlc, scope, {"ballot": approved}
            )
        )
    _ingest_signed(d, votes)
    closes = max([hlc_millis(v.hlc) for v in votes] + [opens]) + 1
    d.state.write(
        "proposal",
        plan.key,
        {**plan.proposal, "electorate": scope, "opens": opens, "closes": closes},
    )
    closed = _write_close(d, _ledger(d), pid, scope)
    return {
        "proposal": pid,
        "file_sha256": plan.file_hash,
        "members": len(plan.members),
        "votes": len(votes),
        "frozen_votes": closed["frozen_votes"],
        "chunks": closed["chunks"],
        "projects": len(plan.instance.projects),
        "budget": plan.instance.budget,
    }


# --- assemblies (sortition) ---------------------------------------------------------


@op("gov_assembly_create")
def assembly_create(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    key = check_local_key(_arg(args, "key"))
    if d.state.replica.get(d.state.me, "assembly", key) is not None:
        raise LocalError(f"this node has an assembly {key} already")
    fields = ("title", "text", "scope", "size", "quotas", "committers", "beacon")
    b = {k: args[k] for k in fields if args.get(k) is not None}
    b.setdefault("scope", d.config.scope)
    out = d._written(d.state.write("assembly", key, b))
    return {**out, "assembly": object_id(d.state.me, key)}


def _assembly(d: Daemon, ledger: Ledger, args: dict[str, Any]) -> Record:
    return ledger.find("assembly", _arg(args, "assembly"))


@op("gov_assembly_prepare")
def assembly_prepare(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    """What a member's CLI needs to sign a volunteer record."""
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    member = bytes.fromhex(_member_key(_arg(args, "member")))
    if ledger.live(a.origin, "pool", a.key) is not None:
        raise LocalError("the pool of this assembly is frozen; volunteering has ended")
    return {
        "assembly": object_id(a.origin, a.key),
        "scope": a.scope,
        "held_max_seq": d.state.replica.max_seq(member),
        "now": _now(d),
    }


@op("gov_assembly_freeze")
def assembly_freeze(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    if a.origin != d.state.me:
        raise LocalError("only the node that created the assembly can freeze its pool")
    if ledger.live(a.origin, "pool", a.key) is not None:
        raise LocalError("the pool is frozen already")
    plan = sortition.pool_plan(ledger, object_id(a.origin, a.key))
    last = None
    for kind, key, b in plan:
        last = d.state.write(kind, key, b, scope=a.scope)
    assert last is not None
    d._written(last)
    return {"assembly": object_id(a.origin, a.key), **body(last)}


def _committer_step(
    d: Daemon,
    args: dict[str, Any],
    kind: str,
    make_body: Callable[[Ledger, str, bytes, bytes], dict[str, Any]],
) -> dict[str, Any]:
    """Write this node's commit or reveal record for an assembly."""
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    aid = object_id(a.origin, a.key)
    b = make_body(ledger, aid, d.state.identity.seed, d.state.me)
    return d._written(d.state.write(kind, aid, b, scope=a.scope))


@op("gov_assembly_commit")
def assembly_commit(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    return _committer_step(d, args, "commit", sortition.commit_body)


@op("gov_assembly_reveal")
def assembly_reveal(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    return _committer_step(d, args, "reveal", sortition.reveal_body)


@op("gov_assembly_draw")
def assembly_draw(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    if a.origin != d.state.me:
        raise LocalError(
            "only the node that created the assembly publishes its panel; "
            "use `assembly verify` to check it"
        )
    draw = sortition.draw(ledger, object_id(a.origin, a.key))
    d._written(d.state.write("panel", a.key, draw.panel_body(), scope=a.scope))
    return draw.as_json()


@op("gov_assembly_verify")
def assembly_verify(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    return sortition.verify(_ledger(d), _arg(args, "assembly")).as_json()


@op("gov_assembly_show")
def assembly_show(d: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    return sortition.status(ledger, object_id(a.origin, a.key))


def _register() -> None:
    for name, fn in OPS.items():
        _daemon.EXTRA_OPS[name] = fn


_register()
