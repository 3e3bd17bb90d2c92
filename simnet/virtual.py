"""Virtual mode: N simulated nodes in one process, on virtual time.

Wires the pieces: the workload (`simnet.workload`), one `SimNode` (the daemon's core)
and one `GossipNode` per node, the in-memory `VirtualNetwork`, anti-entropy with real
`SyncSession` pairs exchanging real bytes, heartbeats, faults, and the convergence
`Tracker`. Every random choice comes from `random.Random`s seeded from the scenario
seed, and events run in (time, order) order, so a seed gives one run.
"""

from __future__ import annotations

import gc
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node import model
from node.core import Source
from node.crdt.record import sign_record
from node.crdt.sync import SyncError, SyncSession
from node.keys import Identity
from node.planning.pace import RollupPace
from simnet.events import Scheduler
from simnet.federation import found
from simnet.gossip import GossipNode, GossipStats, MessageStore
from simnet.network import VirtualNetwork
from simnet.scenario import Scenario
from simnet.simnode import SimNode
from simnet.tracker import Tracker
from simnet.trust import VerifiedCache
from simnet.workload import NodeSpec, Write, build_nodes, build_sybils, build_writes

EPOCH_MS = 1_798_761_600_000  # 2027-01-01T00:00Z: virtual time 0
PUBLISH_EVERY = 0.05  # as node.daemon: a burst of writes joins one gossip message
TICK = 1.0  # virtual seconds between progress updates and the stop check

Progress = Callable[[float, int, int], None]  # (virtual time, converged, created)


@dataclass
class SyncCounters:
    started: int = 0
    completed: int = 0
    failed: int = 0
    aborted: int = 0
    records: int = 0


@dataclass
class SybilCounters:
    written: int = 0


@dataclass
class RollupCounters:
    written: int = 0  # rollup records signed by attesters
    bytes: int = 0


@dataclass
class Faults:
    partitions: list[tuple[float, float]] = field(default_factory=list)
    rejoins: int = 0


class VirtualSim:
    """One virtual run of a scenario.

    Args:
        scenario: what to run.
        progress: called every virtual second with (time, converged, created).
    """

    def __init__(self, scenario: Scenario, progress: Progress | None = None) -> None:
        t0 = time.perf_counter()
        self.scenario = s = scenario
        self.progress = progress
        seed = s.seed
        self.sched = Scheduler()
        self.honest = s.nodes  # nodes 0 .. honest-1; strangers (sybil runs) after them
        total = s.nodes + s.sybil.nodes
        self.net = VirtualNetwork(total, s.network, self.sched, random.Random(f"{seed}/net"))
        self._rng = random.Random(f"{seed}/sim")
        self._sync_rng = random.Random(f"{seed}/sync")
        work = random.Random(f"{seed}/work")
        self.specs: list[NodeSpec] = build_nodes(s, work)
        self.writes: list[Write] = build_writes(s, self.specs, work)
        self.sybil_specs = build_sybils(s, self.specs, random.Random(f"{seed}/sybil"))
        self.cache = VerifiedCache() if s.trust() else None
        rss0 = _rss()
        sample = s.run.balance_index == "sample"
        self.charter, founding = found(self.specs)
        names: dict[tuple[str, str], tuple[str, str]] = {}  # shared by every replica
        rollup_cache: dict[Any, dict[str, Any]] = {}  # a region's computations, shared
        counts: dict[Any, Any] = {}  # by every balance index
        self.founding = [r for records in founding.values() for r in records]
        self.nodes = [
            SimNode(
                spec,
                self._now_ms,
                self.cache,
                with_index=not sample or spec.index < 3 * s.workload.regions,
                charter=self.charter,
                preload=[r for p in spec.partitions for r in founding.get(p, ())],
                names=names,
                rollup_cache=rollup_cache,
                counts=counts,
            )
            for spec in self.specs
        ]
        # Strangers run the same core without admission, and keep and relay nothing:
        # they only push their own records (and drop what honest nodes send through them).
        self.nodes += [
            SimNode(spec, self._now_ms, self.cache, with_index=False, hoarder=False)
            for spec in self.sybil_specs
        ]
        self.sybil = SybilCounters()
        self.rollup_stats = RollupCounters()
        self.rollups_written: list[Any] = []  # for the oracle of the final check
        self._attested_at = [-1] * (s.nodes + s.sybil.nodes)
        self._paces = [RollupPace(s.run.rollup_max_wait) for _ in range(s.nodes)]
        subs = [n.partitions for n in self.nodes]
        followers: dict[str, list[int]] = {}
        for i, parts in enumerate(subs[: self.honest]):
            for p in parts:
                followers.setdefault(p, []).append(i)
        self.followers = followers
        self.tracker = Tracker(followers, self.net.online, lambda: self.sched.now)
        self.gstats = GossipStats()
        self.store = MessageStore(total)
        gossip_rng = random.Random(f"{seed}/gossip")
        self.gossip: list[GossipNode] = []
        for i, node in enumerate(self.nodes):
            if i < self.honest:
                node.replica.add_listener(self.tracker.listener(i))
            self.gossip.append(
                GossipNode(
                    i,
                    node.partitions,
                    subs,
                    self.gossip,
                    self.net,
                    self.store,
                    s.gossip,
                    gossip_rng,
                    self.gstats,
                    node.validate_gossip,
                    self._counts_for(i) if i < self.honest else None,
                )
            )
        self._build_topology()
        self.setup_rss = _rss() - rss0
        self.sync = SyncCounters()
        self.faults = Faults()
        self._flush_due = [False] * total
        self.started_at = [0.0] * total
        self._deferred: dict[int, list[Write]] = {}
        self.written: list[Any] = []  # every record written, in order (the oracle's input)
        self._writes_left = len(self.writes)
        self._last_fault = 0.0
        self.last_write_time = 0.0
        self.stopped_at = 0.0
        self.setup_seconds = time.perf_counter() - t0
        self.run_seconds = 0.0

    def _counts_for(self, i: int) -> Callable[[int], bool]:
        """Node i's view of whether peer j's node counts (its admission state)."""
        core = self.nodes[i].core

        def counts(j: int) -> bool:
            return core.admission.counts(self.nodes[j].origin)

        return counts

    def _now_ms(self) -> int:
        return EPOCH_MS + int(self.sched.now * 1000)

    # --- topology ----------------------------------------------------------------

    def _build_topology(self) -> None:
        """Rings inside each region and across all nodes (so every topic is connected),
        then random dials: `peers` per node, `cross_region` of them outside the region."""
        rng, net, p = self._rng, self.net, self.scenario.network
        by_region: dict[str, list[int]] = {}
        for spec in self.specs:
            by_region.setdefault(spec.region, []).append(spec.index)
        everyone = list(range(len(self.specs)))
        for ring in [*by_region.values(), everyone]:
            order = ring[:]
            rng.shuffle(order)
            for a, b in zip(order, order[1:] + order[:1], strict=True):
                net.connect(a, b)
        for spec in self.specs:
            own = by_region[spec.region]
            for _ in range(max(0, p.peers - 2)):
                pool = everyone if rng.random() < p.cross_region else own
                net.connect(spec.index, pool[rng.randrange(len(pool))])
        # Strangers dial anyone of their region, honest or not (no eclipse attack: the
        # honest rings stay; see docs/benchmarks.md).
        crowd: dict[str, list[int]] = {r: list(ns) for r, ns in by_region.items()}
        for spec in self.sybil_specs:
            crowd[spec.region].append(spec.index)
        for spec in self.sybil_specs:
            pool = crowd[spec.region]
            for _ in range(p.peers):
                net.connect(spec.index, pool[rng.randrange(len(pool))])

    # --- running -----------------------------------------------------------------

    def run(self) -> VirtualSim:
        """Schedule everything and run until converged or `duration`."""
        s, sched, rng = self.scenario, self.sched, self._rng
        t0 = time.perf_counter()
        if s.network.start_window > 0:
            # A staggered cold start: every node comes up at its own time.
            starts = random.Random(f"{s.seed}/start")
            for i in range(len(self.nodes)):
                self.net.online[i] = False
                self.started_at[i] = starts.uniform(0, s.network.start_window)
                sched.at(self.started_at[i], self._start, i)
            self._last_fault = s.network.start_window
        for i in range(len(self.nodes)):
            self._schedule_flush(i)
            sched.at(rng.uniform(0, s.gossip.heartbeat), self._heartbeat, i)
            sched.at(rng.uniform(0, s.sync.interval), self._periodic_sync, i)
            if s.sync.on_connect:
                for j in self.net.neighbours[i]:
                    if i < j:
                        self._sync_on_connect(i, j)
        for w in self.writes:
            sched.at(w.time, self._write, w)
            self.last_write_time = max(self.last_write_time, w.time)
        window = max(1.0, s.workload.write_window)
        for spec in self.sybil_specs:
            sched.at(rng.uniform(0.5, window), self._sybil_acts, spec.index)
        if s.run.rollups:
            for i in range(self.honest):
                sched.at(rng.uniform(0, s.run.rollup_every), self._attest, i)
        self._schedule_faults()
        sched.at(TICK, self._tick)
        self._done = False
        # The collector's full passes walk every replica's records (~10^7 objects at
        # 1,000 nodes) each time the heap grows by a quarter, and nothing a run holds
        # is cyclic garbage: during the run only the young generations are collected,
        # once per tick (`_tick`). (No full pass at the end either: a caller that
        # exits after its report, like the CLI, keeps the collector paused over both.)
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            sched.run_until(s.duration, stop=lambda: self._done, check_every=200)
        finally:
            gc.collect(1)
            if was_enabled:
                gc.enable()
        self.stopped_at = sched.now
        self.run_seconds = time.perf_counter() - t0
        return self

    def _tick(self) -> None:
        gc.collect(1)
        if self.progress is not None:
            created = len(self.tracker.tracks)
            self.progress(self.sched.now, created - self.tracker.pending, created)
        settle = 4 * self.scenario.run.rollup_every if self.scenario.run.rollups else 0.0
        self._done = (
            self._writes_left == 0
            and self.sched.now >= self._last_fault
            and self.sched.now >= self.last_write_time + settle
            and self.tracker.pending == 0
            and not self.tracker.catching_up
            and all(self.net.online)
        )
        if not self._done:
            self.sched.after(TICK, self._tick)

    def _write(self, w: Write) -> None:
        if not self.net.online[w.node]:  # the operator posts once the node is back
            self._deferred.setdefault(w.node, []).append(w)
            return
        self._writes_left -= 1
        record = self.nodes[w.node].write(w.kind, w.key, w.body)
        self._record_written(w.node, record)
        self.last_write_time = max(self.last_write_time, self.sched.now)
        self._schedule_flush(w.node)

    def _attest(self, i: int) -> None:
        """As the daemon's attester: recompute the region's rollups when anything
        changed, publish what differs once it settled (`RollupPace`), again after
        `rollup_every`."""
        node, pace = self.nodes[i], self._paces[i]
        if self.net.online[i]:
            changed = node.replica.version != self._attested_at[i]
            self._attested_at[i] = node.replica.version
            published = node.core.rollups_due(
                pace, self.sched.now, changed=changed, hold=self.scenario.run.watch_hold
            )
            for key, body, scope in published:
                pending = node.core.prepare_write("rollup", key, body, scope)
                node.core.commit(pending)
                self.rollups_written.extend(pending.records)
                self.rollup_stats.written += 1
                self.rollup_stats.bytes += len(pending.record.raw)
            if published:
                self._schedule_flush(i)
        self.sched.after(self.scenario.run.rollup_every, self._attest, i)

    def _sybil_acts(self, i: int) -> None:
        """A stranger posts, applies, invites and has invented members vote."""
        y, node, rng = self.scenario.sybil, self.nodes[i], self._rng
        spec = node.spec
        written = [
            node.write("node", "self", {"name": spec.name, "kind": "commune", "scope": spec.scope})
        ]
        founder = self.charter.founders[rng.randrange(len(self.charter.founders))]
        application = {"invite": f"{founder.hex()}.{'a' * 8}", "secret": rng.randbytes(32).hex()}
        written.append(node.write("apply", "self", application))
        for k in range(y.invites):
            hashed = model.invite_hash(rng.randbytes(32))
            written.append(node.write("invite", f"spam{k:04d}", {"hash": hashed}))
        for k in range(y.records):
            kind = "need" if k % 2 else "capacity"
            body: dict[str, Any] = {
                "item": "potatoes",
                "qty": "100000",
                "unit": "t",
                "period": "2027-Q1",
            }
            if kind == "need":
                body["priority"] = "critical"
            written.append(node.write(kind, f"f{k}", body))
        for k in range(y.members):
            member = Identity.from_seed(rng.randbytes(32))
            written.append(
                node.write("member", member.public.hex(), {"pseudonym": f"m{k}", "consent": True})
            )
            vote = sign_record(
                member.signer(),
                member.public,
                "vote",
                "0123456789abcdef.p",
                1,
                0,
                spec.scope,
                {"ballot": ["a"]},
            )
            node.core.ingest([vote.raw], Source.SUBMIT)
            written.append(vote)
        self.sybil.written += len(written)
        self._schedule_flush(i)

    def _record_written(self, node: int, record: Any) -> None:
        self.written.append(record)
        self.tracker.created(record, node)

    def _schedule_flush(self, i: int) -> None:
        if not self._flush_due[i]:
            self._flush_due[i] = True
            self.sched.after(PUBLISH_EVERY, self._flush, i)

    def _flush(self, i: int) -> None:
        self._flush_due[i] = False
        if not self.net.online[i]:
            return  # published when it is back (the outbox is kept)
        for topic, data in self.nodes[i].take_batches():
            self.gossip[i].publish(topic, data)

    def _heartbeat(self, i: int) -> None:
        if self.net.online[i]:
            self.gossip[i].heartbeat()
        self.sched.after(self.scenario.gossip.heartbeat, self._heartbeat, i)

    # --- anti-entropy --------------------------------------------------------------

    def _periodic_sync(self, i: int) -> None:
        live = self.net.live_neighbours(i)
        if live:
            self._start_sync(i, live[self._sync_rng.randrange(len(live))])
        self.sched.after(self.scenario.sync.interval, self._periodic_sync, i)

    def _sync_on_connect(self, a: int, b: int) -> None:
        """As the daemon: of the two ends of a new connection, the one with the smaller
        peer id starts the session (periodic rounds cover a missed one)."""
        if self.nodes[a].peer_id < self.nodes[b].peer_id:
            self._start_sync(a, b)
        else:
            self._start_sync(b, a)

    def _start_sync(self, a: int, b: int) -> None:
        if not self.net.up(a, b):
            return
        self.sync.started += 1
        init = self.nodes[a].sync_session(True, self._sync_rng)
        resp = self.nodes[b].sync_session(False, self._sync_rng)
        msg = init.generate_message()
        assert msg is not None
        self.net.send(a, b, "sync", len(msg), self._sync_step, init, resp, a, b, msg, reliable=True)

    def _sync_step(
        self, frm_s: SyncSession, to_s: SyncSession, frm: int, to: int, data: bytes
    ) -> None:
        try:
            to_s.receive_message(data)
        except SyncError:
            self.sync.failed += 1
            return
        self.nodes[to].ingest_sync(to_s)
        if self.nodes[to].outbox:
            self._schedule_flush(to)  # records the sync brought are gossiped on
        reply = to_s.generate_message()
        if reply is None:
            if frm_s.done and to_s.done:
                self.sync.completed += 1
                self.sync.records += frm_s.stats.records_received + to_s.stats.records_received
            return
        if not self.net.up(to, frm):
            self.sync.aborted += 1
            return
        self.net.send(
            to, frm, "sync", len(reply), self._sync_step, to_s, frm_s, to, frm, reply, reliable=True
        )

    # --- faults --------------------------------------------------------------------

    def _schedule_faults(self) -> None:
        s, rng = self.scenario, random.Random(f"{self.scenario.seed}/faults")
        for p in s.partition:
            order = list(range(s.nodes))
            rng.shuffle(order)
            group = [0] * s.nodes
            for k, n in enumerate(order):
                group[n] = k % p.groups
            self.sched.at(p.at, self._split, group)
            self.sched.at(p.heal, self._heal)
            self.faults.partitions.append((p.at, p.heal))
            self._last_fault = max(self._last_fault, p.heal)
        c = s.churn
        leavers = rng.sample(range(s.nodes), round(c.fraction * s.nodes)) if c.fraction else []
        for n in leavers:
            t = rng.uniform(c.start, c.end)
            self.sched.at(t, self._leave, n)
            self.sched.at(t + c.downtime, self._rejoin, n)
            self._last_fault = max(self._last_fault, t + c.downtime)

    def _split(self, group: list[int]) -> None:
        self._change_links(None, lambda: setattr(self.net, "group", group))

    def _heal(self) -> None:
        self._change_links(None, lambda: setattr(self.net, "group", None))

    def _leave(self, n: int) -> None:
        def leave() -> None:
            self.net.online[n] = False
            self.tracker.node_left(n)

        self._change_links(n, leave)

    def _start(self, n: int) -> None:
        def start() -> None:
            self.net.online[n] = True
            self.tracker.node_joined(n, first=True)

        self._change_links(n, start)
        for w in self._deferred.pop(n, []):
            self._write(w)
        self._schedule_flush(n)

    def _rejoin(self, n: int) -> None:
        def rejoin() -> None:
            self.net.online[n] = True
            self.faults.rejoins += 1
            self.tracker.node_joined(n)

        self._change_links(n, rejoin)
        for w in self._deferred.pop(n, []):
            self._write(w)
        self._schedule_flush(n)

    def _up_links(self, only: int | None) -> set[tuple[int, int]]:
        nodes = range(len(self.nodes)) if only is None else [only]
        return {
            (min(a, b), max(a, b))
            for a in nodes
            for b in self.net.neighbours[a]
            if self.net.up(a, b)
        }

    def _change_links(self, only: int | None, change: Callable[[], None]) -> None:
        """Apply a fault; links that went down leave the meshes at once (the connection
        closed), links that came up sync at once (the daemon syncs on connect)."""
        was_up = self._up_links(only)
        change()
        now_up = self._up_links(only)
        for a, b in sorted(was_up - now_up):
            self.gossip[a].link_down(b)
            self.gossip[b].link_down(a)
        if self.scenario.sync.on_connect:
            for a, b in sorted(now_up - was_up):
                self._sync_on_connect(a, b)


def _rss() -> int:
    """Peak resident set size of this process, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
