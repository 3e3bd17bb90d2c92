"""The `planning` preset: rounds over a large instance, checked against a central solve.

An instance of communes and cooperatives (seeded): items with Zipf-skewed demand,
needs that can give way (``min`` below the quantity), capacities that can grow
(``max`` above it), and one capped resource (CO2) drawn by the capacities of some items,
shared among districts, a third per resident, two thirds by declared need.

Every node computes the same plan from the same records (`node.planning.rounds.plan`
is a pure function of them), and the plan runs from the quantities as declared, so
the network's part is to carry each node's revisions once; that traffic is counted
here as the records and bytes the nodes sign. The run checks what the preset
promises: the plan converges (every item fits) without any budget exceeding its
share, identically for intents taken in other orders; it reports the rounds, the
remaining deficit and, when scipy is installed, how far the needs it serves are
from the optimum of a linear programme over the same instance (HiGHS).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from node.planning.balance import _PER_MICRO, TICKS, decimal_str
from node.planning.caps import Budget, Cap, Use, budgets
from node.planning.rounds import Intent, Step, plan

KG = _PER_MICRO["kg"] * 10**6  # ticks per kg
STEP = _PER_MICRO["kg"]
RESOURCE = "co2"


@dataclass(frozen=True)
class PlanningScenario:
    """The instance's shape.

    Attributes:
        nodes: communes and cooperatives together.
        items: how many items (Zipf-skewed demand).
        cooperatives: the share of nodes that are cooperatives.
        districts: the children the cap is shared among.
        capped: the share of items whose production draws on the capped resource.
        headroom: the cap over the resource the declared capacities draw.
        seed: the random seed.
        max_rounds: rounds before the run gives up.
    """

    nodes: int = 1000
    items: int = 50
    cooperatives: float = 0.4
    districts: int = 10
    capped: float = 0.3
    headroom: Fraction = Fraction(21, 20)
    seed: int = 14
    max_rounds: int = 20


def _node(k: int) -> str:
    return f"{k:064x}"


def build(s: PlanningScenario) -> tuple[list[Intent], Cap]:
    """The instance: intents of every node and the cap on the resource."""
    rng = random.Random(s.seed)
    items = [f"item-{j:02d}" for j in range(s.items)]
    popularity = [1 / (j + 1) for j in range(s.items)]
    capped = set(items[:: max(1, round(1 / s.capped))]) if s.capped else set()
    n_coops = round(s.nodes * s.cooperatives)
    communes = range(n_coops, s.nodes)
    district = {k: f"eu/sim/d{k % s.districts}" for k in range(s.nodes)}
    intents: list[Intent] = []
    demand = dict.fromkeys(items, 0)
    for k in communes:
        for n, item in enumerate(sorted(set(rng.choices(items, popularity, k=8)))):
            qty = rng.randint(10, 200)
            lo = max(1, round(qty * rng.uniform(0.6, 0.95)))
            demand[item] += qty
            intents.append(_intent(k, "need", f"n{n}", district[k], item, qty, lo, qty))
    # Supply per item: between 80 % and 120 % of demand, spread over three producers.
    producers: dict[str, list[int]] = {item: [] for item in items}
    for k in range(n_coops):
        for item in rng.sample(items, 3):
            producers[item].append(k)
    for item in items:
        who = producers[item] or [rng.randrange(n_coops)]
        supply = max(1, round(demand[item] * rng.uniform(0.8, 1.2)))
        weights = [rng.random() + 0.1 for _ in who]
        total = sum(weights)
        for n, k in enumerate(who):
            qty = max(1, round(supply * weights[n] / total))
            per_kg = Fraction(rng.randint(5, 20), 10) if item in capped else None
            # what draws on the cap can also shrink further (a greener process, less)
            lo = max(1, round(qty * rng.uniform(0.5 if per_kg else 0.8, 1.0)))
            hi = round(qty * rng.uniform(1.0, 1.4))
            intents.append(
                _intent(k, "capacity", f"c-{item}", district[k], item, qty, lo, hi, per_kg)
            )
    # about 1,000 residents per commune
    residents = {
        f"eu/sim/d{d}": sum(rng.randint(800, 1200) for k in communes if k % s.districts == d)
        for d in range(s.districts)
    }
    declared_use = sum(
        (Fraction(i.qty, KG) * i.uses[RESOURCE].per_tick * KG for i in intents if i.uses),
        Fraction(0),
    )
    cap = Cap(
        id="sim.co2",
        resource=RESOURCE,
        scope="eu/sim",
        period="2027",
        qty=int(declared_use * s.headroom),
        unit="kg",
        children=residents,
        equal=1,
        need=2,
        closes=0,
    )
    return intents, cap


def _intent(
    k: int,
    kind: str,
    key: str,
    scope: str,
    item: str,
    qty: int,
    lo: int,
    hi: int,
    per_kg: Fraction | None = None,
) -> Intent:
    uses = {RESOURCE: Use(RESOURCE, "mass", per_kg / KG)} if per_kg is not None else {}
    return Intent(
        node=_node(k),
        kind=kind,
        key=key,
        scope=f"{scope}/n{k}",
        item=item,
        dim="mass",
        period="2027",
        unit="kg",
        qty=qty * KG,
        lo=lo * KG,
        hi=hi * KG,
        step=STEP,
        rank=2 if kind == "need" else -1,
        uses=uses,
    )


def _use(intents: list[Intent], b: Budget, q: dict[Any, int]) -> Fraction:
    return sum(
        (q[i.id] * i.uses[b.resource].per_tick for i in intents if i.id in b.members),
        Fraction(0),
    )


def run_planning(s: PlanningScenario, *, orders: int = 2, lp: bool = True) -> dict[str, Any]:
    """Plan the instance; check it; compare with the LP optimum.

    Args:
        orders: how many further orders of the intents to plan again (all must agree).
        lp: solve the LP too (needs scipy; skipped with a note without it).
    """
    intents, cap = build(s)
    bs = budgets([cap], [i for i in intents if i.kind == "capacity"])
    started = time.perf_counter()
    steps, planned = plan(intents, bs, max_rounds=s.max_rounds)
    seconds = time.perf_counter() - started
    rng = random.Random(s.seed + 1)
    alike = True
    for _ in range(orders):
        shuffled = intents[:]
        rng.shuffle(shuffled)
        alike &= plan(shuffled, bs, max_rounds=s.max_rounds) == (steps, planned)
    in_range = all(i.lo <= planned[i.id] <= i.hi for i in intents)
    within_cap = all(_use(intents, b, planned) <= b.limit for b in bs)
    final = steps[-1]
    needs = {
        g: sum(planned[i.id] for i in intents if i.kind == "need" and i.group == g)
        for g in final.groups
    }
    caps_ = {
        g: sum(planned[i.id] for i in intents if i.kind == "capacity" and i.group == g)
        for g in final.groups
    }
    deficit = sum(max(0, needs[g] - caps_[g]) for g in needs)
    declared_needs = sum(i.qty for i in intents if i.kind == "need")
    served = sum(needs.values()) - deficit
    revised = sum(1 for i in intents if planned[i.id] != i.qty)
    report: dict[str, Any] = {
        "scenario": {
            "nodes": s.nodes,
            "items": s.items,
            "intents": len(intents),
            "districts": s.districts,
            "cap_kg": cap.qty,
            "seed": s.seed,
        },
        "rule": "capacities-first",
        "rounds": len(steps),
        "converged": final.converged,
        "in_range": in_range,
        "within_cap": within_cap,
        "alike_in_every_order": alike,
        "seconds": round(seconds, 2),
        "remaining_deficit_kg": decimal_str(Fraction(deficit, KG)),
        "needs_declared_kg": decimal_str(Fraction(declared_needs, KG)),
        "needs_served_kg": float(Fraction(served, KG)),
        "revisions": revised,
        "history": [_history(st) for st in steps],
        "budgets": [
            {
                "child": b.child,
                "share_kg": b.share,
                "use_kg": float(_use(intents, b, planned)),
                "declared_use_kg": float(_use(intents, b, {i.id: i.qty for i in intents})),
            }
            for b in bs
        ],
    }
    report["traffic"] = {
        "records_signed": revised,
        "bytes_signed": revised * _revision_bytes(),
        "note": "each node signs its planned quantities once; rounds are computed alike",
    }
    if lp:
        report["lp"] = _lp(intents, bs)
        if report["lp"].get("needs_served_kg"):
            report["lp"]["ours_of_optimum"] = round(
                report["needs_served_kg"] / report["lp"]["needs_served_kg"], 4
            )
    report["ok"] = bool(final.converged and in_range and within_cap and alike)
    return report


def _history(st: Step) -> dict[str, Any]:
    return {
        "round": st.round,
        "moved": len(st.moved),
        "out_of_tolerance": sum(1 for g in st.groups.values() if not g.fits),
        "deficit_kg": float(sum(max(0, g.gap) for g in st.groups.values()) / KG),
        "groups": [
            {"item": it, "period": per, "surplus": decimal_str(Fraction(-g.gap, TICKS))}
            for (it, _dim, per), g in sorted(st.groups.items())
        ],
    }


def _revision_bytes() -> int:
    """The size of one signed revision of a need, as the wire carries it."""
    from node.crdt.record import sign_record
    from node.identity import Identity

    ident = Identity.from_seed(bytes(32))
    body = {
        "item": "item-07",
        "qty": "123.456789",
        "base": "150",
        "min": "100",
        "unit": "kg",
        "period": "2027",
        "priority": "high",
        "round": 1,
    }
    scope = "eu/sim/d1/n1"
    r = sign_record(ident.signer(), ident.public, "need", "n7abcd", 123, 2**60, scope, body)
    return len(r.raw)


def _lp(intents: list[Intent], bs: list[Budget]) -> dict[str, Any]:
    """Most needs served (kg) by any plan within the same ranges and shares."""
    try:
        import numpy as np
        from scipy.optimize import linprog
        from scipy.sparse import lil_matrix
    except ImportError:
        return {"note": "no LP: scipy is not installed (pip install scipy)"}
    groups = sorted({i.group for i in intents})
    gi = {g: n for n, g in enumerate(groups)}
    n, m = len(intents), len(groups)
    # variables: every intent's quantity (kg), then every group's deficit (kg)
    c = np.zeros(n + m)
    a = lil_matrix((m + len(bs), n + m))
    for k, i in enumerate(intents):
        if i.kind == "need":
            c[k] = -1.0  # maximise needs
            a[gi[i.group], k] = 1.0
        else:
            a[gi[i.group], k] = -1.0
    for g in range(m):
        c[n + g] = 1000.0  # a deficit costs far more than a need gives
        a[g, n + g] = -1.0
    limits = []
    for r, b in enumerate(bs):
        for k, i in enumerate(intents):
            if i.id in b.members:
                a[m + r, k] = float(i.uses[b.resource].per_tick * KG)
        limits.append(float(b.limit))
    bounds = [(i.lo / KG, i.hi / KG) for i in intents] + [(0, None)] * m
    started = time.perf_counter()
    res = linprog(c, A_ub=a.tocsr(), b_ub=[0.0] * m + limits, bounds=bounds, method="highs")
    if not res.success:
        return {"note": f"LP failed: {res.message}"}
    x = res.x
    needs = sum(x[k] for k, i in enumerate(intents) if i.kind == "need")
    deficit = float(sum(x[n:]))
    return {
        "needs_served_kg": round(float(needs) - deficit, 3),
        "deficit_kg": round(deficit, 6),
        "seconds": round(time.perf_counter() - started, 2),
    }


def render_planning(report: dict[str, Any]) -> Any:
    """The report for a person (a rich renderable)."""
    from rich.table import Table

    sc = report["scenario"]
    t = Table(title=f"planning: {sc['nodes']} nodes, {sc['items']} items, {sc['intents']} intents")
    t.add_column("figure")
    t.add_column("value", justify="right")
    lp = report.get("lp", {})
    rows = [
        ("rounds to converge", str(report["rounds"])),
        ("converged (every item fits, every share kept)", str(report["converged"])),
        ("within every share of the cap", str(report["within_cap"])),
        ("alike in every order", str(report["alike_in_every_order"])),
        ("remaining deficit (kg)", report["remaining_deficit_kg"]),
        ("needs served / declared (kg)", f"{report['needs_served_kg']:.0f} / "
         f"{float(Fraction(report['needs_declared_kg'])):.0f}"),
        ("revisions signed (records, bytes)", f"{report['traffic']['records_signed']}, "
         f"{report['traffic']['bytes_signed']}"),
        ("LP optimum of needs served (kg)", str(lp.get("needs_served_kg", lp.get("note", "")))),
        ("ours / optimum", str(lp.get("ours_of_optimum", "-"))),
        ("planning time (s)", str(report["seconds"])),
    ]  # fmt: skip
    for name, value in rows:
        t.add_row(name, value)
    return t
