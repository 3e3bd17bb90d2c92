"""Validation is total, even for an integer over 4,300 digits: `repr` of such an int
raises ValueError (Python's int-to-str limit), so messages show values through
`node.model.fields.shown`. Unreachable from the wire (msgpack ints are 64-bit; JSON
over 4,300 digits is refused by json.loads), but `validate` promises ValidationError."""

import pytest

from node import model
from node.errors import ValidationError

HUGE = 10**5000
NEED = {"item": "potatoes", "qty": "5", "unit": "kg", "period": "2027-Q1", "priority": "high"}


@pytest.mark.parametrize(
    ("kind", "scope", "body"),
    [
        ("need", "eu", {**NEED, "qty": HUGE}),
        ("need", "eu", {**NEED, "unit": HUGE}),
        ("need", "eu", {**NEED, "period": HUGE}),
        ("need", "eu", {**NEED, "item": HUGE}),
        ("item", "eu", {"id": "oats", "name": "Oats", "dimension": HUGE, "unit": "kg"}),
        ("vote", "eu", {"ballot": [HUGE]}),
        ("need", HUGE, None),
        (HUGE, "eu", None),
    ],
    ids=["qty", "unit", "period", "item", "dimension", "ballot", "scope", "kind"],
)
def test_validation_of_an_integer_over_4300_digits_raises_validation_error_not_value_error(
    kind, scope, body
):
    with pytest.raises(ValidationError):
        model.validate(kind, "k1", scope, body)
