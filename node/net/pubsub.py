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

Pinned to py-libp2p 0.8.1 (`push_msg` follows its control flow step by step).
"""

from __future__ import annotations

import enum
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.validators import signature_validator
from libp2p.tools.anyio_service.utils import get_task_name

logger = logging.getLogger(__name__)


class GossipVerdict(enum.Enum):
    """What the handler decides about one gossip message."""

    ACCEPT = "accept"  # valid and new: keep and forward
    IGNORE = "ignore"  # nothing new: drop without penalty, do not forward
    REJECT = "reject"  # invalid: drop, do not forward, penalise the forwarding peer
    LOCAL = "local"  # we could not judge it (our fault): drop, no penalty, not seen


Validator = Callable[[str, ID, rpc_pb2.Message], Awaitable[GossipVerdict]]


class AllmendePubsub(Pubsub):
    """`Pubsub` with serialised writes, contained read errors and three-valued validation.

    Set `validator` before the service runs: it decides about every message a peer
    sends on a topic we follow, and must not raise (what it raises counts as LOCAL).

    Args:
        errors: counter of contained per-stream errors by kind.
        *args, **kwargs: as `Pubsub`.
    """

    validator: Validator

    def __init__(self, *args: Any, errors: Counter[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._errors = errors
        self._write_locks: weakref.WeakKeyDictionary[INetStream, trio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._validating: set[bytes] = set()

    async def run(self) -> None:
        _contain_tasks(self.manager, self._errors)
        await super().run()

    # -- writes: one RPC at a time per stream --

    async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            try:
                return await super().write_msg(stream, rpc_msg)
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

    # -- validation: ACCEPT / IGNORE / REJECT / LOCAL --

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if self.is_peer_blacklisted(msg_forwarder):
            return
        try:
            origin = ID(msg.from_id)
        except Exception:
            self._penalise(msg_forwarder, msg)
            return
        if self.is_peer_blacklisted(origin):
            return
        msg_id = self._msg_id_constructor(msg)
        if self.seen_messages.has(msg_id) or msg_id in self._validating:
            return  # seen, or the same message from another peer is being validated
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None and not scorer.allow_publish(msg_forwarder, list(msg.topicIDs)):
            return
        if self.strict_signing and not _signature_ok(msg):
            self._penalise(msg_forwarder, msg)
            return
        mine = msg_forwarder == self.my_id
        if not mine:
            if len(msg.topicIDs) != 1:
                self._penalise(msg_forwarder, msg)
                return
            self._validating.add(msg_id)
            try:
                verdict = await self.validator(msg.topicIDs[0], msg_forwarder, msg)
            except Exception:
                logger.exception("gossip validator failed")
                verdict = GossipVerdict.LOCAL
            finally:
                self._validating.discard(msg_id)
            if verdict is GossipVerdict.LOCAL:
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
        if origin == self.my_id and not mine:
            return  # claims to be ours but was not published here
        self.notify_subscriptions(msg)
        await self.router.publish(msg_forwarder, msg)

    def _penalise(self, forwarder: ID, msg: rpc_pb2.Message) -> None:
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None:
            for topic in msg.topicIDs:
                scorer.on_invalid_message(forwarder, topic)


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

    async def run(self) -> None:
        _contain_tasks(self.manager, self._errors)
        await super().run()

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
            await self.emit_prune(graft_msg.topicID, sender_peer_id, False, False)
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


def _signature_ok(msg: rpc_pb2.Message) -> bool:
    """py-libp2p's check of the pubsub signature, which raises on a malformed key."""
    try:
        return bool(signature_validator(msg))
    except Exception:
        return False


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
