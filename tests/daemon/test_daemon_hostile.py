"""A hostile peer against a real daemon: garbage gossip, a forged record, an oversize
message, garbage anti-entropy frames; and a client asking for a plaintext channel.

The hostile peer is a raw py-libp2p host (Noise only, as `build_host` makes it) with
its own gossipsub router, running under trio in the test process.
"""

from __future__ import annotations

import hashlib
import signal
import socket
from collections import Counter
from functools import partial
from typing import Any

import multiaddr
import pytest
import trio
from federation import TestFederation
from harness import Cluster, Node
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import PUBSUB_SIGNING_PREFIX
from libp2p.tools.anyio_service import background_trio_service

from node.core import encode_batch
from node.crdt.record import sign_record
from node.identity import Identity
from node.net import PROTOCOL_ID, GossipConfig, build_host, topic_for_scope
from node.net.gossip import build_router
from node.net.pubsub import AllmendePubsub
from node.net.syncproto import MAX_FRAME, encode_frame, encode_varint

pytestmark = pytest.mark.slow


def forged_record(victim: bytes) -> bytes:
    """Valid structure, signed by one key but claiming another origin (an admitted one)."""
    signer = Identity.from_seed(hashlib.sha256(b"mallory").digest())
    body = {
        "item": "potatoes",
        "qty": "1000",
        "unit": "kg",
        "period": "2027-Q1",
        "priority": "high",
    }
    record = sign_record(signer.signer(), victim, "need", "n1", 1, 0, "eu/de/berlin/victim", body)
    return record.raw


def strangers_record() -> bytes:
    """Well signed, by a key nobody in the federation vouches for."""
    stranger = Identity.from_seed(hashlib.sha256(b"stranger").digest())
    body = {"item": "potatoes", "qty": "5", "unit": "kg", "period": "2027-Q1"}
    record = sign_record(
        stranger.signer(), stranger.public, "capacity", "c1", 1, 0, "eu/de/berlin/s", body
    )
    return record.raw


async def _drain_stream(stream: Any) -> None:
    """Read until the daemon closes or resets the stream (or 10 s pass)."""
    with trio.move_on_after(10):
        while True:
            try:
                if not await stream.read(4096):
                    return
            except Exception:  # StreamEOF / StreamReset: the daemon hung up
                return


def _signed_message(host: Any, topic: str) -> rpc_pb2.Message:
    """A message in py-libp2p's signed format (as before issue 12) carrying a new batch."""
    body = {"item": "beans", "qty": "1", "unit": "kg", "period": "2027-Q1"}
    signer = Identity.from_seed(hashlib.sha256(b"stranger").digest())
    record = sign_record(
        signer.signer(), signer.public, "capacity", "c2", 1, 0, "eu/de/berlin/s", body
    )
    msg = rpc_pb2.Message(
        data=encode_batch([record.raw]),
        topicIDs=[topic],
        from_id=host.get_id().to_bytes(),
        seqno=(1).to_bytes(8, "big"),
    )
    msg.key = host.get_public_key().serialize()
    msg.signature = host.get_private_key().sign(
        PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString()
    )
    return msg


async def _hostile_session(target: Node, rejected_now: Any) -> None:
    status = await trio.to_thread.run_sync(target.status)
    topic = topic_for_scope("eu/de/berlin", status["federation"])
    victim = bytes.fromhex(status["node_id"])
    # An insider gone bad: the key of one of the federation's founders, so the target
    # meshes with it and judges what it sends (a stranger's gossip never reaches the
    # validator: strangers are kept out of meshes, tests/net/test_net_libp2p.py).
    rogue = TestFederation(target.data_dir.parent / "federation").identities[-1]
    host = build_host(rogue.seed, ["/ip4/127.0.0.1/tcp/0"])
    router = build_router(GossipConfig())
    pubsub = AllmendePubsub(host, router, errors=Counter())
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with (
        host.run(listen_addrs=listen),
        background_trio_service(pubsub),
        background_trio_service(router),
    ):
        try:
            await pubsub.wait_until_ready()
            await pubsub.subscribe(topic)  # join the daemon's topic
            info = info_from_p2p_addr(multiaddr.Multiaddr(target.addr))
            await host.connect(info)
            with trio.fail_after(10):
                while info.peer_id not in pubsub.peer_topics.get(topic, ()):  # noqa: ASYNC110
                    await trio.sleep(0.05)

            async def count(reason: str) -> int:
                return int((await trio.to_thread.run_sync(rejected_now)).get(reason, 0))

            async def wait_rejected(reason: str) -> None:
                # Each attack must raise its counter (some reasons repeat).
                with trio.fail_after(10):
                    while await count(reason) <= seen[reason]:  # noqa: ASYNC110 (another process)
                        await trio.sleep(0.1)
                seen[reason] += 1

            seen: Counter[str] = Counter()

            # Gossip: garbage, a forged record, an oversize message (> 512 KiB).
            await pubsub.publish(topic, b"\xc1 this is not msgpack \xff" * 4)
            await wait_rejected("malformed")
            await pubsub.publish(topic, encode_batch([forged_record(victim)]))
            await wait_rejected("bad-signature")
            await pubsub.publish(topic, encode_batch([strangers_record()]))
            await wait_rejected("not-admitted")
            await pubsub.publish(topic, encode_batch([b"\x00" * 1000] * 600))
            await wait_rejected("gossip-too-large")
            # The old wire format: a valid batch in a message signed by its sender
            # (from, seqno, signature, key). Refused before any record is looked at.
            await router.publish(pubsub.my_id, _signed_message(host, topic))
            await wait_rejected("gossip-signed-format")

            # Anti-entropy: a garbage frame, a broken length prefix, a huge frame.
            sync = [TProtocol(PROTOCOL_ID)]
            for payload, reason in (
                # the session refuses the frame's content: counted as a malformed record
                (encode_frame(b"\x93garbage\x00\x01"), "malformed"),
                (b"\xff" * 6, "bad-varint"),
                (encode_varint(MAX_FRAME + 1) + b"\x00" * 64, "frame-too-large"),
            ):
                stream = await host.new_stream(info.peer_id, sync)
                await stream.write(payload)
                await _drain_stream(stream)
                await wait_rejected(reason)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await host.close()


def test_hostile_peer_is_rejected_and_counted(nodes: Cluster) -> None:
    target = nodes.node("target").init().start()
    target.post_need()
    before = target.call("digest")

    def rejected_now() -> dict[str, int]:
        return dict(target.status()["rejected"])

    trio.run(partial(_with_deadline, _hostile_session(target, rejected_now)))

    assert target.running
    status = target.status()
    rejected = status["rejected"]
    for reason, n in (
        ("malformed", 2),
        ("bad-signature", 1),
        ("not-admitted", 1),
        ("gossip-too-large", 1),
        ("bad-varint", 1),
        ("frame-too-large", 1),
        ("gossip-signed-format", 1),
    ):
        assert rejected.get(reason, 0) >= n, (reason, rejected)
    assert rejected.get("gossip-rejected", 0) >= 2  # garbage + forged, per message
    assert target.call("digest") == before
    assert status["gossip"]["records_accepted"] == 0
    assert status["flagged_origins"] == []


async def _with_deadline(coro: Any) -> None:
    with trio.fail_after(40):
        await coro


def _multistream(port: int, proposal: bytes) -> bytes:
    """Speak multistream-select 1.0 on a raw TCP socket; return what the daemon says."""

    def frame(line: bytes) -> bytes:
        return encode_varint(len(line)) + line

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(frame(b"/multistream/1.0.0\n") + frame(proposal))
        received = b""
        try:
            while b"na\n" not in received and not received.endswith(proposal):
                chunk = s.recv(4096)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def test_daemon_refuses_plaintext(nodes: Cluster) -> None:
    target = nodes.node("target").init().start()
    for insecure in (b"/plaintext/2.0.0\n", b"/plaintext/1.0.0\n", b"/secio/1.0.0\n"):
        answer = _multistream(target.port, insecure)
        assert answer in (b"", frame_line(b"/multistream/1.0.0\n") + frame_line(b"na\n")), answer
    # control: the same client proposing Noise gets it
    assert _multistream(target.port, b"/noise\n").endswith(b"/noise\n")
    assert target.running
    assert target.status()["peers"] == 0
    target.stop(signal.SIGTERM)


def frame_line(line: bytes) -> bytes:
    return encode_varint(len(line)) + line
