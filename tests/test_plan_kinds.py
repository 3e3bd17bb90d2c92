"""Flexible intents and cap decisions are validated like every other field (issue 14):
hostile bodies get a `ValidationError` with a reason, older records stay valid, a
forged or tampered cap never enters, and a cap counts only once passed by vote of an
admitted node's members."""

from __future__ import annotations

import contextlib

import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.crdt.replica import Replica
from node.errors import ValidationError
from node.planning.caps import caps_in_force

NEED = {"item": "potatoes", "qty": "100", "unit": "kg", "period": "2027", "priority": "high"}
CAPACITY = {k: v for k, v in NEED.items() if k != "priority"}
CAP = {
    "resource": "co2",
    "qty": "40000000",
    "unit": "t",
    "period": "2027",
    "children": {"eu/de": 83, "eu/fr": 68},
    "equal": 1,
    "need": 1,
}
PROPOSAL = {
    "title": "CO2 budget 2027",
    "method": "approval",
    "options": [{"id": "yes", "name": "yes"}, {"id": "no", "name": "no"}],
    "seats": 1,
    "electorate": "eu",
    "opens": 1,
    "closes": 2,
    "cap": CAP,
}


def _need(**kw) -> None:
    model.validate("need", "n1", "eu/de", {**NEED, **kw})


def _capacity(**kw) -> None:
    model.validate("capacity", "c1", "eu/de", {**CAPACITY, **kw})


def _proposal(**cap) -> None:
    model.validate("proposal", "p", "eu", {**PROPOSAL, "cap": {**CAP, **cap}})


def test_old_records_and_flexible_ones_are_valid() -> None:
    _need()
    _capacity()
    _need(min="80", max="120", subs=[["rice", "0.8"], ["wheat", "1"]], round=3)
    _capacity(min="100", max="150", use=[["co2", "0.4", "kg"]])
    model.validate("proposal", "p", "eu", PROPOSAL)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"min": "120"}, "outside its range"),
        ({"max": "90"}, "outside its range"),
        ({"min": "90", "max": "80"}, "larger than max"),
        ({"min": "0"}, "greater than zero"),
        ({"min": "-5"}, "decimal number"),
        ({"max": "1e3"}, "decimal number"),
        ({"max": 10**30}, "larger than"),
        ({"min": True}, "decimal number"),
        ({"round": 0}, "round must be"),
        ({"round": True}, "round must be"),
        ({"round": 10**7}, "round must be"),
        ({"subs": []}, "1 to 8"),
        ({"subs": [["rice", "1"]] * 9}, "1 to 8"),
        ({"subs": [[f"r{k}", "1"] for k in range(9)]}, "1 to 8"),
        ({"subs": "rice"}, "1 to 8"),
        ({"subs": [["rice"]]}, "\\[item, ratio\\]"),
        ({"subs": [["Rice", "1"]]}, "no item id"),
        ({"subs": [["potatoes", "1"]]}, "repeats"),
        ({"subs": [["rice", "1"], ["rice", "2"]]}, "repeats"),
        ({"subs": [["rice", "0"]]}, "greater than zero"),
        ({"subs": [["rice", 1.5]]}, "decimal number"),
        ({"use": [["co2", "1", "kg"]]}, "unexpected field"),
    ],
)
def test_hostile_need_flexibility(fields, reason) -> None:
    with pytest.raises(ValidationError, match=reason):
        _need(**fields)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"use": []}, "1 to 4"),
        ({"use": [["co2", "1", "kg"]] * 5}, "1 to 4"),
        ({"use": [["co2", "1"]]}, "resource, qty per unit, unit"),
        ({"use": [["CO2", "1", "kg"]]}, "resource"),
        ({"use": [["co2", "1", "parsec"]]}, "unknown unit"),
        ({"use": [["co2", "1", "kg"], ["co2", "2", "kg"]]}, "named twice"),
        ({"use": {"co2": "1"}}, "1 to 4"),
        ({"subs": [["rice", "1"]]}, "unexpected field"),
        ({"min": "101"}, "outside its range"),
    ],
)
def test_hostile_capacity_flexibility(fields, reason) -> None:
    with pytest.raises(ValidationError, match=reason):
        _capacity(**fields)


@pytest.mark.parametrize(
    ("cap", "reason"),
    [
        ({"resource": "CO₂"}, "resource"),
        ({"qty": "4.5"}, "whole number"),
        ({"qty": 40}, "whole number"),
        ({"qty": "0"}, "whole number"),
        ({"qty": "9" * 17}, "whole number"),
        ({"unit": "Mt"}, "unknown unit"),
        ({"period": "27"}, "period"),
        ({"children": {}}, "children"),
        ({"children": {f"eu/c{k}": 1 for k in range(65)}}, "children"),
        ({"children": {"us/ca": 1}}, "does not lie under"),
        ({"children": {"eu": 1}}, "does not lie under"),
        ({"children": {"eu/de": 1, "eu/de/berlin": 1}}, "overlap"),
        ({"children": {"eu/de": -1}}, "residents"),
        ({"children": {"eu/de": True}}, "residents"),
        ({"children": {"eu/de": 0}}, "residents"),
        ({"equal": 0, "need": 0}, "may not both be 0"),
        ({"equal": 101}, "equal must be"),
        ({"budget": 5}, "unexpected field"),
    ],
)
def test_hostile_cap_decisions(cap, reason) -> None:
    with pytest.raises(ValidationError, match=reason):
        _proposal(**cap)


def test_a_cap_is_a_yes_no_vote() -> None:
    for change in (
        {"method": "score", "min_score": 0, "max_score": 5},
        {"options": [{"id": "yes", "name": "yes"}, {"id": "maybe", "name": "m"}]},
        {"seats": 2},
    ):
        with pytest.raises(ValidationError, match="yes and no for one seat"):
            model.validate("proposal", "p", "eu", {**PROPOSAL, **change})
    with pytest.raises(ValidationError, match="cap must be a map"):
        model.validate("proposal", "p", "eu", {**PROPOSAL, "cap": ["co2"]})


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(
        st.sampled_from(["min", "max", "subs", "use", "round", "qty"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=8,
        ),
    ),
    kind=st.sampled_from(["need", "capacity"]),
)
def test_any_flexibility_gets_a_reason_never_a_crash(body, kind) -> None:
    base = NEED if kind == "need" else CAPACITY
    with contextlib.suppress(ValidationError):
        model.validate(kind, "k", "eu/de", {**base, **body})


def _records():
    founder, stranger = identities(2, seed=14)
    a = Author(founder, scope="eu/de")
    prop = a.write("proposal", "co2", dict(PROPOSAL))
    return a, stranger, prop


def test_a_tampered_or_forged_cap_never_enters() -> None:
    _, stranger, prop = _records()
    replica = Replica()
    tampered = prop.raw.replace(b"40000000", b"90000000")
    assert tampered != prop.raw
    with pytest.raises(Exception, match="signature"):
        replica.receive(tampered)
    # a stranger's key signing as the founder's origin
    forged = Author(stranger, scope="eu/de")
    fake = forged.write("proposal", "co2", dict(PROPOSAL))
    bad = fake.raw.replace(stranger.public, prop.origin)
    with pytest.raises(Exception, match="signature"):
        replica.receive(bad)
    assert list(replica.records()) == []


def test_an_undecided_cap_or_a_strangers_one_is_not_in_force() -> None:
    _a, _, prop = _records()
    # no close record: voting never ended here, nothing is decided
    assert caps_in_force([prop], None) == []
    # not admitted: never counts, whatever its votes
    assert caps_in_force([prop], frozenset()) == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"qty": "80", "base": "130", "min": "70", "max": "120"}, "base 130 lies outside"),
        ({"qty": "80", "base": "100"}, "qty 80 lies outside"),  # no min: it may not go down
        ({"qty": "80", "base": "0.0000001", "min": "70"}, "decimal number"),
    ],
)
def test_a_revision_keeps_its_base_inside_the_range(fields, reason) -> None:
    with pytest.raises(ValidationError, match=reason):
        _need(**fields)
    _need(qty="80", base="100", min="70")
