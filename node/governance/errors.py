"""Errors raised by the governance tallies and the pabulib parser.

Both are local errors (bad input from a caller or a file): their messages say what is
wrong and where, so a person can fix the input.
"""

from __future__ import annotations

from node.errors import LocalError


class GovernanceError(LocalError, ValueError):
    """Invalid input to a governance tally (unknown option, bad score, bad budget...)."""


class PabulibError(GovernanceError):
    """A malformed pabulib ``.pb`` file.

    Attributes:
        line: 1-based line number of the offending line (0 if the whole file is at fault).
        problem: what is wrong, without the line prefix.
    """

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.line = line
        self.problem = problem
