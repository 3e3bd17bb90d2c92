"""Planning fields: how far a need or capacity can move, and a cap on a resource.

Flexibility (all optional, so every older need and capacity stays valid):

* ``min`` and ``max``: the range a round may move the quantity in, in the intent's own
  unit; ``min <= qty <= max``. An absent bound is the declared quantity (``base``, or
  ``qty`` before any revision): the intent does not move that way.
* ``subs`` (needs): ``[[item, ratio], ...]``: one unit of the need (in its own unit)
  can be replaced by ``ratio`` units of `item` (in that item's base unit).
* ``subbed`` (needs, set by rounds): ``[[item, qty], ...]``: the part of the need, in
  its own unit, that a declared substitute serves; ``qty`` is what its own item still
  serves, and ``qty`` plus the parts lies in the range.
* ``replaces`` (a *derived* need, set by rounds): ``[need key, ratio]``: this need for
  a substitute serves part of that need of the same node at its declared ratio
  (`node.planning.substitution` checks the two records where they meet). It has no
  range, substitutes or parts of its own.
* ``use`` (capacities): ``[[resource, qty, unit], ...]``: what one unit of the
  capacity draws on a capped resource (e.g. ``["co2", "0.4", "kg"]`` per kg).
* ``base``: the quantity as declared, before any round revised ``qty``: rounds start
  from it, so every node computes the same plan whichever revisions it holds yet.
* ``round``: the round of the plan that set ``qty`` (its log).

A cap is a proposal decision (``cap`` in a proposal body, like ``admission``): a
resource, a whole quantity in a unit, a period, and how the cap is shared among the
children of the proposal's electorate: ``children`` maps each child scope to its
residents, ``equal`` and ``need`` weigh sharing per resident against sharing in
proportion to what the children's capacities declare they need
(`node.planning.caps`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from node.errors import ValidationError
from node.model.fields import int_field, matches, only_fields, shown
from node.model.scope import check_scope, in_scope
from node.model.units import check_period, parse_quantity, unit

FLEX_FIELDS = frozenset({"min", "max", "base", "round"})
NEED_FLEX_FIELDS = FLEX_FIELDS | {"subs", "subbed", "replaces"}
CAPACITY_FLEX_FIELDS = FLEX_FIELDS | {"use"}
MAX_SUBS = 8
MAX_USES = 4
MAX_ROUND = 1_000_000
MAX_CHILDREN = 64
MAX_RESIDENTS = 10**10
_RESOURCE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_WHOLE = re.compile(r"[1-9][0-9]{0,15}")
_ITEM_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_NEED_KEY = re.compile(r"[!-}]{1,64}")  # a record key without '~' (derived keys have one)


def check_resource(value: Any) -> str:
    """A capped resource's id: 1-32 lowercase letters, digits or '-' (e.g. co2)."""
    if not matches(_RESOURCE, value):
        raise ValidationError(
            f"resource {shown(value)} must be 1-32 lowercase letters, digits or '-' (e.g. co2)"
        )
    return str(value)


def check_flex(body: Mapping[str, Any], *, need: bool) -> None:
    """The optional flexibility of a need or capacity whose other fields are valid.

    Raises:
        ValidationError: a bound that is no quantity, ``min > qty``, ``qty > max``,
            substitutes or uses that are malformed, repeated or too many.
    """
    qty = parse_quantity(body.get("qty"))
    if need and "replaces" in body:
        _replaces(body)
        return
    # An absent bound is the quantity as declared: the intent does not move that way.
    base = parse_quantity(body["base"]) if "base" in body else qty
    low = parse_quantity(body["min"]) if "min" in body else base
    high = parse_quantity(body["max"]) if "max" in body else base
    if "min" in body and "max" in body and low > high:
        raise ValidationError(f"min {low} is larger than max {high}")
    if not low <= base <= high:
        raise ValidationError(f"base {base} lies outside its range {low}..{high}")
    if need and "subbed" in body:
        served = qty + _subbed(body["subbed"], body.get("subs"))
        if not low <= served <= high:
            raise ValidationError(
                f"qty {qty} and its substituted parts ({served}) lie outside its range "
                f"{low}..{high}"
            )
    elif not low <= qty <= high:
        raise ValidationError(f"qty {qty} lies outside its range {low}..{high}")
    if "round" in body:
        int_field(body, "round", 1, MAX_ROUND)
    # A need's use or a capacity's subs never get here: the kind's field set refuses them.
    if need and "subs" in body:
        _subs(body["subs"], str(body.get("item")))
    if not need and "use" in body:
        _uses(body["use"])


def _subs(subs: Any, own: str) -> None:
    if not isinstance(subs, list) or not 0 < len(subs) <= MAX_SUBS:
        raise ValidationError(f"subs must list 1 to {MAX_SUBS} [item, ratio] pairs")
    seen = set()
    for s in subs:
        if not isinstance(s, list) or len(s) != 2:
            raise ValidationError("each substitute is [item, ratio]")
        item, ratio = s
        if not matches(_ITEM_ID, item):
            raise ValidationError(f"substitute item {shown(item)} is no item id")
        if item == own or item in seen:
            raise ValidationError(f"substitute {item} repeats an item")
        seen.add(item)
        parse_quantity(ratio)


def _subbed(subbed: Any, subs: Any) -> Decimal:
    """The parts served by substitutes: each a declared substitute, once; their sum."""
    if not isinstance(subbed, list) or not 0 < len(subbed) <= MAX_SUBS:
        raise ValidationError(f"subbed must list 1 to {MAX_SUBS} [item, qty] pairs")
    declared = {s[0] for s in subs} if isinstance(subs, list) else set()
    seen = set()
    total = Decimal(0)
    for s in subbed:
        if not isinstance(s, list) or len(s) != 2:
            raise ValidationError("each substituted part is [item, qty]")
        item, qty = s
        if item not in declared:
            raise ValidationError(f"substituted item {shown(item)} is no declared substitute")
        if item in seen:
            raise ValidationError(f"substituted item {item} is named twice")
        seen.add(item)
        total += parse_quantity(qty)
    return total


def _replaces(body: Mapping[str, Any]) -> None:
    """A derived need: ``[need key, ratio]``, and nothing that moves on its own."""
    ref = body["replaces"]
    if not isinstance(ref, list) or len(ref) != 2:
        raise ValidationError("replaces is [need key, ratio]")
    key, ratio = ref
    if not isinstance(key, str) or not _NEED_KEY.fullmatch(key):
        raise ValidationError(f"replaces names need {shown(key)}, which is no need key")
    parse_quantity(ratio)
    extra = sorted(body.keys() & {"min", "max", "base", "subs", "subbed"})
    if extra:
        raise ValidationError(f"a derived need has no {', '.join(extra)}")


def _uses(uses: Any) -> None:
    if not isinstance(uses, list) or not 0 < len(uses) <= MAX_USES:
        raise ValidationError(f"use must list 1 to {MAX_USES} [resource, qty, unit] entries")
    seen = set()
    for u in uses:
        if not isinstance(u, list) or len(u) != 3:
            raise ValidationError("each use is [resource, qty per unit, unit]")
        resource = check_resource(u[0])
        if resource in seen:
            raise ValidationError(f"resource {resource} is named twice")
        seen.add(resource)
        parse_quantity(u[1])
        unit(u[2])


def check_cap_decision(body: Mapping[str, Any]) -> None:
    """A proposal's ``cap``: an approval between yes and no for one seat, deciding a
    cap on a resource for its electorate.

    Raises:
        ValidationError: naming the field that is wrong.
    """
    cap = body["cap"]
    if not isinstance(cap, dict):
        raise ValidationError("cap must be a map (resource, qty, unit, period, children, ...)")
    only_fields(cap, {"resource", "qty", "unit", "period", "children", "equal", "need"})
    check_resource(cap.get("resource"))
    if not matches(_WHOLE, cap.get("qty")) or Decimal(cap["qty"]) > Decimal("1e15"):
        raise ValidationError("a cap's qty is a whole number (digits) up to 10^15")
    unit(cap.get("unit"))
    check_period(cap.get("period"))
    electorate = check_scope(body.get("electorate"))
    children = cap.get("children")
    if not isinstance(children, dict) or not 0 < len(children) <= MAX_CHILDREN:
        raise ValidationError(f"children must map 1 to {MAX_CHILDREN} scopes to residents")
    for child, residents in children.items():
        check_scope(child)
        if child == electorate or not in_scope(child, electorate):
            raise ValidationError(f"child {shown(child)} does not lie under {electorate}")
        if type(residents) is not int or not 0 <= residents <= MAX_RESIDENTS:
            raise ValidationError(f"residents must be an integer from 0 to {MAX_RESIDENTS}")
    for a in children:
        for b in children:
            if a != b and in_scope(b, a):
                raise ValidationError(f"children {a} and {b} overlap")
    equal = int_field(cap, "equal", 0, 100)
    need = int_field(cap, "need", 0, 100)
    if equal + need == 0:
        raise ValidationError("equal and need may not both be 0")
    if equal and not sum(children.values()):
        raise ValidationError("sharing per resident needs some residents")
    options = body.get("options")
    ids = (
        sorted(str(o.get("id")) for o in options if isinstance(o, dict))
        if isinstance(options, list)
        else []
    )
    if body.get("method") != "approval" or ids != ["no", "yes"] or body.get("seats") != 1:
        raise ValidationError("a cap decision is an approval vote between yes and no for one seat")
