"""Open data (issue 17, item 6): `allmende export` as CSV, JSON and ValueFlows JSON-LD;
the JSON-LD uses only terms the ValueFlows ontology defines, each as what it is."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli import export as ex
from node import model

TERMS = json.loads((Path(__file__).parent / "vf_terms.json").read_text())
VF_TERMS: dict[str, list[str]] = TERMS["vf_terms"]
A, B = "a" * 64, "b" * 64
ITEMS = [
    {"id": "potatoes", "name": "Potatoes", "dimension": "mass", "unit": "kg"},
    {"id": "eggs", "name": "Eggs", "dimension": "count", "unit": "pcs"},
    {"id": "childcare", "name": "Childcare", "dimension": "labour", "unit": "h"},
]


def intent(kind, rid, item, qty, unit, *, origin=A, withdrawn=False, **extra):
    return {
        "id": rid, "kind": kind, "origin": origin, "origin_name": "n", "scope": "eu/de/b/n",
        "seq": 1, "hlc": 1, "withdrawn": withdrawn, "item": item, "qty": qty, "unit": unit,
        "period": "2027-Q1", **extra,
    }  # fmt: skip


RECORDS = [
    intent("need", "n1", "potatoes", "500", "g", priority="high", note="canteen"),
    intent("capacity", "c1", "eggs", "2", "dozen", origin=B),
    intent("capacity", "c2", "childcare", "1.5", "day", origin=B),
    intent("need", "n2", "potatoes", "9", "kg", withdrawn=True),
]
COMMITMENTS = [
    {
        "id": f"{B}.x1", "state": "committed", "provider": B, "receiver": A, "item": "eggs",
        "qty": "3", "unit": "dozen", "period": "2027-Q1", "due": "2027-03-31",
        "scope": "eu/de/b", "note": "gate", "declined_by": None,
        "deliveries": [{"id": "d1", "qty": "12", "unit": "pcs", "date": "2027-02-01",
                        "status": "confirmed", "reason": None}],
    },
    {"id": f"{B}.x2", "state": "offered", "provider": B, "receiver": A, "item": "eggs",
     "qty": "1", "unit": "pcs", "period": "2027", "due": "2027-12-31", "scope": "eu/de/b",
     "note": None, "declined_by": None, "deliveries": []},
]  # fmt: skip


def check_terms(doc: dict) -> set[str]:
    """Every term of `doc` against the ontology; returns the classes used."""
    ctx = doc["@context"]
    assert ctx["vf"] == TERMS["vf_namespace"]
    assert ctx["om2"] == TERMS["om2_namespace"]
    classes: set[str] = set()

    def term(name: str) -> tuple[str, str]:
        prefix, _, local = name.partition(":")
        assert prefix in ("vf", "om2", "skos", "xsd", "allmende"), name
        return prefix, local

    def iri(value: str) -> None:
        if value.startswith("vf:"):
            assert "Action" in VF_TERMS[value[3:]], value  # vf individuals here are actions
        elif value.startswith("om2:"):
            assert value[4:] in TERMS["om2_units"], value
        else:
            assert value.startswith("urn:allmende:"), value

    def walk(node: dict) -> None:
        for key, value in node.items():
            if key == "@id":
                iri(value)
                continue
            if key == "@type":
                prefix, local = term(value)
                if prefix == "vf":
                    assert VF_TERMS[local] == ["Class"], value
                elif prefix == "om2":
                    assert local in TERMS["om2_terms_used_by_vf"], value
                classes.add(value)
                continue
            if key in ("@value",):
                continue
            prefix, local = term(key)
            values = value if isinstance(value, list) else [value]
            if prefix == "vf":
                kinds = VF_TERMS.get(local)
                assert kinds is not None, f"{key} is not a ValueFlows term"
                for v in values:
                    if kinds == ["ObjectProperty"]:
                        assert isinstance(v, dict), key
                        assert "@id" in v or "@type" in v, key
                        assert "@value" not in v, key
                    else:
                        assert kinds == ["DatatypeProperty"], key
                        assert not isinstance(v, dict) or "@value" in v, key
            elif prefix == "om2":
                assert local in ("hasNumericalValue", "hasUnit"), key
            elif prefix == "skos":
                assert local == "note"
            for v in values:
                if isinstance(v, dict):
                    if "@value" in v:
                        assert v.get("@type", "xsd:").startswith("xsd:")
                    else:
                        walk(v)

    for node in doc["@graph"]:
        walk(node)
    return classes


def test_intents_jsonld_uses_valueflows_terms_as_defined():
    doc = ex.intents_jsonld(RECORDS, COMMITMENTS, ITEMS)
    classes = check_terms(doc)
    assert {
        "vf:Intent", "vf:Commitment", "vf:EconomicEvent", "vf:ResourceSpecification",
        "om2:Measure",
    } <= classes  # fmt: skip
    by_id = {n["@id"]: n for n in doc["@graph"]}
    need = by_id[f"urn:allmende:need:{A}.n1"]
    assert need["vf:receiver"] == {"@id": f"urn:allmende:node:{A}"}
    assert "vf:provider" not in need
    assert need["vf:resourceQuantity"]["om2:hasNumericalValue"]["@value"] == "0.5"
    assert need["vf:resourceQuantity"]["om2:hasUnit"] == {"@id": "om2:kilogram"}
    assert need["vf:hasBeginning"]["@value"] == "2027-01-01T00:00:00Z"
    assert need["vf:hasEnd"]["@value"] == "2027-03-31T23:59:59Z"
    eggs = by_id[f"urn:allmende:capacity:{B}.c1"]["vf:resourceQuantity"]
    assert (eggs["om2:hasNumericalValue"]["@value"], eggs["om2:hasUnit"]["@id"]) == (
        "24",
        "om2:one",
    )
    care = by_id[f"urn:allmende:capacity:{B}.c2"]
    assert care["vf:action"] == {"@id": "vf:deliverService"}
    assert care["vf:resourceQuantity"]["om2:hasNumericalValue"]["@value"] == "12"  # 1.5 x 8 h
    assert f"urn:allmende:need:{A}.n2" not in by_id  # withdrawn
    assert f"urn:allmende:commitment:{B}.x2" not in by_id  # offered, not committed
    event = by_id[f"urn:allmende:commitment:{B}.x1/delivery/d1"]
    assert event["vf:fulfills"] == {"@id": f"urn:allmende:commitment:{B}.x1"}
    spec = by_id["urn:allmende:item:eggs"]
    assert spec["vf:defaultUnitOfResource"] == {"@id": "om2:one"}


def test_the_check_catches_a_term_valueflows_does_not_have():
    doc = ex.intents_jsonld(RECORDS[:1], [], ITEMS)
    doc["@graph"][-1]["vf:quantityOfNeed"] = {"@id": "urn:allmende:x"}
    with pytest.raises(AssertionError, match="not a ValueFlows term"):
        check_terms(doc)
    doc = ex.intents_jsonld(RECORDS[:1], [], ITEMS)
    doc["@graph"][-1]["vf:provider"] = "a literal"  # an object property
    with pytest.raises(AssertionError):
        check_terms(doc)


BALANCE = {
    "scope": "eu/de/b",
    "levels": [
        {"scope": "eu/de/b", "level": 0, "basis": "complete", "rows": [
            {"scope": "eu/de/b", "item": "potatoes", "period": "2027-Q1", "dimension": "mass",
             "unit": "kg", "needs": "500", "capacities": "120.5", "balance": "-379.5",
             "coverage": "0.2410", "nodes": 2},
        ]},
    ],
}  # fmt: skip


def test_balance_csv_json_and_jsonld():
    rows = list(
        csv.DictReader(io.StringIO(ex.to_csv(ex.balance_rows(BALANCE), ex.BALANCE_COLUMNS)))
    )
    assert rows == [
        {"scope": "eu/de/b", "item": "potatoes", "period": "2027-Q1", "unit": "kg",
         "needs": "500", "capacities": "120.5", "balance": "-379.5", "coverage": "0.2410",
         "nodes": "2", "basis": "complete"},
    ]  # fmt: skip
    doc = ex.balance_jsonld(BALANCE, ITEMS)
    check_terms(doc)
    (row,) = [n for n in doc["@graph"] if n["@type"] == "allmende:Balance"]
    assert row["allmende:capacities"]["om2:hasNumericalValue"]["@value"] == "120.5"


def test_results_rows_and_jsonld():
    results = {
        "proposal": f"{A}.park", "title": "Park", "method": "approval", "status": "final",
        "counted": 3, "winners": ["b"],
        "detail": {"ranking": ["b", "a"], "options": [
            {"id": "a", "name": "North", "count": 1}, {"id": "b", "name": "South", "count": 2}]},
    }  # fmt: skip
    rows = ex.result_rows(results)
    assert [(r["option"], r["winner"], r["rank"], r["count"]) for r in rows] == [
        ("a", False, 2, 1),
        ("b", True, 1, 2),
    ]
    text = ex.to_csv(rows, ex.RESULT_COLUMNS)
    assert text.splitlines()[2].startswith(f"{A}.park,Park,approval,final,b,South,true,1,2,")
    check_terms(ex.results_jsonld(results))


units = st.sampled_from(sorted(model.UNITS))
quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10**9), places=3)


@given(quantities, units)
def test_measure_is_exact_in_the_base_unit(qty, unit):
    m = ex.measure(str(qty), unit)
    u = model.UNITS[unit]
    value = Decimal(m["om2:hasNumericalValue"]["@value"])
    assert abs(value - qty * Decimal(u.factor.numerator) / Decimal(u.factor.denominator)) < Decimal(
        "1e-9"
    )
    assert m["om2:hasUnit"]["@id"] == f"om2:{ex.OM2_UNITS[model.DIMENSIONS[u.dimension]]}"


@pytest.mark.parametrize(
    ("period", "first"),
    [("2027", "2027-01-01"), ("2027-Q3", "2027-07-01"), ("2027-02", "2027-02-01"),
     ("2027-W05", "2027-02-01"), ("2026-W53", "2026-12-28")],
)  # fmt: skip
def test_period_start_is_the_first_day(period, first):
    assert ex.period_start(period).isoformat() == first


@pytest.mark.slow
def test_export_commands_against_a_daemon(node, tmp_path):
    r = node.cli("need", "add", "potatoes", "500", "kg", "--period", "2027-Q1")
    assert r.exit_code == 0, r.output
    r = node.cli("capacity", "add", "potatoes", "120", "kg", "--period", "2027-Q1")
    assert r.exit_code == 0, r.output
    r = node.cli("export", "intents")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert sorted((x["kind"], x["qty"]) for x in rows) == [("capacity", "120"), ("need", "500")]
    r = node.cli("export", "intents", "--format", "jsonld", "--out", str(tmp_path / "i.jsonld"))
    assert r.exit_code == 0, r.output
    assert {"vf:Intent", "vf:ResourceSpecification", "om2:Measure"} <= check_terms(
        json.loads((tmp_path / "i.jsonld").read_text())
    )
    doc = json.loads(node.cli("export", "balance", "--format", "jsonld").stdout)
    check_terms(doc)
    data = json.loads(node.cli("export", "balance", "--format", "json").stdout)
    assert [(x["item"], x["needs"], x["capacities"]) for x in data] == [("potatoes", "500", "120")]
    r = node.cli("export", "results", "nope")
    assert r.exit_code == 1
    r = node.cli("export", "balance", "--format", "xml")
    assert r.exit_code == 2
