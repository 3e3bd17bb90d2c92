"""Gossipsub for Allmende: router config, topic validators, invalid counters, paced publishes.

The pure parts (`topic_for_scope`, `InvalidTracker`, `PublishPacer`) take time as an
argument and are tested without a network; `GossipDriver` is the thin I/O edge over
py-libp2p's `Pubsub`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.score import ScoreParams, TopicScoreParams

from node.errors import LocalError
from node.net.pubsub import AllmendeGossipSub, GossipVerdict

logger = logging.getLogger(__name__)

# 3: unsigned gossip with content ids (issue 12); nodes of format 2 stay on their own topics.
TOPIC_PREFIX = "allmende/3/"

# One publish travels as one RPC. The node's batches stay below 60 KiB
# (node.core.MAX_BATCH_BYTES) so that an RPC fits one yamux frame; anything larger from
# a peer is refused before it is decoded.
MAX_GOSSIP_MESSAGE = 64 * 1024


class SyncSession(Protocol):
    """A sans-IO anti-entropy session (implemented in node/crdt)."""

    partitions: list[str]

    def generate_message(self) -> bytes | None: ...

    def receive_message(self, data: bytes) -> None: ...

    def take_received(self) -> Any: ...

    @property
    def done(self) -> bool: ...


class NetHandler(Protocol):
    """What `NetService` needs from the daemon."""

    async def validate_gossip(self, topic: str, data: bytes, from_peer: str) -> GossipVerdict:
        """ACCEPT, IGNORE, REJECT, or LOCAL when this node could not judge."""
        ...

    def new_sync_session(self, peer: str, initiator: bool) -> SyncSession: ...

    async def sync_step(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one sans-IO session step (the daemon: in a worker thread)."""
        ...

    async def ingest_sync(self, peer: str, session: SyncSession) -> None:
        """Merge what `session` received (`take_received()`); raises only LocalError."""
        ...

    def on_peer_connected(self, peer: str) -> None: ...


# Topics name the federation by the first 16 hex digits of its id: federations share no
# topic, so their records never meet on gossip.
FEDERATION_PREFIX = 16


def topic_for_scope(scope: str, federation: str = "") -> str:
    """Return the gossipsub topic for a scope: ``allmende/3/<federation id[:16]>/<scope>``
    (``allmende/3/<scope>`` without a federation: tests of the network alone).

    Raises:
        LocalError: empty scope or one containing whitespace.
    """
    if not scope or any(c.isspace() for c in scope):
        raise LocalError(f"scope {scope!r} must be non-empty and contain no whitespace")
    if federation:
        return f"{TOPIC_PREFIX}{federation[:FEDERATION_PREFIX]}/{scope}"
    return TOPIC_PREFIX + scope


def scope_of_topic(topic: str, federation: str = "") -> str | None:
    """Return the scope of an Allmende topic of `federation`, or None for another topic."""
    prefix = TOPIC_PREFIX + (f"{federation[:FEDERATION_PREFIX]}/" if federation else "")
    if topic.startswith(prefix) and len(topic) > len(prefix):
        return topic[len(prefix) :]
    return None


@dataclass(frozen=True)
class GossipConfig:
    """Gossip parameters; the defaults are argued in `node/net/__init__.py`."""

    heartbeat_interval: int = 1
    heartbeat_initial_delay: float = 0.2
    degree: int = 3
    degree_low: int = 2
    degree_high: int = 6
    # Our own pacing: messages per second per topic, with a short burst allowance.
    publish_rate: float = 50.0
    publish_burst: int = 10
    # py-libp2p's per-forwarder flood limit (gossipsub.py _check_spam_protection).  It
    # counts per *forwarding* peer, so a relay forwarding for many origins needs room;
    # scoring plus our invalid counters are the defence against real floods.
    router_rate_limit: float = 1000.0
    # Pause publishing while any peer's outbound RPC queue (32 slots, full = silent drop)
    # holds more than this many RPCs.
    peer_queue_high_water: int = 12
    max_message_bytes: int = MAX_GOSSIP_MESSAGE
    publish_queue_size: int = 1024
    # Disconnect and ban a peer after this many REJECTed messages (decaying).
    invalid_threshold: float = 10.0
    invalid_half_life: float = 300.0
    ban_seconds: float = 600.0


def score_params(standing: Callable[[ID], float] | None = None) -> ScoreParams:
    """Peer-score parameters: invalid messages (P4), flood penalties (P5) and the
    application's standing of the peer (P6) count.

    P1-P3 stay off (py-libp2p's P3 has no activation window, a quiet topic would
    penalise everyone) and P7 (IP colocation) stays off so loopback tests and nodes
    behind one NAT are not penalised.  Each invalid message costs 10 points and decays
    by 1 % per heartbeat; at -40 we stop gossiping to the peer, at -60 we refuse its
    publishes, at -80 it is graylisted.

    Args:
        standing: the application's view of a peer, 0 (counts) to -1 (a stranger to
            the federation), weighted 5: strangers come last when meshes are chosen,
            far from any threshold (a node that has just joined sees everyone as a
            stranger for a moment).
    """
    return ScoreParams(
        p4_invalid_messages=TopicScoreParams(weight=10.0, cap=100.0, decay=0.99),
        p5_behavior_penalty_weight=1.0,
        p5_behavior_penalty_threshold=10.0,
        p5_behavior_penalty_decay=0.9,
        gossip_threshold=-40.0,
        publish_threshold=-60.0,
        graylist_threshold=-80.0,
        accept_px_threshold=0.0,
        app_specific_score_fn=standing,
        p6_appl_slack_weight=5.0 if standing is not None else 0.0,
    )


def build_router(
    config: GossipConfig,
    errors: Counter[str] | None = None,
    standing: Callable[[ID], float] | None = None,
) -> GossipSub:
    """Create the GossipSub router with Allmende's parameters.

    Args:
        errors: where the router counts the errors it contains.
        standing: the application-specific score of a peer (see `score_params`).
    """
    return AllmendeGossipSub(
        errors=errors,
        protocols=[TProtocol(PROTOCOL_ID_V12), TProtocol(PROTOCOL_ID_V11), TProtocol(PROTOCOL_ID)],
        degree=config.degree,
        degree_low=config.degree_low,
        degree_high=config.degree_high,
        heartbeat_interval=config.heartbeat_interval,
        heartbeat_initial_delay=config.heartbeat_initial_delay,
        score_params=score_params(standing),
        spam_protection_enabled=True,
        max_messages_per_topic_per_second=config.router_rate_limit,
        # All peers of a small federation may sit in few subnets; diversity grafting
        # only adds peers beyond degree_high.
        eclipse_protection_enabled=False,
    )


class InvalidTracker:
    """Per-peer count of rejected messages with exponential decay (pure; time injected)."""

    def __init__(self, threshold: float, half_life: float) -> None:
        self.threshold = threshold
        self._rate = math.log(2) / half_life
        self._scores: dict[str, tuple[float, float]] = {}

    def record(self, peer: str, now: float) -> bool:
        """Count one invalid message from `peer`; return True when it reaches the threshold.

        Counts are whole messages decayed continuously, so "reaches" allows half a
        message of decay: `threshold` messages in a burst always trigger.
        """
        score = self.score(peer, now) + 1.0
        self._scores[peer] = (score, now)
        return score > self.threshold - 0.5

    def score(self, peer: str, now: float) -> float:
        """Return the decayed invalid count of `peer` at `now`."""
        value, at = self._scores.get(peer, (0.0, now))
        return value * math.exp(-self._rate * max(0.0, now - at))

    def forget(self, peer: str) -> None:
        """Drop the state of `peer` (after it was banned)."""
        self._scores.pop(peer, None)


class PublishPacer:
    """Token bucket per topic (pure; time injected): at most `rate` msgs/s, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise LocalError("publish rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens: dict[str, tuple[float, float]] = {}

    def delay(self, topic: str, now: float) -> float:
        """Seconds to wait before a message on `topic` may go out (0 = now)."""
        tokens = self._available(topic, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, topic: str, now: float) -> None:
        """Spend one token for `topic`; call only when `delay()` returned 0."""
        self._tokens[topic] = (self._available(topic, now) - 1.0, now)

    def _available(self, topic: str, now: float) -> float:
        tokens, at = self._tokens.get(topic, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)


@dataclass
class GossipStats:
    """Mutable counters owned by `GossipDriver`."""

    messages_in: int = 0
    bytes_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    publish_failed: int = 0
    queue_waits: int = 0
    ignored: int = 0  # messages with nothing new: dropped, not forwarded, no penalty
    retried: int = 0  # messages we cannot take yet: dropped, no penalty, judged again


class GossipDriver:
    """Owns the topic validators, the invalid counters and the paced publish queue.

    Args:
        pubsub: a py-libp2p `Pubsub` already attached to a `GossipSub` router.
        topics: the topics this node follows (validates, publishes on).
        handler: validates (and merges) every message before it is forwarded.
        config: gossip parameters.
        rejected: counter of rejected inputs by reason, shared with the service.
        on_ban: called (sync) with a peer id when it crossed the invalid threshold.
    """

    def __init__(
        self,
        pubsub: Pubsub,
        topics: Sequence[str],
        handler: NetHandler,
        config: GossipConfig,
        rejected: Counter[str],
        on_ban: Callable[[ID], None],
    ) -> None:
        self.pubsub = pubsub
        self.topics = frozenset(topics)
        self.handler = handler
        self.config = config
        self.rejected = rejected
        self.stats = GossipStats()
        self.invalid = InvalidTracker(config.invalid_threshold, config.invalid_half_life)
        self.pacer = PublishPacer(config.publish_rate, config.publish_burst)
        self._on_ban = on_ban
        self._send, self._receive = trio.open_memory_channel[tuple[str, bytes]](
            config.publish_queue_size
        )
        self._pending: dict[str, deque[bytes]] = defaultdict(deque)

    # -- validation (AllmendePubsub.push_msg awaits it for every message from a peer) --

    async def validate(self, topic: str, forwarder: ID, msg: rpc_pb2.Message) -> GossipVerdict:
        """The verdict on one message; counts and bans; never raises."""
        peer = forwarder.to_base58()
        if topic not in self.topics:
            self._count_invalid(forwarder, "gossip-unknown-topic")
            return GossipVerdict.REJECT
        data = bytes(msg.data)
        if len(data) > self.config.max_message_bytes:
            self._count_invalid(forwarder, "gossip-too-large")
            return GossipVerdict.REJECT
        try:
            verdict = await self.handler.validate_gossip(topic, data, peer)
        except trio.Cancelled:
            raise
        except Exception:
            # A bug or a full disk here must not penalise the peer.
            logger.exception("validate_gossip failed on a message from %s", peer)
            self.rejected["gossip-local-error"] += 1
            return GossipVerdict.LOCAL
        self.stats.messages_in += 1
        self.stats.bytes_in += len(data)
        if verdict is GossipVerdict.REJECT:
            self._count_invalid(forwarder, "gossip-rejected")
        elif verdict is GossipVerdict.IGNORE:
            self.stats.ignored += 1
        elif verdict is GossipVerdict.RETRY:
            self.stats.retried += 1
        elif verdict is GossipVerdict.LOCAL:
            self.rejected["gossip-local-error"] += 1
        return verdict

    def _count_invalid(self, forwarder: ID, reason: str) -> None:
        self.rejected[reason] += 1
        if self.invalid.record(forwarder.to_base58(), trio.current_time()):
            self.invalid.forget(forwarder.to_base58())
            self._on_ban(forwarder)

    # -- publishing --

    async def publish(self, topic: str, data: bytes) -> None:
        """Queue `data` for `topic`; waits only when the publish queue is full.

        Raises:
            LocalError: `data` is larger than `max_message_bytes` or empty.
        """
        if topic not in self.topics:
            # Never publish on a topic this node does not follow: py-libp2p would
            # send it to no mesh, and a record of another partition has no place here.
            logger.warning("not publishing on %s: this node does not follow it", topic)
            self.stats.publish_failed += 1
            return
        if not data:
            raise LocalError("cannot publish an empty gossip message")
        if len(data) > self.config.max_message_bytes:
            raise LocalError(
                f"gossip message of {len(data)} bytes exceeds {self.config.max_message_bytes};"
                " split the batch"
            )
        await self._send.send((topic, data))

    def queued(self) -> int:
        """Number of messages waiting in the publish queue."""
        return self._receive.statistics().current_buffer_used + sum(
            len(q) for q in self._pending.values()
        )

    async def run_publisher(self) -> None:
        """Drain the publish queue at the paced rate (run in a nursery; never returns)."""
        while True:
            if not any(self._pending.values()):
                topic, data = await self._receive.receive()
                self._pending[topic].append(data)
            while True:  # move everything already queued into per-topic FIFOs
                try:
                    topic, data = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                self._pending[topic].append(data)
            now = trio.current_time()
            ready = [t for t, q in self._pending.items() if q and self.pacer.delay(t, now) == 0]
            if not ready:
                wait = min(self.pacer.delay(t, now) for t, q in self._pending.items() if q)
                await trio.sleep(wait)
                continue
            await self._wait_for_peer_queues()
            for topic in ready:
                data = self._pending[topic].popleft()
                self.pacer.take(topic, trio.current_time())
                await self._publish_now(topic, data)

    async def _wait_for_peer_queues(self) -> None:
        # py-libp2p drops an RPC when a peer's 32-slot queue is full (gossipsub.py
        # send_rpc); wait until every queue is below the high-water mark.  A stuck
        # peer holds us at most 2 s; after that its drops are on py-libp2p's logs.
        with trio.move_on_after(2.0):
            while any(
                len(q) > self.config.peer_queue_high_water
                for q in list(self.pubsub.peer_queues.values())
            ):
                self.stats.queue_waits += 1
                await trio.sleep(0.01)

    async def _publish_now(self, topic: str, data: bytes) -> None:
        try:
            await self.pubsub.publish(topic, data)
        except Exception:
            logger.exception("publishing %d bytes on %s failed", len(data), topic)
            self.stats.publish_failed += 1
            return
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)
