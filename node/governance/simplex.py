"""A small exact linear-program solver: the simplex method over Fractions.

For the panel distributions of :mod:`node.governance.sortition`: `maximize` over
Fractions for small programs, `IntegerSimplex` (integer pivoting, warm-started) for
the column generation. Exact arithmetic and Bland's pivoting rule make the result a pure function
of the input, so every node computes the same optimum; Bland's rule also rules out
cycling on the degenerate programs column generation produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from node.governance.errors import GovernanceError

__all__ = ["IntegerSimplex", "LPSolution", "maximize"]

MAX_PIVOTS = 100_000
STALL = 50


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


class IntegerSimplex:
    """``max c.x s.t. A x <= b, x >= 0`` (integer data, ``b >= 0``) that takes new
    columns and goes on from its last optimal basis: what column generation needs.

    Fraction-free pivoting: the tableau is kept as integers over one common
    denominator (the last pivot), and each pivot is an exact integer division
    (Edmonds; the scheme of Avis' lrs), with no gcd on every entry as with Fractions.
    A new column is expressed in the current basis through the slack columns (they
    hold the basis inverse times the common denominator), so the basis stays feasible
    and a few pivots restore optimality instead of a solve from the origin.
    """

    def __init__(self, a: Sequence[Sequence[int]], b: Sequence[int], c: Sequence[int]) -> None:
        if any(v < 0 for v in b):
            raise GovernanceError("simplex: b must be non-negative")
        self.m = m = len(a)
        # Columns: slacks first (0..m-1), then the variables in the order added.
        self.rows = [[int(i == j) for j in range(m)] + [int(b[i])] for i in range(m)]
        self.obj = [0] * (m + 1)
        self.basis = list(range(m))
        self.den = 1
        self.n = 0
        for j in range(len(c)):
            self.add_column([row[j] for row in a], c[j])

    def add_column(self, col: Sequence[int], cost: int) -> None:
        """Add a variable with constraint coefficients `col` and objective `cost`."""
        m, den = self.m, self.den
        for i in range(m):
            row = self.rows[i]
            row.insert(-1, sum(row[k] * col[k] for k in range(m) if col[k]))
        self.obj.insert(-1, sum(self.obj[k] * col[k] for k in range(m) if col[k]) - cost * den)
        self.n += 1

    def solve(self) -> LPSolution:
        """Pivot (Bland's rule) to an optimum of the columns held."""
        m, width = self.m, self.m + self.n
        rows, obj, basis = self.rows, self.obj, self.basis
        # Dantzig's rule (the most negative reduced cost) takes far fewer pivots than
        # Bland's; after STALL pivots without progress, Bland's rule takes over for the
        # rest of this solve, so it cannot cycle.
        stalled, bland, last = 0, False, None
        for _ in range(MAX_PIVOTS):
            if bland:
                entering = next((j for j in range(width) if obj[j] < 0), None)
            else:
                low = min(range(width), key=lambda j: (obj[j], j), default=None)
                entering = low if low is not None and obj[low] < 0 else None
            if entering is None:
                break
            value = Fraction(obj[-1], self.den)
            stalled = stalled + 1 if value == last else 0
            last = value
            bland = bland or stalled > STALL
            r = -1
            for i in range(m):
                coef = rows[i][entering]
                if coef > 0:
                    if r < 0:
                        r = i
                        continue
                    lhs = rows[i][-1] * rows[r][entering]
                    rhs = rows[r][-1] * coef
                    if lhs < rhs or (lhs == rhs and basis[i] < basis[r]):
                        r = i
            if r < 0:
                raise GovernanceError("simplex: the program is unbounded")
            prow = rows[r]
            pivot, den = prow[entering], self.den
            for i in range(m):
                if i == r:
                    continue
                row = rows[i]
                f = row[entering]
                if f:
                    rows[i] = [(v * pivot - f * w) // den for v, w in zip(row, prow, strict=True)]
                elif pivot != den:
                    rows[i] = [v * pivot // den for v in row]
            f = obj[entering]
            obj[:] = [(v * pivot - f * w) // den for v, w in zip(obj, prow, strict=True)]
            self.den = pivot
            basis[r] = entering
        else:
            raise GovernanceError("simplex: too many pivots")
        den = self.den
        x = [Fraction(0)] * self.n
        for i, j in enumerate(basis):
            if j >= m:
                x[j - m] = Fraction(rows[i][-1], den)
        return LPSolution(
            Fraction(obj[-1], den), tuple(x), tuple(Fraction(v, den) for v in obj[:m])
        )
