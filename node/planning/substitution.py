"""Substitutes in planning: where a need's item stays short, part of the need may be
served by a substitute it declares (``subs``: one unit of the need, in the need's own
unit, can be replaced by ``ratio`` units of the substitute item in that item's base
unit; `node.model.plan_kinds`).

The node records a substitution in two of its own records, signed together:

* the need keeps ``qty`` for what its own item still serves and lists in ``subbed``
  the part (in its own unit) each substitute serves; ``qty`` plus those parts lies in
  its range;
* a *derived* need for the substitute, key ``<need key>~<item>``, in the item's base
  unit, names the need and the ratio in ``replaces`` (``[key, ratio]``); its quantity
  is the part times the ratio, rounded up to a millionth.

Each record is validated alone (`node.model.plan_kinds`); where they meet,
`check_derived` says whether a derived need is the substitution its need declares. A
derived need that is not counts for nothing in planning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from math import ceil
from typing import Any

from node import model
from node.crdt.record import MAX_NAME, Record
from node.planning.balance import _PER_MICRO, TICKS, _amount

__all__ = ["check_derived", "derived_key", "part_of", "ratio_ticks"]


def derived_key(need_key: str, item: str) -> str:
    """The key of the derived need by which `item` serves part of need `need_key`
    (one slot per need and substitute): ``<need key>~<item>``, or, where that is too
    long for a key, the need key and a digest of the item."""
    key = f"{need_key}~{item}"
    if len(key) <= MAX_NAME:
        return key
    digest = hashlib.blake2b(item.encode(), digest_size=8).hexdigest()
    return f"{need_key[: MAX_NAME - 17]}~{digest}"


def ratio_ticks(ratio: str, need_unit: str) -> Fraction:
    """Ticks of the substitute per tick of the need, for `ratio` units of the
    substitute's base unit per one unit of the need (`need_unit`)."""
    per_need_unit = _PER_MICRO[need_unit] * 10**6
    return Fraction(Decimal(ratio)) * TICKS / per_need_unit


def part_of(need: Mapping[str, Any], item: str) -> int:
    """The part of `need` (a need body) that `item` serves, in ticks (0: none)."""
    for sub, qty in need.get("subbed") or ():
        if sub == item:
            return _amount(str(qty), str(need["unit"]))[0]
    return 0


def check_derived(derived: Record, need: Record | None) -> str | None:
    """Why `derived` (a live need carrying ``replaces``) is not the substitution that
    `need` (the record at the key it names, of the same origin, or None) declares;
    None when it is."""
    body: Mapping[str, Any] = derived.body or {}
    key, ratio = body["replaces"]
    item = str(body["item"])
    if need is None or need.body is None or need.kind != "need":
        return f"names need {key}, which its node does not hold"
    if need.origin != derived.origin:
        return "names another node's need"
    if "replaces" in need.body:
        return "names a derived need"
    if derived.key != derived_key(need.key, item):
        return f"its key is not {derived_key(need.key, item)}"
    nb: Mapping[str, Any] = need.body
    if (nb["period"], need.scope) != (body["period"], derived.scope):
        return "its period or scope differs from its need's"
    declared = {str(s): str(r) for s, r in nb.get("subs") or ()}
    if item not in declared:
        return f"its need declares no substitute {item}"
    if Decimal(declared[item]) != Decimal(str(ratio)):
        return f"ratio {ratio} is not the ratio {declared[item]} its need declares"
    unit = str(body["unit"])
    if model.DIMENSIONS[model.unit(unit).dimension] != unit:
        return "a derived need is in its item's base unit"
    part = part_of(nb, item)
    if part <= 0:
        return f"its need lists no part served by {item}"
    step = _PER_MICRO[unit]
    want = ceil(part * ratio_ticks(declared[item], str(nb["unit"])) / step) * step
    qty = _amount(str(body["qty"]), unit)[0]
    if qty != want:
        return f"its quantity is not the part its need moved times the ratio ({qty} != {want})"
    return None
