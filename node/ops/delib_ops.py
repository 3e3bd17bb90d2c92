"""Deliberation control operations: the discussion of a proposal, its opinion map,
what a member's CLI needs to sign a contribution, and the node's own steps (decide on
an amendment, promote a rejected one, hide a comment of one of its members).

Member-signed records (comment, statement, reaction, amendment) arrive signed through
the ``submit`` op, like votes; the pure rules are in `node.governance.deliberation`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from node.errors import LocalError
from node.governance import deliberation
from node.governance.ledger import Ledger, body, check_local_key, object_id
from node.governance.lifecycle import Action, decide, phase
from node.ops.base import BOOL, STR, InThread, OpContext, OpSpec, Writes, written

__all__ = ["OPS"]

MEMBER_KINDS = ("comment", "statement", "reaction", "amendment")


def _ledger(d: OpContext) -> Ledger:
    return Ledger(d.state.replica.records(), d.state.core.admission.admitted)


def _arg(args: dict[str, Any], name: str) -> Any:
    if args.get(name) is None:
        raise LocalError(f"missing argument {name!r}")
    return args[name]


def _member(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise LocalError("a member key is 64 hex digits (from `allmende member keygen`)")
    return key


def _allowed(d: OpContext, ledger: Ledger, prop: Any, action: Action) -> None:
    closed = ledger.live(prop.origin, "close", prop.key) is not None
    verdict = decide(phase(body(prop), d.now_ms(), closed=closed), action)
    if not verdict.allowed:
        raise LocalError(verdict.message)


def discuss(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    ledger = _ledger(d)
    return deliberation.discussion(ledger, _arg(args, "proposal")).as_json()


def opinions(d: OpContext, args: dict[str, Any]) -> InThread:
    # Up to a second for a town: in a worker thread, on a snapshot of the records.
    snapshot, pid = list(d.state.replica.records()), _arg(args, "proposal")
    admitted = d.state.core.admission.admitted

    def compute() -> dict[str, Any]:
        ledger = Ledger(snapshot, admitted)
        out = deliberation.opinions(ledger, pid).as_json()
        texts = {s["ref"]: s["text"] for s in deliberation.discussion(ledger, pid).statements}
        return {"proposal": pid, **out, "texts": texts}

    return InThread(compute)


def prepare(d: OpContext, args: dict[str, Any]) -> dict[str, Any]:
    """What a member's CLI needs to sign a contribution to a proposal."""
    ledger = _ledger(d)
    prop = ledger.find("proposal", _arg(args, "proposal"))
    kind = _arg(args, "kind")
    if kind not in MEMBER_KINDS:
        raise LocalError(f"kind must be one of {', '.join(sorted(MEMBER_KINDS))}")
    _allowed(d, ledger, prop, Action.AMEND if kind == "amendment" else Action.DISCUSS)
    member = _member(_arg(args, "member"))
    b = body(prop)
    elig = ledger.eligibility(member, str(b["electorate"]))
    if elig.value != "eligible":
        raise LocalError(
            f"this key is not a member under {b['electorate']} as far as this node knows "
            f"({elig.value}): only members of the electorate take part"
        )
    return {
        "proposal": object_id(prop.origin, prop.key),
        "scope": prop.scope,
        "version": int(b.get("version", 1)),
        "held_max_seq": d.state.replica.max_seq(member),
        "now": d.now_ms(),
    }


def _amendment(ledger: Ledger, aref: str) -> tuple[Any, Any]:
    author_hex, _, key = aref.partition(".")
    try:
        a = ledger.live(bytes.fromhex(author_hex), "amendment", key)
    except ValueError:
        a = None
    if a is None:
        raise LocalError(f"no amendment {aref} on this node")
    return a, ledger.find("proposal", str(body(a)["proposal"]))


def amendment_decide(d: OpContext, args: dict[str, Any]) -> Writes:
    """Accept (a new version of the proposal that includes it) or reject (with a reason)."""
    ledger = _ledger(d)
    aref = _arg(args, "amendment")
    a, prop = _amendment(ledger, aref)
    if prop.origin != d.state.me:
        raise LocalError("only the node that wrote the proposal decides on its amendments")
    _allowed(d, ledger, prop, Action.AMEND)
    key = hashlib.sha256(aref.encode()).hexdigest()[:24]
    if ledger.live(d.state.me, "decision", key) is not None:
        raise LocalError("this amendment is decided already")
    if args.get("accept"):
        new = deliberation.amended_body(body(prop), body(a), aref)
        pendings = [
            d.state.prepare("proposal", prop.key, new, scope=prop.scope),
            d.state.prepare(
                "decision", key, {"amendment": aref, "accept": True, "version": new["version"]}
            ),
        ]
    else:
        reason = _arg(args, "reason")
        pendings = [
            d.state.prepare("decision", key, {"amendment": aref, "accept": False, "reason": reason})
        ]
    return Writes(pendings, written(d))


def amendment_promote(d: OpContext, args: dict[str, Any]) -> Writes:
    """A rejected amendment as a proposal of its own (this node its author)."""
    ledger = _ledger(d)
    aref = _arg(args, "amendment")
    a, prop = _amendment(ledger, aref)
    state = {
        x.ref: x.state
        for x in deliberation.discussion(ledger, object_id(prop.origin, prop.key)).amendments
    }
    if state.get(aref) != "rejected":
        now = state.get(aref, "not counted")
        raise LocalError(f"only a rejected amendment can be promoted (this one is {now})")
    key = check_local_key(_arg(args, "key"))
    if d.state.replica.get(d.state.me, "proposal", key) is not None:
        raise LocalError(f"this node has a proposal {key} already")
    new = deliberation.amended_body(body(prop), body(a), aref)
    new.pop("amendments", None)
    new.update({"version": 1, "from": aref, "title": f"{body(prop)['title']} (amendment)"[:200]})
    pending = d.state.prepare("proposal", key, new, scope=prop.scope)
    return Writes([pending], lambda rs: {**written(d)(rs), "proposal": object_id(d.state.me, key)})


def hide(d: OpContext, args: dict[str, Any]) -> Writes:
    """Hide a comment of one of this node's members, with a reason anyone can read."""
    ledger = _ledger(d)
    cref = _arg(args, "comment")
    author_hex, _, key = cref.partition(".")
    try:
        author = bytes.fromhex(author_hex)
    except ValueError as exc:
        raise LocalError(f"{cref!r} is not a comment ref (<author key hex>.<id>)") from exc
    if ledger.live(author, "comment", key) is None:
        raise LocalError(f"no comment {cref} on this node")
    if not any(
        m.origin == d.state.me and m.body is not None for m in ledger.member_records(author)
    ):
        raise LocalError("a node hides comments of its own members only")
    hkey = hashlib.sha256(cref.encode()).hexdigest()[:24]
    pending = d.state.prepare("hide", hkey, {"comment": cref, "reason": _arg(args, "reason")})
    return Writes([pending], written(d))


_ID = STR(required=True, max_len=120)
_REF = STR(required=True, max_len=100)
OPS: dict[str, OpSpec] = {
    "delib_discuss": OpSpec(discuss, {"proposal": _ID}),
    "delib_opinions": OpSpec(opinions, {"proposal": _ID}),
    "delib_prepare": OpSpec(
        prepare,
        {
            "proposal": _ID,
            "member": STR(required=True, max_len=64),
            "kind": STR(required=True, max_len=16),
        },
    ),
    "delib_amendment_decide": OpSpec(
        amendment_decide, {"amendment": _REF, "accept": BOOL(), "reason": STR(max_len=500)}
    ),
    "delib_amendment_promote": OpSpec(
        amendment_promote, {"amendment": _REF, "key": STR(required=True, max_len=40)}
    ),
    "delib_hide": OpSpec(hide, {"comment": _REF, "reason": STR(required=True, max_len=500)}),
}
