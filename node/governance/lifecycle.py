"""The proposal lifecycle: one table from (phase, action) to a verdict.

The phase is a pure function of the proposal, the time and whether a close record is
held; the table says what each action does in each phase. Anything missing from the
table is a bug (the test walks every pair).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Phase(enum.Enum):
    SCHEDULED = "scheduled"  # before `opens` (and before `discussion`, if it has one)
    DISCUSSION = "discussion"  # discussion <= now < opens: comments and amendments
    OPEN = "open"  # opens <= now < closes
    ENDED = "ended"  # now >= closes, no close record yet: waiting for the author
    CLOSED = "closed"  # the author's close record froze the vote set
    WITHDRAWN = "withdrawn"  # the proposal record is a tombstone


class Action(enum.Enum):
    VOTE = "vote"
    CLOSE = "close"  # close after `closes`
    CLOSE_EARLY = "close-early"  # close before `closes` (the author cuts voting short)
    RESULTS = "results"
    DISCUSS = "discuss"  # comment, add a statement, react
    AMEND = "amend"  # propose an amendment, or decide on one (the author)


class Effect(enum.Enum):
    ALLOW = "allow"
    REFUSE = "refuse"
    PROVISIONAL = "provisional"  # results: a count of the votes held so far
    FINAL = "final"  # results: the count of the frozen vote set


@dataclass(frozen=True)
class Verdict:
    effect: Effect
    message: str

    @property
    def allowed(self) -> bool:
        return self.effect is not Effect.REFUSE


_R, _A = Effect.REFUSE, Effect.ALLOW
TABLE: dict[tuple[Phase, Action], Verdict] = {
    (Phase.SCHEDULED, Action.VOTE): Verdict(_R, "voting has not opened yet"),
    (Phase.SCHEDULED, Action.CLOSE): Verdict(_R, "voting has not opened yet"),
    (Phase.SCHEDULED, Action.CLOSE_EARLY): Verdict(
        _R, "voting has not opened yet; withdraw the proposal instead"
    ),
    (Phase.SCHEDULED, Action.RESULTS): Verdict(Effect.PROVISIONAL, "voting has not opened"),
    (Phase.SCHEDULED, Action.DISCUSS): Verdict(_R, "the discussion has not started yet"),
    (Phase.SCHEDULED, Action.AMEND): Verdict(_R, "the discussion has not started yet"),
    (Phase.DISCUSSION, Action.VOTE): Verdict(
        _R, "the proposal is in discussion; voting opens later"
    ),
    (Phase.DISCUSSION, Action.CLOSE): Verdict(_R, "voting has not opened yet"),
    (Phase.DISCUSSION, Action.CLOSE_EARLY): Verdict(
        _R, "voting has not opened yet; withdraw the proposal instead"
    ),
    (Phase.DISCUSSION, Action.RESULTS): Verdict(Effect.PROVISIONAL, "in discussion"),
    (Phase.DISCUSSION, Action.DISCUSS): Verdict(_A, "discussion is open"),
    (Phase.DISCUSSION, Action.AMEND): Verdict(_A, "amendments are open"),
    (Phase.OPEN, Action.VOTE): Verdict(_A, "vote accepted"),
    (Phase.OPEN, Action.CLOSE): Verdict(
        _R, "voting is still open; close it early with --early if the electorate agreed"
    ),
    (Phase.OPEN, Action.CLOSE_EARLY): Verdict(_A, "closing early"),
    (Phase.OPEN, Action.RESULTS): Verdict(Effect.PROVISIONAL, "voting is open: provisional"),
    (Phase.OPEN, Action.DISCUSS): Verdict(_A, "discussion goes on while voting is open"),
    (Phase.OPEN, Action.AMEND): Verdict(
        _R, "voting is open: amendments were due during the discussion"
    ),
    (Phase.ENDED, Action.VOTE): Verdict(_R, "voting has ended"),
    (Phase.ENDED, Action.CLOSE): Verdict(_A, "closing"),
    (Phase.ENDED, Action.CLOSE_EARLY): Verdict(_A, "closing"),
    (Phase.ENDED, Action.RESULTS): Verdict(
        Effect.PROVISIONAL, "voting has ended, waiting for the close record"
    ),
    (Phase.ENDED, Action.DISCUSS): Verdict(_R, "voting has ended"),
    (Phase.ENDED, Action.AMEND): Verdict(_R, "voting has ended"),
    (Phase.CLOSED, Action.VOTE): Verdict(_R, "the proposal is closed"),
    (Phase.CLOSED, Action.CLOSE): Verdict(_R, "the proposal is closed already"),
    (Phase.CLOSED, Action.CLOSE_EARLY): Verdict(_R, "the proposal is closed already"),
    (Phase.CLOSED, Action.RESULTS): Verdict(Effect.FINAL, "closed"),
    (Phase.CLOSED, Action.DISCUSS): Verdict(_R, "the proposal is closed"),
    (Phase.CLOSED, Action.AMEND): Verdict(_R, "the proposal is closed"),
    (Phase.WITHDRAWN, Action.VOTE): Verdict(_R, "the proposal was withdrawn"),
    (Phase.WITHDRAWN, Action.CLOSE): Verdict(_R, "the proposal was withdrawn"),
    (Phase.WITHDRAWN, Action.CLOSE_EARLY): Verdict(_R, "the proposal was withdrawn"),
    (Phase.WITHDRAWN, Action.RESULTS): Verdict(_R, "the proposal was withdrawn"),
    (Phase.WITHDRAWN, Action.DISCUSS): Verdict(_R, "the proposal was withdrawn"),
    (Phase.WITHDRAWN, Action.AMEND): Verdict(_R, "the proposal was withdrawn"),
}


def phase(body: dict[str, Any] | None, now_ms: int, *, closed: bool) -> Phase:
    """The phase of a proposal (body None: withdrawn) at `now_ms`."""
    if body is None:
        return Phase.WITHDRAWN
    if closed:
        return Phase.CLOSED
    if now_ms < body["opens"]:
        start = body.get("discussion")
        return Phase.DISCUSSION if start is not None and now_ms >= start else Phase.SCHEDULED
    if now_ms < body["closes"]:
        return Phase.OPEN
    return Phase.ENDED


def decide(ph: Phase, action: Action) -> Verdict:
    """What `action` does in phase `ph`."""
    return TABLE[(ph, action)]
