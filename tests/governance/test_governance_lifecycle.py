"""The proposal lifecycle table: every (phase, action) pair."""

from __future__ import annotations

import itertools

import pytest

from node.governance.lifecycle import TABLE, Action, Effect, Phase, decide, phase

EXPECTED = {
    Phase.SCHEDULED: ("refuse", "refuse", "refuse", "provisional"),
    Phase.OPEN: ("allow", "refuse", "allow", "provisional"),
    Phase.ENDED: ("refuse", "allow", "allow", "provisional"),
    Phase.CLOSED: ("refuse", "refuse", "refuse", "final"),
    Phase.WITHDRAWN: ("refuse", "refuse", "refuse", "refuse"),
}
ACTIONS = (Action.VOTE, Action.CLOSE, Action.CLOSE_EARLY, Action.RESULTS)


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
    assert phase(None, 15, closed=True) is Phase.WITHDRAWN
