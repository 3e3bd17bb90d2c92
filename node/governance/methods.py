"""Single-choice and committee tallies: approval, score and Schulze (ranked).

Every function is pure: plain option ids and plain ballots in, a frozen result out.
Only integers are used, so every node computes the same result, and the result never
depends on the order of the ballots (a tally only ever sums over them).

Tie-breaking (all three methods): options are put in a *ranking*, best first; the
first ``seats`` options of the ranking win. Options the method cannot separate are
ordered by option id, ascending in code-point order (``"10" < "9"``). Each result
says whether that rule decided who won (``tie_broken``), so a caller can show it or
ask for a run-off instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from node.governance.errors import GovernanceError

__all__ = [
    "ApprovalResult",
    "SchulzeResult",
    "ScoreResult",
    "approval",
    "schulze",
    "score",
]


@dataclass(frozen=True)
class ApprovalResult:
    """Outcome of an approval vote.

    Attributes:
        winners: the ``seats`` best options, best first.
        ranking: every option, best first (count descending, then option id).
        counts: number of ballots approving each option (every option present).
        tie_broken: True if the option-id rule decided between a winner and a loser
            with the same count.
        ballots: number of ballots counted.
    """

    winners: tuple[str, ...]
    ranking: tuple[str, ...]
    counts: Mapping[str, int]
    tie_broken: bool
    ballots: int


@dataclass(frozen=True)
class ScoreResult:
    """Outcome of a score (range) vote.

    Attributes:
        winners: the ``seats`` best options, best first.
        ranking: every option, best first (total descending, then option id).
        totals: sum of the scores given to each option (unscored counts as the minimum).
        tie_broken: True if the option-id rule decided between a winner and a loser
            with the same total.
        ballots: number of ballots counted.
    """

    winners: tuple[str, ...]
    ranking: tuple[str, ...]
    totals: Mapping[str, int]
    tie_broken: bool
    ballots: int


@dataclass(frozen=True)
class SchulzeResult:
    """Outcome of a ranked vote counted with the Schulze method (winning votes).

    Attributes:
        winners: the ``seats`` best options, best first.
        ranking: every option, best first: a linear extension of the Schulze order
            (options beating more options come first, incomparable ones by option id).
        pairwise: ``pairwise[a, b]`` is the number of ballots ranking ``a`` above ``b``
            (defined for every ordered pair of distinct options).
        strongest: ``strongest[a, b]`` is the strength of the strongest path from ``a``
            to ``b``, where a link ``a -> b`` has strength ``pairwise[a, b]`` if ``a``
            wins that contest and 0 otherwise.
        tie_broken: True if the option-id rule decided between a winner and a loser
            that the Schulze order does not separate.
        ballots: number of ballots counted.
    """

    winners: tuple[str, ...]
    ranking: tuple[str, ...]
    pairwise: Mapping[tuple[str, str], int]
    strongest: Mapping[tuple[str, str], int]
    tie_broken: bool
    ballots: int

    def beats(self, a: str, b: str) -> bool:
        """Whether ``a`` is strictly above ``b`` in the Schulze order.

        Args:
            a: an option id.
            b: another option id.

        Returns:
            True if the strongest path from ``a`` to ``b`` is stronger than the reverse.

        Raises:
            KeyError: if ``a`` or ``b`` is not an option, or ``a == b``.
        """
        return self.strongest[a, b] > self.strongest[b, a]


def approval(
    options: Collection[str], ballots: Iterable[Collection[str]], *, seats: int = 1
) -> ApprovalResult:
    """Count an approval vote: each ballot is the set of options the voter approves.

    Args:
        options: the option ids on the ballot paper.
        ballots: one collection of approved option ids per voter (may be empty).
        seats: how many options win.

    Returns:
        The winners, the full ranking and the approval count of every option.

    Raises:
        GovernanceError: on duplicate or non-string options, a ``seats`` outside
            ``1..len(options)``, or a ballot naming an unknown option or one twice.
    """
    ids = _options(options, seats)
    counts = dict.fromkeys(ids, 0)
    n = 0
    for index, ballot in enumerate(ballots):
        for option in _approved(index, ballot, counts):
            counts[option] += 1
        n += 1
    ranking = tuple(sorted(ids, key=lambda o: (-counts[o], o)))
    return ApprovalResult(
        winners=ranking[:seats],
        ranking=ranking,
        counts=MappingProxyType(counts),
        tie_broken=_tie_broken(ranking, seats, lambda a, b: counts[a] > counts[b]),
        ballots=n,
    )


def score(
    options: Collection[str],
    ballots: Iterable[Mapping[str, int]],
    *,
    min_score: int,
    max_score: int,
    seats: int = 1,
) -> ScoreResult:
    """Count a score vote: each ballot maps options to integer scores.

    An option a ballot leaves out counts as ``min_score`` for it, so leaving an option
    blank and giving it the lowest score are the same thing.

    Args:
        options: the option ids on the ballot paper.
        ballots: one mapping option id -> score per voter.
        min_score: lowest allowed score (inclusive).
        max_score: highest allowed score (inclusive).
        seats: how many options win.

    Returns:
        The winners, the full ranking and the score total of every option.

    Raises:
        GovernanceError: on bad options or ``seats``, ``min_score > max_score``, or a
            ballot with an unknown option or a score that is not an int in range.
    """
    ids = _options(options, seats)
    if not (_is_int(min_score) and _is_int(max_score)) or min_score > max_score:
        raise GovernanceError(f"score range [{min_score!r}, {max_score!r}] is not valid")
    totals = dict.fromkeys(ids, 0)
    n = 0
    for index, ballot in enumerate(ballots):
        for option, value in ballot.items():
            if option not in totals:
                raise GovernanceError(f"ballot {index}: unknown option {option!r}")
            if not _is_int(value) or not min_score <= value <= max_score:
                raise GovernanceError(
                    f"ballot {index}: score {value!r} for {option!r} is not an integer "
                    f"in [{min_score}, {max_score}]"
                )
            totals[option] += value - min_score
        n += 1
    # Totals were accumulated relative to min_score so unscored options need no pass.
    totals = {o: t + n * min_score for o, t in totals.items()}
    ranking = tuple(sorted(ids, key=lambda o: (-totals[o], o)))
    return ScoreResult(
        winners=ranking[:seats],
        ranking=ranking,
        totals=MappingProxyType(totals),
        tie_broken=_tie_broken(ranking, seats, lambda a, b: totals[a] > totals[b]),
        ballots=n,
    )


def schulze(
    options: Collection[str],
    ballots: Iterable[Sequence[Collection[str]]],
    *,
    seats: int = 1,
) -> SchulzeResult:
    """Count a ranked vote with the Schulze method, link strength = winning votes.

    A ballot is a sequence of groups, most preferred first; the options inside one
    group are tied. Options a ballot does not mention rank below every option it
    mentions and are tied with each other, so ``[["a"]]`` says "a above all others".

    Args:
        options: the option ids on the ballot paper.
        ballots: one ranking (sequence of groups of option ids) per voter.
        seats: how many options win (the top of the Schulze ranking).

    Returns:
        The winners, the full ranking, the pairwise matrix and the strongest paths.

    Raises:
        GovernanceError: on bad options or ``seats``, or a ballot with an unknown
            option, an option ranked twice, or an empty group.
    """
    ids = _options(options, seats)
    known = frozenset(ids)
    pairwise = {(a, b): 0 for a in ids for b in ids if a != b}
    n = 0
    for index, ballot in enumerate(ballots):
        above: list[str] = []
        for group in ballot:
            members = _group(index, group, known, above)
            for a in above:
                for b in members:
                    pairwise[a, b] += 1
            above.extend(members)
        ranked = frozenset(above)
        for a in above:
            for b in ids:
                if b not in ranked:
                    pairwise[a, b] += 1
        n += 1
    strongest = {(a, b): d if d > pairwise[b, a] else 0 for (a, b), d in pairwise.items()}
    # Floyd-Warshall over the widest-path semiring (max, min).
    for k in ids:
        for a in ids:
            if a == k:
                continue
            via = strongest[a, k]
            if via == 0:
                continue
            for b in ids:
                if b in (a, k):
                    continue
                width = min(via, strongest[k, b])
                if width > strongest[a, b]:
                    strongest[a, b] = width

    def beats(a: str, b: str) -> bool:
        return strongest[a, b] > strongest[b, a]

    # The Schulze relation is a strict partial order, so an option above another
    # beats strictly more options: sorting by that count is a linear extension.
    wins = {a: sum(1 for b in ids if b != a and beats(a, b)) for a in ids}
    ranking = tuple(sorted(ids, key=lambda o: (-wins[o], o)))
    return SchulzeResult(
        winners=ranking[:seats],
        ranking=ranking,
        pairwise=MappingProxyType(pairwise),
        strongest=MappingProxyType(strongest),
        tie_broken=_tie_broken(ranking, seats, beats),
        ballots=n,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _options(options: Collection[str], seats: int) -> tuple[str, ...]:
    ids = tuple(sorted(options))
    if not ids:
        raise GovernanceError("there are no options to vote on")
    for option in ids:
        if not isinstance(option, str):
            raise GovernanceError(f"option id {option!r} is not a string")
    if len(set(ids)) != len(ids):
        raise GovernanceError("option ids are not unique")
    if not _is_int(seats) or not 1 <= seats <= len(ids):
        raise GovernanceError(f"seats must be an integer in 1..{len(ids)}, not {seats!r}")
    return ids


def _approved(index: int, ballot: Collection[str], known: Mapping[str, int]) -> frozenset[str]:
    approved = frozenset(ballot)
    if len(approved) != len(ballot):
        raise GovernanceError(f"ballot {index}: an option is approved twice")
    for option in approved:
        if option not in known:
            raise GovernanceError(f"ballot {index}: unknown option {option!r}")
    return approved


def _group(
    index: int, group: Collection[str], known: frozenset[str], above: list[str]
) -> tuple[str, ...]:
    members = tuple(group)
    if not members:
        raise GovernanceError(f"ballot {index}: empty group in ranking")
    if len(set(members)) != len(members):
        raise GovernanceError(f"ballot {index}: an option is ranked twice")
    for option in members:
        if option not in known:
            raise GovernanceError(f"ballot {index}: unknown option {option!r}")
        if option in above:
            raise GovernanceError(f"ballot {index}: option {option!r} is ranked twice")
    return members


def _tie_broken(ranking: tuple[str, ...], seats: int, better: Callable[[str, str], bool]) -> bool:
    return any(not better(w, loser) for w in ranking[:seats] for loser in ranking[seats:])
