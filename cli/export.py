"""Open data: balances, intents and results as CSV, JSON or ValueFlows JSON-LD (pure).

Every function takes what the daemon answers (the `--json` data) and returns rows or a
JSON-LD document; nothing here reads the clock, files or the network.

ValueFlows (https://w3id.org/valueflows/ont/vf#): a need is a `vf:Intent` with this
node as `vf:receiver`, a capacity one with it as `vf:provider`; both
`vf:resourceConformsTo` a `vf:ResourceSpecification` (the catalog item) and carry a
`vf:resourceQuantity`, an `om2:Measure` in an OM 2.0 unit. A commitment is a
`vf:Commitment`, each delivery a `vf:EconomicEvent` that `vf:fulfills` it. Quantities
are given in the base unit of their dimension (kg, l, kWh, h, pieces, m², m), since OM
has no unit for a dozen or a person-day of 8 hours. Figures with no ValueFlows term
(a balance, the results of a vote) use this project's own terms (``allmende:``).
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from node import model

VF = "https://w3id.org/valueflows/ont/vf#"
OM2 = "http://www.ontology-of-units-of-measure.org/resource/om-2/"
NS = "urn:allmende:terms:"
CONTEXT = {
    "vf": VF,
    "om2": OM2,
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "allmende": NS,
}
# The base unit of each dimension and its OM 2.0 unit.
OM2_UNITS = {
    "kg": "kilogram",
    "l": "litre",
    "kWh": "kilowattHour",
    "h": "hour",
    "pcs": "one",
    "m2": "squareMetre",
    "m": "metre",
}
# Labour is a service delivered; goods change hands.
_ACTION = {"labour": "vf:deliverService"}
_DEFAULT_ACTION = "vf:transfer"

BALANCE_COLUMNS = [
    "scope", "item", "period", "unit", "needs", "capacities", "balance", "coverage", "nodes",
    "basis",
]  # fmt: skip
INTENT_COLUMNS = [
    "id", "kind", "origin", "origin_name", "scope", "item", "qty", "unit", "period",
    "priority", "note", "withdrawn",
]  # fmt: skip
RESULT_COLUMNS = [
    "proposal", "title", "method", "status", "option", "name", "winner", "rank", "count",
    "total", "votes", "cost", "selected",
]  # fmt: skip


def balance_rows(balance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per scope, item and period of a `balance` answer (every level)."""
    out = []
    for level in balance["levels"]:
        for r in level["rows"]:
            out.append({**{k: r.get(k) for k in BALANCE_COLUMNS}, "basis": level.get("basis")})
    return out


def intent_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per need or capacity record."""
    return [{k: r.get(k) for k in INTENT_COLUMNS} for r in records]


def result_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per option or project of a proposal's results."""
    detail = results.get("detail") or {}
    ranking = list(detail.get("ranking") or [])
    winners = list(results.get("winners") or [])
    out = []
    for o in detail.get("options") or detail.get("projects") or []:
        out.append(
            {
                "proposal": results["proposal"],
                "title": results["title"],
                "method": results["method"],
                "status": results["status"],
                "option": o["id"],
                "name": o.get("name"),
                "winner": o["id"] in winners,
                "rank": ranking.index(o["id"]) + 1 if o["id"] in ranking else None,
                **{k: o.get(k) for k in ("count", "total", "votes", "cost", "selected")},
            }
        )
    return out


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header row; None is an empty cell, booleans are true/false."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in columns})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


# --- ValueFlows JSON-LD ------------------------------------------------------------


def measure(qty: str, unit: str) -> dict[str, Any]:
    """An `om2:Measure` of `qty` `unit`, in its dimension's base unit.

    Raises:
        ValidationError: an unknown unit or a malformed quantity.
    """
    u = model.unit(unit)
    base = model.DIMENSIONS[u.dimension]
    value = Fraction(Decimal(qty)) * u.factor
    return {
        "@type": "om2:Measure",
        "om2:hasNumericalValue": {"@value": _decimal(value), "@type": "xsd:decimal"},
        "om2:hasUnit": {"@id": f"om2:{OM2_UNITS[base]}"},
    }


def _decimal(x: Fraction) -> str:
    # Exact where the fraction has a finite decimal form (all base-unit conversions
    # here do but minutes, thirds of an hour, which get 9 places).
    d = Decimal(x.numerator) / Decimal(x.denominator)
    return format(d.quantize(Decimal(1)) if d == d.to_integral() else d.normalize(), "f")


def _agent(node_hex: str) -> dict[str, str]:
    return {"@id": f"urn:allmende:node:{node_hex}"}


def _spec(item: str) -> str:
    return f"urn:allmende:item:{item}"


def _period(period: str) -> dict[str, Any]:
    start, end = period_start(period), model.period_end(period)
    return {
        "vf:hasBeginning": {"@value": f"{start.isoformat()}T00:00:00Z", "@type": "xsd:dateTime"},
        "vf:hasEnd": {"@value": f"{end.isoformat()}T23:59:59Z", "@type": "xsd:dateTime"},
    }


def period_start(period: str) -> datetime.date:
    """The first day of a valid `period` (ISO weeks start on Monday)."""
    year, rest = int(period[:4]), period[5:]
    if not rest:
        return datetime.date(year, 1, 1)
    if rest[0] == "W":
        return datetime.date.fromisocalendar(year, int(rest[1:]), 1)
    month = 3 * int(rest[1]) - 2 if rest[0] == "Q" else int(rest)
    return datetime.date(year, month, 1)


def _specs(items: Mapping[str, Mapping[str, Any]], used: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for item in sorted(set(used)):
        i = items.get(item) or {}
        spec: dict[str, Any] = {"@id": _spec(item), "@type": "vf:ResourceSpecification"}
        spec["vf:name"] = str(i.get("name") or item)
        unit = i.get("unit")
        if unit in OM2_UNITS:
            spec["vf:defaultUnitOfResource"] = {"@id": f"om2:{OM2_UNITS[unit]}"}
        out.append(spec)
    return out


def _action(items: Mapping[str, Mapping[str, Any]], item: str) -> dict[str, str]:
    dimension = (items.get(item) or {}).get("dimension", "")
    return {"@id": _ACTION.get(str(dimension), _DEFAULT_ACTION)}


def intents_jsonld(
    records: Iterable[Mapping[str, Any]],
    commitments: Iterable[Mapping[str, Any]],
    items: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """Needs and capacities (live ones) as `vf:Intent`s, commitments as
    `vf:Commitment`s with their deliveries as `vf:EconomicEvent`s."""
    catalog = {str(i["id"]): i for i in items}
    graph: list[dict[str, Any]] = []
    used: list[str] = []
    for r in records:
        if r.get("withdrawn"):
            continue
        used.append(r["item"])
        node: dict[str, Any] = {
            "@id": f"urn:allmende:{r['kind']}:{r['origin']}.{r['id']}",
            "@type": "vf:Intent",
            "vf:action": _action(catalog, r["item"]),
            "vf:resourceConformsTo": {"@id": _spec(r["item"])},
            "vf:resourceQuantity": measure(r["qty"], r["unit"]),
            ("vf:receiver" if r["kind"] == "need" else "vf:provider"): _agent(r["origin"]),
            "vf:inScopeOf": {"@id": f"urn:allmende:scope:{r['scope']}"},
            **_period(r["period"]),
        }
        if r.get("note"):
            node["skos:note"] = r["note"]
        if r.get("priority"):
            node["allmende:priority"] = r["priority"]
        graph.append(node)
    for c in commitments:
        if c.get("state") != "committed":
            continue
        used.append(c["item"])
        cid = f"urn:allmende:commitment:{c['id']}"
        node = {
            "@id": cid,
            "@type": "vf:Commitment",
            "vf:action": _action(catalog, c["item"]),
            "vf:provider": _agent(c["provider"]),
            "vf:receiver": _agent(c["receiver"]),
            "vf:resourceConformsTo": {"@id": _spec(c["item"])},
            "vf:resourceQuantity": measure(c["qty"], c["unit"]),
            "vf:due": {"@value": f"{c['due']}T23:59:59Z", "@type": "xsd:dateTime"},
            "vf:inScopeOf": {"@id": f"urn:allmende:scope:{c['scope']}"},
        }
        if c.get("note"):
            node["skos:note"] = c["note"]
        graph.append(node)
        for d in c.get("deliveries") or []:
            graph.append(
                {
                    "@id": f"{cid}/delivery/{d['id']}",
                    "@type": "vf:EconomicEvent",
                    "vf:action": _action(catalog, c["item"]),
                    "vf:provider": _agent(c["provider"]),
                    "vf:receiver": _agent(c["receiver"]),
                    "vf:resourceConformsTo": {"@id": _spec(c["item"])},
                    "vf:resourceQuantity": measure(d["qty"], d["unit"]),
                    "vf:hasPointInTime": {
                        "@value": f"{d['date']}T12:00:00Z",
                        "@type": "xsd:dateTime",
                    },
                    "vf:fulfills": {"@id": cid},
                    "allmende:deliveryStatus": d["status"],
                }
            )
    return {"@context": CONTEXT, "@graph": [*_specs(catalog, used), *graph]}


def balance_jsonld(
    balance: Mapping[str, Any], items: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """A balance: per scope, item and period its needs and capacities as measures.
    ValueFlows has no term for a sum of intents, so a row is an `allmende:Balance`."""
    catalog = {str(i["id"]): i for i in items}
    rows = balance_rows(balance)
    graph = [
        {
            "@id": f"urn:allmende:balance:{r['scope']}:{r['item']}:{r['period']}",
            "@type": "allmende:Balance",
            "vf:resourceConformsTo": {"@id": _spec(r["item"])},
            "vf:inScopeOf": {"@id": f"urn:allmende:scope:{r['scope']}"},
            "allmende:period": r["period"],
            "allmende:needs": measure(r["needs"], r["unit"]),
            "allmende:capacities": measure(r["capacities"], r["unit"]),
            "allmende:nodes": r["nodes"],
            **_period(r["period"]),
        }
        for r in rows
    ]
    return {"@context": CONTEXT, "@graph": [*_specs(catalog, (r["item"] for r in rows)), *graph]}


def results_jsonld(results: Mapping[str, Any]) -> dict[str, Any]:
    """A proposal's results (no ValueFlows term: `allmende:` terms throughout)."""
    pid = f"urn:allmende:proposal:{results['proposal']}"
    return {
        "@context": CONTEXT,
        "@graph": [
            {
                "@id": pid,
                "@type": "allmende:Results",
                "allmende:title": results["title"],
                "allmende:method": results["method"],
                "allmende:status": results["status"],
                "allmende:counted": results["counted"],
                "allmende:winner": [
                    {"@id": f"{pid}/option/{w}"} for w in results.get("winners") or []
                ],
            },
            *(
                {
                    "@id": f"{pid}/option/{r['option']}",
                    "@type": "allmende:Option",
                    "allmende:name": r["name"],
                    **{
                        f"allmende:{k}": r[k]
                        for k in ("rank", "count", "total")
                        if r[k] is not None
                    },
                }
                for r in result_rows(results)
            ),
        ],
    }
