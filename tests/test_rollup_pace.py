"""When an attester publishes (issue 12): a change goes out once two recomputations in
a row agree, or once it waited `max_wait`; nothing else goes out, and whatever is
computed last goes out in the end."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.planning.pace import RollupPace

A = [("k.2027-Q1", {"items": [["wheat", "mass", "1", "0", 1]]}, "de")]
B = [("k.2027-Q1", {"items": [["wheat", "mass", "2", "0", 1]]}, "de")]


def test_a_change_waits_for_the_next_recomputation_to_agree():
    pace = RollupPace(max_wait=300)
    assert pace.step(A, 0) == []
    assert pace.step(A, 10) == A  # settled: published
    assert pace.step([], 20) == []  # up to date: nothing


def test_a_busy_region_publishes_no_version_until_it_holds_still():
    pace = RollupPace(max_wait=300)
    for t in range(0, 120, 10):
        assert pace.step(A if t // 10 % 2 else B, t) == []
    assert pace.step(B, 120) == []  # unlike the one before (A, at 110)
    assert pace.step(B, 130) == B


def test_a_region_that_never_holds_still_publishes_after_max_wait():
    pace = RollupPace(max_wait=30)
    assert pace.step(A, 0) == []
    assert pace.step(B, 10) == []
    assert pace.step(A, 20) == []
    assert pace.step(B, 30) == B  # the change began at 0: 30 s ago
    assert pace.step(A, 40) == []  # a new wait begins


def test_max_wait_zero_publishes_at_every_recomputation():
    pace = RollupPace(max_wait=0)
    assert pace.step(A, 0) == A
    assert pace.step(B, 10) == B


def test_a_negative_wait_is_refused():
    with pytest.raises(ValueError, match="max_wait"):
        RollupPace(max_wait=-1)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=30),
    st.sampled_from([0, 10, 25, 300]),
)
def test_what_goes_out_was_computed_now_and_settled_or_waited(seq, max_wait):
    """Property: a step publishes only what it was just given, and only when the step
    before computed the same or the change waited `max_wait`; a sequence that ends on
    two equal computations has published its last one."""
    pace = RollupPace(max_wait=max_wait)
    prev: list[str] | None = None
    began: float | None = None
    out: list[list[str]] = []
    for k, c in enumerate(seq):
        now = 10.0 * k
        changes = [c] if c else []
        published = pace.step(changes, now)
        out.append(published)
        if published:
            assert published == changes
            assert began is not None or max_wait == 0
            assert changes == prev or now - (now if began is None else began) >= max_wait
            began, prev = None, None
        elif changes:
            began = now if began is None else began
            prev = changes
        else:
            began, prev = None, None
    # the last change, computed once more unchanged, goes out (an attester's region
    # that holds still is never left unpublished)
    last = [seq[-1]] if seq[-1] else []
    if not out[-1]:
        assert pace.step(last, 10.0 * len(seq)) == last
        assert pace.pending is None
