"""The workload: who the nodes are (scopes, kinds, keys) and what they write when.

A federation is split into regions, each with communes and cooperatives. Communes
post mostly needs, cooperatives mostly capacities; items are drawn from the starter
catalog with Zipf-skewed popularity, units from the item's dimension, periods from
the scenario. Some writes re-post (update) or withdraw a record the node wrote before.
Everything is drawn from one seeded `random.Random`, ahead of the run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from node import model
from simnet.scenario import Scenario


@dataclass(frozen=True)
class NodeSpec:
    index: int
    name: str
    kind: str  # commune | cooperative
    scope: str
    region: str
    seed: bytes  # Ed25519 seed

    @property
    def partitions(self) -> tuple[str, ...]:
        return tuple(sorted({model.partition_of(a) for a in model.ancestors(self.scope)}))


@dataclass(frozen=True)
class Write:
    """One local write: `body` None withdraws the record `key`."""

    time: float
    node: int
    kind: str
    key: str
    body: dict[str, Any] | None


def build_nodes(scenario: Scenario, rng: random.Random) -> list[NodeSpec]:
    w = scenario.workload
    out = []
    for i in range(scenario.nodes):
        k = i % w.regions
        region = f"{w.federation}/f{k % w.countries}/r{k}"
        kind = "cooperative" if rng.random() < w.cooperatives else "commune"
        letter = "k" if kind == "cooperative" else "c"
        out.append(
            NodeSpec(i, f"{kind}-{i}", kind, f"{region}/{letter}{i}", region, rng.randbytes(32))
        )
    return out


def zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def build_writes(scenario: Scenario, nodes: list[NodeSpec], rng: random.Random) -> list[Write]:
    """All needs and capacities of the run, sorted by time (node records excluded)."""
    w = scenario.workload
    items = sorted(model.STARTER_CATALOG.values(), key=lambda i: i.id)
    rng.shuffle(items)  # which items are popular is part of the seed
    weights = zipf_weights(len(items), w.zipf)
    units_of: dict[str, list[str]] = {}
    for u in model.UNITS.values():
        units_of.setdefault(u.dimension, []).append(u.symbol)
    live: dict[int, list[tuple[str, str]]] = {}  # node -> its live (kind, key)
    counters: dict[int, int] = {}
    out: list[Write] = []
    remaining = w.records
    n_bursts = -(-w.records // w.burst)
    times = sorted(round(rng.uniform(0.5, max(0.5, w.write_window)), 3) for _ in range(n_bursts))
    for t in times:
        node = nodes[rng.randrange(len(nodes))]
        for _ in range(min(w.burst, remaining)):
            remaining -= 1
            mine = live.setdefault(node.index, [])
            roll = rng.random()
            if mine and roll < w.withdrawals:
                kind, key = mine.pop(rng.randrange(len(mine)))
                out.append(Write(t, node.index, kind, key, None))
                continue
            if mine and roll < w.withdrawals + w.updates:
                kind, key = mine[rng.randrange(len(mine))]
            else:
                need_share = 0.8 if node.kind == "commune" else 0.2
                kind = "need" if rng.random() < need_share else "capacity"
                counters[node.index] = counters.get(node.index, 0) + 1
                key = f"{kind[0]}{counters[node.index]}"
                mine.append((kind, key))
            item = rng.choices(items, weights)[0]
            unit = rng.choice(sorted(units_of[item.dimension]))
            body: dict[str, Any] = {
                "item": item.id,
                "qty": str(rng.randint(1, 2000)),
                "unit": unit,
                "period": rng.choice(w.periods),
            }
            if kind == "need":
                body["priority"] = rng.choice(model.PRIORITIES)
            out.append(Write(t, node.index, kind, key, body))
    return out


def build_sybils(scenario: Scenario, honest: list[NodeSpec], rng: random.Random) -> list[NodeSpec]:
    """The strangers of a sybil run: spread over the honest nodes' regions."""
    regions = sorted({s.region for s in honest})
    out = []
    for k in range(scenario.sybil.nodes):
        i = len(honest) + k
        region = regions[rng.randrange(len(regions))]
        out.append(
            NodeSpec(i, f"sybil-{k}", "commune", f"{region}/x{k}", region, rng.randbytes(32))
        )
    return out
