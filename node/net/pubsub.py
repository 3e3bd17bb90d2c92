"""py-libp2p's `Pubsub` with the three fixes a node on the open internet needs.

Found in plain use: a node that joined a region whose peers held a few hundred
records died with ``DecodeError: Error parsing message with type 'pubsub.pb.RPC'``
from ``continuously_read_stream``. Two bugs of py-libp2p 0.8.1 met there:

1. **Interleaved writes.** A pubsub stream has several writers: the per-peer send
   loop (``handle_sending_messages``), ``flush_pending_messages`` and
   ``send_recent_messages`` (the message cache, sent to a peer the moment it
   subscribes) all call ``write_msg`` on the same stream. yamux splits a write into
   frames of at most 64 KiB and takes its lock per frame (``YamuxStream.write``), so
   two RPCs over 64 KiB -- or any two, when the send window is short -- interleave
   frame by frame, and the peer reads garbage where a length prefix should be.
   `write_msg` here takes a per-stream lock around the whole RPC, and resets the
   stream if an RPC could be written only in part (a half-written RPC would
   corrupt everything after it).
2. **One bad RPC kills the node.** ``continuously_read_stream`` catches stream errors
   but not a protobuf ``DecodeError`` (nor anything a router raises on a malformed
   control message); the exception ends py-libp2p's service and with it the daemon.
   Here any error while reading one peer's stream ends that stream only. Likewise the
   tasks py-libp2p starts per message or per peer (``push_msg``, whose signature check
   raises on a garbage ``key``; replaying the message cache to a new subscriber;
   flushing queued messages): an error in one is logged and counted, and the service
   runs on. (Daemon tasks are left alone: if one of those fails, the service is broken
   and should stop.)

And the validation is three-valued, as gossipsub means it (py-libp2p's validators are
boolean, and its scorer counts every "no" as an invalid message): ACCEPT forwards,
IGNORE drops without penalty (a batch we already hold), REJECT drops and penalises
the forwarder, and LOCAL drops without penalty and without marking the message
seen (our own fault: a full disk, a bug).

And the wire is lean (issue 12: a 200-byte batch cost ~5 KB per receiving node):

- **Unsigned messages, content-addressed ids** (go-libp2p-pubsub's StrictNoSign).
  Every record in a batch is signed by its origin and verified before it is stored or
  forwarded, so the pubsub signature, key, ``from`` and ``seqno`` (~150 bytes a copy)
  authenticate nothing we use. A message is only ``data`` and its topic; its id is a
  hash of both (`content_message_id`), so two messages with one id have the same
  content, and the same batch from several peers is one message. A message that still
  carries author fields is REJECTed (a peer on another signature policy). Who is
  blamed for an invalid message is the peer that forwarded it, as before.
- **The signed peer record once per stream.** py-libp2p attaches its ~217-byte
  ``senderRecord`` to every RPC and checks its signature on every RPC it reads; here
  it goes out on the first RPC of each stream, and again only if it changes.
- **No IDONTWANT for small messages**: below 1 KiB (go-libp2p-pubsub's threshold) the
  IDONTWANT costs about what the duplicate it saves would.
- **A peer that sent us a message does not get it back**: a copy that arrives while
  the first is being validated counts as that peer's IDONTWANT.

Pinned to py-libp2p 0.8.1 (`push_msg` follows its control flow step by step).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamClosed, StreamReset
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service.utils import get_task_name
from libp2p.utils import encode_uvarint

logger = logging.getLogger(__name__)


class GossipVerdict(enum.Enum):
    """What the handler decides about one gossip message."""

    ACCEPT = "accept"  # valid and new: keep and forward
    IGNORE = "ignore"  # nothing new: drop without penalty, do not forward
    REJECT = "reject"  # invalid: drop, do not forward, penalise the forwarding peer
    LOCAL = "local"  # we could not judge it (our fault): drop, no penalty, not seen
    # Nothing we can take yet, through no fault of the sender (an origin we have not
    # admitted yet, a clock ahead of ours): drop, no penalty, not seen, so the same
    # message is judged again when it comes again (its id is its content).
    RETRY = "retry"


Validator = Callable[[str, ID, rpc_pb2.Message], Awaitable[GossipVerdict]]

# go-libp2p-pubsub's IDontWantMessageThreshold: smaller messages get no IDONTWANT.
IDONTWANT_THRESHOLD = 1024
_ID_DOMAIN = b"allmende/gossip-id/1\0"


def content_message_id(msg: rpc_pb2.Message) -> bytes:
    """The id of a gossip message: SHA-256 of a domain tag, its topics (each with a
    4-byte big-endian length) and its data. Same id, same content.

    js-libp2p computes the same as its ``msgIdFn`` (jsinterop/listen.mjs).
    """
    h = hashlib.sha256(_ID_DOMAIN)
    for topic in msg.topicIDs:
        raw = topic.encode()
        h.update(len(raw).to_bytes(4, "big"))
        h.update(raw)
    h.update(msg.data)
    return h.digest()


def has_author_fields(msg: rpc_pb2.Message) -> bool:
    """Whether `msg` carries any of ``from``, ``seqno``, ``signature``, ``key``."""
    return (
        msg.HasField("from_id")
        or msg.HasField("seqno")
        or msg.HasField("signature")
        or msg.HasField("key")
    )


class AllmendePubsub(Pubsub):
    """`Pubsub` with serialised writes, contained read errors, three-valued validation,
    unsigned content-addressed messages and the peer record once per stream.

    Set `validator` before the service runs: it decides about every message a peer
    sends on a topic we follow, and must not raise (what it raises counts as LOCAL).

    Args:
        errors: counter of contained per-stream errors and refused messages by kind.
        *args, **kwargs: as `Pubsub` (``strict_signing`` and ``msg_id_constructor``
            are fixed here: unsigned messages, `content_message_id`).
    """

    validator: Validator

    def __init__(
        self, host: Any, router: Any, *args: Any, errors: Counter[str], **kwargs: Any
    ) -> None:
        kwargs["strict_signing"] = False
        kwargs["msg_id_constructor"] = content_message_id
        super().__init__(host, router, *args, **kwargs)
        self._errors = errors
        self._write_locks: weakref.WeakKeyDictionary[INetStream, trio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        # The peer record each stream has carried last (sent again only if it changes).
        self._record_sent: weakref.WeakKeyDictionary[INetStream, bytes] = (
            weakref.WeakKeyDictionary()
        )
        # Message id -> peers that sent it while its first copy was being validated.
        self._validating: dict[bytes, set[ID]] = {}

    async def run(self) -> None:
        _contain_tasks(self.manager, self._errors)
        await super().run()

    # -- writes: one RPC at a time per stream, the peer record once --

    def get_hello_packet(self) -> rpc_pb2.RPC:
        # The first RPC written through `write_msg` carries the record instead.
        packet = super().get_hello_packet()
        packet.ClearField("senderRecord")
        return packet

    def encode_rpc(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bytes:
        """`rpc_msg` with its length prefix, carrying ``senderRecord`` only if this
        stream has not carried that record yet. Leaves `rpc_msg` as it was (py-libp2p
        may send one RPC object to several peers)."""
        record = rpc_msg.senderRecord if rpc_msg.HasField("senderRecord") else None
        if record is not None and self._record_sent.get(stream) == record:
            rpc_msg.ClearField("senderRecord")
            try:
                raw = rpc_msg.SerializeToString()
            finally:
                rpc_msg.senderRecord = record
        else:
            raw = rpc_msg.SerializeToString()
            if record is not None:
                self._record_sent[stream] = record
        return encode_uvarint(len(raw)) + raw

    async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            try:
                await stream.write(self.encode_rpc(stream, rpc_msg))
                return True
            except (StreamClosed, StreamReset):  # as py-libp2p's write_msg
                logger.debug("writing to %s failed: stream closed or reset", _peer(stream))
                self._record_sent.pop(stream, None)
                self._handle_dead_peer(stream.muxed_conn.peer_id)
                return False
            except BaseException:
                # Part of the RPC may be on the wire; anything after it would be read
                # as garbage. End the stream instead.
                self._errors["pubsub-write-failed"] += 1
                with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                    try:
                        await stream.reset()
                    except Exception as exc:
                        logger.debug("reset after a failed write: %s", exc)
                self._handle_dead_peer(stream.muxed_conn.peer_id)
                raise

    # -- reads: a peer's bad bytes end its stream, not the node --

    async def continuously_read_stream(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id
        try:
            await super().continuously_read_stream(stream)
        except trio.Cancelled:
            raise
        except Exception as exc:
            self._errors["pubsub-bad-rpc"] += 1
            logger.info(
                "event=pubsub.stream_error peer=%s error=%s: %s",
                peer_id,
                type(exc).__name__,
                str(exc)[:200],
            )
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                try:
                    await stream.reset()
                except Exception as reset_exc:
                    logger.debug("reset after a bad RPC: %s", reset_exc)
            self._handle_dead_peer(peer_id)

    # -- publishing: unsigned --

    async def publish(self, topic_id: str | list[str], data: bytes) -> None:
        """Publish `data` as an unsigned message: no from, seqno, signature or key."""
        topics = [topic_id] if isinstance(topic_id, str) else list(topic_id)
        await self.push_msg(self.my_id, rpc_pb2.Message(data=data, topicIDs=topics))

    # -- validation: ACCEPT / IGNORE / REJECT / LOCAL / RETRY --

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if self.is_peer_blacklisted(msg_forwarder):
            return
        mine = msg_forwarder == self.my_id
        if not mine and has_author_fields(msg):
            # Signed (or half-signed): a peer on another signature policy. Its id
            # would not be the content's, so we refuse it as go-libp2p's StrictNoSign does.
            self._errors["gossip-signed-format"] += 1
            self._penalise(msg_forwarder, msg)
            return
        msg_id = self._msg_id_constructor(msg)
        also_from = self._validating.get(msg_id)
        if also_from is not None:
            also_from.add(msg_forwarder)  # it has the message: do not send it back
            return
        if self.seen_messages.has(msg_id):
            return
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None and not scorer.allow_publish(msg_forwarder, list(msg.topicIDs)):
            return
        if not mine:
            if len(msg.topicIDs) != 1:
                self._penalise(msg_forwarder, msg)
                return
            also_from = self._validating[msg_id] = set()
            try:
                verdict = await self.validator(msg.topicIDs[0], msg_forwarder, msg)
            except Exception:
                logger.exception("gossip validator failed")
                verdict = GossipVerdict.LOCAL
            finally:
                del self._validating[msg_id]
            if verdict in (GossipVerdict.LOCAL, GossipVerdict.RETRY):
                return
            self.seen_messages.add(msg_id)
            if verdict is GossipVerdict.REJECT:
                self._penalise(msg_forwarder, msg)
                return
            if verdict is GossipVerdict.IGNORE:
                return
        else:
            self.seen_messages.add(msg_id)
        if scorer is not None:
            for topic in msg.topicIDs:
                scorer.on_first_delivery(msg_forwarder, topic)
        if also_from:
            _dont_send(self.router, msg_id, also_from)
        self.notify_subscriptions(msg)
        await self.router.publish(msg_forwarder, msg)

    def _penalise(self, forwarder: ID, msg: rpc_pb2.Message) -> None:
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None:
            for topic in msg.topicIDs:
                scorer.on_invalid_message(forwarder, topic)


def _peer(stream: INetStream) -> str:
    try:
        return str(stream.muxed_conn.peer_id)
    except Exception:
        return "?"


def _dont_send(router: Any, msg_id: bytes, peers: set[ID]) -> None:
    """Note that `peers` have message `msg_id`, as if each had sent IDONTWANT.

    py-libp2p forwards a message to every mesh peer except the one it came from first
    (gossipsub.py `_get_peers_to_send`) and honours IDONTWANT there; its heartbeat
    clears these notes.
    """
    dont_send = getattr(router, "dont_send_message_ids", None)
    if dont_send is None:
        return
    for peer in peers:
        ids = dont_send.get(peer)
        if ids is not None:  # a peer the router knows
            ids.add(msg_id)


class ContentMessageCache(MessageCache):
    """py-libp2p's message cache keyed by our message id (its own `put` hard-codes
    ``from + seqno``, which is empty for every unsigned message)."""

    def __init__(self, window_size: int, history_size: int, msg_id: Callable[..., bytes]) -> None:
        super().__init__(window_size, history_size)
        self._msg_id = msg_id

    def put(self, msg: rpc_pb2.Message) -> None:
        mid = self._msg_id(msg)
        if mid in self.msgs:
            return
        self.msgs[mid] = msg
        self.history[0].append(CacheEntry(mid, msg.topicIDs))


class AllmendeGossipSub(GossipSub):
    """`GossipSub` whose per-peer tasks and heartbeat survive their own errors, and whose
    meshes hold no peer with a negative score.

    The heartbeat walks state that peers shape (meshes, scores, message caches); one
    round that raises is logged and counted, and the next round comes as usual instead
    of the router (and with it the node) stopping. As go-libp2p does, a peer with a
    negative score (here: a stranger to the federation, by its application-specific
    score) is neither grafted nor accepted when it grafts: strangers may connect and
    sync, but the gossip of the federation does not pass through them.

    Args:
        errors: counter of contained errors by kind.
        *args, **kwargs: as `GossipSub`.
    """

    def __init__(self, *args: Any, errors: Counter[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._errors: Counter[str] = Counter() if errors is None else errors
        self.mcache = ContentMessageCache(
            self.mcache.window_size, self.mcache.history_size, content_message_id
        )
        self._publishing_size = 0

    async def run(self) -> None:
        _contain_tasks(self.manager, self._errors)
        await super().run()

    # -- messages: unsigned, content-addressed; IDONTWANT only for large ones --

    def _check_equivocation(self, msg: rpc_pb2.Message) -> bool:
        # py-libp2p keys this check by from + seqno, empty for unsigned messages (so
        # every second message would look like an equivocation). With content ids one
        # id cannot have two contents.
        return True

    async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
        # Read by `_emit_idontwant_for_message`, which py-libp2p's `publish` awaits
        # before anything else that awaits (so no other publish runs in between).
        self._publishing_size = pubsub_msg.ByteSize()
        await super().publish(msg_forwarder, pubsub_msg)

    async def _emit_idontwant_for_message(self, msg_id: bytes, topic_ids: Any) -> None:
        if self._publishing_size < IDONTWANT_THRESHOLD:
            return
        await super()._emit_idontwant_for_message(msg_id, topic_ids)

    def _get_in_topic_gossipsub_peers_from_minus(
        self, topic: str, num_to_select: int, minus: Any, backoff_check: bool = False
    ) -> list[ID]:
        scorer = self.scorer
        if scorer is None:
            return super()._get_in_topic_gossipsub_peers_from_minus(
                topic, num_to_select, minus, backoff_check
            )
        pool = super()._get_in_topic_gossipsub_peers_from_minus(
            topic,
            len(self.pubsub.peer_topics.get(topic, ())) if self.pubsub else 0,
            minus,
            backoff_check,
        )
        good = [p for p in pool if scorer.score(p, [topic]) >= 0]
        return good[:num_to_select]

    async def on_peer_subscribed(self, peer_id: ID, topic: str) -> None:
        # py-libp2p grafts a peer the moment it subscribes (mesh first-fill).
        scorer = self.scorer
        if scorer is not None and scorer.score(peer_id, [topic]) < 0:
            return
        await super().on_peer_subscribed(peer_id, topic)

    async def handle_graft(self, graft_msg: rpc_pb2.ControlGraft, sender_peer_id: ID) -> None:
        scorer = self.scorer
        if scorer is not None and scorer.score(sender_peer_id, [graft_msg.topicID]) < 0:
            # With the short (unsubscribe) backoff: a stranger may be admitted, or added
            # by the operator, any moment, and should not wait a minute to graft again.
            # Our side keeps the backoff too (a little longer, as go-libp2p's slack): a
            # GRAFT to a peer still backed off from us is ignored and penalised there.
            await self.emit_prune(graft_msg.topicID, sender_peer_id, False, True)
            self._add_back_off(
                sender_peer_id, graft_msg.topicID, True, self.unsubscribe_back_off + 2
            )
            return
        await super().handle_graft(graft_msg, sender_peer_id)

    async def heartbeat(self) -> None:
        while True:
            try:
                await super().heartbeat()
                return
            except Exception as exc:
                self._errors["gossip-heartbeat-error"] += 1
                logger.warning(
                    "event=gossip.heartbeat_error error=%s: %s", type(exc).__name__, str(exc)[:200]
                )
                self.heartbeat_initial_delay = self.heartbeat_interval


def _contain_tasks(manager: Any, errors: Counter[str]) -> None:
    """Make the service's non-daemon tasks log and count their errors, not raise them.

    py-libp2p starts such tasks for what one peer sent (a message to validate, a
    subscription to answer); an exception in any of them would cancel the service.
    """
    run_task = manager.run_task

    def contained_run_task(
        async_fn: Callable[..., Awaitable[Any]],
        *args: Any,
        daemon: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if daemon:
            run_task(async_fn, *args, daemon=True, name=name, **kwargs)
            return
        task_name = get_task_name(async_fn, name)

        async def contained(*a: Any) -> None:
            try:
                await async_fn(*a)
            except Exception as exc:
                errors["pubsub-task-error"] += 1
                logger.info(
                    "event=pubsub.task_error task=%s error=%s: %s",
                    task_name,
                    type(exc).__name__,
                    str(exc)[:200],
                )

        run_task(contained, *args, daemon=False, name=task_name, **kwargs)

    manager.run_task = contained_run_task
