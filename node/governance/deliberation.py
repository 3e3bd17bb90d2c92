"""Deliberation on a proposal: its thread, statements and reactions, amendments and
moderation, as pure functions of the records held (a :class:`Ledger`).

What counts, identically on every replica:

* A comment, statement, reaction or amendment counts only if its signer is a live
  member of a node under the proposal's electorate (the same rule as a vote). Others
  are counted as ignored, never shown as contributions.
* The thread is ordered by (seq, ref): a member's seq is the millisecond of signing
  raised above its earlier records (`node.governance.member_sign`), and the ref
  breaks ties, so the order does not depend on when a record arrived. A reply sits
  under its parent when the parent counts, else at the top, marked as a reply.
* A ``hide`` counts when its node admitted the comment's author (a commune moderates
  its own members). A hidden comment stays in the thread with who hid it and why;
  its text is withheld from the rendering, never deleted from the records.
* One reaction per member and statement: the highest seq (then the smaller record
  id) wins, as for any slot.
* An amendment is *proposed* until the proposal's author decides on it: *accepted*
  (the proposal's next version includes it: its ``amendments`` list names it),
  *rejected* (with a reason), then possibly *promoted* (a proposal whose ``from``
  names it). A decision by anybody but the author is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node.crdt.record import Record
from node.governance.errors import GovernanceError
from node.governance.ledger import Eligibility, Ledger, body, object_id
from node.governance.opinions import AGREE, DISAGREE, PASS, OpinionMap, opinion_map

__all__ = [
    "Amendment",
    "Comment",
    "Discussion",
    "amended_body",
    "discussion",
    "opinions",
    "ref",
]

REACT = {"agree": AGREE, "disagree": DISAGREE, "pass": PASS}


def ref(origin: bytes, key: str) -> str:
    """How one record names another member's record: ``<key hex>.<key>``."""
    return f"{origin.hex()}.{key}"


@dataclass(frozen=True)
class Comment:
    ref: str
    author: str
    text: str
    seq: int
    reply: str | None = None
    hidden_by: str | None = None
    hidden_reason: str | None = None
    replies: tuple[Comment, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "author": self.author,
            "text": None if self.hidden_by else self.text,
            "reply": self.reply,
            "hidden": None
            if self.hidden_by is None
            else {"by": self.hidden_by, "reason": self.hidden_reason},
            "replies": [c.as_json() for c in self.replies],
        }


@dataclass(frozen=True)
class Amendment:
    ref: str
    author: str
    version: int
    text: str | None
    options: tuple[dict[str, str], ...]
    reason: str | None
    state: str  # proposed | accepted | rejected | promoted
    decision_reason: str | None = None
    included_in: int | None = None
    promoted_to: str | None = None
    outdated: bool = False  # proposed against an earlier version than the current

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "author": self.author,
            "version": self.version,
            "text": self.text,
            "options": [dict(o) for o in self.options],
            "reason": self.reason,
            "state": self.state,
            "decision_reason": self.decision_reason,
            "included_in": self.included_in,
            "promoted_to": self.promoted_to,
            "outdated": self.outdated,
        }


@dataclass(frozen=True)
class Discussion:
    proposal: str
    version: int
    thread: tuple[Comment, ...]
    statements: tuple[dict[str, Any], ...]
    amendments: tuple[Amendment, ...]
    ignored: Mapping[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "proposal": self.proposal,
            "version": self.version,
            "thread": [c.as_json() for c in self.thread],
            "statements": list(self.statements),
            "amendments": [a.as_json() for a in self.amendments],
            "ignored": dict(sorted(self.ignored.items())),
        }


def _on(
    ledger: Ledger, kind: str, pid: str, electorate: str, ignored: dict[str, int]
) -> list[Record]:
    """Live records of `kind` about `pid` by members of the electorate, in (seq, ref)
    order; the others counted in `ignored`."""
    out = []
    for r in ledger.of_kind(kind):
        if r.body is None or r.body.get("proposal") != pid:
            continue
        if ledger.eligibility(r.origin, electorate) is not Eligibility.ELIGIBLE:
            ignored[kind] = ignored.get(kind, 0) + 1
            continue
        out.append(r)
    return sorted(out, key=lambda r: (r.seq, ref(r.origin, r.key)))


def _hides(ledger: Ledger) -> dict[str, tuple[str, str]]:
    """comment ref -> (hiding node, reason), for hides by the author's admitting node
    (the smallest such node id when several hid it)."""
    out: dict[str, tuple[str, str]] = {}
    for h in ledger.of_kind("hide"):
        if h.body is None:
            continue
        target = str(h.body["comment"])
        author = bytes.fromhex(target.split(".", 1)[0])
        admits = any(
            m.origin == h.origin and m.body is not None for m in ledger.member_records(author)
        )
        if admits and (target not in out or h.origin.hex() < out[target][0]):
            out[target] = (h.origin.hex(), str(h.body["reason"]))
    return out


def _thread(records: list[Record], hides: Mapping[str, tuple[str, str]]) -> tuple[Comment, ...]:
    refs = {ref(r.origin, r.key) for r in records}
    children: dict[str | None, list[Record]] = {}
    for r in records:
        parent = r.body.get("reply") if r.body else None
        children.setdefault(parent if parent in refs else None, []).append(r)

    def build(r: Record, depth: int) -> Comment:
        me = ref(r.origin, r.key)
        hidden = hides.get(me)
        kids = children.get(me, []) if depth < 64 else []
        return Comment(
            me,
            r.origin.hex(),
            str(body(r)["text"]),
            r.seq,
            body(r).get("reply"),
            hidden[0] if hidden else None,
            hidden[1] if hidden else None,
            tuple(build(k, depth + 1) for k in kids),
        )

    return tuple(build(r, 0) for r in children.get(None, []))


def _amendments(
    ledger: Ledger, prop: Record, pid: str, records: list[Record]
) -> tuple[Amendment, ...]:
    pb = body(prop)
    version = int(pb.get("version", 1))
    included = set(pb.get("amendments") or [])
    decisions: dict[str, Record] = {}
    for d in ledger.of_kind("decision"):
        if d.origin != prop.origin or d.body is None:
            continue
        target = str(d.body["amendment"])
        cur = decisions.get(target)
        if cur is None or (d.seq, cur.rid) > (cur.seq, d.rid):
            decisions[target] = d
    promoted = {
        str(p.body["from"]): object_id(p.origin, p.key)
        for p in ledger.of_kind("proposal")
        if p.body is not None and "from" in p.body
    }
    out = []
    for r in records:
        me = ref(r.origin, r.key)
        b = body(r)
        db: dict[str, Any] = {}
        dec = decisions.get(me)
        if dec is not None and dec.body is not None:
            db = dec.body
        state, included_in = "proposed", None
        if me in included:
            state = "accepted"
            included_in = int(db["version"]) if db.get("accept") else version
        elif db:
            state = "accepted" if db["accept"] else "rejected"
        if state == "rejected" and me in promoted:
            state = "promoted"
        reason = str(db["reason"]) if db.get("reason") else None
        out.append(
            Amendment(
                me,
                r.origin.hex(),
                int(b["version"]),
                b.get("text"),
                tuple(dict(o) for o in b.get("options", [])),
                b.get("reason"),
                state,
                reason,
                included_in,
                promoted.get(me),
                state == "proposed" and int(b["version"]) < version,
            )
        )
    return tuple(out)


def discussion(ledger: Ledger, pid: str) -> Discussion:
    """The thread, statements and amendments of proposal `pid`.

    Raises:
        GovernanceError: no such proposal held here (the message says so).
    """
    prop = ledger.find("proposal", pid)
    pid = object_id(prop.origin, prop.key)
    electorate = str(body(prop)["electorate"])
    ignored: dict[str, int] = {}
    comments = _on(ledger, "comment", pid, electorate, ignored)
    statements = _on(ledger, "statement", pid, electorate, ignored)
    amendments = _on(ledger, "amendment", pid, electorate, ignored)
    counts = _reactions(ledger, pid, electorate, statements, ignored)
    tallies: dict[str, dict[str, int]] = {}
    for rs in counts.values():
        for s, v in rs.items():
            t = tallies.setdefault(s, {"agree": 0, "disagree": 0, "pass": 0})
            t[{AGREE: "agree", DISAGREE: "disagree", PASS: "pass"}[v]] += 1
    return Discussion(
        pid,
        int(body(prop).get("version", 1)),
        _thread(comments, _hides(ledger)),
        tuple(
            {
                "ref": ref(s.origin, s.key),
                "author": s.origin.hex(),
                "text": str(body(s)["text"]),
                **tallies.get(ref(s.origin, s.key), {"agree": 0, "disagree": 0, "pass": 0}),
            }
            for s in statements
        ),
        _amendments(ledger, prop, pid, amendments),
        ignored,
    )


def _reactions(
    ledger: Ledger,
    pid: str,
    electorate: str,
    statements: list[Record],
    ignored: dict[str, int],
) -> dict[str, dict[str, int]]:
    """{member hex: {statement ref: +1/-1/0}} from the counted reactions."""
    known = {ref(s.origin, s.key) for s in statements}
    best: dict[tuple[bytes, str], Record] = {}
    for r in _on(ledger, "reaction", pid, electorate, ignored):
        target = str(body(r)["statement"])
        if target not in known:
            ignored["reaction"] = ignored.get("reaction", 0) + 1
            continue
        cur = best.get((r.origin, target))
        if cur is None or (r.seq, cur.rid) > (cur.seq, r.rid):
            best[(r.origin, target)] = r
    out: dict[str, dict[str, int]] = {}
    for (member, target), r in sorted(best.items()):
        out.setdefault(member.hex(), {})[target] = REACT[str(body(r)["react"])]
    return out


def opinions(ledger: Ledger, pid: str) -> OpinionMap:
    """The opinion map of `pid` from its counted reactions (`node.governance.opinions`)."""
    prop = ledger.find("proposal", pid)
    pid = object_id(prop.origin, prop.key)
    electorate = str(body(prop)["electorate"])
    ignored: dict[str, int] = {}
    statements = _on(ledger, "statement", pid, electorate, ignored)
    return opinion_map(pid, _reactions(ledger, pid, electorate, statements, ignored))


def amended_body(
    prop: Mapping[str, Any], amendment: Mapping[str, Any], aref: str
) -> dict[str, Any]:
    """The proposal's next version with `amendment` included, visibly: version + 1 and
    the amendment's ref added to ``amendments``.

    Raises:
        GovernanceError: the amendment changes options of a budget proposal, or would
            leave more options than allowed.
    """
    out = dict(prop)
    if "text" in amendment:
        out["text"] = amendment["text"]
    if "options" in amendment:
        if "options" not in out:
            raise GovernanceError("this proposal has projects, not options; amend its text")
        options = {str(o["id"]): dict(o) for o in out["options"]}
        for o in amendment["options"]:
            options[str(o["id"])] = {"id": str(o["id"]), "name": str(o["name"])}
        out["options"] = list(options.values())
    out["version"] = int(prop.get("version", 1)) + 1
    out["amendments"] = [*(prop.get("amendments") or []), aref]
    return out
