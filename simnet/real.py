"""Real mode: N daemons on 127.0.0.1 with real libp2p, spread over a few shard processes.

Each node gets its own data dir (key, config, SQLite store, control socket), made with
`DataDir.init`; peers find each other through bootstrap addresses in the same shape as
the virtual topology (rings per region and across all nodes, plus random dials). The
shards (`simnet.shard`) run several `Daemon`s each in one trio loop. The workload is
the scenario's, on real seconds: posts and withdrawals go through each node's control
socket (`post`, `withdraw`; the daemon has no update op, so an update is a new post).
Convergence is polled (`list` of all needs and capacities on every node every
`poll` seconds, so per-record times are accurate to one poll), then the final check
compares every node's `digest` within its region and the region's `balance` rows.

Faults: real mode applies none of the scenario's loss, duplication, latency,
partitions or churn (loopback TCP, no packet shaping without root); the report lists
them under ``faults_not_applied``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from node.config import Config, DataDir
from node.control import call
from node.errors import LocalError
from node.keys import Identity
from node.net import peer_id_from_seed
from node.store import Store
from simnet.federation import found
from simnet.report import percentiles
from simnet.scenario import Scenario, as_dict
from simnet.workload import NodeSpec, build_nodes, build_writes

READY_TIMEOUT = 60.0


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound and released: a small race)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def dial_plan(
    specs: list[NodeSpec], peers: int, cross: float, rng: random.Random
) -> list[set[int]]:
    """Who dials whom: rings per region and across all nodes, then random dials."""
    out: list[set[int]] = [set() for _ in specs]
    by_region: dict[str, list[int]] = {}
    for s in specs:
        by_region.setdefault(s.region, []).append(s.index)
    everyone = [s.index for s in specs]
    for ring in [*by_region.values(), everyone]:
        if len(ring) > 1:
            for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
                if a != b and a not in out[b]:
                    out[a].add(b)
    for s in specs:
        own = by_region[s.region]
        for _ in range(max(0, min(peers, len(specs) - 1) - 2)):
            pool = everyone if rng.random() < cross else own
            b = pool[rng.randrange(len(pool))]
            if b != s.index and s.index not in out[b]:
                out[s.index].add(b)
    return out


class RealCluster:
    """Data dirs, shard processes and control calls of one real run."""

    def __init__(self, scenario: Scenario, shards: int | None = None) -> None:
        self.scenario = scenario
        self.root = Path(tempfile.mkdtemp(prefix="simnet-", dir="/tmp"))
        self.specs = build_nodes(scenario, random.Random(f"{scenario.seed}/work"))
        self.n_shards = shards or max(1, min(8, math.ceil(scenario.nodes / 5)))
        self.procs: list[subprocess.Popen[str]] = []
        self.socks: list[Path] = []
        self.peak_rss_kb: list[int] = []

    def prepare(self) -> None:
        s = self.scenario
        ports = free_ports(s.nodes)
        dirs, peer_ids = [], []
        # One federation, founded before the run as in virtual mode: its founding
        # records go into every node's store (those of the partitions it follows).
        charter, founding = found(self.specs)
        for spec in self.specs:
            dd = DataDir(self.root / f"n{spec.index}")
            identity = dd.init(
                Config(
                    name=spec.name,
                    kind=spec.kind,
                    scope=spec.scope,
                    mdns=False,
                    sync_interval=s.sync.interval,
                    charter=charter.body(),
                ),
                listen_port=ports[spec.index],
                identity=Identity.from_seed(spec.seed),
            )
            store = Store(dd.db)
            try:
                store.save([r for p in spec.partitions for r in founding.get(p, ())])
            finally:
                store.close()
            dirs.append(dd)
            peer_ids.append(peer_id_from_seed(identity.seed))
        plan = dial_plan(
            self.specs, s.network.peers, s.network.cross_region, random.Random(f"{s.seed}/net")
        )
        for spec, dd in zip(self.specs, dirs, strict=True):
            _, config = dd.load()
            boot = tuple(
                f"/ip4/127.0.0.1/tcp/{ports[j]}/p2p/{peer_ids[j]}" for j in sorted(plan[spec.index])
            )
            dd.write_config(replace(config, bootstrap=boot))
        self.socks = [dd.socket for dd in dirs]
        for k in range(self.n_shards):
            entries = [
                {"data_dir": str(dirs[i].root), "port": ports[i], "sync_interval": s.sync.interval}
                for i in range(k, s.nodes, self.n_shards)
            ]
            path = self.root / f"shard{k}.json"
            path.write_text(json.dumps(entries))
            log = open(self.root / f"shard{k}.log", "w")  # noqa: SIM115 - closed by the child
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "simnet.shard", str(path)],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
            )
            log.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for k, p in enumerate(self.procs):
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready" or time.monotonic() > deadline:
                raise LocalError(f"shard {k} did not start; see {self.root}/shard{k}.log")

    def call(self, i: int, op: str, **args: Any) -> Any:
        return call(self.socks[i], op, {k: v for k, v in args.items() if v is not None})

    def stop(self) -> None:
        for p in self.procs:
            self.peak_rss_kb.append(_vm_hwm(p.pid))
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_real(
    scenario: Scenario,
    *,
    shards: int | None = None,
    console: Console | None = None,
    poll: float | None = None,
) -> dict[str, Any]:
    """Run the scenario's workload on real daemons and report like virtual mode."""
    cluster = RealCluster(scenario, shards)
    poll = poll or (0.5 if scenario.nodes <= 10 else 1.0)
    t_start = time.monotonic()
    try:
        cluster.prepare()
        cluster.wait_ready()
        _wait_connected(cluster, 30.0)
        setup = time.monotonic() - t_start
        if console is not None:
            console.print(
                f"[bold]simnet real[/]: {scenario.nodes} daemons in "
                f"{cluster.n_shards} processes up in {setup:.1f} s; writing"
            )
        result = _drive(cluster, scenario, poll, console)
        result["setup_s"] = round(setup, 3)
        result["check"] = _final_check(cluster)
        result["ok"] = result["check"]["ok"] and result["records_unconverged"] == 0
        status = [cluster.call(i, "status") for i in range(scenario.nodes)]
    finally:
        cluster.stop()
    records = max(1, result["records"])
    g_out = sum(s["gossip"]["messages_out"] for s in status)
    g_in = sum(s["gossip"]["messages_in"] for s in status)
    b_out = sum(s["gossip"]["bytes_out"] for s in status)
    result["traffic"] = {
        "gossip_messages_out": g_out,
        "gossip_messages_in": g_in,
        "gossip_bytes_out": b_out,
        "sync_ok": sum(s["sync"]["ok"] for s in status),
        "sync_failed": sum(s["sync"]["failed"] for s in status),
        "messages_per_record": round(g_out / records, 3),
        "bytes_per_record": round(b_out / records, 1),
    }
    w = scenario
    result["faults_not_applied"] = [
        name
        for name, on in [
            ("loss", w.network.loss > 0),
            ("duplicate", w.network.duplicate > 0),
            ("partition", bool(w.partition)),
            ("churn", w.churn.fraction > 0),
        ]
        if on
    ]
    return {
        "mode": "real",
        "scenario": as_dict(scenario),
        "result": result,
        "machine": {
            "shards": cluster.n_shards,
            "wall_run_s": round(time.monotonic() - t_start, 3),
            "peak_rss_mb": round(sum(cluster.peak_rss_kb) / 1024, 1),
            "peak_rss_mb_per_daemon": round(sum(cluster.peak_rss_kb) / 1024 / scenario.nodes, 1),
        },
    }


def _wait_connected(cluster: RealCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(cluster.call(i, "status")["peers"] for i in range(cluster.scenario.nodes)):
            time.sleep(2.0)  # a couple of heartbeats for the gossip meshes
            return
        time.sleep(0.2)
    raise LocalError("real simnet: some daemons found no peer within 30 s")


def _drive(
    cluster: RealCluster, scenario: Scenario, poll: float, console: Console | None
) -> dict[str, Any]:
    specs = cluster.specs
    writes = build_writes(scenario, specs, random.Random(f"{scenario.seed}/work"))
    followers: dict[str, list[int]] = {}
    for s in specs:
        for p in s.partitions:
            followers.setdefault(p, []).append(s.index)
    keys: dict[tuple[int, str], str] = {}
    # (origin hex, kind, key) -> [created, seq, author, region, converged]
    tracks: dict[tuple[str, str, str], list[Any]] = {}
    t0 = time.monotonic()
    next_poll = t0 + poll
    pending_writes = list(writes)
    deadline = t0 + scenario.duration
    converged_at: float | None = None
    next_print = 5.0
    while time.monotonic() < deadline:
        now = time.monotonic() - t0
        while pending_writes and pending_writes[0].time <= now:
            w = pending_writes.pop(0)
            if w.body is None:
                key = keys.get((w.node, w.key))
                if key is None:
                    continue
                rec = cluster.call(w.node, "withdraw", kind=w.kind, key=key)
            else:
                b = w.body
                rec = cluster.call(
                    w.node,
                    "post",
                    kind=w.kind,
                    item=b["item"],
                    qty=b["qty"],
                    unit=b["unit"],
                    period=b["period"],
                    priority=b.get("priority"),
                )
                keys[(w.node, w.key)] = rec["id"]
            tracks[(rec["origin"], rec["kind"], rec["id"])] = [
                time.monotonic() - t0,
                rec["seq"],
                w.node,
                specs[w.node].region,
                None,
            ]
        if time.monotonic() >= next_poll:
            next_poll += poll
            _poll(cluster, tracks, followers, time.monotonic() - t0)
            done = sum(1 for t in tracks.values() if t[4] is not None)
            if console is not None and now >= next_print:
                next_print += 5.0
                console.print(
                    f"  {now:6.1f} s: {len(tracks):,} written, {done:,} converged", highlight=False
                )
            if not pending_writes and done == len(tracks):
                converged_at = time.monotonic() - t0
                break
        time.sleep(0.01)
    # Needs and capacities are tracked one by one; node records and anything else
    # count once every digest agrees.
    equal_at = _wait_digests(cluster, deadline, poll)
    digests_after = None if equal_at is None else round(equal_at - t0 - last_write_of(tracks), 3)
    lat = [t[4] - t[0] for t in tracks.values() if t[4] is not None]
    last_write = last_write_of(tracks)
    return {
        "nodes": scenario.nodes,
        "records": len(tracks),
        "records_unconverged": sum(1 for t in tracks.values() if t[4] is None),
        "poll_s": poll,
        "convergence_s": percentiles(lat),
        "global_convergence_after_last_write_s": None
        if converged_at is None
        else round(converged_at - last_write, 3),
        "digests_equal_after_last_write_s": digests_after,
        "partitions": [],
    }


def last_write_of(tracks: dict[tuple[str, str, str], list[Any]]) -> float:
    return max((t[0] for t in tracks.values()), default=0.0)


def _wait_digests(cluster: RealCluster, deadline: float, poll: float) -> float | None:
    """Poll until every node's digest equals its region's; the time, or None."""
    while time.monotonic() < deadline:
        groups: dict[tuple[str, ...], set[str]] = {}
        for s in cluster.specs:
            groups.setdefault(s.partitions, set()).add(cluster.call(s.index, "digest")["digest"])
        if all(len(d) == 1 for d in groups.values()):
            return time.monotonic()
        time.sleep(poll)
    return None


def _poll(
    cluster: RealCluster,
    tracks: dict[tuple[str, str, str], list[Any]],
    followers: dict[str, list[int]],
    now: float,
) -> None:
    open_tracks = {k: t for k, t in tracks.items() if t[4] is None}
    if not open_tracks:
        return
    regions = {t[3] for t in open_tracks.values()}
    held: dict[int, dict[tuple[str, str, str], int]] = {}
    for region in regions:
        for i in followers[region]:
            if i in held:
                continue
            have: dict[tuple[str, str, str], int] = {}
            for kind in ("need", "capacity"):
                for r in cluster.call(i, "list", kind=kind, all=True, withdrawn=True):
                    have[(r["origin"], kind, r["id"])] = r["seq"]
            held[i] = have
    for key, t in open_tracks.items():
        if all(held[i].get(key, 0) >= t[1] for i in followers[t[3]]):
            t[4] = now


def _final_check(cluster: RealCluster) -> dict[str, Any]:
    digests: dict[tuple[str, ...], set[str]] = {}
    balance_mismatch = []
    by_region: dict[str, list[int]] = {}
    for s in cluster.specs:
        digests.setdefault(s.partitions, set()).add(cluster.call(s.index, "digest")["digest"])
        by_region.setdefault(s.region, []).append(s.index)
    for region, members in sorted(by_region.items()):
        rows = [cluster.call(i, "balance", scope=region)["levels"][0]["rows"] for i in members]
        balance_mismatch += [i for i, r in zip(members, rows, strict=True) if r != rows[0]]
    differ = sum(len(d) - 1 for d in digests.values())
    return {
        "ok": differ == 0 and not balance_mismatch,
        "nodes": len(cluster.specs),
        "digest_groups": sum(len(d) for d in digests.values()),
        "digest_mismatch_count": differ,
        "balance_mismatch_count": len(balance_mismatch),
        "balance_checked_nodes": len(cluster.specs),
    }
