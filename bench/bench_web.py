"""Web app benchmark: first page load and the balance page of a large federation,
served by a real daemon process, and that daemon's memory.

Run: python bench/bench_web.py [--records N] [--rounds N]

The node holds N records (default 50,000: 1,000 communes x 50 needs and capacities),
signed by 32 admitted founders and spread over the 1,000 communes ``eu/r<k>/c<j>``
(`bench_balance.founders_store`): the balance counts every one of them. The daemon
runs as `allmende run` does, with the web app on a free port on 127.0.0.1, and is
asked over HTTP on loopback:

* first page load: the node page with its stylesheet and script (what a browser
  fetches on a first visit; the member pages add msgpack.js and member.js);
* the balance page of ``eu`` (11 scopes: the federation and its 10 regions) and of
  ``eu/r0`` (101 scopes: a region and its 100 communes);

each the best of ``--rounds`` requests, in wall time on loopback (server time plus
a loopback round trip), and bytes of the response bodies. Then the daemon's resident
memory (VmRSS), and its peak (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_balance import founders_store  # noqa: E402
from factories import identities  # noqa: E402
from procs import allmende_command, free_port, wait_for  # noqa: E402

from node.config import Config, DataDir  # noqa: E402
from node.control import call  # noqa: E402
from node.identity import write_key  # noqa: E402


def make_node(root: Path, records: int) -> DataDir:
    db_dir = root / "build"
    db_dir.mkdir()
    founders_store(db_dir / "allmende.db", records)
    charter = json.loads((db_dir / "charter.json").read_text())
    me = sorted(identities(32, seed=5), key=lambda i: i.public)[0]
    dd = DataDir(root / "node")
    port = free_port()
    config = Config(
        name="bench",
        scope="eu/r0/c0",
        listen=(f"/ip4/127.0.0.1/tcp/{port}",),
        mdns=False,
        charter=charter,
        web_port=0,
    )
    dd.root.mkdir(mode=0o700)
    write_key(dd.key, me)
    dd.write_config(config)
    shutil.move(db_dir / "allmende.db", dd.db)
    return dd


def rss_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def timed(c: httpx.Client, paths: list[str], rounds: int) -> tuple[float, int]:
    """Best wall time (ms) over `rounds` of fetching `paths` in turn, and their bytes."""
    best, size = float("inf"), 0
    for _ in range(rounds):
        t = time.perf_counter()
        size = 0
        for p in paths:
            r = c.get(p)
            r.raise_for_status()
            size += len(r.content)
        best = min(best, (time.perf_counter() - t) * 1000)
    return best, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-web-"))
    proc = None
    try:
        t = time.perf_counter()
        dd = make_node(root, args.records)
        print(f"built {args.records:,} records in {time.perf_counter() - t:.1f} s")
        log = open(root / "daemon.log", "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [*allmende_command(), "--data-dir", str(dd.root), "run", "--no-mdns"],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        t = time.perf_counter()
        url = wait_for(lambda: dd.web_url.read_text().strip(), 120, what="web app", step=0.2)
        print(f"daemon up, web app at {url} after {time.perf_counter() - t:.1f} s")
        before = rss_kb(proc.pid)
        with httpx.Client(base_url=url, timeout=60) as c:
            first_paths = ["/", "/static/style.css", "/static/app.js"]
            cold, _ = timed(c, ["/balance?scope=eu"], 1)
            rows = [
                ("first page (node + css + js)", *timed(c, first_paths, args.rounds)),
                (
                    "member page (+ msgpack.js, member.js)",
                    *timed(
                        c,
                        [
                            "/member",
                            "/static/style.css",
                            "/static/app.js",
                            "/static/msgpack.js",
                            "/static/member.js",
                        ],
                        args.rounds,
                    ),
                ),
                ("balance eu (11 scopes)", *timed(c, ["/balance?scope=eu"], args.rounds)),
                ("balance eu/r0 (101 scopes)", *timed(c, ["/balance?scope=eu/r0"], args.rounds)),
                ("proposals", *timed(c, ["/proposals"], args.rounds)),
            ]
        after = rss_kb(proc.pid)
        print(f"first balance request after start (cold): {cold:.0f} ms")
        print(f"{'request':40} {'best ms':>8} {'bytes':>9}")
        for name, ms, size in rows:
            print(f"{name:40} {ms:8.1f} {size:9,}")
        print(
            f"daemon RSS: {before['VmRSS'] / 1024:.1f} MB before the requests, "
            f"{after['VmRSS'] / 1024:.1f} MB after, peak {after['VmHWM'] / 1024:.1f} MB"
        )
        # The same node without the web app, for its share.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        proc = subprocess.Popen(
            [*allmende_command(), "--data-dir", str(dd.root), "run", "--no-mdns", "--no-web"],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_for(lambda: call(dd.socket, "status", {}), 120, what="daemon", step=0.2)
        bare = rss_kb(proc.pid)
        print(f"daemon RSS without the web app: {bare['VmRSS'] / 1024:.1f} MB")
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
