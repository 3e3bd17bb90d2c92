"""node/net over real py-libp2p hosts on 127.0.0.1 (several hosts in one process)."""

from __future__ import annotations

import pytest
import trio
from net_helpers import (
    SCOPE,
    TOPIC,
    FakeHandler,
    FakeSession,
    config,
    link,
    seed,
    started,
    wait_for,
    wait_for_mesh,
)

from node.net import MAX_FRAME, PROTOCOL_ID, GossipConfig, GossipVerdict, NetService
from node.net.syncproto import encode_varint

pytestmark = pytest.mark.slow


def reject_bad(data: bytes) -> GossipVerdict:
    return GossipVerdict.REJECT if data.startswith(b"bad") else GossipVerdict.ACCEPT


async def test_gossip_crosses_a_line_topology() -> None:
    async with trio.open_nursery() as nursery:
        async with started(nursery, "ABC") as (a, b, c):
            await link(b, a)
            await link(c, b)
            assert a.host.get_id() not in c.host.get_connected_peers()
            await wait_for_mesh([a, b, c], edges=4)
            await a.publish(TOPIC, b"batch-1")
            handler_c = c.handler
            assert isinstance(handler_c, FakeHandler)
            await wait_for(lambda: b"batch-1" in handler_c.payloads())
            ((_, _, forwarder),) = handler_c.gossip
            assert forwarder == b.peer_id  # came through B
            stats = c.statistics()
            assert stats.gossip_messages_in == 1
            assert stats.gossip_bytes_in == len(b"batch-1")
            assert a.statistics().gossip_messages_out == 1
            assert all(addr.endswith(f"/p2p/{a.peer_id}") for addr in a.listen_addrs())
        nursery.cancel_scope.cancel()


async def test_rejected_message_is_not_forwarded() -> None:
    handlers = [FakeHandler("A"), FakeHandler("B", verdict=reject_bad), FakeHandler("C")]
    async with trio.open_nursery() as nursery:
        async with started(nursery, "ABC", handlers) as (a, b, c):
            await link(b, a)
            await link(c, b)
            await wait_for_mesh([a, b, c], edges=4)
            await a.publish(TOPIC, b"bad-1")
            await a.publish(TOPIC, b"good-1")
            await wait_for(lambda: b"good-1" in handlers[2].payloads())
            await trio.sleep(1.5)  # a heartbeat: IHAVE gossip would carry it too
            assert handlers[2].payloads() == {b"good-1"}
            assert b.statistics().rejected["gossip-rejected"] == 1
        nursery.cancel_scope.cancel()


async def test_peer_sending_invalid_messages_is_disconnected_and_banned() -> None:
    handlers = [FakeHandler("A"), FakeHandler("B", verdict=reject_bad)]
    gossip = GossipConfig(invalid_threshold=3)
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AB", handlers, gossip=gossip) as (a, b):
            await link(a, b)
            await wait_for_mesh([a, b], edges=2)
            for i in range(3):
                await a.publish(TOPIC, b"bad-%d" % i)
            await wait_for(lambda: b.statistics().banned == 1)
            await wait_for(lambda: a.peer_id not in b.connected_peers())
            assert b.statistics().rejected["gossip-rejected"] == 3
            assert b.is_banned(a.peer_id)
        nursery.cancel_scope.cancel()


async def test_sync_session_round_trips() -> None:
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AB", sync_on_connect=False) as (a, b):
            await link(a, b)
            assert await a.sync_with(b.peer_id)
            ha, hb = a.handler, b.handler
            assert isinstance(ha, FakeHandler)
            assert isinstance(hb, FakeHandler)
            [(peer_a, init_a, sess_a)] = ha.sessions
            await wait_for(lambda: b.statistics().sync_ok == 1)
            [(peer_b, init_b, sess_b)] = hb.sessions
            assert (peer_a, init_a, peer_b, init_b) == (b.peer_id, True, a.peer_id, False)
            assert sess_b.log == [b"ping1", b"ping2", b"ping3"]
            assert sess_a.log == [b"pong1", b"pong2", b"pong3"]
            assert a.statistics().sync_ok == 1
        nursery.cancel_scope.cancel()


async def test_sync_runs_on_connect_and_periodically() -> None:
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AB", sync_interval=0.5) as (a, b):
            await link(a, b)
            await wait_for(lambda: a.statistics().sync_ok >= 3 and b.statistics().sync_ok >= 3)
            assert a.statistics().sync_failed == 0
            assert isinstance(a.handler, FakeHandler)
            assert a.handler.connected == [b.peer_id]
        nursery.cancel_scope.cancel()


async def test_malformed_sync_message_is_counted_not_fatal() -> None:
    handlers = [
        FakeHandler("A"),
        FakeHandler("B", session_factory=lambda init: FakeSession(init, fail_on=b"ping2")),
    ]
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AB", handlers, sync_on_connect=False) as (a, b):
            await link(a, b)
            assert not await a.sync_with(b.peer_id)
            await wait_for(lambda: b.statistics().rejected["malformed"] == 1)
            assert b.gossip.invalid.score(a.peer_id, trio.current_time()) > 0.5
            assert b.statistics().sync_failed == 1
            assert a.statistics().sync_failed == 1
            # both hosts still work
            handlers[1].session_factory = lambda init: FakeSession(init)
            assert await a.sync_with(b.peer_id)
        nursery.cancel_scope.cancel()


class BuggySession(FakeSession):
    def receive_message(self, data: bytes) -> None:
        raise ZeroDivisionError("a bug of ours")


async def test_a_bug_in_our_session_is_not_blamed_on_the_peer() -> None:
    handlers = [FakeHandler("A"), FakeHandler("B", session_factory=BuggySession)]
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AB", handlers, sync_on_connect=False) as (a, b):
            await link(a, b)
            assert not await a.sync_with(b.peer_id)
            await wait_for(lambda: b.statistics().rejected["local-error"] == 1)
            assert b.gossip.invalid.score(a.peer_id, trio.current_time()) == 0
        nursery.cancel_scope.cancel()


async def test_oversized_sync_frame_is_refused_without_crashing() -> None:
    async with trio.open_nursery() as nursery:
        async with started(nursery, "AB", sync_on_connect=False) as (a, b):
            await link(a, b)
            stream = await a.host.new_stream(b.host.get_id(), [PROTOCOL_ID])
            await stream.write(encode_varint(MAX_FRAME + 1) + b"\0" * 1024)
            ended_by = await _read_until_closed(stream)
            assert ended_by in {"StreamReset", "StreamEOF", "EOF"}
            await wait_for(lambda: b.statistics().rejected["frame-too-large"] == 1)
            assert await a.sync_with(b.peer_id)  # B is still serving
        nursery.cancel_scope.cancel()


async def _read_until_closed(stream) -> str:
    """Read until the peer resets or closes; return how it ended."""
    with trio.fail_after(5):
        while True:
            try:
                if not await stream.read(1024):
                    return "EOF"
            except Exception as exc:  # py-libp2p's StreamReset / StreamEOF
                return type(exc).__name__


async def _multistream_exchange(port: int, proposal: bytes) -> bytes:
    def frame(line: bytes) -> bytes:
        return encode_varint(len(line)) + line

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(frame(b"/multistream/1.0.0\n") + frame(proposal))
        received = b""
        with trio.move_on_after(5):
            while b"na\n" not in received and not received.endswith(proposal):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                received += chunk
    return received


async def test_plaintext_and_secio_are_refused() -> None:
    async with trio.open_nursery() as nursery:
        async with started(nursery, "A") as (a,):
            port = int(a.listen_addrs()[0].split("/tcp/")[1].split("/")[0])
            for insecure in (b"/plaintext/2.0.0\n", b"/secio/1.0.0\n"):
                answer = await _multistream_exchange(port, insecure)
                assert answer in (b"", b"\x13/multistream/1.0.0\n\x03na\n")
            # control: the same client proposing Noise is accepted
            answer = await _multistream_exchange(port, b"/noise\n")
            assert answer.endswith(b"/noise\n")
        nursery.cancel_scope.cancel()


async def test_remembered_peers_are_redialled_after_restart(tmp_path) -> None:
    async with trio.open_nursery() as nursery:
        async with started(nursery, "B") as (b,):
            handler = FakeHandler("A")
            cfg = config(bootstrap=[b.listen_addrs()[0]], data_dir=tmp_path, redial_interval=0.2)
            async with trio.open_nursery() as first:
                a = NetService(seed("A"), handler, cfg)
                await first.start(a.run)
                assert b.peer_id in a.connected_peers()
                await wait_for(lambda: (tmp_path / "known-peers.json").exists())
                first.cancel_scope.cancel()
            await wait_for(lambda: not b.connected_peers())
            cfg2 = config(data_dir=tmp_path, redial_interval=0.2)  # no bootstrap
            async with trio.open_nursery() as second:
                a2 = NetService(seed("A"), handler, cfg2)
                await second.start(a2.run)
                await wait_for(lambda: b.peer_id in a2.connected_peers())
                second.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def test_paced_burst_arrives_complete_and_shutdown_under_load_is_quiet() -> None:
    async with trio.open_nursery() as nursery:
        async with started(nursery, "ABC") as (a, b, c):
            await link(b, a)
            await link(c, b)
            await wait_for_mesh([a, b, c], edges=4)
            for i in range(200):
                await a.publish(TOPIC, b"m%03d" % i + b"." * 200)
            assert isinstance(c.handler, FakeHandler)
            handler_c = c.handler
            await wait_for(lambda: len(handler_c.gossip) == 200, seconds=15)
            assert a.statistics().publish_failed == 0
            # shut down with a burst still in flight
            for i in range(300):
                await a.publish(TOPIC, b"n%03d" % i)
            await trio.sleep(0.3)
        nursery.cancel_scope.cancel()


async def test_publish_refuses_unknown_topic_and_oversize() -> None:
    from node.errors import LocalError

    async with trio.open_nursery() as nursery:
        async with started(nursery, "A") as (a,):
            await a.publish("allmende/3/other", b"x")  # never raises: dropped, counted
            assert a.statistics().publish_failed == 1
            with pytest.raises(LocalError):
                await a.publish(TOPIC, b"x" * (a.config.gossip.max_message_bytes + 1))
            assert SCOPE in a.config.scopes
        nursery.cancel_scope.cancel()


async def test_a_peer_that_dialled_us_is_remembered_by_its_listen_address(tmp_path) -> None:
    """Inbound peers are remembered too (their listen address, from identify)."""
    async with trio.open_nursery() as nursery:
        async with started(nursery, "B") as (b,):
            handler = FakeHandler("A")
            cfg = config(data_dir=tmp_path, redial_interval=0.2)  # A dials nobody
            async with trio.open_nursery() as first:
                a = NetService(seed("A"), handler, cfg)
                await first.start(a.run)
                assert await b.connect(a.listen_addrs()[0])
                b_port = b.listen_addrs()[0].split("/tcp/")[1].split("/")[0]

                def remembered() -> bool:
                    path = tmp_path / "known-peers.json"
                    return path.exists() and f"/tcp/{b_port}" in path.read_text()

                await wait_for(remembered)
                first.cancel_scope.cancel()
            await wait_for(lambda: not b.connected_peers())
            async with trio.open_nursery() as second:
                a2 = NetService(seed("A"), handler, cfg)
                await second.start(a2.run)
                await wait_for(lambda: b.peer_id in a2.connected_peers())
                second.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def test_strangers_beyond_the_quota_are_disconnected() -> None:
    """Peers whose nodes the federation does not count keep at most `max_strangers`
    connections to a node; one that comes on top is cut at once."""
    known: set[str] = set()

    def standing(peer) -> float:
        return 0.0 if peer.to_base58() in known else -1.0

    async with trio.open_nursery() as nursery:
        async with started(
            nursery, "ABCD", sync_on_connect=False, standing=standing, max_strangers=1
        ) as (a, b, c, d):
            known.add(d.peer_id)  # D counts
            await link(b, a)
            await wait_for(lambda: b.peer_id in a.connected_peers())
            await link(c, a)  # a second stranger: over the quota
            await wait_for(lambda: a.statistics().rejected.get("stranger-quota", 0) == 1)
            await wait_for(lambda: c.peer_id not in a.connected_peers())
            await link(d, a)  # a node that counts is never cut
            await trio.sleep(0.3)
            assert d.peer_id in a.connected_peers()
            assert b.peer_id in a.connected_peers()
            assert a.statistics().rejected["stranger-quota"] == 1
        nursery.cancel_scope.cancel()


async def test_strangers_are_kept_out_of_meshes() -> None:
    """A node grafts only peers that count and refuses the grafts of strangers: they may
    connect and sync, but the federation's gossip does not pass through them."""
    from net_helpers import TOPIC

    known: set[str] = set()

    def standing(peer) -> float:
        return 0.0 if peer.to_base58() in known else -1.0

    async with trio.open_nursery() as nursery:
        async with started(nursery, "ABD", sync_on_connect=False, standing=standing) as (a, b, d):
            known.update({a.peer_id, d.peer_id})  # A and D count (for everyone), B does not
            await link(b, a)
            await link(d, a)
            await wait_for(lambda: d.host.get_id() in a._router.mesh.get(TOPIC, ()), 10)
            await trio.sleep(2.5)  # heartbeats: B grafts A, A refuses; A never grafts B
            assert b.host.get_id() not in a._router.mesh.get(TOPIC, ())
            assert b.peer_id in a.connected_peers()  # connected all the same
        nursery.cancel_scope.cancel()
