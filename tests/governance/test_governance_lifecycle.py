"""The proposal lifecycle table: every (phase, action) pair."""

from __future__ import annotations

import itertools

import pytest

from node.governance.lifecycle import TABLE, Action, Effect, Phase, decide, phase

EXPECTED = {
    # vote, close, close early, results, discuss, amend
    Phase.SCHEDULED: ("refuse", "refuse", "refuse", "provisional", "refuse", "refuse"),
    Phase.DISCUSSION: ("refuse", "refuse", "refuse", "provisional", "allow", "allow"),
    Phase.OPEN: ("allow", "refuse", "allow", "provisional", "allow", "refuse"),
    Phase.ENDED: ("refuse", "allow", "allow", "provisional", "refuse", "refuse"),
    Phase.CLOSED: ("refuse", "refuse", "refuse", "final", "refuse", "refuse"),
    Phase.WITHDRAWN: ("refuse", "refuse", "refuse", "refuse", "refuse", "refuse"),
}
ACTIONS = (
    Action.VOTE,
    Action.CLOSE,
    Action.CLOSE_EARLY,
    Action.RESULTS,
    Action.DISCUSS,
    Action.AMEND,
)


@pytest.mark.parametrize(("ph", "action"), list(itertools.product(Phase, Action)))
def test_every_pair(ph, action):
    verdict = decide(ph, action)
    assert verdict.effect is Effect(EXPECTED[ph][ACTIONS.index(action)])
    assert verdict.message
    assert verdict.allowed == (verdict.effect is not Effect.REFUSE)


def test_table_is_total():
    assert set(TABLE) == set(itertools.product(Phase, Action))


def test_phase():
    body = {"opens": 10, "closes": 20}
    assert [phase(body, t, closed=False) for t in (9, 10, 19, 20)] == [
        Phase.SCHEDULED,
        Phase.OPEN,
        Phase.OPEN,
        Phase.ENDED,
    ]
    assert phase(body, 15, closed=True) is Phase.CLOSED
    discussed = {**body, "discussion": 5}
    assert [phase(discussed, t, closed=False) for t in (4, 5, 9, 10)] == [
        Phase.SCHEDULED,
        Phase.DISCUSSION,
        Phase.DISCUSSION,
        Phase.OPEN,
    ]
    assert phase(None, 15, closed=True) is Phase.WITHDRAWN
