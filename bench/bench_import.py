"""`budget import` of a Warsaw-sized pabulib file through a real daemon.

Run:
    python bench/bench_import.py                      # 100 projects, 100,000 voters
    python bench/bench_import.py --voters 250000

Generates a Warsaw-like file (tests/cli/pb_gen.py), starts one `allmende run` daemon
in a fresh data dir and imports the file through the control socket, as
`allmende budget import` does (payload + progress). Meanwhile another client asks the
daemon for `status` every 50 ms, to see that it keeps serving. Prints: file size,
wall time per stage and in all, ballots signed and records written per second, the
slowest `status` answer during the import, the daemon's RSS before and after and its
peak RSS (VmHWM), and the database size. It does not count the result: Equal Shares
at this size is issue 12's (a greedy count of the file is timed separately with
--results).

Prints figures; never asserts them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "cli"))

from pb_gen import warsaw_like  # noqa: E402
from procs import free_port, stop_group, wait_for  # noqa: E402

from node.config import Config, DataDir  # noqa: E402
from node.control import call  # noqa: E402


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--voters", type=int, default=100_000)
    parser.add_argument("--rule", default="greedy", help="the file's rule (greedy or mes)")
    parser.add_argument("--results", action="store_true", help="also time `results`")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args()

    t = time.monotonic()
    data = warsaw_like(args.projects, args.voters, rule=args.rule)
    print(
        f"file: {args.projects} projects, {args.voters:,} voters, {len(data) / 1e6:.2f} MB "
        f"(generated in {time.monotonic() - t:.1f} s)"
    )
    base = Path(tempfile.mkdtemp(prefix="bench-import-"))
    dd = DataDir(base / "node")
    port = free_port()
    dd.init(
        Config(
            name="import",
            scope="eu/pl/warszawa",
            mdns=False,
            listen=(f"/ip4/127.0.0.1/tcp/{port}",),
        )
    )
    cmd = [sys.executable, "-c", "from cli.main import main; main()"]
    cmd += ["--data-dir", str(dd.root), "run", "--no-mdns", "--log-level", "warning"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: call(dd.socket, "status"), 120, "daemon up")
        before = proc_status(proc.pid)
        stages: dict[str, float] = {}
        started = time.monotonic()

        def on_progress(done: int, total: int, what: str) -> None:
            stages.setdefault(what, time.monotonic() - started)

        slowest = [0.0]
        polls = [0]
        lat: list[tuple[float, float]] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                t0 = time.monotonic()
                call(dd.socket, "status", timeout=60)
                slowest[0] = max(slowest[0], time.monotonic() - t0)
                lat.append((time.monotonic() - t0, t0 - started))
                polls[0] += 1
                stop.wait(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        out = call(
            dd.socket,
            "gov_budget_import",
            {},
            payload=data,
            on_progress=on_progress,
            timeout=120,
        )
        wall = time.monotonic() - started
        stop.set()
        poller.join()
        after = proc_status(proc.pid)
        print(f"import: {wall:.2f} s wall for {out['voters']:,} ballots, {out['records']} records")
        marks = [*sorted(stages.items(), key=lambda kv: kv[1]), ("done", wall)]
        print(
            "stages (first progress line at): "
            + ", ".join(f"{what} {at:.2f} s" for what, at in marks)
        )
        print(
            f"rate: {out['voters'] / wall:,.0f} ballots signed and frozen/s, "
            f"{out['records'] / wall:,.0f} records written/s "
            f"({out['chunks']} close chunks)"
        )
        print(
            f"daemon kept serving: {polls[0]} status calls during the import, "
            f"slowest {slowest[0] * 1000:.0f} ms; "
            + ", ".join(f"{ms * 1000:.0f} ms at {at:.1f} s" for ms, at in sorted(lat)[-5:])
        )
        print(
            f"daemon RSS: {before['VmRSS'] / 1024:.0f} MB before, "
            f"{after['VmRSS'] / 1024:.0f} MB after, peak {after['VmHWM'] / 1024:.0f} MB; "
            f"db {dd.db.stat().st_size / 1e6:.1f} MB"
        )
        if args.results:
            t = time.monotonic()
            res = call(dd.socket, "gov_results", {"proposal": out["proposal"]}, timeout=600)
            print(
                f"results ({res['method']}): {time.monotonic() - t:.2f} s, "
                f"counted {res['counted']:,}, {len(res['winners'])} winners"
            )
            print(f"daemon peak RSS after results: {proc_status(proc.pid)['VmHWM'] / 1024:.0f} MB")
    finally:
        stop_group(proc)
        if args.keep:
            print(f"data dir kept: {dd.root}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
