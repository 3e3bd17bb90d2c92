"""Governance control operations: members, proposals, votes, budgets, assemblies.

Each op is ``fn(ctx, args)``: it builds a :class:`Ledger` from the node's replica,
asks the pure modules of ``node.governance`` what to write or report, and returns
the signed writes (`Writes`: made durable in one transaction, then merged and
gossiped) or the report. Member-signed records arrive already signed, through the
``submit`` op.
"""

from __future__ import annotations

import functools
import gc
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import trio
import trio.lowlevel

from node.core import Pending
from node.crdt.record import Record
from node.errors import LocalError
from node.governance import pbimport, sortition, tally
from node.governance.ledger import Ledger, body, check_local_key, object_id
from node.governance.lifecycle import Action, decide, phase
from node.model.gov_kinds import PROPOSAL_FIELDS
from node.ops.base import (
    BOOL,
    DICT,
    INT,
    LIST,
    STR,
    InThread,
    Job,
    OpContext,
    OpSpec,
    Progress,
    Writes,
    written,
)

__all__ = ["OPS"]

T = TypeVar("T")


def _ledger(d: OpContext) -> Ledger:
    return Ledger(d.state.replica.records(), d.state.core.admission.admitted)


def _now(d: OpContext) -> int:
    return d.now_ms()


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


def member_add(d: OpContext, args: dict[str, Any]) -> Writes:
    key = _member_key(_arg(args, "member"))
    body: dict[str, Any] = {"pseudonym": _arg(args, "pseudonym"), "consent": True}
    features = _arg(args, "features", {})
    if features:
        body["features"] = features
    return Writes([d.state.prepare("member", key, body)], written(d))


def member_remove(d: OpContext, args: dict[str, Any]) -> Writes:
    key = _member_key(_arg(args, "member"))
    current = d.state.replica.get(d.state.me, "member", key)
    if current is None or current.body is None:
        raise LocalError(f"{key[:12]}... is not a member of this node")
    return Writes([d.state.prepare("member", key, None, scope=current.scope)], written(d))


def member_list(d: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
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


def proposal_create(d: OpContext, args: dict[str, Any]) -> Writes:
    key = check_local_key(_arg(args, "key"))
    if d.state.replica.get(d.state.me, "proposal", key) is not None:
        raise LocalError(f"this node has a proposal {key} already; choose another id")
    prop = {k: args[k] for k in PROPOSAL_FIELDS if args.get(k) is not None}
    prop.setdefault("electorate", d.config.scope)
    prop.setdefault("opens", _now(d))
    if prop.get("method") not in ("mes", "greedy"):
        prop.setdefault("seats", 1)
    proposal = object_id(d.state.me, key)

    def reply(records: list[Record]) -> dict[str, Any]:
        return {**written(d)(records), "proposal": proposal}

    return Writes([d.state.prepare("proposal", key, prop)], reply)


def _proposal_json(d: OpContext, ledger: Ledger, r: Record) -> dict[str, Any]:
    b = body(r)
    pid = object_id(r.origin, r.key)
    close = ledger.live(r.origin, "close", r.key)
    return {
        "proposal": pid,
        "origin": r.origin.hex(),
        "scope": r.scope,
        "phase": phase(b, _now(d), closed=close is not None).value,
        "votes_held": sum(1 for v in ledger.keyed("vote", pid) if v.body is not None),
        "frozen_votes": None if close is None else body(close)["count"],
        **b,
    }


def proposal_list(d: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    ledger = _ledger(d)
    return [_proposal_json(d, ledger, r) for r in ledger.of_kind("proposal") if r.body is not None]


def proposal_show(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    return _proposal_json(d, ledger, ledger.find("proposal", _arg(args, "proposal")))


def proposal_close(d: OpContext, args: dict[str, Any]) -> Writes:
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


def _close_pendings(d: OpContext, ledger: Ledger, pid: str, scope: str) -> list[Pending]:
    # Chunks first: a close is never held without its chunks (one transaction anyway).
    plan = tally.close_plan(ledger, pid)
    return [d.state.prepare(kind, key, b, scope=scope) for kind, key, b in plan]


def _close_json(pid: str, last: Record) -> dict[str, Any]:
    return {
        "proposal": pid,
        "frozen_votes": body(last)["count"],
        "chunks": body(last)["chunks"],
        "hash": body(last)["hash"],
    }


def _write_close(d: OpContext, ledger: Ledger, pid: str, scope: str) -> Writes:
    return Writes(_close_pendings(d, ledger, pid, scope), lambda rs: _close_json(pid, rs[-1]))


def vote_prepare(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """What a member's CLI needs to sign a vote: the proposal and the member's seq floor."""
    ledger = _ledger(d)
    proposal = ledger.find("proposal", _arg(args, "proposal"))
    member = bytes.fromhex(_member_key(_arg(args, "member")))
    b = body(proposal)
    closed = ledger.live(proposal.origin, "close", proposal.key) is not None
    verdict = decide(phase(b, _now(d), closed=closed), Action.VOTE)
    if not verdict.allowed:
        raise LocalError(verdict.message)
    if tally.IMPORT_FIELD in b:
        raise LocalError(
            "this proposal is an imported pabulib file: only its frozen demo ballots "
            "count, it takes no votes"
        )
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


def results(d: OpContext, args: dict[str, Any]) -> InThread:
    # An Equal Shares tally can take seconds: count a snapshot (records are
    # immutable) in a worker thread, so the node keeps gossiping meanwhile.
    snapshot, proposal, now = list(d.state.replica.records()), _arg(args, "proposal"), _now(d)
    admitted = d.state.core.admission.admitted
    return InThread(lambda: tally.results(Ledger(snapshot, admitted), proposal, now).as_json())


def vote_check(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """Whether a member's vote is held, frozen and counted (read-only: no key needed,
    only the member's public key)."""
    member = bytes.fromhex(_member_key(_arg(args, "member")))
    return tally.vote_check(_ledger(d), _arg(args, "proposal"), member, _now(d)).as_json()


def vote_receipt(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """Was this member's vote counted? (`node.governance.tally.vote_receipt`)"""
    member = bytes.fromhex(_member_key(_arg(args, "member")))
    return tally.vote_receipt(_ledger(d), _arg(args, "proposal"), member, _now(d)).as_json()


# --- pabulib import ----------------------------------------------------------------

# Close chunks signed per step on the event loop (each ~14 KB; a step stays ~10 ms).
_PREPARE_STEP = 64
# Import keys being checked and signed right now: a second import of the same file is
# refused meanwhile. (Two that still overlap later, while the first one is saving, are
# harmless: the second writes every slot of the first again with higher seqs.)
_IMPORTING: set[str] = set()


def _without_gc(fn: Callable[[], T]) -> T:
    """Run `fn` with the cyclic garbage collector paused.

    Parsing 100,000 ballots creates ~10^6 container objects; each full collection
    they trigger scans the whole heap with the GIL held (8 passes, up to ~200 ms
    each, measured), stalling the event loop thread too. Reference counting still
    frees all of it (the parse makes no cycles) when `fn` returns, in this thread.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if paused:
            gc.enable()


def budget_import(d: OpContext, args: dict[str, Any]) -> Job:
    """Import a pabulib file sent as the payload: a closed proposal with its own
    electorate (`node.governance.pbimport`).

    Parsing, checking and signing run in a worker thread, after which the node signs
    its proposal and close chunks in small steps; the daemon then saves everything
    in one transaction. Any error before that leaves nothing written.
    """
    data: bytes = args["payload"]
    if not data:
        raise LocalError(
            "no file: send the .pb file's bytes as the payload (allmende budget import FILE)"
        )
    me, scope = d.state.me, d.config.scope

    async def run(progress: Progress) -> Writes:
        progress(0, len(data), "checking")
        digest = await trio.to_thread.run_sync(lambda: hashlib.sha256(data).digest())
        key = pbimport.import_key(digest)
        if d.state.replica.get(me, "proposal", key) is not None:
            raise LocalError(f"this file was imported already as {object_id(me, key)}")
        if key in _IMPORTING:
            raise LocalError("this file is being imported right now; wait for that import")
        _IMPORTING.add(key)
        try:
            plan_fn = functools.partial(
                pbimport.plan_import,
                data,
                origin=me,
                scope=scope,
                opens=_now(d),
                progress=progress,
            )
            plan = await trio.to_thread.run_sync(_without_gc, plan_fn)
            pendings = [d.state.prepare("proposal", key, plan.proposal)]
            n = len(plan.closesets)
            for i, chunk in enumerate(plan.closesets):
                pendings.append(d.state.prepare("closeset", f"{key}/{i}", chunk))
                if (i + 1) % _PREPARE_STEP == 0:
                    progress(i + 1, n, "preparing")
                    await trio.lowlevel.checkpoint()
            pendings.append(d.state.prepare("close", key, plan.close))
        finally:
            _IMPORTING.discard(key)
        progress(0, len(pendings), "saving")
        pid = object_id(me, key)

        def reply(records: list[Record]) -> dict[str, Any]:
            return {
                "proposal": pid,
                "file_sha256": plan.file_hash,
                "voters": len(plan.votes),
                "frozen_votes": plan.close["count"],
                "chunks": plan.close["chunks"],
                "records": len(records),
                "projects": len(plan.proposal["projects"]),
                "budget": plan.proposal["budget"],
                "method": plan.proposal["method"],
            }

        return Writes(pendings, reply)

    return Job(run)


# --- assemblies (sortition) ---------------------------------------------------------


def assembly_create(d: OpContext, args: dict[str, Any]) -> Writes:
    key = check_local_key(_arg(args, "key"))
    if d.state.replica.get(d.state.me, "assembly", key) is not None:
        raise LocalError(f"this node has an assembly {key} already")
    fields = ("title", "text", "scope", "size", "quotas", "committers", "beacon")
    b = {k: args[k] for k in fields if args.get(k) is not None}
    b.setdefault("scope", d.config.scope)
    aid = object_id(d.state.me, key)

    def reply(records: list[Record]) -> dict[str, Any]:
        return {**written(d)(records), "assembly": aid}

    return Writes([d.state.prepare("assembly", key, b)], reply)


def _assembly(d: OpContext, ledger: Ledger, args: dict[str, Any]) -> Record:
    return ledger.find("assembly", _arg(args, "assembly"))


def assembly_prepare(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
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


def assembly_freeze(d: OpContext, args: dict[str, Any]) -> Writes:
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    if a.origin != d.state.me:
        raise LocalError("only the node that created the assembly can freeze its pool")
    if ledger.live(a.origin, "pool", a.key) is not None:
        raise LocalError("the pool is frozen already")
    aid = object_id(a.origin, a.key)
    plan = sortition.pool_plan(ledger, aid)
    pendings = [d.state.prepare(kind, key, b, scope=a.scope) for kind, key, b in plan]
    return Writes(pendings, lambda rs: {"assembly": aid, **body(rs[-1])})


def _committer_step(
    d: OpContext,
    args: dict[str, Any],
    kind: str,
    make_body: Callable[[Ledger, str, bytes, bytes], dict[str, Any]],
) -> Writes:
    """Write this node's commit or reveal record for an assembly."""
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    aid = object_id(a.origin, a.key)
    b = make_body(ledger, aid, d.state.identity.seed, d.state.me)
    return Writes([d.state.prepare(kind, aid, b, scope=a.scope)], written(d))


def assembly_commit(d: OpContext, args: dict[str, Any]) -> Writes:
    return _committer_step(d, args, "commit", sortition.commit_body)


def assembly_seal(d: OpContext, args: dict[str, Any]) -> Writes:
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    if a.origin != d.state.me:
        raise LocalError("only the node that created the assembly seals it")
    if ledger.live(a.origin, "seal", a.key) is not None:
        raise LocalError("the assembly is sealed already")
    aid = object_id(a.origin, a.key)
    pending = d.state.prepare("seal", a.key, sortition.seal_body(ledger, aid), scope=a.scope)
    return Writes([pending], written(d))


def assembly_reveal(d: OpContext, args: dict[str, Any]) -> Writes:
    return _committer_step(d, args, "reveal", sortition.reveal_body)


def assembly_draw(d: OpContext, args: dict[str, Any]) -> Writes:
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    if a.origin != d.state.me:
        raise LocalError(
            "only the node that created the assembly publishes its panel; "
            "use `assembly verify` to check it"
        )
    draw = sortition.draw(ledger, object_id(a.origin, a.key))
    pending = d.state.prepare("panel", a.key, draw.panel_body(), scope=a.scope)
    return Writes([pending], lambda rs: draw.as_json())


def assembly_verify(d: OpContext, args: dict[str, Any]) -> InThread:
    # Re-running the lottery of a large pool takes seconds: in a worker thread, on a
    # snapshot (records are immutable), so the node keeps gossiping meanwhile.
    snapshot, aid = list(d.state.replica.records()), _arg(args, "assembly")
    admitted = d.state.core.admission.admitted
    return InThread(lambda: sortition.verify(Ledger(snapshot, admitted), aid).as_json())


def assembly_list(d: OpContext, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Every live assembly held here, with where it stands."""
    ledger = _ledger(d)
    return [
        sortition.status(ledger, object_id(r.origin, r.key))
        for r in ledger.of_kind("assembly")
        if r.body is not None
    ]


def assembly_show(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    a = _assembly(d, ledger, args)
    return sortition.status(ledger, object_id(a.origin, a.key))


_ID = STR(required=True, max_len=120)
_MEMBER = STR(required=True, max_len=64)
OPS: dict[str, OpSpec] = {
    "gov_member_add": OpSpec(
        member_add,
        {"member": _MEMBER, "pseudonym": STR(required=True, max_len=100), "features": DICT(16)},
    ),
    "gov_member_remove": OpSpec(member_remove, {"member": _MEMBER}),
    "gov_member_list": OpSpec(member_list, {"all": BOOL()}),
    "gov_proposal_create": OpSpec(
        proposal_create,
        {
            "key": STR(required=True, max_len=40),
            "title": STR(required=True, max_len=200),
            "text": STR(max_len=4000),
            "method": STR(required=True, max_len=16),
            "options": LIST(dict, 200),
            "projects": LIST(dict, 200),
            "budget": INT(0, 10**15),
            "electorate": STR(max_len=200),
            "opens": INT(0, 2**48 - 1),
            "discussion": INT(0, 2**48 - 1),
            "closes": INT(0, 2**48 - 1),
            "min_score": INT(-1000, 1000),
            "max_score": INT(-1000, 1000),
            "seats": INT(1, 200),
            "admission": DICT(1),
        },
    ),
    "gov_proposal_list": OpSpec(proposal_list),
    "gov_proposal_show": OpSpec(proposal_show, {"proposal": _ID}),
    "gov_proposal_close": OpSpec(proposal_close, {"proposal": _ID, "early": BOOL()}),
    "gov_vote_prepare": OpSpec(vote_prepare, {"proposal": _ID, "member": _MEMBER}),
    "gov_results": OpSpec(results, {"proposal": _ID}),
    "gov_vote_check": OpSpec(vote_check, {"proposal": _ID, "member": STR(max_len=64)}),
    "gov_vote_receipt": OpSpec(vote_receipt, {"proposal": _ID, "member": _MEMBER}),
    "gov_budget_import": OpSpec(budget_import, max_payload=pbimport.MAX_FILE_BYTES),
    "gov_assembly_create": OpSpec(
        assembly_create,
        {
            "key": STR(required=True, max_len=40),
            "title": STR(required=True, max_len=200),
            "text": STR(max_len=4000),
            "scope": STR(max_len=200),
            "size": INT(1, 256, required=True),
            "quotas": DICT(16),
            "committers": LIST(str, 32, required=True),
            "beacon": STR(max_len=128),
        },
    ),
    "gov_assembly_prepare": OpSpec(assembly_prepare, {"assembly": _ID, "member": _MEMBER}),
    "gov_assembly_freeze": OpSpec(assembly_freeze, {"assembly": _ID}),
    "gov_assembly_commit": OpSpec(assembly_commit, {"assembly": _ID}),
    "gov_assembly_seal": OpSpec(assembly_seal, {"assembly": _ID}),
    "gov_assembly_reveal": OpSpec(assembly_reveal, {"assembly": _ID}),
    "gov_assembly_draw": OpSpec(assembly_draw, {"assembly": _ID}),
    "gov_assembly_verify": OpSpec(assembly_verify, {"assembly": _ID}),
    "gov_assembly_show": OpSpec(assembly_show, {"assembly": _ID}),
    "gov_assembly_list": OpSpec(assembly_list),
}
