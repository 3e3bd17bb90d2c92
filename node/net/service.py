"""`NetService`: the libp2p host, gossip, sync and discovery of one Allmende node."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from node.errors import CannotListen, LocalError, RemoteError
from node.net.bans import BanFile
from node.net.discovery import Backoff, Discovery, PeerBook, split_p2p_addr
from node.net.gossip import GossipConfig, GossipDriver, NetHandler, build_router, topic_for_scope
from node.net.host import DEFAULT_LISTEN_ADDRS, build_host, parse_listen_addrs
from node.net.pubsub import AllmendePubsub
from node.net.syncproto import (
    MAX_FRAME,
    PROTOCOL_ID,
    FramedStream,
    drive_initiator,
    drive_responder,
)

logger = logging.getLogger(__name__)

# Reasons that show intent or a broken peer (not a slow one): they count towards a ban.
_MALICIOUS_SYNC_REASONS = frozenset(
    {
        "frame-too-large",
        "bad-varint",
        "malformed",
        "protocol",
        "oversize",
        "non-canonical",
        "too-deep",
    }
)
# Seconds allowed for closing connections and stopping py-libp2p on shutdown.
SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True)
class NetConfig:
    """Everything `NetService` needs besides the identity and the handler.

    Attributes:
        listen_addrs: TCP multiaddrs to listen on.
        scopes: scopes whose topics (``allmende/3/<federation>/<scope>``) we join.
        bootstrap: ``/ip4/.../tcp/.../p2p/<id>`` peers to dial and keep dialling.
        data_dir: directory for the remembered-peers file; None = do not remember.
        enable_mdns: discover peers on the LAN (OFF in tests with a fixed topology).
        sync_on_connect: start a sync with every newly connected peer.
        sync_interval: seconds between anti-entropy rounds with one random peer.
        sync_read_timeout: seconds a sync stream may stay silent.
        sync_session_timeout: seconds one whole sync session may take.
        max_inbound_syncs: concurrent responder sessions.
        redial_interval: seconds between discovery rounds.
        gossip: gossipsub parameters.
        federation: the federation id; its first 16 hex digits are part of every topic.
        standing: the application's score of a peer (0 counts, -1 a stranger).
        max_strangers: connected peers with a negative standing kept at most (bootstrap
            peers aside); a stranger beyond is disconnected at once.
    """

    listen_addrs: Sequence[str] = DEFAULT_LISTEN_ADDRS
    scopes: Sequence[str] = ()
    bootstrap: Sequence[str] = ()
    data_dir: Path | None = None
    enable_mdns: bool = False
    sync_on_connect: bool = True
    sync_interval: float = 30.0
    sync_read_timeout: float = 20.0
    sync_session_timeout: float = 300.0
    max_inbound_syncs: int = 8
    redial_interval: float = 2.0
    max_frame: int = MAX_FRAME
    federation: str = ""
    standing: Callable[[ID], float] | None = None
    max_strangers: int = 16
    gossip: GossipConfig = field(default_factory=GossipConfig)


@dataclass(frozen=True)
class NetStatistics:
    """A snapshot of `NetService` counters."""

    peers: int
    gossip_messages_in: int
    gossip_bytes_in: int
    gossip_messages_out: int
    gossip_bytes_out: int
    publish_queued: int
    publish_failed: int
    rejected: MappingProxyType[str, int]
    sync_ok: int
    sync_failed: int
    dials_ok: int
    dials_failed: int
    banned: int


class _ConnectionNotifee(INotifee):
    """Forwards new connections into a channel; must never block py-libp2p's swarm."""

    def __init__(self, send: trio.MemorySendChannel[ID]) -> None:
        self._send = send

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        # On overflow the periodic sync still reaches this peer.
        with suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._send.send_nowait(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        pass

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass


def _is_nursery_closed(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "Nursery is closed to new arrivals" in str(exc)


@contextmanager
def _contain_shutdown_noise() -> Iterator[None]:
    # py-libp2p 0.8.1 spawns tasks into its service nursery from stream readers that
    # are still running while the service stops (pubsub.py continuously_read_stream ->
    # manager.run_task), which raises this RuntimeError on shutdown under load.
    try:
        yield
    except BaseExceptionGroup as group:
        noise, rest = group.split(_is_nursery_closed)
        if noise is not None:
            logger.debug("ignored py-libp2p shutdown race: %r", noise)
        if rest is not None:
            raise rest from None
    except RuntimeError as exc:
        if not _is_nursery_closed(exc):
            raise
        logger.debug("ignored py-libp2p shutdown race: %r", exc)


class NetService:
    """One node's networking: host, gossipsub, anti-entropy sync and discovery.

    Start with ``await nursery.start(service.run)``; stop by cancelling that nursery.

    Args:
        seed: the node's 32-byte Ed25519 seed; the libp2p identity derives from it.
        handler: the daemon's callbacks (validation, sync sessions, connect events).
        config: listen addresses, scopes, bootstrap peers and timing.
        rng: randomness for peer choice and backoff jitter (inject a seeded one in tests).
    """

    def __init__(
        self,
        seed: bytes,
        handler: NetHandler,
        config: NetConfig = NetConfig(),
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.rng = rng if rng is not None else random.Random()
        parse_listen_addrs(config.listen_addrs)  # fail early, before any I/O
        self.topics = [topic_for_scope(s, config.federation) for s in config.scopes]
        self.host: IHost = build_host(seed, config.listen_addrs, enable_mdns=config.enable_mdns)
        self.peer_id = self.host.get_id().to_base58()
        self.rejected: Counter[str] = Counter()
        self.sync_ok = 0
        self.sync_failed = 0
        self._router = build_router(config.gossip, self.rejected, config.standing)
        self._pubsub = AllmendePubsub(self.host, self._router, errors=self.rejected)
        self.gossip = GossipDriver(
            self._pubsub, self.topics, handler, config.gossip, self.rejected, self._ban
        )
        self._pubsub.validator = self.gossip.validate
        self.discovery = Discovery(
            self.host,
            bootstrap=config.bootstrap,
            book=PeerBook(config.data_dir),
            is_banned=self.is_banned,
            use_peerstore=config.enable_mdns,
            rng=self.rng,
            backoff=Backoff(),
            tick=config.redial_interval,
        )
        self._banned_until: dict[str, float] = {}
        self._ban_file = BanFile(config.data_dir)
        self._new_peers_send, self._new_peers = trio.open_memory_channel[ID](256)
        self._to_disconnect_send, self._to_disconnect = trio.open_memory_channel[ID](256)
        self._outbound_syncs: set[str] = set()
        self._inbound_syncs: set[str] = set()
        self._inbound_limit = trio.CapacityLimiter(config.max_inbound_syncs)
        self._nursery: trio.Nursery | None = None
        self._running = False
        self.host.get_network().register_notifee(_ConnectionNotifee(self._new_peers_send))
        self.host.set_stream_handler(TProtocol(PROTOCOL_ID), self._handle_sync_stream)

    # -- lifecycle --

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,  # type: ignore[name-defined]
    ) -> None:
        """Listen, subscribe, dial bootstrap peers, then serve until cancelled.

        Reports started once listening, subscribed and the first dial round is over.

        Raises:
            LocalError: the service was already started.
        """
        if self._running:
            raise LocalError("NetService.run() was already started; create a new service")
        self._running = True
        now = trio.current_time()
        for pid, left in self._ban_file.load().items():  # bans outlast a restart
            with suppress(Exception):  # a malformed id in the file: not a peer anyway
                self._pubsub.blacklisted_peers.add(ID.from_base58(pid))
                self._banned_until[pid] = now + left
        stopping = trio.Event()
        with _contain_shutdown_noise():
            async with trio.open_nursery() as nursery:
                await nursery.start(self._serve, stopping)
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    stopping.set()  # _serve closes connections, then unwinds

    async def _serve(
        self,
        stopping: trio.Event,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,  # type: ignore[name-defined]
    ) -> None:
        # Shutdown order matters with py-libp2p 0.8.1: when a cancellation reaches its
        # connection tasks first, SwarmConn.close() runs cancelled, the yamux GO_AWAY
        # and the socket close are skipped, and the peer keeps a dead connection
        # while our socket leaks (network/connection/swarm_connection.py close ->
        # yamux.py close).  So once started, the stack runs shielded from the
        # caller's cancellation; on `stopping` we close the host gracefully, then
        # unwind it, all within SHUTDOWN_GRACE seconds.
        addrs = parse_listen_addrs(self.config.listen_addrs)
        with trio.CancelScope() as guard:
            async with (
                self.host.run(listen_addrs=addrs),
                background_trio_service(self._pubsub),
                background_trio_service(self._router),
            ):
                await self._pubsub.wait_until_ready()
                if not self.host.get_addrs():
                    raise CannotListen(
                        "could not listen on "
                        + ", ".join(self.config.listen_addrs)
                        + ": the port is in use (another node?) or the address is not "
                        "this machine's; choose another with --listen or in config.toml"
                    )
                subscriptions = [await self._pubsub.subscribe(t) for t in self.topics]
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for sub in subscriptions:
                        nursery.start_soon(self._drain, sub)
                    nursery.start_soon(self.gossip.run_publisher)
                    nursery.start_soon(self._disconnect_worker)
                    nursery.start_soon(self._unban_loop)
                    nursery.start_soon(self._watch_new_peers)
                    nursery.start_soon(self._periodic_sync)
                    await nursery.start(self.discovery.run)
                    guard.shield = True
                    task_status.started()
                    await stopping.wait()
                    guard.deadline = trio.current_time() + SHUTDOWN_GRACE
                    nursery.cancel_scope.cancel()
                await self._close_host()

    async def _close_host(self) -> None:
        try:
            await self.host.close()
        except Exception as exc:
            logger.debug("closing the libp2p host: %s: %s", type(exc).__name__, exc)

    async def publish(self, topic: str, data: bytes) -> None:
        """Queue one gossip message (a batch of records) for `topic`.

        Waits only while the publish queue is full; the queue is drained at
        `GossipConfig.publish_rate` messages per second per topic.

        A topic this node does not follow is never published on: the message is
        dropped and counted (`publish_failed`).

        Raises:
            LocalError: `data` empty or too large.
        """
        await self.gossip.publish(topic, data)

    def listen_addrs(self) -> list[str]:
        """Addresses peers can dial, each ending in ``/p2p/<our peer id>``."""
        out = []
        for addr in self.host.get_addrs():
            text = str(addr)
            out.append(text if "/p2p/" in text else f"{text}/p2p/{self.peer_id}")
        return out

    def connected_peers(self) -> list[str]:
        """Base58 ids of currently connected peers."""
        return [p.to_base58() for p in self.host.get_connected_peers()]

    def is_banned(self, peer: str) -> bool:
        """True while `peer` is banned for sending invalid data."""
        until = self._banned_until.get(peer)
        return until is not None and trio.current_time() < until

    def statistics(self) -> NetStatistics:
        """Return a snapshot of the counters."""
        g = self.gossip.stats
        return NetStatistics(
            peers=len(self.host.get_connected_peers()),
            gossip_messages_in=g.messages_in,
            gossip_bytes_in=g.bytes_in,
            gossip_messages_out=g.messages_out,
            gossip_bytes_out=g.bytes_out,
            publish_queued=self.gossip.queued(),
            publish_failed=g.publish_failed,
            rejected=MappingProxyType(dict(self.rejected)),
            sync_ok=self.sync_ok,
            sync_failed=self.sync_failed,
            dials_ok=self.discovery.dials_ok,
            dials_failed=self.discovery.dials_failed,
            banned=sum(1 for p in self._banned_until if self.is_banned(p)),
        )

    def add_bootstrap(self, p2p_addr: str) -> str:
        """Dial `p2p_addr` from now on, redialling with backoff; returns the peer id."""
        return self.discovery.add_bootstrap(p2p_addr)

    async def remove_peer(self, peer_id: str) -> None:
        """Stop dialling `peer_id`, forget it, and close a connection to it."""
        self.discovery.remove_bootstrap(peer_id)
        with suppress(Exception):  # not connected, or the connection closed meanwhile
            await self.host.disconnect(ID.from_base58(peer_id))

    async def connect(self, p2p_addr: str) -> bool:
        """Dial one ``.../p2p/<id>`` address now; True on success."""
        return await self.discovery.dial(p2p_addr)

    async def sync_with(self, peer: str) -> bool:
        """Run one anti-entropy session with `peer` as initiator; True on success."""
        return await self._sync_outbound(ID.from_base58(peer))

    # -- gossip plumbing --

    async def _drain(self, sub: Any) -> None:
        # Records were merged by the validator already; reading the subscription only
        # keeps py-libp2p's 32-slot channel from overflowing (and warning).
        async for _msg in sub:
            pass

    def _ban(self, peer: ID) -> None:
        pid = peer.to_base58()
        logger.warning(
            "banning peer %s for %.0f s: too many invalid messages",
            pid,
            self.config.gossip.ban_seconds,
        )
        now = trio.current_time()
        self._banned_until[pid] = now + self.config.gossip.ban_seconds
        self._pubsub.blacklisted_peers.add(peer)
        self._ban_file.save({p: u - now for p, u in self._banned_until.items() if u > now})
        self.discovery.forget(peer)
        try:
            self._to_disconnect_send.send_nowait(peer)
        except trio.WouldBlock:
            logger.debug("disconnect queue full; %s is dropped on its next connect", pid)

    def _over_stranger_quota(self, peer: ID) -> bool:
        """A stranger to the federation, beyond the connections strangers may hold.

        A node that has just joined sees everyone as a stranger for a moment; its
        bootstrap peers (its inviter) are never counted or cut.
        """
        standing = self.config.standing
        if standing is None or standing(peer) >= 0:
            return False
        keep = {split_p2p_addr(a)[0] for a in self.config.bootstrap}
        if peer.to_base58() in keep:
            return False
        strangers = [
            p
            for p in self.host.get_network().connections
            if p.to_base58() not in keep and standing(p) < 0
        ]
        return len(strangers) > self.config.max_strangers

    async def _disconnect_worker(self) -> None:
        async for peer in self._to_disconnect:
            try:
                await self.host.disconnect(peer)
            except Exception as exc:
                logger.debug("disconnecting %s: %s", peer, exc)

    async def _unban_loop(self) -> None:
        while True:
            await trio.sleep(10.0)
            now = trio.current_time()
            for pid, until in list(self._banned_until.items()):
                if until <= now:
                    del self._banned_until[pid]
                    self._pubsub.blacklisted_peers.discard(ID.from_base58(pid))

    # -- sync plumbing --

    async def _watch_new_peers(self) -> None:
        assert self._nursery is not None
        async for peer in self._new_peers:
            pid = peer.to_base58()
            if self.is_banned(pid):
                await self._to_disconnect_send.send(peer)
                continue
            if self._over_stranger_quota(peer):
                self.rejected["stranger-quota"] += 1
                await self._to_disconnect_send.send(peer)
                continue
            try:
                self.handler.on_peer_connected(pid)
            except Exception:
                logger.exception("on_peer_connected(%s) failed", pid)
            # Both ends see the new connection; one session is enough, so the end with
            # the smaller peer id starts it (periodic rounds cover a missed one).
            if self.config.sync_on_connect and self.peer_id < pid:
                self._nursery.start_soon(self._sync_outbound, peer)

    async def _periodic_sync(self) -> None:
        while True:
            await trio.sleep(self.config.sync_interval)
            peers = [
                p
                for p in self.host.get_connected_peers()
                if not self.is_banned(p.to_base58()) and self._may_speak_sync(p)
            ]
            if peers:
                assert self._nursery is not None
                self._nursery.start_soon(self._sync_outbound, self.rng.choice(peers))

    async def _open_sync_stream(self, peer: ID) -> INetStream:
        # The `connected` notifee can fire before the muxer is ready: retry briefly.
        for attempt in range(3):
            try:
                return await self.host.new_stream(peer, [TProtocol(PROTOCOL_ID)])
            except Exception as exc:
                if attempt == 2:
                    raise RemoteError("open-failed", f"{type(exc).__name__}: {exc}") from exc
                await trio.sleep(0.3 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _sync_outbound(self, peer: ID) -> bool:
        pid = peer.to_base58()
        if pid in self._outbound_syncs or not self._may_speak_sync(peer):
            return False
        self._outbound_syncs.add(pid)
        try:
            return await self._run_sync(peer, None)
        finally:
            self._outbound_syncs.discard(pid)

    def _may_speak_sync(self, peer: ID) -> bool:
        """False once identify told us the peer does not offer our sync protocol.

        Any libp2p peer may join a topic (a js-libp2p reader, say); trying to sync
        with one that cannot answer only fills the log.
        """
        try:
            protocols = self.host.get_peerstore().get_protocols(peer)
        except Exception:  # unknown peer: try anyway
            return True
        if protocols and PROTOCOL_ID not in protocols:
            logger.debug("peer %s does not offer %s; no sync", peer, PROTOCOL_ID)
            return False
        return True

    async def _handle_sync_stream(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        if self.is_banned(peer.to_base58()):
            await _reset(stream)
            return
        pid = peer.to_base58()
        if pid in self._inbound_syncs:
            self.rejected["sync-busy"] += 1  # one session per peer at a time
            await _reset(stream)
            return
        try:
            self._inbound_limit.acquire_nowait()
        except trio.WouldBlock:
            self.rejected["sync-busy"] += 1
            await _reset(stream)
            return
        self._inbound_syncs.add(pid)
        try:
            await self._run_sync(peer, stream)
        finally:
            self._inbound_syncs.discard(pid)
            self._inbound_limit.release()

    async def _run_sync(self, peer: ID, stream: INetStream | None) -> bool:
        """Drive one session; never raises except Cancelled."""
        pid = peer.to_base58()
        initiator = stream is None
        reason = None
        try:
            with trio.fail_after(self.config.sync_session_timeout):
                if stream is None:
                    stream = await self._open_sync_stream(peer)
                session = self.handler.new_sync_session(pid, initiator)
                framed = FramedStream(stream, self.config.sync_read_timeout, self.config.max_frame)
                drive = drive_initiator if initiator else drive_responder
                await drive(framed, session, self.handler, pid)
                await stream.close()
        except RemoteError as exc:
            reason = exc.reason
            logger.info("sync with %s failed: %s", pid, exc)
        except trio.TooSlowError:
            reason = "sync-timeout"
            logger.info("sync with %s timed out", pid)
        except LocalError as exc:
            reason = "local-error"
            logger.warning("sync with %s: %s", pid, exc)
        except Exception as exc:
            # Anything else is a bug here or in the session, or a py-libp2p stream error.
            reason = "sync-error"
            logger.warning(
                "sync with %s failed: %s: %s",
                pid,
                type(exc).__name__,
                exc,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
        if reason is None:
            self.sync_ok += 1
            return True
        self.sync_failed += 1
        self.rejected[reason] += 1
        if stream is not None:
            await _reset(stream)
        if reason in _MALICIOUS_SYNC_REASONS:
            self.report_invalid(pid)
        return False

    def report_invalid(self, pid: str) -> None:
        """Count one invalid input from `pid` (bad records in a sync, say) toward a ban."""
        if self.gossip.invalid.record(pid, trio.current_time()):
            self.gossip.invalid.forget(pid)
            self._ban(ID.from_base58(pid))


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(2.0):
        try:
            await stream.reset()
        except Exception as exc:
            logger.debug("stream reset failed: %s", exc)
