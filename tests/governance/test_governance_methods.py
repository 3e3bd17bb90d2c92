"""Approval, score and Schulze tallies: worked examples and Hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.governance.errors import GovernanceError
from node.governance.methods import approval, schulze, score

# Ids chosen so code-point order differs from numeric order ("10" < "9").
IDS = ("1", "10", "2", "9", "a", "b")

options_st = st.lists(st.sampled_from(IDS), min_size=1, max_size=len(IDS), unique=True)


@st.composite
def approval_case(draw):
    options = draw(options_st)
    ballots = draw(st.lists(st.frozensets(st.sampled_from(options)), max_size=12))
    return options, ballots


@st.composite
def score_case(draw):
    options = draw(options_st)
    low = draw(st.integers(-3, 2))
    high = draw(st.integers(low, low + 5))
    ballot = st.dictionaries(st.sampled_from(options), st.integers(low, high))
    return options, draw(st.lists(ballot, max_size=12)), low, high


@st.composite
def ranking(draw, options):
    ranked = draw(st.permutations(options))
    ranked = ranked[: draw(st.integers(0, len(ranked)))]
    groups, i = [], 0
    while i < len(ranked):
        size = draw(st.integers(1, len(ranked) - i))
        groups.append(ranked[i : i + size])
        i += size
    return groups


@st.composite
def ranked_case(draw):
    options = draw(options_st)
    return options, draw(st.lists(ranking(options), max_size=12))


# --- approval -----------------------------------------------------------------


def test_approval_counts_and_id_tie_break():
    result = approval(["9", "10", "x"], [{"9", "10"}, {"9", "10"}, {"x"}, set()])
    assert result.counts == {"9": 2, "10": 2, "x": 1}
    assert result.winners == ("10",)  # "10" < "9" in code-point order
    assert result.ranking == ("10", "9", "x")
    assert result.tie_broken
    assert result.ballots == 4
    two = approval(["9", "10", "x"], [{"9", "10"}], seats=2)
    assert two.winners == ("10", "9")
    assert not two.tie_broken


@pytest.mark.parametrize(
    ("options", "ballots", "seats", "message"),
    [
        ([], [], 1, "no options"),
        (["a", "a"], [], 1, "not unique"),
        (["a"], [], 2, "seats"),
        (["a"], [], 0, "seats"),
        (["a"], [{"b"}], 1, "ballot 0: unknown option 'b'"),
        (["a"], [["a", "a"]], 1, "ballot 0: an option is approved twice"),
    ],
)
def test_approval_rejects_bad_input(options, ballots, seats, message):
    with pytest.raises(GovernanceError, match=message):
        approval(options, ballots, seats=seats)


@settings(max_examples=150, deadline=None)
@given(st.data(), approval_case())
def test_approval_invariant_under_ballot_permutation(data, case):
    options, ballots = case
    shuffled = data.draw(st.permutations(ballots))
    assert approval(options, shuffled) == approval(options, ballots)


@settings(max_examples=150, deadline=None)
@given(approval_case(), st.integers(1, len(IDS)))
def test_approval_winners_have_max_counts(case, seats):
    options, ballots = case
    seats = min(seats, len(options))
    result = approval(options, ballots, seats=seats)
    for option in options:
        assert result.counts[option] == sum(option in b for b in ballots)
    assert result.counts[result.winners[0]] == max(result.counts.values())
    losers = [o for o in options if o not in result.winners]
    for w in result.winners:
        for loser in losers:
            assert result.counts[w] >= result.counts[loser]
            if result.counts[w] == result.counts[loser]:
                assert result.tie_broken


# --- score --------------------------------------------------------------------


def test_score_missing_counts_as_minimum():
    result = score(["a", "b"], [{"a": 5}, {"b": 3}, {}], min_score=1, max_score=5)
    assert result.totals == {"a": 5 + 1 + 1, "b": 1 + 3 + 1}
    assert result.winners == ("a",)


@pytest.mark.parametrize(
    ("ballot", "low", "high", "message"),
    [
        ({"a": 6}, 0, 5, "score 6 for 'a' is not an integer in"),
        ({"a": 1.0}, 0, 5, "score 1.0"),
        ({"a": True}, 0, 5, "score True"),
        ({"z": 1}, 0, 5, "unknown option 'z'"),
        ({}, 5, 0, "score range"),
    ],
)
def test_score_rejects_bad_input(ballot, low, high, message):
    with pytest.raises(GovernanceError, match=message):
        score(["a"], [ballot], min_score=low, max_score=high)


@settings(max_examples=150, deadline=None)
@given(st.data(), score_case())
def test_score_invariant_under_ballot_permutation_and_max_wins(data, case):
    options, ballots, low, high = case
    result = score(options, ballots, min_score=low, max_score=high)
    shuffled = data.draw(st.permutations(ballots))
    assert score(options, shuffled, min_score=low, max_score=high) == result
    for option in options:
        assert result.totals[option] == sum(b.get(option, low) for b in ballots)
    assert result.totals[result.winners[0]] == max(result.totals.values())


# --- Schulze ------------------------------------------------------------------

WIKIPEDIA = [  # en.wikipedia.org/wiki/Schulze_method, the 45-voter example
    (5, "ACBED"),
    (5, "ADECB"),
    (8, "BEDAC"),
    (3, "CABED"),
    (7, "CAEBD"),
    (2, "CBADE"),
    (7, "DCEBA"),
    (8, "EBADC"),
]


def test_schulze_wikipedia_example():
    ballots = [[[c] for c in order] for count, order in WIKIPEDIA for _ in range(count)]
    result = schulze("ABCDE", ballots)
    d = result.pairwise
    assert [d["A", x] for x in "BCDE"] == [20, 26, 30, 22]
    assert [d["E", x] for x in "ABCD"] == [23, 27, 21, 31]
    p = result.strongest
    assert [p["A", x] for x in "BCDE"] == [28, 28, 30, 24]
    assert [p["E", x] for x in "ABCD"] == [25, 28, 28, 31]
    assert result.winners == ("E",)
    assert result.ranking == tuple("EACBD")
    assert not result.tie_broken
    assert result.beats("E", "A")
    assert result.ballots == 45


def test_schulze_partial_rankings_with_ties():
    # "a and b tied on top, then c"; d is unranked so it is below c.
    result = schulze(["a", "b", "c", "d"], [[["a", "b"], ["c"]], [["b"]]])
    d = result.pairwise
    assert (d["a", "b"], d["b", "a"]) == (0, 1)
    assert (d["a", "c"], d["c", "a"]) == (1, 0)
    assert (d["c", "d"], d["d", "c"]) == (1, 0)
    assert (d["a", "d"], d["b", "d"]) == (1, 2)
    assert result.winners == ("b",)


def test_schulze_empty_and_tied_election():
    result = schulze(["b", "a"], [[], [["a", "b"]]])
    assert result.winners == ("a",)
    assert result.tie_broken
    assert result.ranking == ("a", "b")


@pytest.mark.parametrize(
    ("ballot", "message"),
    [
        ([["a"], ["a"]], "option 'a' is ranked twice"),
        ([["a", "a"]], "an option is ranked twice"),
        ([[]], "empty group"),
        ([["q"]], "unknown option 'q'"),
    ],
)
def test_schulze_rejects_bad_ballots(ballot, message):
    with pytest.raises(GovernanceError, match=message):
        schulze(["a", "b"], [ballot])


@settings(max_examples=150, deadline=None)
@given(st.data(), ranked_case())
def test_schulze_invariant_under_ballot_permutation(data, case):
    options, ballots = case
    shuffled = data.draw(st.permutations(ballots))
    assert schulze(options, shuffled) == schulze(options, ballots)


@settings(max_examples=300, deadline=None)
@given(ranked_case())
def test_schulze_elects_the_condorcet_winner(case):
    options, ballots = case
    result = schulze(options, ballots)
    d = result.pairwise
    condorcet = [a for a in options if all(d[a, b] > d[b, a] for b in options if b != a)]
    if condorcet:
        assert result.winners == (condorcet[0],)
        assert not result.tie_broken
    # The winner is never beaten in the Schulze order.
    w = result.winners[0]
    assert not any(result.beats(b, w) for b in options if b != w)
    # Every later option in the ranking does not beat an earlier one.
    r = result.ranking
    for i, a in enumerate(r):
        for b in r[i + 1 :]:
            assert not result.beats(b, a)
