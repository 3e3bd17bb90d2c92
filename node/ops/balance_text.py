"""The balance view printed as JSON text, straight from its integer figures.

A deep view lists thousands of rows (`balance eu --depth 2` over 1,011 scopes: ~7,000);
building each as a dict for `json.dumps` cost more than adding them up. Here each row
is one format of its amounts printed from ticks (`ticks_str`, `ratio_str`: exact,
half-even, the strings `Decimal` printed) and the reply is one join of the pieces:
the same text `json.dumps` prints for `BalanceRow.as_json` with the committed columns
(`committed_fields`), key for key (tests/test_balance_text.py holds the two equal).

Nothing per row is kept between views: only the printed keys of each (item,
dimension, period), a few hundred at most, and bounded like the index's own caches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from node import model
from node.planning.balance import Entry, GroupKey, ratio_str, ticks_str

_MAX_GROUPS = 65536
# '"item": …, "period": …, "dimension": …, "unit": …' per group, printed once.
_group_text: dict[GroupKey, str] = {}
# The committed columns of a row of a scope whose commitments this node does not all hold.
_UNKNOWN = '"committed_in": null, "committed_out": null, "committed_coverage": null'
_dumps = json.dumps


def _group(item: str, dim: str, period: str) -> str:
    key = (item, dim, period)
    got = _group_text.get(key)
    if got is None:
        got = (
            f'"item": {_dumps(item)}, "period": {_dumps(period)}, '
            f'"dimension": {_dumps(dim)}, "unit": {_dumps(model.DIMENSIONS[dim])}'
        )
        if len(_group_text) < _MAX_GROUPS:
            _group_text[key] = got
    return got


def rows_text(
    scope: str, entries: Iterable[Entry], committed: Mapping[GroupKey, tuple[int, int]] | None
) -> str:
    """A scope's rows as a JSON array: `BalanceRow.as_json` of each, with its committed
    columns (`committed_fields`: from `committed` per group, (0, 0) for a group missing
    there; all null where `committed` is None)."""
    head = '{"scope": ' + _dumps(scope) + ", "
    out = []
    for it, dim, per, n, c, nodes in entries:
        if committed is None:
            tail = _UNKNOWN
        else:
            to_rx, by_px = committed.get((it, dim, per), (0, 0))
            tail = (
                f'"committed_in": "{ticks_str(to_rx)}", "committed_out": "{ticks_str(by_px)}", '
                f'"committed_coverage": {_quoted(ratio_str(to_rx, n, 4)) if n else "null"}'
            )
        cover = _quoted(ratio_str(c, n, 4)) if n else "null"
        out.append(
            f'{head}{_group(it, dim, per)}, "needs": "{ticks_str(n)}", '
            f'"capacities": "{ticks_str(c)}", "balance": "{ticks_str(c - n)}", '
            f'"coverage": {cover}, "nodes": {nodes}, {tail}}}'
        )
    return "[" + ", ".join(out) + "]"


def _quoted(s: str) -> str:
    return f'"{s}"'


def level_text(scope: str, level: int, rows: str, basis: Mapping[str, Any], more: int) -> str:
    """One level of a drill-down as `json.dumps(BalanceLevel.as_json())` prints it,
    with `rows` already printed (`rows_text`)."""
    more_text = f', "more": {more}' if more else ""
    return (
        f'{{"scope": {_dumps(scope)}, "level": {level}, "rows": {rows}, '
        f'"basis": {_dumps(basis)}{more_text}}}'
    )
