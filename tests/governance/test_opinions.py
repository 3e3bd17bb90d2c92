"""The opinion map: a planted instance is recovered, the map is a pure function of
the reactions (any arrival order), and it is fast enough for a town."""

from __future__ import annotations

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from node.governance.opinions import opinion_map

SHARED = 6


def planted(n, statements, seed, noise=0.1):
    """Two groups reacting oppositely on every statement but the first SHARED, which
    both agree with; each member skips about a third and answers at random a tenth
    of the time."""
    rng = random.Random(seed)
    reactions, truth = {}, ({}, {})
    for i in range(n):
        g = rng.randrange(2)
        rs = {}
        for j in range(statements):
            if rng.random() < 0.3:
                continue
            r = 1 if j < SHARED or j % 2 == g else -1
            if rng.random() < noise:
                r = rng.choice([1, -1, 0])
            rs[f"s{j:03d}"] = r
        reactions[f"m{i:04d}"] = rs
        truth[g][f"m{i:04d}"] = True
    return reactions, truth


def test_a_planted_instance_is_recovered():
    reactions, truth = planted(300, 60, seed=1)
    m = opinion_map("0123456789abcdef.bikes", reactions)
    assert len(m.groups) == 2
    assert {frozenset(g.members) for g in m.groups} == {frozenset(t) for t in truth}
    shared = {f"s{j:03d}" for j in range(SHARED)}
    assert m.bridging
    assert set(m.bridging) <= shared
    for g in m.groups:
        # what a group agrees with more than the other: its own side's statements
        side = {int(s[1:]) % 2 for s in g.agrees}
        assert len(side) == 1
        assert not set(g.agrees) & shared
        assert {int(s[1:]) % 2 for s in g.disagrees} == {1 - side.pop()}


def test_no_bridge_when_nothing_is_shared():
    reactions, _ = planted(200, 40, seed=2)
    for rs in reactions.values():
        for j in range(SHARED):
            rs.pop(f"s{j:03d}", None)
    assert opinion_map("0123456789abcdef.x", reactions).bridging == ()


def test_everybody_alike_is_one_group_and_empty_is_empty():
    same = {f"m{i}": {"a": 1, "b": -1} for i in range(5)}
    m = opinion_map("0123456789abcdef.x", same)
    assert len(m.groups) == 1
    assert m.groups[0].members == tuple(sorted(same))
    assert m.bridging == ("a",)
    assert opinion_map("0123456789abcdef.x", {}).groups == ()
    assert opinion_map("0123456789abcdef.x", {"m": {"a": 0}}).participants == 0


reaction_sets = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["s1", "s2", "s3", "s4", "s5"]), st.sampled_from([1, -1, 0])),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(reaction_sets, st.randoms(use_true_random=False))
def test_the_map_does_not_depend_on_arrival_order(reactions, rnd):
    members = list(reactions)
    rnd.shuffle(members)
    shuffled = {}
    for m in members:
        items = list(reactions[m].items())
        rnd.shuffle(items)
        shuffled[m] = dict(items)
    a = opinion_map("0123456789abcdef.p", reactions)
    b = opinion_map("0123456789abcdef.p", shuffled)
    assert a == b
    # every participant is in exactly one group
    placed = [m for g in a.groups for m in g.members]
    assert sorted(placed) == sorted(placed := list(dict.fromkeys(placed)))
    assert len(placed) == a.participants


def test_two_thousand_members_three_hundred_statements():
    reactions, truth = planted(2000, 300, seed=3)
    start = time.perf_counter()
    m = opinion_map("0123456789abcdef.town", reactions)
    took = time.perf_counter() - start
    assert {frozenset(g.members) for g in m.groups} == {frozenset(t) for t in truth}
    # Goal 1 s on one core (measured ~0.85 s); the bound only catches a regression.
    assert took < 5, took
