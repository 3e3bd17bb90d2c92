"""Memory per held record: where a loaded node's bytes go.

Run: python bench/bench_memory.py [--records N] [--db FILE] [--top N] [--no-trace]

Builds the store `bench_web.py` serves (N records, default 50,000, of 32 admitted
founders over 1,000 communes; `bench_balance.founders_store`), or reuses ``--db`` if
that file exists (it is written there otherwise), then opens a `NodeState` on it in
this process as the daemon does (and asks the balance of ``eu``). Reports:

* the process's RSS before and after, and per record;
* with tracemalloc (unless ``--no-trace``): the bytes still allocated after the load,
  per record, and the ``--top`` source lines that hold the most of them;
* `sys.getsizeof` of one need record, its body map, wire bytes, id and key.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_balance import founders_store  # noqa: E402
from factories import identities  # noqa: E402

from node.config import Config  # noqa: E402


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--no-trace", action="store_true")
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="bench-mem-")) / "allmende.db"
    if not db.exists():
        t = time.perf_counter()
        founders_store(db, args.records)
        print(f"built {args.records:,} records in {time.perf_counter() - t:.1f} s at {db}")
    import json

    from node.state import NodeState
    from node.store import Store

    charter = json.loads((db.parent / "charter.json").read_text())
    me = sorted(identities(32, seed=5), key=lambda i: i.public)[0]
    config = Config(name="bench", scope="eu/r0/c0", charter=charter)
    gc.collect()
    before = rss_kb()
    if not args.no_trace:
        tracemalloc.start(1)
        base = tracemalloc.take_snapshot()
    t = time.perf_counter()
    state = NodeState(me, config, Store(db), lambda: 1_800_000_000_000, rng=random.Random(1))
    state.index.rows("eu")  # the balance of the federation, as the first page asks
    took = time.perf_counter() - t
    gc.collect()
    n = len(state.replica)
    if not args.no_trace:
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = snap.compare_to(base, "lineno")
        total = sum(s.size_diff for s in stats)
        print(f"tracemalloc: {total / 1e6:.1f} MB held after the load, {total / n:.0f} B/record")
        for s in sorted(stats, key=lambda s: -s.size_diff)[: args.top]:
            fr = s.traceback[0]
            print(
                f"  {s.size_diff / n:7.0f} B/record {s.count_diff:9,} blocks  "
                f"{Path(fr.filename).name}:{fr.lineno}"
            )
    after = rss_kb()
    per = (after - before) * 1024 / n
    rss = f"RSS {before / 1024:.0f} -> {after / 1024:.0f} MB, {per:.0f} B/record"
    if not args.no_trace:
        rss = "RSS not comparable under tracemalloc (--no-trace)"
    print(f"loaded {n:,} records in {took:.1f} s; {rss}")
    r = next(state.replica.records("need"))
    print(
        f"one need record, what is its own (shared values left out): tuple "
        f"{sys.getsizeof(r)} B, body map {sys.getsizeof(r.body)} B, raw {sys.getsizeof(r.raw)} B "
        f"({len(r.raw)} bytes), rid {sys.getsizeof(r.rid)} B, key {sys.getsizeof(r.key)} B"
    )
    state.store.close()


if __name__ == "__main__":
    main()
