"""Simnet benchmarks: virtual 100 / 1,000 / 5,000 nodes, partition heal, real 10 / 30.

Each run is a separate `allmende simnet run ... --json` process (clean peak RSS).
Prints one line per run; `python bench/bench_simnet.py [virtual|real|memory|sybil|all]`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

VIRTUAL = [
    # (label, extra args, TOML overrides)
    ("virtual 100 nodes, 5,000 records", ["--nodes", "100"], {"records": 5000, "regions": 4}),
    (
        "virtual 1,000 nodes, 50,000 records, BalanceIndex on all",
        ["--nodes", "1000", "--balance-index", "all"],
        {"records": 50000, "regions": 40},
    ),
    (
        "virtual 1,000 nodes, 50,000 records, BalanceIndex sampled",
        ["--nodes", "1000", "--balance-index", "sample"],
        {"records": 50000, "regions": 40},
    ),
    (
        "virtual 5,000 nodes, 50,000 records, BalanceIndex sampled",
        ["--nodes", "5000", "--balance-index", "sample"],
        {"records": 50000, "regions": 200},
    ),
]


def scenario_file(d: Path, name: str, workload: dict[str, object], extra: str = "") -> Path:
    f = d / f"{name}.toml"
    lines = [f'name = "{name}"', "duration = 900.0", "[workload]", "write_window = 120.0"]
    lines += [f"{k} = {v}" for k, v in workload.items()]
    f.write_text("\n".join(lines) + "\n" + extra)
    return f


def run(label: str, args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        t = time.perf_counter()
        proc = subprocess.run(
            ["allmende", "simnet", "run", "--quiet", "--json", str(out), *args],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        if not out.exists():
            print(f"{label}: FAILED\n{proc.stderr[-2000:]}")
            return {}
        report = json.loads(out.read_text())
    r, m = report["result"], report["machine"]
    c = r["convergence_s"]
    line = (
        f"{label}: ok={r['ok']} wall {wall:.1f} s (run {m.get('wall_run_s')}) "
        f"peak RSS {m['peak_rss_mb']} MB | convergence p50 {c['p50']} p90 {c['p90']} "
        f"p99 {c['p99']} max {c['max']} s | after last write "
        f"{r.get('global_convergence_after_last_write_s')} s | msgs/record "
        f"{r['traffic']['messages_per_record']} bytes/record "
        f"{r['traffic']['bytes_per_record']}"
    )
    if "dissemination_bound_s" in r:
        b = r["dissemination_bound_s"]
        line += (
            f" | bound {b['bound']} s (link {b['mean_link_latency_s']} s) "
            f"within={b['p99_within_bound']} | dup/msg "
            f"{r['gossip']['duplicates_per_message']} | virtual {r['virtual_seconds']} s"
        )
        if m.get("setup_rss_mb") is not None:
            line += f" | setup RSS {m['setup_rss_mb']} MB"
    for p in r.get("partitions", []):
        line += (
            f" | heal {p['at']}-{p['heal']} s: converged {p['converged_after_heal_s']} s "
            f"after heal = {p['sync_rounds']} sync rounds"
        )
    if r.get("digests_equal_after_last_write_s") is not None:
        line += f" | digests equal {r['digests_equal_after_last_write_s']} s after last write"
    print(line, flush=True)
    return report


def virtual() -> None:
    with tempfile.TemporaryDirectory() as d:
        for label, args, workload in VIRTUAL:
            f = scenario_file(Path(d), "bench", workload)
            run(label, ["--scenario", str(f), *args])
        for on_connect in ("true", "false"):
            f = scenario_file(
                Path(d),
                "heal",
                {"records": 4000, "regions": 8},
                f"[sync]\ninterval = 15.0\non_connect = {on_connect}\n"
                "[[partition]]\nat = 30.0\nheal = 90.0\n",
            )
            run(
                f"virtual partition 200 nodes, sync on connect={on_connect}",
                ["--scenario", str(f), "--nodes", "200"],
            )
        run("virtual churn preset, 60 nodes", ["--preset", "churn"])


def sybil() -> None:
    """The sybil preset (1,000 honest nodes, 4,000 strangers) against the same honest
    run without the strangers: what they cost the honest nodes."""
    runs = {}
    for label, sybils in (("without strangers", 0), ("with 4,000 strangers", 4000)):
        with tempfile.TemporaryDirectory() as d:
            f = scenario_file(
                Path(d),
                "sybil",
                {"records": 20000, "regions": 40},
                f"[sybil]\nnodes = {sybils}\n",
            )
            runs[label] = run(f"sybil preset, {label}", ["--scenario", str(f), "--nodes", "1000"])
    if all(runs.values()):
        a, b = (runs[k]["result"] for k in ("without strangers", "with 4,000 strangers"))
        ya = b["sybil"] or {}
        print(
            f"sybil: p99 {b['convergence_s']['p99']} s vs {a['convergence_s']['p99']} s "
            f"= {b['convergence_s']['p99'] / a['convergence_s']['p99']:.2f}x (goal <= 1.5x); "
            f"honest nodes hold {ya.get('held_by_honest_nodes')} of the strangers' "
            f"{ya.get('records_written')} records (extra storage {ya.get('extra_storage')}, "
            f"goal <= 0.01); refused {ya.get('refused_at_honest_nodes')} times",
            flush=True,
        )


def real() -> None:
    for n in (10, 30):
        run(
            f"real {n} daemons (smoke workload, 600 records over 20 s)",
            ["--mode", "real", "--preset", "smoke", "--nodes", str(n)],
        )


def memory() -> None:
    """Bytes a simulated node costs per record it holds (records shared)."""
    from factories import Author, identities

    from node.crdt.replica import Replica
    from node.planning import BalanceIndex

    authors = [Author(i, f"eu/f0/r0/c{k}") for k, i in enumerate(identities(25))]
    recs = [a.need(f"n{j}", qty=str(j + 1)) for a in authors for j in range(80)]
    for with_index in (False, True):
        tracemalloc.start()
        reps = []
        names: dict = {}  # shared, as in a virtual run
        for _ in range(20):
            rep = Replica(names=names)
            if with_index:
                rep.add_listener(BalanceIndex())
            for r in recs:
                rep.insert_verified(r)
            reps.append(rep)
        used = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        print(
            f"memory: Replica{' + BalanceIndex' if with_index else ''} holding "
            f"{len(recs)} shared records: {used / 20 / len(recs):.0f} B per record per "
            f"node, {used / 20 / 2**20:.2f} MiB per node"
        )


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("memory", "all"):
        memory()
    if what in ("virtual", "all"):
        virtual()
    if what in ("real", "all"):
        real()
    if what in ("sybil", "all"):
        sybil()
