"""Results of a proposal, computed from the records a node holds.

Pure: a :class:`~node.governance.ledger.Ledger` and the time in, a :class:`Results`
out. The counting itself is done by :mod:`node.governance.methods` and
:mod:`node.governance.budget` in exact arithmetic; this module decides *which*
ballots count:

* Before the close, every live vote on the proposal held here, from an eligible
  member, stamped inside the voting window: a *provisional* count.
* Once the proposal's author has published a close, exactly the votes frozen in its
  closeset chunks. The chunks carry the members' signed vote records themselves, so
  every replica re-verifies each signature (a vote signed by anyone but its member
  never counts) and nobody, not even the member, can later erase or replace a frozen
  vote: a newer vote in the member's slot is simply not the frozen one. Votes not
  in the set - late, back-dated, or never received by the author - never count.
* Eligibility is checked at tally time: the signer must be a live member of a node
  whose scope lies under the electorate. A frozen vote whose member record (or its
  node's record) is not held here yet makes the result *incomplete*, like a missing
  chunk: the node reports how many votes it cannot judge rather than a wrong result.
* An *imported* proposal (its body has ``import``: the SHA-256 of a pabulib file) has
  its own electorate: exactly the demo voters whose ballots its author froze when it
  imported the file. No member record is involved, so a demo key is nobody's member
  (its vote in a live proposal never counts), and a member's vote in an imported
  proposal never counts either: only the frozen ballots do, and before the close
  arrives nothing does.
* A proposal with no counted vote names no winner, whatever the method.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from node.clock import hlc_millis
from node.crdt.record import Record, decode_record, verify_record
from node.errors import Rejected
from node.governance import budget, methods
from node.governance.errors import GovernanceError
from node.governance.freeze import Frozen, FrozenState, chunk_entries, freeze_hash, gather
from node.governance.ledger import Eligibility, Ledger, body, object_id
from node.governance.lifecycle import Action, Effect, Phase, decide, phase

__all__ = [
    "IMPORT_FIELD",
    "Receipt",
    "Results",
    "ballot_problem",
    "check_ballot",
    "close_plan",
    "count",
    "results",
    "vote_receipt",
]

IMPORT_FIELD = "import"  # proposal body: SHA-256 (hex) of the imported pabulib file

Ballot = Any  # frozenset[str] | dict[str, int] | list[frozenset[str]]


@dataclass(frozen=True)
class Results:
    """What `allmende results` shows.

    Attributes:
        proposal: the proposal id.
        title, method: from the proposal.
        phase: the lifecycle phase (:class:`~node.governance.lifecycle.Phase` value).
        status: ``provisional`` (not closed), ``final``, ``incomplete`` (some frozen
            votes or membership records not held here) or ``inconsistent`` (the
            author's chunks contradict its close record).
        counted: ballots counted.
        missing: frozen votes this node cannot count yet.
        excluded: ballots not counted, by reason.
        uncounted: live votes held here that the close did not freeze.
        winners: the winners, best or first selected first (empty unless a result
            could be computed).
        detail: method-specific figures (counts, totals, ranking, budget, support,
            and for budgets the conventions applied: ``free_projects``, ``add1``).
        problem: why the status is not final or provisional, for a person.
        notes: what a reader must know about the winners (no vote counted, so no
            winner; add1 stopped at its limit), for a person.
        imported: for an imported proposal, the SHA-256 of its pabulib file.
        members_per_node: the electorate's members by the admitted node that vouches
            for them (an import has none: its voters are its frozen ballots).
        voters: once closed, every frozen voter (not for an import: its voters are
            demo ballots): key prefix, pseudonym and whether the vote counts, so a
            member can find their own vote in the frozen set.
    """

    proposal: str
    title: str
    method: str
    phase: str
    status: str
    counted: int = 0
    missing: int = 0
    excluded: Mapping[str, int] = field(default_factory=dict)
    uncounted: int = 0
    winners: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)
    problem: str = ""
    notes: tuple[str, ...] = ()
    imported: str | None = None
    members_per_node: Mapping[str, int] = field(default_factory=dict)
    voters: tuple[Mapping[str, Any], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "proposal": self.proposal,
            "title": self.title,
            "method": self.method,
            "phase": self.phase,
            "status": self.status,
            "counted": self.counted,
            "missing": self.missing,
            "excluded": dict(sorted(self.excluded.items())),
            "uncounted": self.uncounted,
            "winners": list(self.winners),
            "detail": dict(self.detail),
            "problem": self.problem,
            "notes": list(self.notes),
            "import": self.imported,
            "members_per_node": dict(self.members_per_node),
            "voters": [dict(v) for v in self.voters],
        }


def _ids(prop: Mapping[str, Any]) -> list[str]:
    entries = prop.get("projects") or prop.get("options") or []
    return [str(e["id"]) for e in entries]


def check_ballot(prop: Mapping[str, Any], ballot: Any) -> Ballot | None:
    """The ballot normalised for the proposal's method, or None if it does not fit.

    Approval, ``mes`` and ``greedy`` take a list of ids; ``score`` a map id -> score
    within the range (unscored options count as the minimum); ``ranked`` a list of
    groups of ids, best first (unranked options share the last place).
    """
    ids = set(_ids(prop))
    method = prop["method"]
    if method in ("approval", "mes", "greedy"):
        if not isinstance(ballot, list) or not all(isinstance(i, str) for i in ballot):
            return None
        approved = frozenset(ballot)
        return approved if approved <= ids and len(approved) == len(ballot) else None
    if method == "score":
        if not isinstance(ballot, dict) or not set(ballot) <= ids:
            return None
        lo, hi = prop["min_score"], prop["max_score"]
        ok = all(type(v) is int and lo <= v <= hi for v in ballot.values())
        return dict(ballot) if ok else None
    if method == "ranked":
        if not isinstance(ballot, list) or not all(isinstance(g, list) and g for g in ballot):
            return None
        flat = [i for g in ballot for i in g]
        if len(set(flat)) != len(flat) or not set(flat) <= ids:
            return None
        return [frozenset(g) for g in ballot]
    return None


def ballot_problem(prop: Mapping[str, Any], ballot: Any) -> str | None:
    """Why `ballot` does not fit the proposal, for the person about to sign it, or None.

    Stricter than :func:`check_ballot` in one way: an empty ballot is refused (a
    member who wants to abstain simply does not vote; a vote given earlier stays).
    """
    ids = _ids(prop)
    known = ", ".join(ids)
    method = prop["method"]
    if method in ("approval", "mes", "greedy", "ranked"):
        flat = [i for g in ballot for i in g] if method == "ranked" else list(ballot)
    elif method == "score":
        flat = list(ballot)
    else:
        return f"this node cannot count {method!r} proposals"
    if not flat:
        return f"the ballot is empty: name at least one of {known}"
    unknown = [i for i in flat if i not in ids]
    if unknown:
        return f"unknown option {unknown[0]!r}: the choices are {known}"
    if len(set(flat)) != len(flat):
        dup = next(i for i in flat if flat.count(i) > 1)
        return f"{dup!r} is named twice"
    if method == "score":
        lo, hi = prop["min_score"], prop["max_score"]
        for option, value in ballot.items():
            if type(value) is not int or not lo <= value <= hi:
                return f"score {value!r} for {option!r} is outside {lo}..{hi}"
    if check_ballot(prop, ballot) is None:  # pragma: no cover - the checks above cover it
        return "the ballot does not fit this proposal"
    return None


def _frac(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def count(
    prop: Mapping[str, Any], ballots: Sequence[Ballot]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Tally checked ballots with the proposal's method.

    Returns:
        The winners and the method's figures (JSON-ready; fractions as ``"a/b"``).

    Raises:
        GovernanceError: if the proposal is malformed for its method.
    """
    method = prop["method"]
    names = {
        str(e["id"]): str(e["name"]) for e in (prop.get("projects") or prop.get("options") or [])
    }
    ids = _ids(prop)
    if method in ("mes", "greedy"):
        costs = {str(e["id"]): int(e["cost"]) for e in prop["projects"]}
        if not ballots:  # no winner without a vote (greedy would take whatever fits)
            res = budget.equal_shares(costs, (), int(prop["budget"]), completion="none")
        elif method == "mes":
            res = budget.equal_shares(costs, ballots, int(prop["budget"]))
        else:
            res = budget.greedy(costs, ballots, int(prop["budget"]))
        support = res.support
        conventions: dict[str, Any] = {"free_projects": budget.FREE_PROJECTS[method]}
        if method == "mes":
            conventions["add1"] = {
                "increments": res.increments,
                "limit": res.increment_limit,
                "stopped_at_limit": res.stopped_at_limit,
                "runs": res.runs,
                "run_limit": res.run_limit,
            }
        return res.winners, {
            **conventions,
            "budget": res.budget,
            "spent": res.spent,
            "voter_budget": None if res.voter_budget is None else _frac(res.voter_budget),
            "projects": [
                {
                    "id": p,
                    "name": names[p],
                    "cost": costs[p],
                    "votes": res.votes[p],
                    "selected": p in support,
                    "effective_votes": _frac(support[p]) if p in support else None,
                }
                for p in ids
            ],
        }
    seats = int(prop["seats"])
    if method == "approval":
        a = methods.approval(ids, ballots, seats=seats)
        return _some(a.winners, ballots), {
            "ranking": list(a.ranking),
            "tie_broken": a.tie_broken and bool(ballots),
            "options": [{"id": o, "name": names[o], "count": a.counts[o]} for o in ids],
        }
    if method == "score":
        s = methods.score(
            ids,
            ballots,
            min_score=int(prop["min_score"]),
            max_score=int(prop["max_score"]),
            seats=seats,
        )
        return _some(s.winners, ballots), {
            "ranking": list(s.ranking),
            "tie_broken": s.tie_broken and bool(ballots),
            "options": [{"id": o, "name": names[o], "total": s.totals[o]} for o in ids],
        }
    if method == "ranked":
        r = methods.schulze(ids, [list(b) for b in ballots], seats=seats)
        return _some(r.winners, ballots), {
            "ranking": list(r.ranking),
            "tie_broken": r.tie_broken and bool(ballots),
            "options": [{"id": o, "name": names[o]} for o in ids],
        }
    raise GovernanceError(f"unknown method {method!r}")


def _some(winners: tuple[str, ...], ballots: Sequence[Ballot]) -> tuple[str, ...]:
    return winners if ballots else ()


def _in_window(prop: Mapping[str, Any], vote: Record) -> bool:
    return bool(prop["opens"] <= hlc_millis(vote.hlc) <= prop["closes"])


def _judge(
    ledger: Ledger, prop: Mapping[str, Any], vote: Record, *, frozen: bool = False
) -> tuple[str, Ballot]:
    """Classify one vote: ("count", ballot) or (reason, None).

    `frozen`: the vote is in the proposal's frozen set (the electorate of an import).
    """
    if not _in_window(prop, vote):
        return "outside-window", None
    if (vote.body or {}).get("version", 1) != prop.get("version", 1):
        # A vote names the proposal version it is for; one for an amended-away
        # version is reported (excluded: outdated-version), never counted as if
        # it were for the text now on the ballot.
        return "outdated-version", None
    if IMPORT_FIELD in prop:
        if not frozen:
            return "not-an-import-voter", None
    else:
        elig = ledger.eligibility(vote.origin, str(prop["electorate"]))
        if elig is Eligibility.UNKNOWN:
            return "unknown-member", None
        if elig is Eligibility.INELIGIBLE:
            return "ineligible", None
    ballot = check_ballot(prop, (vote.body or {}).get("ballot"))
    if ballot is None:
        return "invalid-ballot", None
    return "count", ballot


def votes_to_freeze(ledger: Ledger, pid: str) -> list[Record]:
    """The live votes the author of `pid` freezes: every vote that would count now."""
    prop = body(ledger.find("proposal", pid))
    return [
        v
        for v in ledger.keyed("vote", pid)
        if v.body is not None and _judge(ledger, prop, v)[0] == "count"
    ]


def close_plan(ledger: Ledger, pid: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The records (kind, key, body) that close `pid`: closeset chunks, then the close.

    Raises:
        GovernanceError: unknown proposal.
    """
    proposal = ledger.find("proposal", pid)
    raws = sorted(v.raw for v in votes_to_freeze(ledger, pid))
    chunks = chunk_entries(raws)
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("closeset", f"{proposal.key}/{i}", {"votes": c}) for i, c in enumerate(chunks)
    ]
    out.append(
        (
            "close",
            proposal.key,
            {"chunks": len(chunks), "count": len(raws), "hash": freeze_hash(raws)},
        )
    )
    return out


def _frozen_votes(frozen: Frozen, pid: str, excluded: Counter[str]) -> list[Record]:
    """Decode and verify the frozen vote records; one per member (the newest)."""
    best: dict[bytes, Record] = {}
    for raw in frozen.entries:
        try:
            vote = decode_record(raw) if isinstance(raw, bytes) else None
            if vote is None:
                raise Rejected("malformed", "not bytes")
            verify_record(vote)
        except Rejected as exc:
            excluded["bad-signature" if exc.reason == "bad-signature" else "malformed"] += 1
            continue
        if vote.kind != "vote" or vote.key != pid or vote.body is None:
            excluded["wrong-proposal"] += 1
            continue
        cur = best.get(vote.origin)
        if cur is not None:
            excluded["duplicate"] += 1
            if (cur.seq, vote.rid) > (vote.seq, cur.rid):
                continue
        best[vote.origin] = vote
    return [best[k] for k in sorted(best)]


VOTER_PREFIX = 16  # hex characters of a voter's key shown in results


def pseudonym(ledger: Ledger, member: bytes) -> str | None:
    """The member's pseudonym from its live member record of the smallest node id."""
    for r in sorted(ledger.member_records(member), key=lambda r: r.origin):
        if r.body is not None:
            return str(r.body.get("pseudonym")) if r.body.get("pseudonym") else None
    return None


def _voter_json(ledger: Ledger, vote: Record, verdict_: str) -> dict[str, Any]:
    return {
        "key": vote.origin.hex()[:VOTER_PREFIX],
        "pseudonym": pseudonym(ledger, vote.origin),
        "counted": verdict_ == "count",
        "reason": None if verdict_ == "count" else verdict_,
    }


@dataclass(frozen=True)
class VoteCheck:
    """Where one member's vote on a proposal stands (`allmende vote check`).

    Attributes:
        proposal: the proposal id.
        closed: a close record is held (the vote set is frozen).
        held: this node holds a live vote of the member.
        held_ballot: that vote's ballot, as signed.
        frozen: the member's vote is in the frozen set.
        frozen_ballot: the frozen vote's ballot (what counts, even if a newer vote
            was sent after the close).
        counted: the frozen vote counts; else `reason` says why not.
    """

    proposal: str
    closed: bool
    held: bool
    held_ballot: Any
    frozen: bool
    frozen_ballot: Any
    counted: bool
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.__dict__.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def vote_check(ledger: Ledger, pid: str, member: bytes, now_ms: int) -> VoteCheck:
    """Whether `member`'s vote on `pid` is held, frozen and counted: `vote_receipt`'s
    answer (the one the web app gives), with the vote held here beside it.

    Raises:
        GovernanceError: unknown, ambiguous or withdrawn proposal.
    """
    receipt = vote_receipt(ledger, pid, member, now_ms)
    held = ledger.live(member, "vote", receipt.proposal)
    frozen = receipt.final and receipt.seq is not None and receipt.reason != "not-frozen"
    return VoteCheck(
        proposal=receipt.proposal,
        closed=receipt.final,
        held=held is not None,
        held_ballot=None if held is None else body(held).get("ballot"),
        frozen=frozen,
        frozen_ballot=receipt.ballot if frozen else None,
        counted=receipt.status == "counted",
        reason=receipt.reason if frozen and receipt.reason else None,
    )


def results(ledger: Ledger, pid: str, now_ms: int) -> Results:
    """The results of proposal `pid` as this ledger sees them at `now_ms`.

    Raises:
        GovernanceError: unknown, ambiguous or withdrawn proposal.
    """
    proposal = ledger.find("proposal", pid)
    prop = body(proposal)
    pid = object_id(proposal.origin, proposal.key)  # normalised
    frozen = gather(ledger, proposal.origin, "close", "closeset", proposal.key, "votes")
    ph = phase(prop, now_ms, closed=frozen.state is not FrozenState.ABSENT)
    verdict = decide(ph, Action.RESULTS)
    base: dict[str, Any] = {
        "proposal": pid,
        "title": str(prop["title"]),
        "method": str(prop["method"]),
        "phase": ph.value,
        "imported": prop.get(IMPORT_FIELD),
        "members_per_node": {}
        if prop.get(IMPORT_FIELD)
        else ledger.members_per_node(str(prop["electorate"])),
    }
    excluded: Counter[str] = Counter()
    held = [v for v in ledger.keyed("vote", pid) if v.body is not None]
    if verdict.effect is Effect.PROVISIONAL:
        votes, missing, uncounted = held, 0, 0
        status = "provisional"
    else:
        votes = _frozen_votes(frozen, pid, excluded)
        frozen_ids = {v.rid for v in votes}
        uncounted = sum(1 for v in held if v.rid not in frozen_ids)
        missing = (
            frozen.count - len(frozen.entries) if frozen.state is FrozenState.INCOMPLETE else 0
        )
        status = "final"
        if frozen.state is FrozenState.INCONSISTENT:
            return Results(
                **base,
                status="inconsistent",
                uncounted=uncounted,
                problem=f"the close of {pid} is inconsistent: {frozen.problem}",
            )
    ballots = []
    voters = []
    for v in votes:
        verdict_, ballot = _judge(ledger, prop, v, frozen=status == "final")
        if verdict_ == "count":
            ballots.append(ballot)
        elif verdict_ == "unknown-member" and status == "final":
            missing += 1  # cannot judge yet: the member's records are not here
        else:
            excluded[verdict_] += 1
        if status == "final" and IMPORT_FIELD not in prop:
            voters.append(_voter_json(ledger, v, verdict_))
    base["voters"] = tuple(voters)
    if missing:
        why = []
        if frozen.missing_chunks:
            why.append(f"{len(frozen.missing_chunks)} closeset chunk(s) not received")
        unknown = missing - (
            frozen.count - len(frozen.entries) if frozen.state is FrozenState.INCOMPLETE else 0
        )
        if unknown:
            why.append(f"{unknown} voter(s) whose member records are not here yet")
        return Results(
            **base,
            status="incomplete",
            counted=len(ballots),
            missing=missing,
            excluded=dict(excluded),
            uncounted=uncounted,
            problem=f"{missing} frozen vote(s) cannot be counted yet: " + "; ".join(why),
        )
    winners, detail = count(prop, ballots)
    if ph is Phase.SCHEDULED:
        winners, detail = (), {}
    notes = []
    if not ballots:
        notes.append("no vote was counted, so there is no winner")
    add1 = detail.get("add1") or {}
    if add1.get("stopped_at_limit"):
        what = (
            f"{add1['limit']:,} increments"
            if add1["increments"] >= add1["limit"]
            else f"{add1['run_limit']:,} runs"
        )
        notes.append(
            f"Equal Shares' add1 completion stopped at its limit of {what}: "
            "the selection is bounded and may fund less than a full add1 run"
        )
    return Results(
        **base,
        status=status,
        counted=len(ballots),
        excluded=dict(excluded),
        uncounted=uncounted,
        winners=winners,
        detail=detail,
        problem="" if status == "final" else verdict.message,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class Receipt:
    """Whether one member's vote counts in a proposal, as this ledger sees it.

    Attributes:
        proposal: the proposal id.
        member: the member's key (hex).
        status: ``counted`` (in the frozen set, counted), ``counts`` (before the
            close: counts in the provisional result), ``not-counted``, ``no-vote``
            (no live vote of this member held here) or ``unknown`` (this node lacks
            records it needs to judge).
        reason: why it is not counted or unknown (the tally's reason, or
            ``not-frozen`` for a vote the close did not freeze).
        final: the proposal is closed: the answer can no longer change by voting.
        ballot: the ballot of the vote the answer is about (None without one).
        seq: that vote's seq (None without one).
    """

    proposal: str
    member: str
    status: str
    reason: str = ""
    final: bool = False
    ballot: Any = None
    seq: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "proposal": self.proposal,
            "member": self.member,
            "status": self.status,
            "reason": self.reason,
            "final": self.final,
            "ballot": self.ballot,
            "seq": self.seq,
        }


def vote_receipt(ledger: Ledger, pid: str, member: bytes, now_ms: int) -> Receipt:
    """Whether `member`'s vote on `pid` counts: the per-member view of `results`
    (a vote has status ``counted`` or ``counts`` exactly when `results` counts it).

    Raises:
        GovernanceError: unknown, ambiguous or withdrawn proposal.
    """
    proposal = ledger.find("proposal", pid)
    prop = body(proposal)
    pid = object_id(proposal.origin, proposal.key)
    frozen = gather(ledger, proposal.origin, "close", "closeset", proposal.key, "votes")
    ph = phase(prop, now_ms, closed=frozen.state is not FrozenState.ABSENT)
    held = ledger.live(member, "vote", pid)
    mhex = member.hex()
    if decide(ph, Action.RESULTS).effect is Effect.PROVISIONAL:
        if held is None:
            return Receipt(pid, mhex, status="no-vote")
        reason, _ = _judge(ledger, prop, held)
        return Receipt(
            pid,
            mhex,
            status="counts" if reason == "count" else "not-counted",
            reason="" if reason == "count" else reason,
            ballot=body(held).get("ballot"),
            seq=held.seq,
        )
    if frozen.state is FrozenState.INCONSISTENT:
        return Receipt(pid, mhex, status="unknown", reason="inconsistent-close", final=True)
    mine = next((v for v in _frozen_votes(frozen, pid, Counter()) if v.origin == member), None)
    if mine is None:
        if frozen.state is FrozenState.INCOMPLETE:
            return Receipt(pid, mhex, status="unknown", reason="missing-chunks", final=True)
        if held is None:
            return Receipt(pid, mhex, status="no-vote", final=True)
        return Receipt(
            pid,
            mhex,
            status="not-counted",
            reason="not-frozen",
            final=True,
            ballot=body(held).get("ballot"),
            seq=held.seq,
        )
    reason, _ = _judge(ledger, prop, mine, frozen=True)
    status = "counted" if reason == "count" else "not-counted"
    if reason == "unknown-member":
        status = "unknown"
    return Receipt(
        pid,
        mhex,
        status=status,
        reason="" if reason == "count" else reason,
        final=True,
        ballot=(mine.body or {}).get("ballot"),
        seq=mine.seq,
    )
