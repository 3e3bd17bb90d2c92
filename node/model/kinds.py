"""The planning kinds: node, item, need, capacity (ValueFlows-aligned), and the catalog.

A need is a ValueFlows Intent whose receiver is the origin node (the commune); a
capacity is an Intent whose provider is the origin node. Both name an item (a
ResourceSpecification id), a quantity with a unit, and a period; needs add a priority.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from node.errors import ValidationError
from node.model.fields import HEX64, int_field, matches, only_fields, shown, text
from node.model.plan_kinds import CAPACITY_FLEX_FIELDS, NEED_FLEX_FIELDS, check_flex
from node.model.scope import check_scope
from node.model.units import DIMENSIONS, check_period, check_quantity, unit

NODE_KINDS = ("commune", "cooperative")
PRIORITIES = ("low", "medium", "high", "critical")
MAX_NAME_CHARS = 100
MAX_NOTE_CHARS = 500
_ITEM_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

BodyValidator = Callable[[Mapping[str, Any]], None]


_GOOD_ITEMS: set[str] = set()  # item ids seen valid (bounded, like the scopes)


def check_item_id(item: Any) -> str:
    if type(item) is str and item in _GOOD_ITEMS:
        return item
    if not matches(_ITEM_ID, item):
        raise ValidationError(
            f"item id {shown(item)} must be 1-64 lowercase letters, digits or '-' (e.g. potatoes)"
        )
    if len(_GOOD_ITEMS) < 100_000:
        _GOOD_ITEMS.add(item)
    return str(item)


def _node_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"name", "kind", "scope"})
    text(body, "name", MAX_NAME_CHARS)
    if body.get("kind") not in NODE_KINDS:
        raise ValidationError(f"node kind must be one of {', '.join(NODE_KINDS)}")
    check_scope(body.get("scope"))


def _item_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"id", "name", "dimension", "unit"})
    check_item_id(body.get("id"))
    text(body, "name", MAX_NAME_CHARS)
    dim = body.get("dimension")
    if not isinstance(dim, str) or dim not in DIMENSIONS:
        raise ValidationError(f"dimension {shown(dim)} unknown; known: {', '.join(DIMENSIONS)}")
    if body.get("unit") != DIMENSIONS[dim]:
        raise ValidationError(f"the base unit of {dim} is {DIMENSIONS[dim]}")


_CAPACITY_FIELDS = frozenset({"item", "qty", "unit", "period", "note"}) | CAPACITY_FLEX_FIELDS
_NEED_FIELDS = frozenset({"item", "qty", "unit", "period", "note", "priority"}) | NEED_FLEX_FIELDS
_FLEX_FIELDS = NEED_FLEX_FIELDS | CAPACITY_FLEX_FIELDS


def _intent_body(body: Mapping[str, Any], *, need: bool) -> None:
    only_fields(body, _NEED_FIELDS if need else _CAPACITY_FIELDS)
    item = check_item_id(body.get("item"))
    check_quantity(body.get("qty"))
    u = unit(body.get("unit"))
    builtin = STARTER_CATALOG.get(item)
    if builtin is not None and builtin.dimension != u.dimension:
        raise ValidationError(
            f"unit {u.symbol} measures {u.dimension}, but {item} is measured in "
            f"{builtin.dimension} ({builtin.unit})"
        )
    check_period(body.get("period"))
    if need and body.get("priority") not in PRIORITIES:
        raise ValidationError(f"priority must be one of {', '.join(PRIORITIES)}")
    text(body, "note", MAX_NOTE_CHARS, required=False, multiline=True)
    if not body.keys().isdisjoint(_FLEX_FIELDS):
        check_flex(body, need=need)


def _need_body(body: Mapping[str, Any]) -> None:
    _intent_body(body, need=True)


def _capacity_body(body: Mapping[str, Any]) -> None:
    _intent_body(body, need=False)


MAX_ROLLUP_ADMITTED = 256
_TICKS = re.compile(r"0|[1-9][0-9]{0,39}")


def _rollup_body(body: Mapping[str, Any]) -> None:
    """A region's needs and capacities of one period, as one attester recomputed them
    (`node.planning.rollup`): per item the totals in ticks of the base unit (decimal
    strings: they outgrow 64 bits) and the contributing nodes; the nodes and records
    counted and the digest of those records; the region's admitted nodes."""
    only_fields(body, {"region", "period", "items", "nodes", "records", "counted", "admitted"})
    region = check_scope(body.get("region"))
    if region.count("/") != 2:
        raise ValidationError("a rollup's region has three levels")
    check_period(body.get("period"))
    items = body.get("items")
    if not isinstance(items, list):
        raise ValidationError("items must be a list of [item, dimension, needs, capacities, nodes]")
    keys = []
    for entry in items:
        if not isinstance(entry, list) or len(entry) != 5:
            raise ValidationError("each item is [item, dimension, needs, capacities, nodes]")
        item, dim, needs, caps, nodes = entry
        check_item_id(item)
        if not isinstance(dim, str) or dim not in DIMENSIONS:
            raise ValidationError(f"dimension {shown(dim)} unknown")
        if not matches(_TICKS, needs) or not matches(_TICKS, caps):
            raise ValidationError("needs and capacities are whole numbers of ticks, in digits")
        if type(nodes) is not int or not 0 < nodes <= 1_000_000:
            raise ValidationError("an item's nodes is a positive integer")
        keys.append((item, dim))
    if keys != sorted(set(keys)):
        raise ValidationError("items are sorted by item and dimension, each once")
    int_field(body, "nodes", 0, 1_000_000)
    int_field(body, "records", 0, 2**40)
    if not matches(HEX64, body.get("counted")):
        raise ValidationError("counted must be 64 lowercase hex digits")
    admitted = body.get("admitted")
    if not isinstance(admitted, list) or not 0 < len(admitted) <= MAX_ROLLUP_ADMITTED:
        raise ValidationError(f"admitted must list 1 to {MAX_ROLLUP_ADMITTED} node ids")
    if not all(matches(HEX64, a) for a in admitted) or admitted != sorted(set(admitted)):
        raise ValidationError("admitted lists node ids (64 hex digits), sorted, each once")


KINDS: dict[str, BodyValidator] = {
    "node": _node_body,
    "item": _item_body,
    "need": _need_body,
    "capacity": _capacity_body,
    "rollup": _rollup_body,
}


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
