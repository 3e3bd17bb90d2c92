"""The node daemon: wires the node state, the store, libp2p networking and the
local control API, and runs until SIGINT/SIGTERM.

Local writes arrive over the control socket, are stored durably before the caller
hears back, then go out as paced gossip batches on the topic of their partition.
Records from peers (gossip or anti-entropy) are verified by the replica before they
are stored or forwarded.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import trio

from node import control, model
from node.config import Config, DataDir
from node.crdt.sync import Role, SyncSession
from node.errors import LocalError, Rejected
from node.identity import Identity
from node.net import GossipVerdict, NetConfig, NetService, scope_of_topic, split_p2p_addr
from node.planning import decimal_str
from node.state import REGOSSIP_LIMIT, NodeState, batches, decode_batch, record_json
from node.store import Store

log = logging.getLogger("allmende.daemon")

PUBLISH_EVERY = 0.05  # seconds: batch local writes into few gossip messages

# Control operations added by other packages (e.g. governance): name -> fn(daemon, args).
EXTRA_OPS: dict[str, Callable[[Daemon, dict[str, Any]], Any]] = {}

import node.gov_ops  # noqa: E402, F401  (registers control ops)


def now_ms() -> int:
    """Wall-clock milliseconds: the daemon is the edge where real time enters."""
    return time.time_ns() // 1_000_000


class Daemon:
    """One running node.

    Args:
        data_dir: the node's data dir (initialised).
        identity, config: loaded from it.
        listen: override of the configured listen addresses (tests, `--listen`).
        mdns: override of the configured mDNS setting.
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
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.store = Store(data_dir.db)
        self.state = NodeState(identity, config, self.store, now_ms)
        self.gossip_rejected: Counter[str] = Counter()
        self.sync_rejected: Counter[str] = Counter()
        self.gossip_accepted = 0
        self.started = 0.0
        net_config = NetConfig(
            listen_addrs=tuple(listen or config.listen),
            scopes=tuple(self.state.partitions),
            bootstrap=tuple(config.bootstrap),
            data_dir=data_dir.root,
            enable_mdns=config.mdns if mdns is None else mdns,
            sync_interval=sync_interval or config.sync_interval,
        )
        self.net = NetService(identity.seed, self, net_config)
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()

    # --- NetHandler ------------------------------------------------------------

    def validate_gossip(self, topic: str, data: bytes, from_peer: str) -> GossipVerdict:
        scope = scope_of_topic(topic)
        try:
            raws = decode_batch(data)
        except Rejected as exc:
            self.gossip_rejected[exc.reason] += 1
            log.warning("event=gossip.rejected peer=%s reason=%s", from_peer, exc.reason)
            return GossipVerdict.REJECT
        result = self.state.ingest(raws)
        wrong_topic = [r for r in result.changed if model.partition_of(r.scope) != scope]
        for reason in result.rejected:
            self.gossip_rejected[reason] += 1
        if result.rejected or wrong_topic:
            if wrong_topic:
                self.gossip_rejected["wrong-topic"] += len(wrong_topic)
            log.warning(
                "event=gossip.rejected peer=%s reasons=%s",
                from_peer,
                ",".join(sorted(set(result.rejected))) or "wrong-topic",
            )
            return GossipVerdict.REJECT
        self.gossip_accepted += len(result.changed)
        return GossipVerdict.ACCEPT if result.changed else GossipVerdict.IGNORE

    def new_sync_session(self, peer: str, initiator: bool) -> SyncSession:
        def ingest(raws: Any) -> None:
            result = self.state.ingest(raws)
            for reason in result.rejected:
                self.sync_rejected[reason] += 1
            if result.changed:
                log.info("event=sync.merged peer=%s records=%d", peer, len(result.changed))
                # Records a sync brought are likely missing around us too (a healed
                # partition): gossip spreads them in seconds, where sync rounds would
                # take one interval per hop. A large catch-up is what a node that was
                # away missed; its peers hold those records, so they are not re-sent.
                if len(result.changed) <= REGOSSIP_LIMIT:
                    self.state.outbox.extend(result.changed)
                    self._wake.set()

        role = Role.INITIATOR if initiator else Role.RESPONDER
        return SyncSession(
            self.state.replica, self.state.partitions, role, ingest=ingest, salt=os.urandom(8)
        )

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
                await nursery.start(control.serve, self.data_dir.socket, self.handle)
                nursery.start_soon(self._publisher)
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
            self.store.close()
            log.info("event=daemon.stopped")

    async def _publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await trio.sleep(PUBLISH_EVERY)  # let a burst of writes join one message
            by_topic: dict[str, list[Any]] = {}
            for r in self.state.take_outbox():
                by_topic.setdefault(model.partition_of(r.scope), []).append(r)
            for partition, records in by_topic.items():
                for data in batches(records):
                    await self.net.publish(f"allmende/1/{partition}", data)

    def _written(self, record: Any) -> dict[str, Any]:
        self._wake.set()
        return record_json(record, self.state.node_names())

    # --- control API -------------------------------------------------------------

    def handle(self, op: str, args: dict[str, Any]) -> Any:
        """Answer one control request (sync; runs on the trio thread)."""
        method = getattr(self, f"op_{op}", None)
        if method is not None:
            try:
                return method(**args)
            except TypeError as exc:
                raise LocalError(f"bad arguments for {op}: {exc}") from None
        extension = EXTRA_OPS.get(op)
        if extension is None:
            raise LocalError(f"unknown control operation {op!r}")
        return extension(self, args)

    def op_submit(self, record: str) -> dict[str, Any]:
        """Take a record signed elsewhere (e.g. by a member's own key), hex-encoded.

        It is verified like any record from the network, stored durably, then gossiped.
        """
        try:
            raw = bytes.fromhex(record)
        except ValueError:
            raise LocalError("record must be hex-encoded wire bytes") from None
        result = self.state.ingest([raw])
        if result.rejected:
            raise LocalError(f"record rejected: {result.rejected[0]}")
        if not result.changed:
            raise LocalError("record not stored: this node holds it or a newer one already")
        self.state.outbox.extend(result.changed)
        return self._written(result.changed[0])

    def op_status(self) -> dict[str, Any]:
        s = self.state
        net = self.net.statistics()
        return {
            "node_id": s.identity.public.hex(),
            "peer_id": self.net.peer_id,
            "name": self.config.name,
            "kind": self.config.kind,
            "scope": self.config.scope,
            "partitions": s.partitions,
            "listen": self.net.listen_addrs(),
            "peers": net.peers,
            "records": len(s.replica),
            "own_records": s.seq,
            "origins": len({r.origin for r in s.replica.records()}),
            "flagged_origins": [o.hex() for o in s.replica.flagged],
            "digest": s.replica.digest(s.partitions).hex(),
            "sync": {"ok": net.sync_ok, "failed": net.sync_failed},
            "gossip": {
                "messages_in": net.gossip_messages_in,
                "bytes_in": net.gossip_bytes_in,
                "messages_out": net.gossip_messages_out,
                "bytes_out": net.gossip_bytes_out,
                "records_accepted": self.gossip_accepted,
            },
            "rejected": dict(self.gossip_rejected + self.sync_rejected + Counter(net.rejected)),
            "uptime_s": round(trio.current_time() - self.started, 1),
        }

    def op_post(
        self,
        kind: str,
        item: str,
        qty: str,
        unit: str,
        period: str,
        priority: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        return self._written(
            self.state.post_intent(kind, item, qty, unit, period, priority=priority, note=note)
        )

    def op_withdraw(self, kind: str, key: str) -> dict[str, Any]:
        return self._written(self.state.withdraw(kind, key))

    def op_list(
        self, kind: str, scope: str | None = None, all: bool = False, withdrawn: bool = False
    ) -> list[dict[str, Any]]:
        if kind not in ("need", "capacity"):
            raise LocalError("kind must be need or capacity")
        if scope is not None:
            model.check_scope(scope)
        names = self.state.node_names()
        return [
            record_json(r, names)
            for r in self.state.intents(kind, scope=scope, mine=not all, withdrawn=withdrawn)
        ]

    def op_items(self) -> list[dict[str, Any]]:
        return [asdict(i) for i in sorted(self.state.items().values(), key=lambda i: i.id)]

    def op_item_add(self, id: str, name: str, dimension: str) -> dict[str, Any]:
        return self._written(self.state.add_item(id, name, dimension))

    def op_balance(
        self,
        scope: str | None = None,
        period: str | None = None,
        item: str | None = None,
        depth: int = 0,
    ) -> dict[str, Any]:
        scope = scope or model.partition_of(self.config.scope)
        model.check_scope(scope)
        if period is not None:
            model.check_period(period)
        if item is not None and item not in self.state.items():
            raise LocalError(f"unknown item {item!r}; see `allmende item list`")
        levels = self.state.balance(scope, period=period, item=item, depth=max(0, int(depth)))
        return {
            "scope": scope,
            "levels": [
                {"scope": s, "level": lvl, "rows": [r.as_json() for r in rows]}
                for s, lvl, rows in levels
            ],
        }

    def op_peers(self) -> dict[str, Any]:
        return {
            "connected": self.net.connected_peers(),
            "listen": self.net.listen_addrs(),
            "bootstrap": list(self.config.bootstrap),
        }

    def op_peers_add(self, addr: str) -> dict[str, Any]:
        peer_id, _ = split_p2p_addr(addr)
        if peer_id == self.net.peer_id:
            raise LocalError("that address is this node itself")
        if addr not in self.config.bootstrap:
            self.config = replace(self.config, bootstrap=(*self.config.bootstrap, addr))
            self.data_dir.write_config(self.config)
        self.net.add_bootstrap(addr)  # redialled with backoff if this dial fails
        if self._nursery is not None:
            self._nursery.start_soon(self.net.connect, addr)
        return {"added": addr, "peer_id": peer_id}

    def op_digest(self) -> dict[str, Any]:
        s = self.state
        return {"digest": s.replica.digest(s.partitions).hex(), "records": len(s.replica)}


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
) -> None:
    """`allmende run`: initialise on first run if asked, then serve until a signal."""
    dd = DataDir(data_dir)
    if not dd.initialised():
        if not init_defaults:
            raise LocalError(f"no node in {data_dir}; run: allmende init")
        identity = dd.init(Config(name=f"allmende-{os.getpid()}"))
        log.info("event=node.initialised data_dir=%s node=%s", data_dir, identity.short)
    identity, config = dd.load()
    daemon = Daemon(dd, identity, config, listen=listen, mdns=mdns, sync_interval=sync_interval)

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
    trio.run(main)


__all__ = ["Daemon", "decimal_str", "run_daemon", "setup_logging"]
