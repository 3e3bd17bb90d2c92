"""Validation says what is wrong and how to fix it."""

import pytest

from node import model
from node.errors import ValidationError

NEED = {"item": "potatoes", "qty": "12.5", "unit": "kg", "period": "2027-Q1", "priority": "high"}


def _need(**changes):
    return {**NEED, **changes}


_NOT_DECIMAL = "must be a decimal number like 12.5"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_need(unit="parsec"), "unknown unit 'parsec'; known units: g, kg"),
        (_need(unit="l"), "unit l measures volume, but potatoes is measured in mass (kg)"),
        (_need(qty="0"), "must be greater than zero"),
        (_need(qty="0.000000"), "must be greater than zero"),
        (_need(qty="2000000000000000"), "is larger than"),
        # A record carries plain ASCII decimals only: one value, one spelling.
        (_need(qty="-1"), _NOT_DECIMAL),
        (_need(qty="NaN"), _NOT_DECIMAL),
        (_need(qty="Infinity"), _NOT_DECIMAL),
        (_need(qty="abc"), _NOT_DECIMAL),
        (_need(qty="1e3"), _NOT_DECIMAL),
        (_need(qty="5_0"), _NOT_DECIMAL),
        (_need(qty=" 5"), _NOT_DECIMAL),
        (_need(qty="5\n"), _NOT_DECIMAL),
        (_need(qty="\u0665"), _NOT_DECIMAL),  # ARABIC-INDIC DIGIT FIVE: int() takes it
        (_need(qty="0.0000001"), _NOT_DECIMAL),
        (_need(qty=1.5), _NOT_DECIMAL),
        (_need(qty=True), _NOT_DECIMAL),
        (_need(period="2027-Q5"), "use 2027, 2027-Q1, 2027-03 or 2027-W05"),
        (_need(period="27-01"), "malformed"),
        (_need(period="2027\n"), "malformed"),
        (_need(period="\u0662\u0660\u0662\u0667"), "malformed"),
        (_need(note="x" * 501), "note is 501 characters long; the limit is 500"),
        (_need(note="a\u202eb"), "control character U+202E"),
        (_need(priority="urgent"), "priority must be one of low, medium, high, critical"),
        (_need(item="Potatoes!"), "lowercase letters"),
        (_need(item="potatoes\n"), "lowercase letters"),
        (_need(colour="red"), "unexpected field(s) colour"),
    ],
)
def test_need_errors(body, message):
    with pytest.raises(ValidationError, match=None) as exc:
        model.validate("need", "k", "eu/de", body)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("-1", "must be greater than zero"),
        ("0", "must be greater than zero"),
        ("NaN", "is not a number; write it like 12.5"),
        ("abc", "is not a number; write it like 12.5"),
        ("1e16", "is larger than"),
        ("0.0000001", "more than 6 decimal places"),
    ],
)
def test_typed_quantity_errors(typed, message):
    with pytest.raises(ValidationError) as exc:
        model.normalise_quantity(typed)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [(" 12.50 ", "12.5"), ("1e3", "1000"), ("007", "7"), ("0.000001", "0.000001")],
)
def test_typed_quantity_is_stored_in_one_spelling(typed, stored):
    assert model.normalise_quantity(typed) == stored
    model.parse_quantity(stored)


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("", "scope is empty"),
        ("EU/de", "segment 'EU' must be"),
        ("eu//de", "segment '' must be"),
        ("a/b/c/d/e/f/g", "more than 6 levels"),
    ],
)
def test_scope_errors(scope, message):
    with pytest.raises(ValidationError) as exc:
        model.check_scope(scope)
    assert message in str(exc.value)


def test_valid_records():
    model.validate("need", "k", "eu/de/berlin/neukoelln", NEED)
    model.validate("capacity", "k", "eu", {k: v for k, v in NEED.items() if k != "priority"})
    model.validate(
        "node", "self", "eu/de", {"name": "Kommune Neukölln", "kind": "commune", "scope": "eu/de"}
    )
    model.validate(
        "item", "oats", "eu", {"id": "oats", "name": "Oats", "dimension": "mass", "unit": "kg"}
    )
    model.validate("need", "k", "eu", None)  # a tombstone


def test_custom_item_base_unit():
    with pytest.raises(ValidationError, match="the base unit of mass is kg"):
        model.validate(
            "item", "oats", "eu", {"id": "oats", "name": "Oats", "dimension": "mass", "unit": "g"}
        )


def test_unknown_kind_lists_known():
    with pytest.raises(ValidationError, match=r"unknown record kind 'gossip'; known: .*capacity"):
        model.validate("gossip", "k", "eu", {})


def test_units_normalise():
    from decimal import Decimal
    from fractions import Fraction

    assert model.to_base(Decimal("1500"), "g") == Fraction(3, 2)
    assert model.to_base(Decimal("2"), "day") == 16
    assert model.to_base(Decimal("1"), "m3") == 1000


def test_partitions():
    assert model.partition_of("eu/de/berlin/neukoelln") == "eu/de/berlin"
    assert model.partition_of("eu") == "eu"
    assert model.ancestors("eu/de/x") == ["eu", "eu/de", "eu/de/x"]
    assert model.in_scope("eu/de/x", "eu/de")
    assert not model.in_scope("eu/dex", "eu/de")
