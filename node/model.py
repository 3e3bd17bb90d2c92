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


# =================================================================================
# --- governance kinds ------------------------------------------------------------
# =================================================================================
#
# Record kinds of node.governance (docs/governance.md). They live here, not in
# node.governance, so that every replica validates them alike whether or not it
# loads the governance package; node.governance imports this module, never the
# reverse. Like every validator here they see the body alone: what needs the key or
# other records (is the voter a member? is the ballot valid for the proposal's
# method?) is decided by the pure tallies in node.governance, identically everywhere.

GOV_METHODS = ("approval", "score", "ranked", "mes", "greedy")
BUDGET_METHODS = ("mes", "greedy")
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 4000
MAX_OPTIONS = 200
MAX_FEATURES = 16
MAX_CHUNKS = 10_000
MAX_CONTAINER_ENTRIES = 256  # node.crdt.encoding.MAX_CONTAINER_LEN
_OPTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$")
_FEATURE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^(?:[0-9a-f]{2}){1,64}$")


def _int_field(body: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if type(value) is not int or not low <= value <= high:
        raise ValidationError(f"{name} must be an integer from {low} to {high}")
    return value


def _hex64(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValidationError(f"{name} must be 64 lowercase hex digits")
    return value


def check_option_id(value: Any) -> str:
    """An option or project id: 1-24 letters, digits, '_', '.' or '-'."""
    if not isinstance(value, str) or not _OPTION_ID.match(value):
        raise ValidationError(
            f"option id {value!r} must be 1-24 letters, digits, '_', '.' or '-' (e.g. p3)"
        )
    return value


def check_features(value: Any) -> dict[str, str]:
    """Coarse strata a member consented to share, e.g. ``{"age": "30-44"}``."""
    if not isinstance(value, dict) or len(value) > MAX_FEATURES:
        raise ValidationError(f"features must be a map of at most {MAX_FEATURES} entries")
    for k, v in value.items():
        if not _FEATURE.match(k):
            raise ValidationError(
                f"feature name {k!r} must be 1-32 lowercase letters, digits, '_' or '-'"
            )
        if not isinstance(v, str) or not 0 < len(v) <= 40:
            raise ValidationError(f"feature {k} must have a text value of 1-40 characters")
    return value


def _member_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"pseudonym", "features", "consent"})
    text(body, "pseudonym", MAX_NAME_CHARS)
    if body.get("consent") is not True:
        raise ValidationError(
            "consent must be true: a member record is published with the member's consent"
        )
    if "features" in body:
        check_features(body["features"])


def _entries(body: Mapping[str, Any], name: str, *, cost: bool) -> list[str]:
    entries = body.get(name)
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_OPTIONS:
        raise ValidationError(f"{name} must be a list of 1 to {MAX_OPTIONS} entries")
    ids = []
    for e in entries:
        if not isinstance(e, dict):
            raise ValidationError(f"each of {name} is a map with id and name")
        only_fields(e, {"id", "name", "cost"} if cost else {"id", "name"})
        ids.append(check_option_id(e.get("id")))
        text(e, "name", MAX_NAME_CHARS)
        if cost:
            _int_field(e, "cost", 0, 10**15)
    if len(set(ids)) != len(ids):
        raise ValidationError(f"{name} ids must be unique")
    return ids


def _proposal_body(body: Mapping[str, Any]) -> None:
    only_fields(
        body,
        {
            "title",
            "text",
            "method",
            "options",
            "projects",
            "budget",
            "electorate",
            "opens",
            "closes",
            "min_score",
            "max_score",
            "seats",
        },
    )
    text(body, "title", MAX_TITLE_CHARS)
    text(body, "text", MAX_TEXT_CHARS, required=False)
    method = body.get("method")
    if method not in GOV_METHODS:
        raise ValidationError(f"method must be one of {', '.join(GOV_METHODS)}")
    check_scope(body.get("electorate"))  # type: ignore[arg-type]
    opens = _int_field(body, "opens", 0, 2**48 - 1)
    if _int_field(body, "closes", 0, 2**48 - 1) <= opens:
        raise ValidationError("closes must be later than opens")
    if method in BUDGET_METHODS:
        if "options" in body or "seats" in body:
            raise ValidationError(
                f"a {method} proposal has projects and a budget, not options or seats"
            )
        _entries(body, "projects", cost=True)
        _int_field(body, "budget", 0, 10**15)
    else:
        if "projects" in body or "budget" in body:
            raise ValidationError(f"a {method} proposal has options, not projects")
        n = len(_entries(body, "options", cost=False))
        _int_field(body, "seats", 1, n)
    if method == "score":
        if _int_field(body, "min_score", -1000, 1000) >= _int_field(body, "max_score", -1000, 1000):
            raise ValidationError("min_score must be lower than max_score")
    elif "min_score" in body or "max_score" in body:
        raise ValidationError("only score proposals have min_score and max_score")


def _ids(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_OPTIONS:
        raise ValidationError(f"{name} must be a list of at most {MAX_OPTIONS} ids")
    ids = [check_option_id(v) for v in value]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"{name} names an option twice")
    return ids


def _vote_body(body: Mapping[str, Any]) -> None:
    # The ballot's shape says which methods it fits: a list of ids (approval, mes,
    # greedy), a map id -> integer score (score), or a list of groups of ids, best
    # first (ranked). Whether it fits *this* proposal is decided at tally time.
    only_fields(body, {"ballot"})
    ballot = body.get("ballot")
    if isinstance(ballot, dict):
        _ids(list(ballot), "ballot")
        if not all(type(v) is int and -1000 <= v <= 1000 for v in ballot.values()):
            raise ValidationError("scores must be integers from -1000 to 1000")
    elif isinstance(ballot, list) and ballot and all(isinstance(g, list) for g in ballot):
        _ids([i for g in ballot for i in g], "ballot")
        if not all(ballot):
            raise ValidationError("a ranked ballot has no empty groups")
    elif isinstance(ballot, list):
        _ids(ballot, "ballot")
    else:
        raise ValidationError(
            "ballot must be a list of option ids, a map of scores or a list of ranked groups"
        )


def _freeze_head_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"chunks", "count", "hash"})
    _int_field(body, "chunks", 0, MAX_CHUNKS)
    _int_field(body, "count", 0, MAX_CHUNKS * MAX_CONTAINER_ENTRIES)
    _hex64(body.get("hash"), "hash")


def _closeset_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"votes"})
    votes = body.get("votes")
    if not isinstance(votes, list) or not all(isinstance(v, bytes) for v in votes):
        raise ValidationError("votes must be a list of signed vote records (bytes)")


def _volunteer_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"consent"})
    if body.get("consent") is not True:
        raise ValidationError("consent must be true")


def _assembly_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"title", "text", "scope", "size", "quotas", "committers", "beacon"})
    text(body, "title", MAX_TITLE_CHARS)
    text(body, "text", MAX_TEXT_CHARS, required=False)
    check_scope(body.get("scope"))  # type: ignore[arg-type]
    size = _int_field(body, "size", 1, MAX_CONTAINER_ENTRIES)
    quotas = body.get("quotas")
    if not isinstance(quotas, dict) or len(quotas) > MAX_FEATURES:
        raise ValidationError(
            f"quotas must map at most {MAX_FEATURES} features to {{value: [min, max]}}"
        )
    for feature, values in quotas.items():
        if not _FEATURE.match(feature) or not isinstance(values, dict) or not values:
            raise ValidationError(f"quotas for {feature!r} must map values to [min, max]")
        for value, bounds in values.items():
            if not 0 < len(value) <= 40:
                raise ValidationError(f"quota value {value!r} must be 1-40 characters")
            if (
                not isinstance(bounds, list)
                or len(bounds) != 2
                or not all(type(b) is int for b in bounds)
                or not 0 <= bounds[0] <= bounds[1] <= size
            ):
                raise ValidationError(
                    f"quota {feature}={value} must be [min, max] with "
                    f"0 <= min <= max <= size ({size})"
                )
    committers = body.get("committers")
    if (
        not isinstance(committers, list)
        or not 3 <= len(committers) <= 32
        or len(set(committers)) != len(committers)
    ):
        raise ValidationError("committers must list 3 to 32 distinct node ids")
    for c in committers:
        _hex64(c, "a committer")
    if "beacon" in body and (not isinstance(body["beacon"], str) or not _HEX.match(body["beacon"])):
        raise ValidationError("beacon must be a public random value in hex (<= 64 bytes)")


def _poolset_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"members"})
    members = body.get("members")
    if not isinstance(members, list):
        raise ValidationError("members must be a list of [public key, features]")
    for m in members:
        if not isinstance(m, list) or len(m) != 2 or not isinstance(m[0], bytes) or len(m[0]) != 32:
            raise ValidationError("each pool entry is [32-byte member key, features]")
        check_features(m[1])


def _commit_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"hash", "pool"})
    _hex64(body.get("hash"), "hash")
    _hex64(body.get("pool"), "pool")


def _reveal_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"secret"})
    _hex64(body.get("secret"), "secret")


def _panel_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"members", "seed"})
    members = body.get("members")
    if not isinstance(members, list):
        raise ValidationError("members must be a list of member keys")
    for m in members:
        _hex64(m, "a panel member")
    _hex64(body.get("seed"), "seed")


register_kind("member", _member_body)
register_kind("proposal", _proposal_body)
register_kind("vote", _vote_body)
register_kind("close", _freeze_head_body)
register_kind("closeset", _closeset_body)
register_kind("volunteer", _volunteer_body)
register_kind("assembly", _assembly_body)
register_kind("pool", _freeze_head_body)
register_kind("poolset", _poolset_body)
register_kind("commit", _commit_body)
register_kind("reveal", _reveal_body)
register_kind("panel", _panel_body)
