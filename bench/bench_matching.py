"""Matching benchmark: 10,000 communes x 100 items in one federation, and networkx's
`network_simplex` on one item of the same instance, in the same run.

Run: python bench/bench_matching.py [--communes N] [--items K] [--rounds R]
    [--before OLD/node/planning/matching.py]
Prints CPU time (process_time) on one core, best and worst of R rounds: `plan` (the
matching itself: every quantity each provider gives and each receiver takes, per
pool; in int64 vectors), pairing it into every match as columns of ints (`MatchTable`),
making a `Match` tuple of every row, the same in Python ints (`plan_exact`, the
fallback beyond int64 bounds), and the first implementation
(`tests/matching_reference.py`, the same matches) and an older `matching.py`
(`--before`, e.g. from a checkout of main) interleaved with them.

The instance: a federation `eu` of 10 countries x 10 regions x 100 communes (scopes
``eu/cNN/rNN/kNNN``), one node per commune; per item each commune has a random
capacity (0-999 kg) and a random need (0-999 kg, random priority): after netting about
half are surpluses, half deficits. The matching is timed from positions (what
`positions_from_records` returns); building positions from records is timed separately
on a smaller replica-sized input because signing a million records takes minutes.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import itertools
import random
import sys
import time
from pathlib import Path
from types import ModuleType

import networkx as nx

from node import model
from node.crdt.record import sign_record
from node.identity import Identity
from node.planning.balance import TICKS
from node.planning.matching import (
    Position,
    match,
    match_table,
    plan,
    plan_exact,
    positions_from_records,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import matching_reference  # the first implementation (test-only), for the same-run ratio

clock = time.process_time


def instance(communes: int, items: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    countries = max(1, round((communes / 100) ** 0.5))
    scopes = [
        f"eu/c{k % countries:02d}/r{(k // countries) % 10:02d}/k{k:05d}" for k in range(communes)
    ]
    parties = [(s, rng.randbytes(32).hex()) for s in scopes]
    out = {}
    for i in range(items):
        group = {}
        for p in parties:
            needs = [0, 0, 0, 0]
            needs[rng.randrange(4)] = rng.randrange(1000) * TICKS
            group[p] = Position(rng.randrange(1000) * TICKS, tuple(needs))
        out[(f"item-{i:03d}", "mass", "2027-Q1")] = group
    return out


def simplex_one(group: dict) -> int:
    """Min-cost flow of one group on the same tree (all communes at one depth)."""
    g = nx.DiGraph()
    supply = demand = 0
    for (scope, node), pos in group.items():
        chain = [*model.ancestors(scope), node]
        for a, b in itertools.pairwise(chain):
            g.add_edge(a, b, weight=1)
            g.add_edge(b, a, weight=1)
        net = pos.capacity - sum(pos.needs)
        g.nodes[node]["demand"] = -net
        supply += max(net, 0)
        demand += max(-net, 0)
    g.add_node("dummy", demand=supply - demand)
    for (_, node), pos in group.items():
        net = pos.capacity - sum(pos.needs)
        if supply > demand and net > 0:
            g.add_edge(node, "dummy", weight=0)
        elif demand > supply and net < 0:
            g.add_edge("dummy", node, weight=0)
    cost, _ = nx.network_simplex(g)
    return int(cost)


def region_records(nodes: int, per_node: int, seed: int = 2) -> list:
    """A region's signed needs and capacities: `nodes` communes, `per_node` each."""
    rng = random.Random(seed)
    out = []
    for k in range(nodes):
        ident = Identity.from_seed(rng.randbytes(32))
        signer = ident.signer()
        for j in range(per_node):
            kind = "need" if rng.random() < 0.5 else "capacity"
            body = {
                "item": f"item-{j:03d}",
                "qty": str(rng.randrange(1, 1000)),
                "unit": "kg",
                "period": "2027-Q1",
            }
            if kind == "need":
                body["priority"] = rng.choice(model.PRIORITIES)
            scope = f"eu/de/berlin/k{k:04d}"
            out.append(sign_record(signer, ident.public, kind, f"x{j}", j + 1, 0, scope, body))
    return out


def _module(path: str) -> ModuleType:
    """An older `node/planning/matching.py` (from another checkout), to time it in
    the same run."""
    spec = importlib.util.spec_from_file_location("matching_before", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--communes", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", help="an older node/planning/matching.py to time interleaved")
    args = ap.parse_args()
    before = _module(args.before) if args.before else None
    positions = instance(args.communes, args.items)
    print(f"{args.communes} communes x {args.items} items, one period")
    t_plan, t_table, t_list, t_ref, t_before, t_exact = [], [], [], [], [], []
    for _ in range(args.rounds):
        t = clock()
        p = plan(positions)
        t_plan.append(clock() - t)
        t = clock()
        table = p.table()
        t_table.append(clock() - t)
        t = clock()
        gc.disable()  # a million str/int tuples: no cycles, but full collector passes
        out = table.matches()
        gc.enable()
        t_list.append(clock() - t)
        del p, table, out
        t = clock()
        plan_exact(positions).table()
        t_exact.append(clock() - t)
        t = clock()
        ref = matching_reference.match(positions)
        t_ref.append(clock() - t)
        del ref
        if before is not None:
            t = clock()
            old = before.match(positions)
            t_before.append(clock() - t)
            del old

    def span(ts: list[float]) -> str:
        return f"{min(ts):.3f}-{max(ts):.3f} s"

    table = match_table(positions)
    print(f"plan (the matching): {span(t_plan)} CPU over {args.rounds} rounds")
    print(f"pairing it into {len(table)} matches as columns (MatchTable): {span(t_table)}")
    both = [a + b for a, b in zip(t_plan, t_table, strict=True)]
    print(f"match_table = plan + columns (every match listed): {span(both)}")
    print(f"then every match as a Match tuple: {span(t_list)}")
    every = [a + b for a, b in zip(both, t_list, strict=True)]
    print(f"match (plan + columns + tuples): {span(every)}; first implementation: {span(t_ref)}")
    print(f"match_table in Python ints (plan_exact + columns, the fallback): {span(t_exact)}")
    if t_before:
        print(f"match before ({args.before}), same rounds: {span(t_before)}")
    print(f"{table.total() // TICKS} kg matched")
    t = clock()
    page = table.rows(len(table) // 2, len(table) // 2 + 100)
    t_page = clock() - t
    some = set(table.names[:10])
    t = clock()
    mine = table.involving(some)
    t_some = clock() - t
    print(
        f"reading the columns: a page of {len(page)} matches {t_page * 1000:.2f} ms; "
        f"the {len(mine)} matches of 10 parties {t_some:.3f} s"
    )
    del table, page, mine
    # the same, with the cyclic garbage collector paused: the columns are ints, which
    # it does not track, so pausing it should change little
    gc.disable()
    try:
        t = clock()
        match_table(positions)
        t_nogc = clock() - t
    finally:
        gc.enable()
    print(f"match_table with the garbage collector paused: {t_nogc:.3f} s CPU")
    recs = region_records(1000, 20)
    t = clock()
    pos = positions_from_records(recs)
    t_pos = clock() - t
    t = clock()
    got = match(pos)
    t_match = clock() - t
    print(
        f"one region from records: 1000 nodes x 20 records: positions {t_pos:.3f} s, "
        f"match {t_match:.3f} s, {len(got)} matches"
    )
    first = min(positions)
    one = {first: positions[first]}
    t = clock()
    ours = match(one)
    t_ours = clock() - t
    t = clock()
    cost = simplex_one(positions[first])
    t_nx = clock() - t
    ours_cost = sum(m.quantity * 2 * (4 - m.scope.count("/")) for m in ours)
    print(
        f"one item: match {t_ours:.4f} s, networkx network_simplex {t_nx:.2f} s "
        f"(x{t_nx / max(t_ours, 1e-9):.0f}); same cost: {ours_cost == cost}"
    )


if __name__ == "__main__":
    main()
