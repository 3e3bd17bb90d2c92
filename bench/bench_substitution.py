"""Substitutes in planning rounds (issue 14): one seeded instance planned twice, the
second time with half of the needs declaring two substitutes. Prints rounds, time,
derived needs and the deficit left. A few seconds.

    python bench/bench_substitution.py
"""

from __future__ import annotations

import random
import time
from fractions import Fraction

from node.planning.balance import _PER_MICRO
from node.planning.rounds import Intent, plan
from node.planning.substitution import ratio_ticks

STEP = _PER_MICRO["kg"]
KG = STEP * 10**6
ITEMS = [f"i{k}" for k in range(50)]


def instance(with_subs: bool, n: int = 2000) -> list[Intent]:
    """`n` intents of 1,000 nodes: needs Pareto-skewed over 50 items, capacities even;
    half of each side may move by 10 %. The substitutes come from their own random
    stream, so both instances are the same but for them."""
    rng, srng = random.Random(1), random.Random(2)
    out = []
    for k in range(n):
        kind = "need" if k % 2 else "capacity"
        if kind == "need":
            item = ITEMS[min(int(rng.paretovariate(1.2)) - 1, 49)]
        else:
            item = rng.choice(ITEMS)
        q = rng.randint(10, 200)
        lo = q * 9 // 10 if rng.random() < 0.5 else q
        hi = q * 11 // 10 if rng.random() < 0.5 else q
        subs: tuple[tuple[str, Fraction], ...] = ()
        if kind == "need" and srng.random() < 0.5:
            others = srng.sample([x for x in ITEMS if x != item], 2)
            ratios = [srng.choice(["0.5", "1", "1.25", "2"]) for _ in others]
            if with_subs:
                subs = tuple((b, ratio_ticks(r, "kg")) for b, r in zip(others, ratios, strict=True))
        out.append(
            Intent(
                node=f"{k % 1000:064x}",
                kind=kind,
                key=f"k{k}",
                scope="eu/a/b/x",
                item=item,
                dim="mass",
                period="2027",
                unit="kg",
                qty=q * KG,
                lo=lo * KG,
                hi=hi * KG,
                step=STEP,
                rank=2 if kind == "need" else -1,
                subs=subs,
            )
        )
    return out


def main() -> None:
    for with_subs in (False, True):
        xs = instance(with_subs)
        t = time.perf_counter()
        steps, _ = plan(xs)
        took = time.perf_counter() - t
        last = steps[-1]
        deficit = sum(max(0, g.gap) for g in last.groups.values()) / KG
        demand = sum(i.qty for i in xs if i.kind == "need") / KG
        print(
            f"substitutes={with_subs}: {len(steps)} rounds, {took * 1000:.0f} ms, "
            f"derived needs {len(last.subs)}, deficit left {deficit:,.0f} kg of {demand:,.0f}"
        )


if __name__ == "__main__":
    main()
