"""The node daemon: wires the node core, the store, libp2p networking, the control
operations and the control socket, and runs until SIGINT/SIGTERM.

The rules are `node.core`'s; this module only decides where work runs, so that no
peer can stall the trio loop: signatures of more than a few records are verified in
a worker thread, records are merged in chunks, and every database write runs in the
single store worker (a durable local write is acknowledged only after its commit).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import trio.lowlevel

from node import control
from node.config import Config, DataDir
from node.core import NOT_BLAMED, IngestResult, Screened, Source, Verdict, decode_batch
from node.crdt.record import Record
from node.crdt.replica import Evidence
from node.crdt.sync import Role, SyncSession
from node.errors import LocalError, Rejected
from node.files import replace_private
from node.identity import Identity
from node.keys import peer_id_of, public_of_peer_id
from node.net import (
    GossipVerdict,
    NetConfig,
    NetService,
    scope_of_topic,
    split_p2p_addr,
    topic_for_scope,
)
from node.ops import TABLE, InThread, Job, Progress, Submit, Writes, check_args, plan_ops
from node.planning.pace import RollupPace
from node.rwlock import ReadWriteLock
from node.state import NodeState
from node.store import Store

if TYPE_CHECKING:
    # Only here: node.net must be the first to import libp2p (node/net/deferred.py).
    from libp2p.peer.id import ID

log = logging.getLogger("allmende.daemon")

PUBLISH_EVERY = 0.05  # seconds: batch local writes into few gossip messages
# Records screened, verified and merged per step, at most so many and so many bytes:
# keeps each step on the loop well below 50 ms (screening decodes and validates at
# about 0.1 us per byte in the worst case, bench/bench_edge.py).
INGEST_CHUNK = 512
INGEST_CHUNK_BYTES = 256 * 1024
# Below this many signatures, verifying inline is cheaper than a thread hop.
THREAD_VERIFY_MIN = 24
# Records signed here with other keys (an import's ballots) merged per step.
COMMIT_CHUNK = 2048
ROLLUP_EVERY = 10.0  # seconds between recomputations of this node's regional rollups

_VERDICTS = {
    Verdict.ACCEPT: GossipVerdict.ACCEPT,
    Verdict.IGNORE: GossipVerdict.IGNORE,
    Verdict.REJECT: GossipVerdict.REJECT,
    Verdict.RETRY: GossipVerdict.RETRY,
}


def now_ms() -> int:
    """Wall-clock milliseconds: the daemon is the edge where real time enters."""
    return time.time_ns() // 1_000_000


class _OpContext:
    """What control operations see of the daemon (`node.ops.base.OpContext`)."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.state = daemon.state
        self.net = daemon.net
        self.counters = daemon.counters

    @property
    def config(self) -> Config:
        return self._d.config

    def save_config(self, config: Config) -> None:
        self._d.config = config
        self._d.data_dir.write_config(config)

    def dial_soon(self, p2p_addr: str) -> None:
        if self._d._nursery is not None:
            self._d._nursery.start_soon(self._d.net.connect, p2p_addr)

    def now_ms(self) -> int:
        return self.state.clock.now_ms()

    def uptime(self) -> float:
        return trio.current_time() - self._d.started


class _WebBackend:
    """What the web app sees of the daemon (`web.app.Backend`): the control ops, as
    the control socket runs them, and a version that changes with the records."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon

    async def call(self, op: str, args: dict[str, Any]) -> Any:
        reply = await self._d.handle(op, {k: v for k, v in args.items() if v is not None}, None)
        return control.plain(reply)  # as a client of the socket reads it

    def version(self) -> int:
        return int(self._d.state.replica.version)

    def now_ms(self) -> int:
        return self._d.state.clock.now_ms()

    def traffic(self) -> tuple[int, int]:
        s = self._d.net.statistics()
        return s.gossip_bytes_in, s.gossip_bytes_out

    @property
    def token_path(self) -> Path:
        return self._d.data_dir.web_token


class Daemon:
    """One running node.

    Args:
        data_dir: the node's data dir (initialised).
        identity, config: loaded from it.
        listen: override of the configured listen addresses (tests, `--listen`).
        mdns: override of the configured mDNS setting.
        sync_interval: override of the configured anti-entropy interval.
        web_port: override of the configured web app port (None: as configured).
        web: override of whether the web app runs (None: as configured).
        resident: this daemon is the process's (`run_daemon`): its state is loaded
            as kept for the life of the process (`NodeState(resident=True)`).
    """

    def __init__(
        self,
        data_dir: DataDir,
        identity: Identity,
        config: Config,
        *,
        listen: list[str] | None = None,
        mdns: bool | None = None,
        sync_interval: float | None = None,
        web_port: int | None = None,
        web: bool | None = None,
        resident: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.web = config.web if web is None else web
        self.web_port = config.web_port if web_port is None else web_port
        self.web_url: str | None = None
        self.store = Store(data_dir.db)
        self.state = NodeState(identity, config, self.store, now_ms, resident=resident)
        self.core = self.state.core
        self.counters: dict[str, Counter[str]] = {
            "gossip_rejected": Counter(),
            "sync_rejected": Counter(),
            "local_errors": Counter(),
            "gossip_accepted": Counter(),
        }
        self.started = 0.0
        # Rollups of the region: recomputed this often at most (and never more rarely
        # than anti-entropy runs, so a test network with fast syncs attests quickly).
        self.rollup_every = min(ROLLUP_EVERY, sync_interval or config.sync_interval)
        self.federation = self.state.charter.id
        self._founder_peers = {peer_id_of(f) for f in self.state.charter.founders}
        self._bootstrap_cache: tuple[tuple[str, ...], frozenset[str]] = ((), frozenset())
        net_config = NetConfig(
            federation=self.federation,
            standing=self._standing,
            listen_addrs=tuple(listen or config.listen),
            scopes=tuple(self.state.partitions),
            bootstrap=tuple(config.bootstrap),
            data_dir=data_dir.root,
            enable_mdns=config.mdns if mdns is None else mdns,
            sync_interval=sync_interval or config.sync_interval,
        )
        self.net = NetService(identity.seed, self, net_config)
        self.ops = _OpContext(self)
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()
        self._store_worker = trio.CapacityLimiter(1)
        # Anti-entropy steps read the replica in worker threads; changes wait for them.
        self._replica_lock = ReadWriteLock()

    # --- persistence (one worker thread, in order) ------------------------------

    async def _save(
        self,
        records: Sequence[Record],
        *,
        evidence: Sequence[Evidence] = (),
        meta: dict[str, int] | None = None,
        durable: bool,
    ) -> None:
        save = functools.partial(
            self.store.save, records, evidence=evidence, meta=meta, durable=durable
        )
        await trio.to_thread.run_sync(save, limiter=self._store_worker)

    # --- ingest: screen (loop) -> verify (thread) -> apply (loop) -> save (worker) -----

    async def _ingest(
        self,
        raws: Sequence[bytes],
        source: Source,
        *,
        partition: str | None = None,
        partitions: Sequence[str] | None = None,
        evidence: Sequence[tuple[bytes, bytes]] = (),
        received: int | None = None,
    ) -> IngestResult:
        """Raises LocalError when saving fails (the records are merged in memory)."""
        s = self.core.screen(
            raws,
            source,
            partition=partition,
            partitions=partitions,
            evidence=evidence,
            received=received,
        )
        await self._verify(s)
        if source is Source.SUBMIT:
            # Acknowledged to a member: durable before it counts anywhere, and nothing
            # merged if it cannot be saved.
            await self._save_or_fail(s.to_save, durable=True)
        async with self._replica_lock.write():
            result = self.core.apply(s)
        if source is not Source.SUBMIT and (result.stored or result.evidence):
            await self._save_or_fail(result.stored, evidence=result.evidence, durable=False)
        elif result.evidence:
            await self._save_or_fail((), evidence=result.evidence, durable=False)
        if any(r.kind == "apply" for r in result.stored):
            await self._redeem_invites()
        if self.core.outbox:
            self._wake.set()
        return result

    async def _redeem_invites(self) -> None:
        """Endorse a newcomer who showed the secret of one of this node's invites."""
        pendings = self.core.redeem_invites()
        if pendings:
            await self._commit_writes(Writes(pendings, lambda records: None))
            log.info("event=invite.redeemed records=%d", len(pendings))

    async def _save_or_fail(
        self,
        records: Sequence[Record],
        *,
        evidence: Sequence[Evidence] = (),
        durable: bool,
    ) -> None:
        """Save records from elsewhere; a failure is this node's fault, never a peer's.

        Raises:
            LocalError: the store refused (a full disk, say).
        """
        if not records and not evidence:
            return
        try:
            await self._save(
                records, evidence=evidence, meta={"hlc": self.core.clock.last}, durable=durable
            )
        except Exception as exc:
            self.counters["local_errors"]["store"] += 1
            log.exception("event=store.failed records=%d", len(records))
            raise LocalError(f"saving records failed: {exc}") from exc

    async def _verify(self, s: Screened) -> None:
        if s.to_verify >= THREAD_VERIFY_MIN and not s.doomed:
            await trio.to_thread.run_sync(self.core.verify, s)
        else:
            self.core.verify(s)

    # --- NetHandler ------------------------------------------------------------

    async def validate_gossip(self, topic: str, data: bytes, from_peer: str) -> GossipVerdict:
        scope = scope_of_topic(topic, self.federation)
        try:
            raws = decode_batch(data)
        except Rejected as exc:
            self.counters["gossip_rejected"][exc.reason] += 1
            log.info("event=gossip.rejected peer=%s reason=%s", from_peer, exc.reason)
            return GossipVerdict.REJECT
        try:
            result = await self._ingest(raws, Source.GOSSIP, partition=scope)
        except LocalError:
            return GossipVerdict.LOCAL
        self.counters["gossip_rejected"].update(result.rejected)
        if result.verdict is Verdict.REJECT:
            log.info(
                "event=gossip.rejected peer=%s reasons=%s",
                from_peer,
                ",".join(sorted(result.rejected)),
            )
        self.counters["gossip_accepted"]["records"] += len(result.stored)
        return _VERDICTS[result.verdict]

    def _standing(self, peer: ID) -> float:
        """The application-specific score of a peer: 0 if its node counts in this
        federation (or is a founder, or a bootstrap peer the operator chose: trusted
        before their records arrive), -1 for a stranger (see
        `node.net.gossip.score_params`)."""
        pid = peer.to_base58()
        if pid in self._founder_peers or pid in self._bootstrap_peers():
            return 0.0
        key = public_of_peer_id(pid)
        return 0.0 if key is not None and self.core.admission.counts(key) else -1.0

    def _bootstrap_peers(self) -> frozenset[str]:
        """Peer ids of the configured peers (`allmende peers add` changes them)."""
        addrs = tuple(self.config.bootstrap)
        if addrs != self._bootstrap_cache[0]:
            self._bootstrap_cache = (addrs, frozenset(split_p2p_addr(a)[0] for a in addrs))
        return self._bootstrap_cache[1]

    def new_sync_session(self, peer: str, initiator: bool) -> SyncSession:
        role = Role.INITIATOR if initiator else Role.RESPONDER
        return SyncSession(
            self.state.replica,
            self.state.partitions,
            role,
            salt=os.urandom(16),
            federation=self.federation,
        )

    async def sync_step(self, fn: Callable[..., Any], *args: Any) -> Any:
        # A step costs up to O(message + the compared state): off the event loop, while
        # nothing changes the replica under it.
        async with self._replica_lock.read():
            return await trio.to_thread.run_sync(fn, *args)

    async def ingest_sync(self, peer: str, session: Any) -> None:
        received = session.take_received()
        if not received:
            return
        stored = 0
        rejected: Counter[str] = Counter()
        raws, evidence = received.records, received.evidence
        steps: list[tuple[Sequence[bytes], Sequence[tuple[bytes, bytes]]]] = [
            (chunk, ()) for chunk in _chunks(raws, INGEST_CHUNK, INGEST_CHUNK_BYTES)
        ]
        pairs = [a + b for a, b in evidence]  # sized like records, to chunk alike
        start = 0
        for chunk in _chunks(pairs, INGEST_CHUNK // 2, INGEST_CHUNK_BYTES) if evidence else []:
            steps.append(((), evidence[start : start + len(chunk)]))
            start += len(chunk)
        for records, pairs_chunk in steps:
            result = await self._ingest(
                records,
                Source.SYNC,
                partitions=session.partitions,
                evidence=pairs_chunk,
                received=len(raws),
            )
            stored += len(result.stored)
            rejected.update(result.rejected)
            await trio.lowlevel.checkpoint()  # let the loop breathe between chunks
        if rejected:
            self.counters["sync_rejected"].update(rejected)
            if set(rejected) - NOT_BLAMED:
                self.net.report_invalid(peer)
            log.info("event=sync.rejected peer=%s reasons=%s", peer, ",".join(sorted(rejected)))
        if stored:
            log.info("event=sync.merged peer=%s records=%d", peer, stored)

    def on_peer_connected(self, peer: str) -> None:
        log.info("event=peer.connected peer=%s", peer)

    # --- running ---------------------------------------------------------------

    async def run(
        self,
        *,
        # trio-typing's stale stubs (a py-libp2p dependency) lack TaskStatus
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,  # type: ignore[name-defined]
    ) -> None:
        """Serve until cancelled; the store is closed on the way out."""
        self.started = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.net.run)
                await nursery.start(
                    functools.partial(control.serve, max_payload=_max_payload),
                    self.data_dir.socket,
                    self.handle,
                )
                nursery.start_soon(self._publisher)
                nursery.start_soon(self._attester)
                nursery.start_soon(self._planner)
                nursery.start_soon(self._warm_up)
                if self.web:
                    await self._start_web(nursery)
                if self.state.outbox:
                    self._wake.set()
                if self.config.metrics_port:
                    from node.metrics import start_metrics

                    start_metrics(self, self.config.metrics_port)
                log.info(
                    "event=daemon.started node=%s peer_id=%s scope=%s records=%d listen=%s",
                    self.state.identity.short,
                    self.net.peer_id,
                    self.config.scope,
                    len(self.state.replica),
                    ",".join(self.net.listen_addrs()),
                )
                task_status.started()
        finally:
            if self.web_url is not None:
                self.data_dir.web_url.unlink(missing_ok=True)
            with trio.CancelScope(shield=True):
                # Wait for a save in flight before closing the database under it.
                async with self._store_worker:
                    self.store.close()
            log.info("event=daemon.stopped")

    async def _start_web(self, nursery: trio.Nursery) -> None:
        """Serve the members' web app. A web app that cannot listen (its port taken)
        is logged and left off: the node still serves the network and the CLI."""
        from web import serve_web
        from web.security import ensure_token

        ensure_token(self.data_dir.web_token)
        try:
            url = await nursery.start(
                serve_web, _WebBackend(self), self.config.web_host, self.web_port
            )
        except LocalError as exc:
            self.counters["local_errors"]["web"] += 1
            log.error("event=web.failed reason=%s", exc)
            return
        self.web_url = url
        replace_private(self.data_dir.web_url, url + "\n")
        log.info("event=web.started url=%s", url)

    async def _warm_up(self) -> None:
        """`NodeState.warm_up` after start, a step at a time, yielding to other tasks
        between steps (a step is a millisecond or two); the replica does not change
        during a step."""
        steps = self.state.warm_up()
        done = object()
        while True:
            async with self._replica_lock.read():
                if next(steps, done) is done:
                    return
            await trio.lowlevel.checkpoint()

    async def _attester(self) -> None:
        """Attest this node's region: recompute its rollups when anything changed, at
        most once per `rollup_every` seconds, and publish what differs once it settled
        (`NodeCore.rollups_due`: an attester's once two recomputations agree or the
        change waited `MAX_WAIT`, a watcher's after `WATCH_HOLD`)."""
        seen = -1
        pace = RollupPace()
        while True:
            await trio.sleep(self.rollup_every)
            changed, seen = self.state.replica.version != seen, self.state.replica.version
            due = functools.partial(
                self.core.rollups_due, pace, trio.current_time(), changed=changed
            )
            async with self._replica_lock.read():
                publish = await trio.to_thread.run_sync(due)
            pendings = [self.core.prepare_write("rollup", k, b, s) for k, b, s in publish]
            if pendings:
                await self._commit_writes(Writes(pendings, lambda records: None))
                log.info("event=rollup.published records=%d", len(pendings))

    async def _planner(self) -> None:
        """This node's planner (issue 14): when the records changed, sign its part of
        the plan, within the ranges its members declared, at most once per
        `rollup_every` seconds. A node without flexible intents does nothing."""
        seen = -1
        while True:
            await trio.sleep(self.rollup_every)
            if self.state.replica.version == seen:
                continue
            seen = self.state.replica.version
            if not plan_ops.has_flexible(self.state):
                continue
            async with self._replica_lock.read():
                revisions, _, _ = await trio.to_thread.run_sync(plan_ops.due, self.state)
            writes = plan_ops.sign_revisions(self.ops, revisions)
            if writes is not None:
                await self._commit_writes(writes)

    async def _publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await trio.sleep(PUBLISH_EVERY)  # let a burst of writes join one message
            for partition, data in self.core.take_batches():
                await self.net.publish(topic_for_scope(partition, self.federation), data)

    # --- control API -------------------------------------------------------------

    async def handle(self, op: str, args: dict[str, Any], progress: Progress | None) -> Any:
        """Answer one control request.

        Raises:
            LocalError: unknown op, bad arguments, or what the op refuses.
        """
        spec = TABLE.get(op)
        if spec is None:
            raise LocalError(f"unknown control operation {op!r}")
        checked = check_args(op, spec, args)
        reply = spec.fn(self.ops, checked)
        if isinstance(reply, InThread):
            return await trio.to_thread.run_sync(reply.fn)
        if isinstance(reply, Writes):
            return await self._commit_writes(reply)
        if isinstance(reply, Submit):
            return reply.reply(await self._ingest(reply.raws, Source.SUBMIT))
        if isinstance(reply, Job):
            done = await reply.run(progress or _no_progress)
            if isinstance(done, Writes):  # long preparation, then one durable write
                return await self._commit_writes(done, progress)
            return done
        return reply

    async def _commit_writes(self, w: Writes, progress: Progress | None = None) -> Any:
        records = [r for p in w.pendings for r in p.records]
        if progress is not None and w.foreign:
            progress(0, len(w.foreign), "saving")
        try:
            await self._save([*records, *w.foreign], meta=self.state.write_meta(), durable=True)
        except Exception as exc:
            self.counters["local_errors"]["store"] += 1
            log.exception("event=store.failed records=%d", len(records) + len(w.foreign))
            raise LocalError(f"could not save, nothing was written: {exc}") from exc
        async with self._replica_lock.write():
            own = self.state.commit_saved(w.pendings)
        # Saved in one transaction; merged in chunks, so that an import of 100,000
        # ballots does not hold the loop (peers see its records arrive in a few steps).
        for i in range(0, len(w.foreign), COMMIT_CHUNK):
            async with self._replica_lock.write():
                self.state.commit_saved((), w.foreign[i : i + COMMIT_CHUNK])
            if progress is not None:
                progress(min(i + COMMIT_CHUNK, len(w.foreign)), len(w.foreign), "merging")
            await trio.lowlevel.checkpoint()
        self._wake.set()
        return w.reply(own)


def _chunks(raws: Sequence[bytes], count: int, size: int) -> list[Sequence[bytes]]:
    """`raws` in runs of at most `count` records and `size` bytes (one at least each;
    one empty run for no records, so that evidence alone is still ingested)."""
    out: list[Sequence[bytes]] = []
    start = total = 0
    for i, raw in enumerate(raws):
        if i > start and (i - start >= count or total + len(raw) > size):
            out.append(raws[start:i])
            start, total = i, 0
        total += len(raw)
    out.append(raws[start:])
    return out


def _no_progress(done: int, total: int, what: str) -> None:
    return None


def _max_payload(op: str) -> int:
    """The most payload bytes control op `op` accepts (0: none)."""
    spec = TABLE.get(op)
    return spec.max_payload if spec is not None else 0


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    for noisy in ("libp2p", "multiaddr", "zeroconf", "async_service"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_daemon(
    data_dir: Path,
    *,
    listen: list[str] | None = None,
    mdns: bool | None = None,
    sync_interval: float | None = None,
    init_defaults: bool = True,
    web_port: int | None = None,
    web: bool | None = None,
) -> None:
    """`allmende run`: initialise on first run if asked, then serve until a signal.

    Raises:
        LocalError: another daemon runs on this data dir, the store cannot be read,
            or the node cannot listen; nothing of a running daemon is touched.
    """
    dd = DataDir(data_dir)
    if not dd.initialised():
        if not init_defaults:
            raise LocalError(f"no node in {data_dir}; run: allmende init")
        identity = dd.init(Config(name=f"allmende-{os.getpid()}"))
        log.info("event=node.initialised data_dir=%s node=%s", data_dir, identity.short)
    with dd.lock():
        identity, config = dd.load()
        daemon = Daemon(
            dd,
            identity,
            config,
            listen=listen,
            mdns=mdns,
            sync_interval=sync_interval,
            web_port=web_port,
            web=web,
            resident=True,
        )
        # The loaded replica lives as long as the process: keep the collector's full
        # passes from walking it again and again (each one stalls the loop). What
        # loading left behind is collected first, and the heap pages it freed are
        # given back to the system.
        gc.collect()
        gc.freeze()
        _trim_heap()

        async def main() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as nursery:
                    await nursery.start(daemon.run)
                    async for signum in signals:
                        log.info("event=daemon.stopping signal=%s", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        break

        # Trio re-delivers signals still pending when the receiver closes, with the
        # handlers that were in place before it opened: make those "ignore", so a second
        # Ctrl-C during shutdown cannot kill the node halfway. They stay ignored: once
        # the daemon has stopped, the process only exits.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        try:
            trio.run(main)
        except BaseExceptionGroup as group:
            # A refusal at start-up (the port is taken, say) arrives wrapped in the
            # nurseries it crossed: say it as the one message it is.
            local = _first_local_error(group)
            if local is None:
                raise
            raise local from None


def _trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc's `malloc_trim`; nothing
    elsewhere): decoding the store at start-up frees megabytes of temporaries that
    would otherwise stay in the process's resident memory."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _first_local_error(group: BaseExceptionGroup[Any]) -> LocalError | None:
    match, _ = group.split(LocalError)
    exc: BaseException | None = match
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc if isinstance(exc, LocalError) else None


__all__ = ["Daemon", "run_daemon", "setup_logging"]
