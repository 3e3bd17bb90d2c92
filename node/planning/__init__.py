"""Planning computations over the replica (pure): balances per scope, matching."""

from node.planning.balance import BalanceIndex, BalanceRow, compute_balance, decimal_str
from node.planning.matching import Match, Position, match

__all__ = [
    "BalanceIndex",
    "BalanceRow",
    "Match",
    "Position",
    "compute_balance",
    "decimal_str",
    "match",
]
