"""Planning computations over the replica (pure): balances per scope, matching."""

from node.planning.balance import BalanceIndex, BalanceRow, compute_balance, decimal_str
from node.planning.matching import match, match_table
from node.planning.matching_types import Match, MatchTable, Position

__all__ = [
    "BalanceIndex",
    "BalanceRow",
    "Match",
    "MatchTable",
    "Position",
    "compute_balance",
    "decimal_str",
    "match",
    "match_table",
]
