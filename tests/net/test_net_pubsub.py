"""The pubsub fixes: one RPC at a time per stream, a bad RPC ends only its stream,
three-valued validation (IGNORE is neither forwarded nor penalised)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import multiaddr
import pytest
import trio
import trio.lowlevel
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V12
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from net_helpers import TOPIC, FakeHandler, link, seed, started, wait_for, wait_for_mesh

from node.net import GossipConfig, GossipVerdict, build_host
from node.net.gossip import build_router
from node.net.pubsub import AllmendePubsub
from node.net.syncproto import encode_varint


class SlowStream:
    """Writes each call in two halves with a checkpoint between, as yamux does with
    frames: two writers that do not wait for each other interleave their bytes."""

    def __init__(self) -> None:
        self.wire = bytearray()

    async def write(self, data: bytes) -> None:
        half = len(data) // 2
        self.wire += data[:half]
        await trio.lowlevel.checkpoint()
        self.wire += data[half:]


def _rpc(n: int, size: int) -> rpc_pb2.RPC:
    return rpc_pb2.RPC(publish=[rpc_pb2.Message(data=bytes([n]) * size, topicIDs=["t"])])


def _split(wire: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(wire):
        length, shift = 0, 0
        while True:
            b = wire[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append(bytes(wire[pos : pos + length]))
        pos += length
    return out


@pytest.mark.parametrize("cls", [Pubsub, AllmendePubsub])
async def test_concurrent_rpcs_are_written_whole(cls: type) -> None:
    host = build_host(seed("w"), ["/ip4/127.0.0.1/tcp/0"])
    kwargs = {"errors": Counter()} if cls is AllmendePubsub else {}
    pubsub = cls(host, build_router(GossipConfig()), **kwargs)
    stream = SlowStream()
    rpcs = [_rpc(n, 70_000) for n in range(4)]
    async with trio.open_nursery() as nursery:
        for rpc in rpcs:
            nursery.start_soon(pubsub.write_msg, stream, rpc)
    try:
        parsed = []
        for frame in _split(bytes(stream.wire)):
            rpc = rpc_pb2.RPC()
            rpc.ParseFromString(frame)
            parsed.append(rpc)
        whole = sorted(r.SerializeToString() for r in parsed) == sorted(
            r.SerializeToString() for r in rpcs
        )
    except Exception:  # DecodeError, IndexError: the bytes interleaved
        whole = False
    # py-libp2p 0.8.1 interleaves (the crash a joining node saw); ours never does.
    assert whole is (cls is AllmendePubsub)


async def test_a_garbage_rpc_ends_only_that_peers_stream() -> None:
    handlers = [FakeHandler("A"), FakeHandler("C")]
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AC", handlers) as (a, c):
            hostile = build_host(seed("mallory"), ["/ip4/127.0.0.1/tcp/0"])
            listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
            async with hostile.run(listen_addrs=listen):
                await hostile.connect(info_from_p2p_addr(multiaddr.Multiaddr(a.listen_addrs()[0])))
                stream = await hostile.new_stream(a.host.get_id(), [TProtocol(PROTOCOL_ID_V12)])
                garbage = b"\xff\xfe not protobuf \x00" * 10
                await stream.write(encode_varint(len(garbage)) + garbage)
                await wait_for(lambda: a.statistics().rejected.get("pubsub-bad-rpc") == 1)
                await hostile.close()
            # A still serves: gossip between A and C works.
            await link(c, a)
            await wait_for_mesh([a, c], 2)
            await c.publish(TOPIC, b"after the attack")
            await wait_for(lambda: b"after the attack" in handlers[0].payloads())
        nursery.cancel_scope.cancel()


async def test_ignored_messages_are_not_forwarded_and_not_penalised() -> None:
    handlers = [
        FakeHandler("A"),
        FakeHandler("B", verdict=lambda d: GossipVerdict.IGNORE),
        FakeHandler("C"),
    ]
    async with trio.open_nursery() as nursery:
        async with started(nursery, "ABC", handlers) as (a, b, c):
            await link(a, b)
            await link(b, c)
            await wait_for_mesh([a, b, c], 4)
            for i in range(5):
                await a.publish(TOPIC, b"m%d" % i)
            await wait_for(lambda: b.gossip.stats.ignored == 5)
            await trio.sleep(0.5)
            assert handlers[2].gossip == []  # B dropped them: C never saw them
            assert b.gossip.invalid.score(a.peer_id, trio.current_time()) == 0
            assert b._router.scorer.score(a.host.get_id(), [TOPIC]) >= 0
        nursery.cancel_scope.cancel()


def _publish_rpc(key: bytes) -> bytes:
    """A publish whose from_id is not an identity-hash peer id, so py-libp2p's
    signature check parses `key`: garbage there made it raise inside the service."""
    from_id = bytes([0x12, 0x20]) + b"\x01" * 32  # a sha256 multihash
    message = rpc_pb2.Message(
        data=b"x", topicIDs=[TOPIC], from_id=from_id, seqno=b"\0" * 8, signature=b"s" * 64, key=key
    )
    rpc = rpc_pb2.RPC(
        subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=TOPIC)], publish=[message]
    )
    raw = rpc.SerializeToString()
    return encode_varint(len(raw)) + raw


async def test_a_message_with_a_garbage_key_does_not_stop_the_service() -> None:
    handlers = [FakeHandler("A"), FakeHandler("C")]
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AC", handlers) as (a, c):
            hostile = build_host(seed("mallory"), ["/ip4/127.0.0.1/tcp/0"])
            listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
            async with hostile.run(listen_addrs=listen):
                await hostile.connect(info_from_p2p_addr(multiaddr.Multiaddr(a.listen_addrs()[0])))
                stream = await hostile.new_stream(a.host.get_id(), [TProtocol(PROTOCOL_ID_V12)])
                await stream.write(_publish_rpc(b"garbage"))
                await wait_for(lambda: hostile.get_id() in a._pubsub.peer_topics.get(TOPIC, ()))
                await trio.sleep(0.5)  # push_msg has run
                await hostile.close()
            assert a._pubsub.manager.is_running
            assert handlers[0].gossip == []  # nothing of it reached the validator
            await link(c, a)
            await wait_for_mesh([a, c], 2)
            await c.publish(TOPIC, b"after the attack")
            await wait_for(lambda: b"after the attack" in handlers[0].payloads())
        nursery.cancel_scope.cancel()


async def test_an_error_in_a_per_message_task_is_contained() -> None:
    """Whatever raises in a task py-libp2p starts for one peer is counted, not fatal."""
    from node.net.pubsub import _contain_tasks

    started_tasks: list[Any] = []

    class Manager:
        def run_task(self, fn: Any, *args: Any, daemon: bool = False, name: Any = None) -> None:
            started_tasks.append((fn, args, daemon))

    async def boom(x: int) -> None:
        raise ValueError(f"peer input {x}")

    manager = Manager()
    errors: Counter[str] = Counter()
    _contain_tasks(manager, errors)
    manager.run_task(boom, 1)
    manager.run_task(boom, 2, daemon=True)
    fn, args, daemon = started_tasks[0]
    assert not daemon
    await fn(*args)  # does not raise
    assert errors["pubsub-task-error"] == 1
    fn, args, daemon = started_tasks[1]
    assert daemon
    with pytest.raises(ValueError, match="peer input 2"):
        await fn(*args)  # daemon tasks are left alone


async def test_our_own_failure_to_judge_a_message_is_not_blamed_on_the_peer() -> None:
    """A full disk or a bug in our validator is LOCAL: no penalty, not forwarded, and
    the message is not marked seen, so it is judged again when it comes again."""
    failing = {"on": True}

    def verdict(data: bytes) -> GossipVerdict:
        if failing["on"]:
            raise OSError(28, "No space left on device")
        return GossipVerdict.ACCEPT

    handlers = [FakeHandler("A"), FakeHandler("B", verdict=verdict), FakeHandler("C")]
    async with trio.open_nursery() as nursery:
        async with started(nursery, "ABC", handlers) as (a, b, c):
            await link(a, b)
            await link(b, c)
            await wait_for_mesh([a, b, c], 4)
            await a.publish(TOPIC, b"m1")
            await wait_for(lambda: b.statistics().rejected.get("gossip-local-error", 0) >= 1)
            await trio.sleep(0.5)
            assert handlers[2].gossip == []  # not forwarded
            assert b.gossip.invalid.score(a.peer_id, trio.current_time()) == 0
            assert b._router.scorer.score(a.host.get_id(), [TOPIC]) >= 0
            assert not b.is_banned(a.peer_id)
            failing["on"] = False
            await a.publish(TOPIC, b"m2")
            await wait_for(lambda: b"m2" in handlers[2].payloads())
        nursery.cancel_scope.cancel()


def test_a_heartbeat_round_that_raises_does_not_stop_the_router() -> None:
    from trio.testing import MockClock

    errors: Counter[str] = Counter()
    router = build_router(GossipConfig(), errors)
    rounds: list[int] = []
    original = router.mesh_heartbeat

    def mesh_heartbeat() -> Any:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise KeyError("a peer vanished mid-round")
        return original()

    router.mesh_heartbeat = mesh_heartbeat  # type: ignore[method-assign]

    async def main() -> None:
        with trio.move_on_after(10):
            await router.heartbeat()

    trio.run(main, clock=MockClock(autojump_threshold=0))
    assert errors["gossip-heartbeat-error"] == 1
    assert len(rounds) >= 8  # about one a second, before and after the failing one
