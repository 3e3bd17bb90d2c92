"""The floor of the country (issue 12, goal 7) for replicas of the daemon's core.

Every node holds every region's rollups (docs/architecture.md, the federation view),
and the simnet runs the daemon's own core per node (one core for daemon and simnet),
so at N nodes in regions of 45 each node's replica holds 24 x N / 45 rollups: the
root partition alone is 24 x N^2 / 45 held entries. This measures what one such entry
costs in `Replica` (memory and merge time, the record objects shared as in the
simnet, nothing else of a run: no gossip, no index, no admission, no events), and
prints what the root partition alone would take at each N. With `--run N` it also
runs the country preset at N nodes and splits gossip's first deliveries by tier: the
root's topic (rollups, to every node) and the regions' (records, to the region).

    nice python bench/bench_country_floor.py            # 18,000 nodes, 8 GB, 2 cores
    nice python bench/bench_country_floor.py --nodes 2160 --nodes 18000 --run 540
"""

from __future__ import annotations

import argparse
import collections
import gc
import random
import time
import tracemalloc

from node.crdt.record import Record, sign_record
from node.crdt.replica import Replica
from node.keys import Identity
from node.planning.rollup import rollup_key

REGION_SIZE = 45  # the country preset's
ROLLUPS_PER_REGION = 24  # measured: 6 attesters x 4 periods (bench_country.py)
PERIODS = ("2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4")
BUDGET_CPU_S = 2 * 600  # two cores for ten minutes
BUDGET_BYTES = 8 * 2**30


def rollups(regions: int) -> list[Record]:
    """Signed rollups at the root: 6 attesters per region, one per period each."""
    out = []
    for k in range(regions):
        region = f"de/f{k % 16}/r{k}"
        for a in range(ROLLUPS_PER_REGION // len(PERIODS)):
            who = Identity.from_seed(f"{region}/{a}".encode().ljust(32, b"\0")[:32])
            for seq, period in enumerate(PERIODS, start=1):
                body = {"region": region, "period": period, "items": {}}
                key = rollup_key(region, period)
                signer = who.signer()
                out.append(sign_record(signer, who.public, "rollup", key, seq, 0, "de", body))
    return out


def measure(records: list[Record], replicas: int) -> tuple[float, float]:
    """(bytes per held entry, seconds per merge) over `replicas` replicas that each
    merge every record, in an order of their own (as gossip brings them)."""
    rng = random.Random(1)
    orders = []
    for _ in range(replicas):
        order = records[:]
        rng.shuffle(order)
        orders.append(order)
    names: dict[tuple[str, str], tuple[str, str]] = {}
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = []
    spent = 0.0
    for order in orders:
        r = Replica(names=names)
        t = time.perf_counter()
        for rec in order:
            r.merge_verified(rec)
        spent += time.perf_counter() - t
        held.append(r)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    entries = replicas * len(records)
    # merge time without tracemalloc's cost
    t = time.perf_counter()
    for order in orders[: max(1, replicas // 4)]:
        r = Replica(names=names)
        for rec in order:
            r.merge_verified(rec)
    per_merge = (time.perf_counter() - t) / (max(1, replicas // 4) * len(records))
    return used / entries, per_merge


def tiers(n: int) -> None:
    """The country preset at `n` nodes: messages published, first deliveries and the
    time they took (validation and merge included), per tier."""
    from dataclasses import replace

    from simnet import gossip
    from simnet.scenario import preset
    from simnet.virtual import VirtualSim

    spent: dict[str, float] = collections.defaultdict(float)
    first: collections.Counter[str] = collections.Counter()
    published: collections.Counter[str] = collections.Counter()
    on_message, publish = gossip.GossipNode.on_message, gossip.GossipNode.publish

    def tier(topic: str) -> str:
        return "root" if "/" not in topic else "region"

    def timed(self: gossip.GossipNode, mid: int, frm: int) -> None:
        if self.has_seen(mid):
            return on_message(self, mid, frm)
        t = time.perf_counter()
        on_message(self, mid, frm)
        name = tier(self._store.messages[mid][0])
        spent[name] += time.perf_counter() - t
        first[name] += 1

    def counted(self: gossip.GossipNode, topic: str, data: bytes) -> int:
        published[tier(topic)] += 1
        return publish(self, topic, data)

    gossip.GossipNode.on_message = timed  # type: ignore[method-assign]
    gossip.GossipNode.publish = counted  # type: ignore[method-assign]
    try:
        t = time.perf_counter()
        sim = VirtualSim(replace(preset("country"), nodes=n).scaled()).run()
        wall = time.perf_counter() - t
    finally:
        gossip.GossipNode.on_message = on_message  # type: ignore[method-assign]
        gossip.GossipNode.publish = publish  # type: ignore[method-assign]
    print(f"country at {n} nodes: {wall:.1f} s, {sim.sched.events_run} events")
    for name in ("root", "region"):
        f = first[name]
        print(
            f"  {name}: {published[name]} messages published, {f} first deliveries, "
            f"{spent[name]:.1f} s ({spent[name] / max(1, f) * 1e6:.0f} us each)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regions", type=int, default=48, help="rollups of this many regions")
    ap.add_argument("--replicas", type=int, default=200)
    ap.add_argument("--nodes", type=int, action="append", help="N to print (repeatable)")
    ap.add_argument("--run", type=int, default=0, help="also run the country at N nodes")
    a = ap.parse_args()
    recs = rollups(a.regions)
    per_entry, per_merge = measure(recs, a.replicas)
    print(
        f"Replica, root partition of {len(recs)} rollups x {a.replicas} replicas: "
        f"{per_entry:.0f} B per held entry, {per_merge * 1e6:.2f} us per merge"
    )
    for n in a.nodes or [18_000]:
        entries = n * ROLLUPS_PER_REGION * (n // REGION_SIZE)
        gb = entries * per_entry / 2**30
        cpu = entries * per_merge
        print(
            f"N={n}: {entries:.3g} held root entries: {gb:.1f} GiB "
            f"({gb * 2**30 / BUDGET_BYTES:.1f}x the 8 GB budget), "
            f"{cpu:.0f} s of merging alone ({cpu / BUDGET_CPU_S:.2f}x two cores for 10 min)"
        )
    if a.run:
        tiers(a.run)


if __name__ == "__main__":
    main()
