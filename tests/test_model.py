"""Validation says what is wrong and how to fix it."""

import pytest

from node import model
from node.errors import ValidationError

NEED = {"item": "potatoes", "qty": "12.5", "unit": "kg", "period": "2027-Q1", "priority": "high"}


def _need(**changes):
    return {**NEED, **changes}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_need(unit="parsec"), "unknown unit 'parsec'; known units: g, kg"),
        (_need(unit="l"), "unit l measures volume, but potatoes is measured in mass (kg)"),
        (_need(qty="-1"), "must be greater than zero"),
        (_need(qty="0"), "must be greater than zero"),
        (_need(qty="NaN"), "must be a finite number"),
        (_need(qty="Infinity"), "must be a finite number"),
        (_need(qty="abc"), "is not a number; write it like 12.5"),
        (_need(qty="1e16"), "is larger than"),
        (_need(qty="0.0000001"), "more than 6 decimal places"),
        (_need(period="2027-Q5"), "use 2027, 2027-Q1, 2027-03 or 2027-W05"),
        (_need(period="27-01"), "malformed"),
        (_need(note="x" * 501), "note is 501 characters long; the limit is 500"),
        (_need(priority="urgent"), "priority must be one of low, medium, high, critical"),
        (_need(item="Potatoes!"), "lowercase letters"),
        (_need(colour="red"), "unexpected field(s) colour"),
    ],
)
def test_need_errors(body, message):
    with pytest.raises(ValidationError, match=None) as exc:
        model.validate("need", "k", "eu/de", body)
    assert message in str(exc.value)


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
