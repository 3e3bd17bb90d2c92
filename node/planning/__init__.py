"""Planning computations over the replica (pure): balances per scope."""

from node.planning.balance import BalanceIndex, BalanceRow, compute_balance, decimal_str

__all__ = ["BalanceIndex", "BalanceRow", "compute_balance", "decimal_str"]
