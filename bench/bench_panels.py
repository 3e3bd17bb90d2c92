"""The exact maximin lottery (node/governance/sortition.py) on random pools of 20-300.

Run (nice, one core):
    nice python bench/bench_panels.py                 # 24 seeded pools + the 300 pool
    nice python bench/bench_panels.py --pools 6 --limit 60

Pools are deterministic (seeded): 20 to 300 volunteers, 1 to 4 quota features (4 in
half the pools) of 2 to 4 values with skewed shares, a panel of 5 to 40. The quotas
admit a panel by construction: a random panel is drawn first, and each value's quota
spans that panel's count and the value's proportional share, widened by 0-1 below
and 0-2 above.
Then the 300-volunteer, four-feature pool of tests/governance/test_sortition_crosscheck.py.
Per pool: volunteers, types, panel size, CPU seconds, column-generation rounds
and the exact maximin value. A pool over --limit CPU seconds is stopped and reported.

Prints figures; never asserts them.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.governance import sortition  # noqa: E402

VALUES = ["a", "b", "c", "d"]


def random_pool(seed: int) -> tuple[list[dict[str, str]], int, dict[str, dict[str, list[int]]]]:
    rng = random.Random(seed)
    n = rng.randint(20, 300)
    features = {}
    for f in range(rng.choice([1, 2, 3, 4, 4, 4])):
        values = VALUES[: rng.randint(2, 4)]
        features[f"f{f}"] = (values, [rng.randint(1, 6) for _ in values])
    pool = [{f: rng.choices(v, weights=w)[0] for f, (v, w) in features.items()} for _ in range(n)]
    size = rng.randint(5, min(40, n // 2))
    panel = rng.sample(pool, size)
    quotas: dict[str, dict[str, list[int]]] = {}
    for f, (values, _) in features.items():
        quotas[f] = {}
        for v in values:
            have = sum(p[f] == v for p in panel)
            share = sum(p[f] == v for p in pool) * size // n
            lo, hi = min(share, have), max(share, have)
            quotas[f][v] = [max(0, lo - rng.randint(0, 1)), hi + rng.randint(0, 2)]
    return pool, size, quotas


def pool_of_300() -> tuple[list[dict[str, str]], int, dict[str, dict[str, list[int]]]]:
    sys.path.insert(0, str(ROOT / "tests" / "governance"))
    rng = random.Random(1)  # as tests/governance/test_sortition_crosscheck.py: pool_of_300
    features = {
        "age": (["16-29", "30-44", "45-64", "65+"], [3, 3, 3, 2]),
        "gender": (["f", "m", "x"], [10, 10, 1]),
        "region": (["north", "south", "east"], [4, 3, 2]),
        "edu": (["low", "mid", "high"], [2, 3, 2]),
    }
    pool = [{f: rng.choices(v, weights=w)[0] for f, (v, w) in features.items()} for _ in range(300)]
    quotas: dict[str, dict[str, list[int]]] = {}
    for f in features:
        quotas[f] = {}
        for v in sorted({p[f] for p in pool}):
            share = sum(p[f] == v for p in pool) * 30 // 300
            quotas[f][v] = [max(0, share - 1), min(30, share + 2)]
    return pool, 30, quotas


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def run(name: str, pool, size, quotas, limit: int) -> float | None:
    signal.signal(signal.SIGVTALRM, _alarm)
    signal.setitimer(signal.ITIMER_VIRTUAL, limit)  # CPU seconds, as reported
    started = time.process_time()
    try:
        dist = sortition.distribution(pool, size, quotas)
    except _Timeout:
        print(f"{name}: {len(pool)} volunteers, panel {size}: over {limit} s CPU", flush=True)
        return None
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    took = time.process_time() - started
    v: Fraction = dist.minimum
    print(
        f"{name}: {len(pool):3} volunteers, {len(quotas)} features, {len(dist.types):3} types, "
        f"panel {size:2}: {took:6.2f} s CPU, {len(dist.compositions):3} panels in the "
        f"lottery, value {v} = {float(v):.6f}",
        flush=True,
    )
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", type=int, default=24)
    parser.add_argument("--first", type=int, default=0, help="seed of the first pool")
    parser.add_argument("--limit", type=int, default=120, help="CPU seconds per pool")
    parser.add_argument("--skip-300", action="store_true")
    args = parser.parse_args()
    times = []
    for seed in range(args.first, args.first + args.pools):
        times.append(run(f"pool {seed:2}", *random_pool(seed), args.limit))
    if not args.skip_300:
        times.append(run("pool 300", *pool_of_300(), args.limit))
    done = sorted(t for t in times if t is not None)
    # A pool over the limit counts as slower than every finished one for the median.
    ranked = done + [float(args.limit)] * (len(times) - len(done))
    median = ranked[len(ranked) // 2] if ranked else 0.0
    print(
        f"{len(done)} of {len(times)} pools within {args.limit} s CPU; "
        f"slowest finished {max(done, default=0):.2f} s, median {median:.2f} s, "
        f"total {sum(done):.1f} s CPU"
    )


if __name__ == "__main__":
    main()
