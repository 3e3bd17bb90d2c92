"""A small exact linear-program solver: the simplex method over Fractions.

For the panel distributions of :mod:`node.governance.sortition` (tens of rows and
columns). Exact arithmetic and Bland's pivoting rule make the result a pure function
of the input, so every node computes the same optimum; Bland's rule also rules out
cycling on the degenerate programs column generation produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from node.governance.errors import GovernanceError

__all__ = ["LPSolution", "maximize"]

MAX_PIVOTS = 100_000


@dataclass(frozen=True)
class LPSolution:
    """Optimum of ``max c.x s.t. A x <= b, x >= 0``.

    Attributes:
        value: the optimal objective value.
        x: an optimal primal solution.
        duals: optimal dual prices, one per row of ``A``.
    """

    value: Fraction
    x: tuple[Fraction, ...]
    duals: tuple[Fraction, ...]


def maximize(
    c: Sequence[Fraction], a: Sequence[Sequence[Fraction]], b: Sequence[Fraction]
) -> LPSolution:
    """Solve ``max c.x s.t. A x <= b, x >= 0`` with ``b >= 0`` (the origin is feasible).

    Raises:
        GovernanceError: a negative ``b``, an unbounded program, or too many pivots.
    """
    m, n = len(a), len(c)
    if any(v < 0 for v in b):
        raise GovernanceError("simplex: b must be non-negative")
    # Tableau rows: [A | I | b]; objective row: [-c | 0 | 0].
    rows = [
        [Fraction(v) for v in a[i]] + [Fraction(int(i == j)) for j in range(m)] + [Fraction(b[i])]
        for i in range(m)
    ]
    obj = [-Fraction(v) for v in c] + [Fraction(0)] * (m + 1)
    basis = [n + i for i in range(m)]
    for _ in range(MAX_PIVOTS):
        entering = next((j for j in range(n + m) if obj[j] < 0), None)
        if entering is None:
            break
        best: tuple[Fraction, int, int] | None = None
        for i in range(m):
            coef = rows[i][entering]
            if coef > 0:
                key = (rows[i][-1] / coef, basis[i], i)
                if best is None or key < best:
                    best = key
        if best is None:
            raise GovernanceError("simplex: the program is unbounded")
        r = best[2]
        pivot = rows[r][entering]
        rows[r] = [v / pivot for v in rows[r]]
        for i in range(m):
            f = rows[i][entering]
            if i != r and f:
                rows[i] = [v - f * w for v, w in zip(rows[i], rows[r], strict=True)]
        f = obj[entering]
        obj = [v - f * w for v, w in zip(obj, rows[r], strict=True)]
        basis[r] = entering
    else:
        raise GovernanceError("simplex: too many pivots")
    x = [Fraction(0)] * n
    for i, j in enumerate(basis):
        if j < n:
            x[j] = rows[i][-1]
    return LPSolution(obj[-1], tuple(x), tuple(obj[n : n + m]))
