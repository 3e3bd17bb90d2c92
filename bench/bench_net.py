"""Network benchmarks: real daemons on loopback (py-libp2p, Noise, yamux, gossipsub).

Run:
    python bench/bench_net.py convergence --nodes 10
    python bench/bench_net.py convergence --nodes 30
    python bench/bench_net.py footprint --records 10000 --seconds 60

convergence: N nodes sharded over a few OS processes (each runs several `Daemon`s in
one trio loop), a random connected topology (each node dials ~3 others, a spanning
tree first), then `--posts` needs posted one after another at one node. For each
post: the time until every node holds it (polled over the control sockets), and
bytes on the wire: gossip payload bytes from the nodes' counters, and every byte
written to libp2p TCP connections (counted in each shard process), minus the idle
background (heartbeats, pings) measured before the posts.

footprint: one `allmende run` daemon holding `--records` records (written straight
into its store), no peers: idle RSS and CPU over `--seconds` from /proc/<pid>.

Prints figures; never asserts them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from procs import free_port, wait_for  # noqa: E402

from node.config import Config, DataDir  # noqa: E402
from node.control import call  # noqa: E402

SCOPE = "eu/de/bench"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --- shard process: several daemons in one trio loop --------------------------------


def run_shard(dirs: list[str], sync_interval: float, rollups: bool, mesh: int) -> None:
    import trio
    from libp2p.io import trio as libp2p_trio_io

    from node.daemon import Daemon, setup_logging
    from node.ops import TABLE, OpSpec

    setup_logging("warning")
    if not rollups:
        # Without its attester a node writes no rollup records: each post is one record
        # on the wire, as when this bench was written (issue 3).
        async def no_attester(self: Any) -> None:
            await trio.sleep_forever()

        Daemon._attester = no_attester  # type: ignore[method-assign]
    if mesh:
        # Mesh degree D (D_low = D - 1, D_high = 2 D) in place of the default 6/4/12.
        import dataclasses

        from node.net import service

        build_router = service.build_router

        def router_with_degree(config: Any, *args: Any) -> Any:
            config = dataclasses.replace(
                config, degree=mesh, degree_low=max(1, mesh - 1), degree_high=2 * mesh
            )
            return build_router(config, *args)

        service.build_router = router_with_degree  # type: ignore[assignment]
    wire: dict[str, int] = {"bytes_sent": 0, "writes": 0}
    original_write = libp2p_trio_io.TrioTCPStream.write

    async def counting_write(self: Any, data: bytes) -> None:
        wire["bytes_sent"] += len(data)
        wire["writes"] += 1
        await original_write(self, data)

    # Every byte py-libp2p writes to a TCP connection (Noise frames: gossip, control,
    # identify, ping, sync) goes through TrioTCPStream.write.
    libp2p_trio_io.TrioTCPStream.write = counting_write  # type: ignore[method-assign]
    count_pubsub_rpcs(wire)
    TABLE["bench_wire"] = OpSpec(lambda _ctx, _args: dict(wire))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                for d in dirs:
                    dd = DataDir(Path(d))
                    identity, config = dd.load()
                    daemon = Daemon(dd, identity, config, mdns=False, sync_interval=sync_interval)
                    await nursery.start(daemon.run)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)


def rpc_parts(rpc: Any) -> dict[str, int]:
    """Bytes of one pubsub RPC by part, each with its protobuf tag and length.

    `publish.topic+framing` is what a message adds beyond its data and signature
    fields; `pubsub.framing` the RPC's own length prefix.
    """
    from libp2p.utils import encode_uvarint

    def wrapped(n: int) -> int:  # a length-delimited field of n bytes
        return 1 + len(encode_uvarint(n)) + n

    parts: dict[str, int] = {}

    def add(name: str, n: int) -> None:
        if n:
            parts[name] = parts.get(name, 0) + n

    for m in rpc.publish:
        data = wrapped(len(m.data))
        auth = sum(
            wrapped(len(getattr(m, name)))
            for name in ("from_id", "seqno", "signature", "key")
            if m.HasField(name)
        )
        add("publish.data", data)
        add("publish.from+seqno+signature+key", auth)
        add("publish.topic+framing", wrapped(m.ByteSize()) - data - auth)
    add("subscriptions", sum(wrapped(x.ByteSize()) for x in rpc.subscriptions))
    if rpc.HasField("control"):
        c = rpc.control
        names = ("ihave", "iwant", "graft", "prune", "idontwant")
        sizes = {n: sum(wrapped(x.ByteSize()) for x in getattr(c, n)) for n in names}
        for n in names:
            add(f"control.{n}", sizes[n])
        add("control.framing", wrapped(c.ByteSize()) - sum(sizes.values()))
    if rpc.HasField("senderRecord"):
        add("senderRecord", wrapped(len(rpc.senderRecord)))
    add("pubsub.framing", len(encode_uvarint(rpc.ByteSize())))
    return parts


def count_pubsub_rpcs(wire: dict[str, int]) -> None:
    """Count the pubsub RPC bytes each node writes, by part, into `wire` ("rpc:<part>")."""
    from libp2p.pubsub.pb import rpc_pb2

    from node.net import pubsub as ours

    def tally(encoded: bytes) -> None:
        # The encoded RPC after its varint length prefix.
        pos = 0
        while encoded[pos] & 0x80:
            pos += 1
        rpc = rpc_pb2.RPC()
        rpc.ParseFromString(encoded[pos + 1 :])
        for part, n in rpc_parts(rpc).items():
            wire["rpc:" + part] = wire.get("rpc:" + part, 0) + n
        wire["rpc:count"] = wire.get("rpc:count", 0) + 1
        wire["rpc:bytes"] = wire.get("rpc:bytes", 0) + len(encoded)

    encode = getattr(ours.AllmendePubsub, "encode_rpc", None)
    if encode is not None:

        def counting_encode(self: Any, stream: Any, rpc: Any) -> bytes:
            encoded: bytes = encode(self, stream, rpc)
            tally(encoded)
            return encoded

        ours.AllmendePubsub.encode_rpc = counting_encode  # type: ignore[method-assign]
        return
    # The code before the change: py-libp2p's write_msg writes the RPC as given.
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.utils import encode_uvarint

    write_msg = Pubsub.write_msg

    async def counting_write_msg(self: Any, stream: Any, rpc: Any) -> bool:
        raw = rpc.SerializeToString()
        tally(encode_uvarint(len(raw)) + raw)
        return await write_msg(self, stream, rpc)

    Pubsub.write_msg = counting_write_msg  # type: ignore[method-assign]


# --- convergence ----------------------------------------------------------------------


def topology(n: int, degree: int, rng: random.Random) -> dict[int, set[int]]:
    """Who dials whom: a random spanning tree, then random extra dials up to `degree`."""
    dials: dict[int, set[int]] = {i: set() for i in range(n)}
    for i in range(1, n):
        dials[i].add(rng.randrange(i))
    for i in range(n):
        others = [j for j in range(n) if j != i and i not in dials[j]]
        rng.shuffle(others)
        while len(dials[i]) < min(degree, n - 1) and others:
            dials[i].add(others.pop())
    return dials


class Bench:
    def __init__(
        self,
        base: Path,
        n: int,
        shards: int,
        degree: int,
        seed: int,
        sync_interval: float,
        rollups: bool = False,
        mesh: int = 0,
    ) -> None:
        import hashlib

        from node.governance.admission import Charter
        from node.identity import Identity
        from node.net import peer_id_from_seed

        self.base = base
        self.n = n
        self.sync_interval = sync_interval
        self.rollups = rollups
        self.mesh = mesh
        self.rng = random.Random(seed)
        self.dirs = [DataDir(base / f"n{i:02d}") for i in range(n)]
        self.ports = [free_port() for _ in range(n)]
        self.dials = topology(n, degree, self.rng)
        # One federation whose founders are all the nodes: every node counts at once.
        identities = [
            Identity.from_seed(hashlib.sha256(f"bench node {seed} {i}".encode()).digest())
            for i in range(n)
        ]
        charter = Charter.of("bench", [ident.public for ident in identities]).body()
        for i, (dd, ident) in enumerate(zip(self.dirs, identities, strict=True)):
            config = Config(
                name=f"bench-{i}",
                scope=f"{SCOPE}/n{i}",
                mdns=False,
                listen=(f"/ip4/127.0.0.1/tcp/{self.ports[i]}",),
                sync_interval=sync_interval,
                charter=charter,
            )
            dd.init(config, identity=ident)
        self.peer_ids = [peer_id_from_seed(ident.seed) for ident in identities]
        self.addrs = [
            f"/ip4/127.0.0.1/tcp/{p}/p2p/{pid}"
            for p, pid in zip(self.ports, self.peer_ids, strict=True)
        ]
        self.shards = [list(range(k, n, shards)) for k in range(min(shards, n))]
        self.procs: list[subprocess.Popen[bytes]] = []

    def call(self, i: int, op: str, **args: Any) -> Any:
        return call(self.dirs[i].socket, op, args, timeout=30)

    def start(self) -> float:
        t = time.monotonic()
        for k, members in enumerate(self.shards):
            log = open(self.base / f"shard{k}.log", "wb")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "shard",
                        "--sync-interval",
                        str(self.sync_interval),
                        *(["--rollups"] if self.rollups else []),
                        *(["--mesh", str(self.mesh)] if self.mesh else []),
                        *[str(self.dirs[i].root) for i in members],
                    ],
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            log.close()
        for i in range(self.n):
            wait_for(lambda i=i: self.call(i, "status"), 120, f"node {i} up")
        # Dial only once every node listens: py-libp2p 0.8.1 refuses to redial a peer
        # for 60 s after a failed dial (swarm negative cache), so bootstrap lists
        # pointing at shards that are still starting would leave links missing.
        for i, targets in self.dials.items():
            for j in sorted(targets):
                self.call(i, "peers_add", addr=self.addrs[j])

        def linked() -> bool:
            return all(
                set(self.call(i, "peers")["connected"]) >= {self.peer_ids[j] for j in self.dials[i]}
                for i in range(self.n)
            )

        wait_for(linked, 60, "topology connected", step=0.2)
        return time.monotonic() - t

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def counts(self, nodes: list[int]) -> dict[int, int]:
        return {i: int(self.call(i, "digest")["records"]) for i in nodes}

    def wire_bytes(self) -> int:
        return self.wire()["bytes_sent"]

    def wire(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for m in self.shards:
            for k, v in self.call(m[0], "bench_wire").items():
                total[k] = total.get(k, 0) + int(v)
        return total

    def gossip_totals(self) -> dict[str, int]:
        total = {"bytes_in": 0, "bytes_out": 0, "messages_in": 0, "messages_out": 0}
        for i in range(self.n):
            g = self.call(i, "status")["gossip"]
            for k in total:
                total[k] += int(g[k])
        return total

    def wait_converged(self, timeout: float) -> None:
        def same() -> bool:
            return len({self.call(i, "digest")["digest"] for i in range(self.n)}) == 1

        wait_for(same, timeout, "all digests equal", step=0.2)


def convergence(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-net-"))
    bench = Bench(
        base,
        args.nodes,
        args.shards,
        args.degree,
        args.seed,
        args.sync_interval,
        args.rollups,
        args.mesh,
    )
    edges = sum(len(v) for v in bench.dials.values())
    print(
        f"nodes={args.nodes} shards={len(bench.shards)} dials={edges} "
        f"(~{edges / args.nodes:.1f} per node) posts={args.posts} seed={args.seed}"
    )
    try:
        started = bench.start()
        print(f"started all daemons and connected the topology in {started:.1f} s")
        t = time.monotonic()
        bench.wait_converged(120)  # node records, spread by sync-on-connect and gossip
        print(f"initial state converged in {time.monotonic() - t:.1f} s")
        time.sleep(args.settle)  # let gossipsub meshes form (1 s heartbeats)

        origin = 0
        # warm-up post (not measured): meshes and fanout are in place afterwards
        bench.call(
            origin,
            "post",
            kind="need",
            item="potatoes",
            qty="1",
            unit="kg",
            period="2027-Q1",
            priority="low",
        )
        bench.wait_converged(60)

        idle_from, idle0 = time.monotonic(), bench.wire()
        time.sleep(args.idle)
        idle1 = bench.wire()
        idle_seconds = time.monotonic() - idle_from
        idle_rate = (idle1["bytes_sent"] - idle0["bytes_sent"]) / idle_seconds

        g0, parts0, t0 = bench.gossip_totals(), bench.wire(), time.monotonic()
        w0 = parts0["bytes_sent"]
        everyone: list[float] = []
        per_node: list[float] = []
        missed = 0
        others = [i for i in range(args.nodes) if i != origin]
        for k in range(args.posts):
            base_counts = bench.counts(others)
            t_post = time.monotonic()
            bench.call(
                origin,
                "post",
                kind="need",
                item="potatoes",
                qty=str(k + 2),
                unit="kg",
                period="2027-Q1",
                priority="high",
            )
            pending = set(others)
            arrived: dict[int, float] = {}
            deadline = t_post + args.timeout
            while pending and time.monotonic() < deadline:
                for i in list(pending):
                    if bench.call(i, "digest")["records"] > base_counts[i]:
                        arrived[i] = time.monotonic() - t_post
                        pending.discard(i)
                if pending:
                    time.sleep(0.002)
            if pending:
                missed += 1
                print(f"  post {k}: {len(pending)} nodes still without it after {args.timeout} s")
                continue
            everyone.append(max(arrived.values()))
            per_node.extend(arrived.values())
            time.sleep(args.gap)
        elapsed = time.monotonic() - t0
        g1, parts1 = bench.gossip_totals(), bench.wire()
        w1 = parts1["bytes_sent"]

        n_ok = len(everyone)
        print(
            f"time until every node holds a record ({n_ok}/{args.posts} posts, "
            f"{missed} missed): p50 {pct(everyone, 50) * 1000:.0f} ms, "
            f"p99 {pct(everyone, 99) * 1000:.0f} ms, max {max(everyone) * 1000:.0f} ms"
        )
        print(
            f"per-node arrival: p50 {pct(per_node, 50) * 1000:.0f} ms, "
            f"p99 {pct(per_node, 99) * 1000:.0f} ms "
            f"(poll sweep over {len(others)} control sockets adds up to a few ms)"
        )
        posts = args.posts
        payload_in = (g1["bytes_in"] - g0["bytes_in"]) / posts
        payload_out = (g1["bytes_out"] - g0["bytes_out"]) / posts
        msgs_in = (g1["messages_in"] - g0["messages_in"]) / posts
        wire = (w1 - w0) / posts
        background = idle_rate * elapsed / posts
        print(
            f"gossip payload per record: {payload_out:.0f} B published, "
            f"{payload_in:.0f} B accepted in total over {args.nodes - 1} receivers "
            f"({msgs_in:.1f} accepted messages)"
        )
        print(
            f"TCP bytes written per record: {wire:.0f} B total, of which idle "
            f"background {background:.0f} B ({idle_rate:.0f} B/s for the whole network); "
            f"net {wire - background:.0f} B = {(wire - background) / (args.nodes - 1):.0f} B "
            f"per receiving node"
        )
        receivers = args.nodes - 1
        # Regional rollups are published meanwhile, by up to five attesters each.
        published = g1["messages_out"] - g0["messages_out"]
        print(
            f"gossip messages published: {published} for {posts} posts (the rest rollups); "
            f"net TCP bytes per published message per receiving node: "
            f"{(wire - background) * posts / published / receivers:.0f} B"
        )
        print("pubsub RPC bytes per post per receiving node, idle background taken out:")
        for key in sorted(k for k in parts1 if k.startswith("rpc:")):
            idle = (idle1.get(key, 0) - idle0.get(key, 0)) / idle_seconds * elapsed
            net = (parts1[key] - parts0.get(key, 0) - idle) / posts / receivers
            print(f"  {key[4:]:<34} {net:8.1f}")
        try:
            bench.wait_converged(60)
            print("all nodes converged after the posts")
        except TimeoutError:
            print("NOT converged 60 s after the posts")
    finally:
        bench.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


# --- footprint ------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14, 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    raise KeyError(key)


def footprint(args: argparse.Namespace) -> None:
    from bench_core import make_records

    from node.store import Store

    base = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    dd = DataDir(base / "node")
    port = free_port()
    dd.init(
        Config(
            name="footprint", scope=f"{SCOPE}/x", mdns=False, listen=(f"/ip4/127.0.0.1/tcp/{port}",)
        )
    )
    per_origin = 100
    origins = max(1, args.records // per_origin)
    t = time.monotonic()
    records = make_records(origins, per_origin, scopes=lambda k: f"{SCOPE}/c{k}")
    store = Store(dd.db)
    store.save(records)
    store.close()
    print(
        f"wrote {len(records)} records ({origins} origins) into the store in "
        f"{time.monotonic() - t:.1f} s; db {dd.db.stat().st_size / 1e6:.1f} MB"
    )
    peer_dd = DataDir(base / "peer")
    if args.peer:
        peer_dd.init(
            Config(
                name="peer",
                scope=f"{SCOPE}/y",
                mdns=False,
                listen=(f"/ip4/127.0.0.1/tcp/{free_port()}",),
            )
        )
    procs = []
    try:
        for d in [dd, peer_dd] if args.peer else [dd]:
            cmd = [
                sys.executable,
                "-c",
                "from cli.main import main; main()",
                "--data-dir",
                str(d.root),
                "run",
                "--no-mdns",
                "--log-level",
                "warning",
            ]
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        proc = procs[0]
        t = time.monotonic()
        status = wait_for(lambda: call(dd.socket, "status"), 120, "daemon up")
        print(
            f"daemon up with {status['records']} records in {time.monotonic() - t:.1f} s "
            f"(python start, imports, store load, libp2p listen)"
        )
        if args.peer:
            peer = wait_for(lambda: call(peer_dd.socket, "status"), 120, "peer up")
            call(peer_dd.socket, "peers_add", {"addr": status["listen"][0]})
            t = time.monotonic()
            wait_for(
                lambda: (
                    call(peer_dd.socket, "digest")["digest"] == call(dd.socket, "digest")["digest"]
                ),
                120,
                "peer synced",
                step=0.2,
            )
            print(
                f"a peer ({peer['peer_id'][:16]}...) connected and synced all records in "
                f"{time.monotonic() - t:.1f} s; it stays connected"
            )
        time.sleep(args.warmup)
        cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, t1 = proc_cpu_seconds(proc.pid), time.monotonic()
        rss = proc_status(proc.pid, "VmRSS") / 1024
        hwm = proc_status(proc.pid, "VmHWM") / 1024
        print(
            f"idle over {t1 - t0:.0f} s: CPU {100 * (cpu1 - cpu0) / (t1 - t0):.2f}% of one "
            f"core ({cpu1 - cpu0:.2f} s), RSS {rss:.0f} MB (peak {hwm:.0f} MB)"
        )
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convergence", help="N daemons on loopback: time and bytes per record")
    c.add_argument("--nodes", type=int, default=10)
    c.add_argument("--shards", type=int, default=3, help="OS processes")
    c.add_argument("--degree", type=int, default=3, help="peers each node dials")
    c.add_argument("--posts", type=int, default=50)
    c.add_argument("--gap", type=float, default=0.1, help="seconds between posts")
    c.add_argument("--timeout", type=float, default=15.0, help="per post")
    c.add_argument("--settle", type=float, default=3.0)
    c.add_argument("--idle", type=float, default=5.0, help="seconds of idle traffic measured")
    c.add_argument(
        "--sync-interval",
        type=float,
        default=5.0,
        help="anti-entropy rounds (default 5 s, so the initial state converges fast)",
    )
    c.add_argument("--seed", type=int, default=1)
    c.add_argument(
        "--mesh", type=int, default=0, help="gossipsub D (D_low D-1, D_high 2D); 0: 6/4/12"
    )
    c.add_argument(
        "--rollups",
        action="store_true",
        help="let attesters publish regional rollups (off: each post is one record)",
    )
    c.add_argument("--keep", action="store_true", help="keep the data dirs and shard logs")
    f = sub.add_parser("footprint", help="one daemon holding many records: RSS and idle CPU")
    f.add_argument("--records", type=int, default=10_000)
    f.add_argument("--seconds", type=float, default=60.0)
    f.add_argument("--warmup", type=float, default=10.0)
    f.add_argument(
        "--peer",
        action="store_true",
        help="keep one synced peer connected (heartbeats, pings) while idle",
    )
    s = sub.add_parser("shard", help=argparse.SUPPRESS)
    s.add_argument("--sync-interval", type=float, default=30.0)
    s.add_argument("--rollups", action="store_true")
    s.add_argument("--mesh", type=int, default=0)
    s.add_argument("dirs", nargs="+")
    args = p.parse_args()
    if args.cmd == "shard":
        run_shard(args.dirs, args.sync_interval, args.rollups, args.mesh)
    elif args.cmd == "convergence":
        convergence(args)
    else:
        footprint(args)


if __name__ == "__main__":
    main()
