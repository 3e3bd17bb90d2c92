"""The country on one box (issue 12, goal 7): the `country` preset at a list of N.

Each N runs as a separate `allmende simnet run --preset country --nodes N` process
(clean peak RSS): regions of 45 nodes, 50 records per node, rollups on, nodes coming
up over the first minute, and the final check that every node's digests, regional
balances and federation balances equal the truth. Prints wall, CPU (user + system of
the child), peak RSS, converged, and what each node held, per N.

    nice python bench/bench_country.py 135 270 500
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["allmende", "simnet", "run", "--preset", "country"]


def run(n: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(
            [*COMMAND, "--nodes", str(n), "--quiet", "--json", str(out)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if not out.exists():
            print(f"N={n}: FAILED\n{proc.stderr[-2000:]}", flush=True)
            return {}
        report = json.loads(out.read_text())
    r, m = report["result"], report["machine"]
    fed = r["check"]["federation"] or {}
    print(
        f"N={n}: regions {r['regions']} records {r['records']} | wall {wall:.1f} s "
        f"CPU {cpu:.1f} s peak RSS {m['peak_rss_mb']} MB | converged {r['ok']} "
        f"(virtual {r['virtual_seconds']:.0f} s, events {m['events']}) | held per node: "
        f"records {fed.get('records_held_per_node')}, rollups "
        f"{fed.get('rollups_held_per_node')} ({fed.get('rollup_bytes_held_per_node')} B) | "
        f"rollups written {fed.get('rollups_written')} | gossip bytes "
        f"{r['traffic']['bytes']['gossip']}",
        flush=True,
    )
    return report


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["135", "270", "500"]:
        run(int(arg))
