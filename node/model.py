"""Record kinds and their validation (ValueFlows-aligned), units, scopes and periods.

A need is a ValueFlows Intent whose receiver is the origin node (the commune); a
capacity is an Intent whose provider is the origin node. Both name an item (a
ResourceSpecification id), a quantity with a unit, and a period; needs add a priority.

Validation depends on the record alone, never on other records, so every replica
accepts or rejects the same record the same way whatever it holds. Checks that need
other records (is the unit of the item's dimension?) happen where they are used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from node.errors import ValidationError

# --- scopes ---------------------------------------------------------------------

_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MAX_SCOPE_DEPTH = 6
# Records replicate on the gossip topic of their scope cut to this many segments: a
# node holds full records for its region (see docs/architecture.md).
REGION_DEPTH = 3


def check_scope(scope: str) -> str:
    """Validate a region path like ``eu/de/berlin/neukoelln``.

    Raises:
        ValidationError: with what is wrong and an example of a valid path.
    """
    if isinstance(scope, str) and scope in _GOOD_SCOPES:
        return scope
    _check_scope(scope)
    if len(_GOOD_SCOPES) < 100_000:
        _GOOD_SCOPES.add(scope)
    return scope


_GOOD_SCOPES: set[str] = set()  # scopes seen valid: a record's scope is checked once


def _check_scope(scope: str) -> None:
    if not isinstance(scope, str) or not scope:
        raise ValidationError("scope is empty; give a path like eu/de/berlin/neukoelln")
    parts = scope.split("/")
    if len(parts) > MAX_SCOPE_DEPTH:
        raise ValidationError(f"scope {scope!r} has more than {MAX_SCOPE_DEPTH} levels")
    for p in parts:
        if not _SEGMENT.match(p):
            raise ValidationError(
                f"scope {scope!r}: segment {p!r} must be 1-40 lowercase letters, digits or '-' "
                "(e.g. eu/de/berlin/neukoelln)"
            )


def in_scope(scope: str, prefix: str) -> bool:
    """True if `scope` is `prefix` or lies under it."""
    return scope == prefix or scope.startswith(prefix + "/")


def ancestors(scope: str) -> list[str]:
    """``eu/de/berlin`` -> ``["eu", "eu/de", "eu/de/berlin"]``."""
    parts = scope.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def partition_of(scope: str) -> str:
    """The replication partition (gossip topic scope) of a record's scope."""
    parts = scope.split("/")
    return "/".join(parts[:REGION_DEPTH])


# --- units ----------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: str
    factor: Fraction  # how many base units one of this unit is


DIMENSIONS: dict[str, str] = {
    "mass": "kg",
    "volume": "l",
    "energy": "kWh",
    "labour": "h",
    "count": "pcs",
    "area": "m2",
    "length": "m",
}

UNITS: dict[str, Unit] = {
    u.symbol: u
    for u in [
        Unit("g", "mass", Fraction(1, 1000)),
        Unit("kg", "mass", Fraction(1)),
        Unit("t", "mass", Fraction(1000)),
        Unit("ml", "volume", Fraction(1, 1000)),
        Unit("l", "volume", Fraction(1)),
        Unit("m3", "volume", Fraction(1000)),
        Unit("Wh", "energy", Fraction(1, 1000)),
        Unit("kWh", "energy", Fraction(1)),
        Unit("MWh", "energy", Fraction(1000)),
        Unit("min", "labour", Fraction(1, 60)),
        Unit("h", "labour", Fraction(1)),
        Unit("day", "labour", Fraction(8)),  # a person-day of work is 8 hours
        Unit("pcs", "count", Fraction(1)),
        Unit("dozen", "count", Fraction(12)),
        Unit("m2", "area", Fraction(1)),
        Unit("ha", "area", Fraction(10000)),
        Unit("m", "length", Fraction(1)),
        Unit("km", "length", Fraction(1000)),
    ]
}


def unit(symbol: str) -> Unit:
    """Look up a unit.

    Raises:
        ValidationError: for an unknown unit, listing the known ones.
    """
    try:
        return UNITS[symbol]
    except (KeyError, TypeError):
        known = ", ".join(UNITS)
        raise ValidationError(f"unknown unit {symbol!r}; known units: {known}") from None


MAX_QUANTITY = Decimal("1e15")


def parse_quantity(text: Any) -> Decimal:
    """Parse a quantity given as a decimal string (no floats in records).

    Raises:
        ValidationError: non-numeric, non-finite, zero, negative or absurdly large.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValidationError(f"quantity {text!r} must be a decimal number like 12.5")
    try:
        q = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValidationError(f"quantity {text!r} is not a number; write it like 12.5") from None
    if not q.is_finite():
        raise ValidationError(f"quantity {text!r} must be a finite number")
    if q <= 0:
        raise ValidationError(f"quantity {text!r} must be greater than zero")
    if q > MAX_QUANTITY:
        raise ValidationError(f"quantity {text!r} is larger than {MAX_QUANTITY:,.0f}")
    if q != q.quantize(Decimal("0.000001")):
        raise ValidationError(f"quantity {text!r} has more than 6 decimal places")
    return q


def to_base(quantity: Decimal, symbol: str) -> Fraction:
    """Exact quantity in the base unit of its dimension."""
    return Fraction(quantity) * unit(symbol).factor


# --- periods ----------------------------------------------------------------------

_PERIOD = re.compile(r"^(\d{4})(?:-(Q[1-4]|0[1-9]|1[0-2]|W(?:0[1-9]|[1-4]\d|5[0-3])))?$")


def check_period(period: Any) -> str:
    """A planning period: ``2027``, ``2027-Q1``, ``2027-03`` or ``2027-W05``.

    Raises:
        ValidationError: naming the accepted forms.
    """
    if not isinstance(period, str) or not _PERIOD.match(period):
        raise ValidationError(
            f"period {period!r} is malformed; use 2027, 2027-Q1, 2027-03 or 2027-W05"
        )
    return period


# --- record kinds --------------------------------------------------------------

NODE_KINDS = ("commune", "cooperative")
PRIORITIES = ("low", "medium", "high", "critical")
MAX_NAME_CHARS = 100
MAX_NOTE_CHARS = 500
_ITEM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

BodyValidator = Callable[[Mapping[str, Any]], None]
_VALIDATORS: dict[str, BodyValidator] = {}


def register_kind(kind: str, validator: BodyValidator) -> None:
    """Add a record kind (used by node.governance for its own kinds)."""
    _VALIDATORS[kind] = validator


def known_kinds() -> tuple[str, ...]:
    return tuple(sorted(_VALIDATORS))


def validate(kind: str, key: str, scope: str, body: Mapping[str, Any] | None) -> None:
    """Validate a record's kind, key, scope and body (tombstones: kind and scope only).

    Raises:
        ValidationError: what is wrong and how to fix it.
    """
    validator = _VALIDATORS.get(kind)
    if validator is None:
        raise ValidationError(f"unknown record kind {kind!r}; known: {', '.join(known_kinds())}")
    check_scope(scope)
    if body is not None:
        validator(body)
        if kind == "item" and body.get("id") != key:
            raise ValidationError("an item record's key must equal its id")


def text(body: Mapping[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    """A string field of at most `limit` characters."""
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"{name} is required and must be text")
    if len(value) > limit:
        raise ValidationError(f"{name} is {len(value)} characters long; the limit is {limit}")
    return value


def only_fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    extra = set(body) - allowed
    if extra:
        raise ValidationError(f"unexpected field(s) {', '.join(sorted(extra))}")


def check_item_id(item: Any) -> str:
    if not isinstance(item, str) or not _ITEM_ID.match(item):
        raise ValidationError(
            f"item id {item!r} must be 1-64 lowercase letters, digits or '-' (e.g. potatoes)"
        )
    return item


def _node_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"name", "kind", "scope"})
    text(body, "name", MAX_NAME_CHARS)
    if body.get("kind") not in NODE_KINDS:
        raise ValidationError(f"node kind must be one of {', '.join(NODE_KINDS)}")
    check_scope(body.get("scope"))  # type: ignore[arg-type]


def _item_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"id", "name", "dimension", "unit"})
    check_item_id(body.get("id"))
    text(body, "name", MAX_NAME_CHARS)
    dim = body.get("dimension")
    if dim not in DIMENSIONS:
        raise ValidationError(f"dimension {dim!r} unknown; known: {', '.join(DIMENSIONS)}")
    if body.get("unit") != DIMENSIONS[dim]:
        raise ValidationError(f"the base unit of {dim} is {DIMENSIONS[dim]}")


def _intent_body(body: Mapping[str, Any], *, need: bool) -> None:
    allowed = {"item", "qty", "unit", "period", "note"} | ({"priority"} if need else set())
    only_fields(body, allowed)
    item = check_item_id(body.get("item"))
    parse_quantity(body.get("qty"))
    u = unit(body.get("unit"))  # type: ignore[arg-type]
    builtin = STARTER_CATALOG.get(item)
    if builtin is not None and builtin.dimension != u.dimension:
        raise ValidationError(
            f"unit {u.symbol} measures {u.dimension}, but {item} is measured in "
            f"{builtin.dimension} ({builtin.unit})"
        )
    check_period(body.get("period"))
    if need and body.get("priority") not in PRIORITIES:
        raise ValidationError(f"priority must be one of {', '.join(PRIORITIES)}")
    text(body, "note", MAX_NOTE_CHARS, required=False)


register_kind("node", _node_body)
register_kind("item", _item_body)
register_kind("need", lambda b: _intent_body(b, need=True))
register_kind("capacity", lambda b: _intent_body(b, need=False))


# --- the starter catalog -------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A catalog entry (ValueFlows ResourceSpecification)."""

    id: str
    name: str
    dimension: str
    unit: str

    def body(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "dimension": self.dimension, "unit": self.unit}


def _item(id_: str, name: str, dimension: str) -> Item:
    return Item(id_, name, dimension, DIMENSIONS[dimension])


# Built into every node so that a new node is useful at once and these ids mean the
# same thing everywhere; custom items are `item` records.
STARTER_CATALOG: dict[str, Item] = {
    i.id: i
    for i in [
        _item("wheat", "Wheat", "mass"),
        _item("potatoes", "Potatoes", "mass"),
        _item("vegetables", "Vegetables, mixed", "mass"),
        _item("fruit", "Fruit, mixed", "mass"),
        _item("rice", "Rice", "mass"),
        _item("legumes", "Legumes (beans, lentils)", "mass"),
        _item("milk", "Milk", "volume"),
        _item("eggs", "Eggs", "count"),
        _item("bread", "Bread", "mass"),
        _item("water", "Drinking water", "volume"),
        _item("firewood", "Firewood", "volume"),
        _item("electricity", "Electricity", "energy"),
        _item("heating", "Heating", "energy"),
        _item("childcare", "Childcare", "labour"),
        _item("elder-care", "Elder care", "labour"),
        _item("nursing", "Nursing care", "labour"),
        _item("teaching", "Teaching", "labour"),
        _item("repair", "Repair work", "labour"),
        _item("construction", "Construction work", "labour"),
        _item("transport", "Freight transport", "labour"),
        _item("bicycles", "Bicycles", "count"),
        _item("laptops", "Laptops", "count"),
        _item("housing", "Housing floor space", "area"),
        _item("farmland", "Farmland", "area"),
    ]
}
