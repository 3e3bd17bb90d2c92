"""Pure parts of node/net: framing, pacing, invalid counters, peer file, identity."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import LocalError, RemoteError
from node.net import PeerBook, peer_id_from_seed, split_p2p_addr, topic_for_scope
from node.net.discovery import Backoff, is_dialable
from node.net.gossip import InvalidTracker, PublishPacer, scope_of_topic
from node.net.host import build_host
from node.net.syncproto import FrameDecoder, FrameTooLarge, encode_frame, encode_varint

PID = peer_id_from_seed(bytes(32))


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(1, 50))
def test_frames_round_trip_in_any_chunking(payloads: list[bytes], chunk: int) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    out = []
    for i in range(0, len(wire), chunk):
        decoder.feed(wire[i : i + chunk])
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert out == payloads
    assert decoder.buffered == 0


def test_frame_above_limit_is_refused_from_its_prefix() -> None:
    decoder = FrameDecoder(max_frame=1024)
    decoder.feed(encode_varint(1025))
    with pytest.raises(FrameTooLarge) as info:
        decoder.next_frame()
    assert info.value.reason == "frame-too-large"
    with pytest.raises(LocalError):
        encode_frame(b"x" * 1025, max_frame=1024)


@pytest.mark.parametrize("prefix", [b"\x80\x80\x80\x80\x80\x01", b"\x80\x00"])
def test_bad_varints_are_remote_errors(prefix: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(prefix)
    with pytest.raises(RemoteError) as info:
        decoder.next_frame()
    assert info.value.reason == "bad-varint"


def test_pacer_allows_burst_then_rate() -> None:
    pacer = PublishPacer(rate=10.0, burst=3)
    for _ in range(3):
        assert pacer.delay("t", 0.0) == 0.0
        pacer.take("t", 0.0)
    assert pacer.delay("t", 0.0) == pytest.approx(0.1)
    assert pacer.delay("other", 0.0) == 0.0  # per topic
    assert pacer.delay("t", 0.1) == pytest.approx(0.0)


def test_invalid_tracker_threshold_and_decay() -> None:
    tracker = InvalidTracker(threshold=3, half_life=10.0)
    assert not tracker.record("p", 0.0)
    assert not tracker.record("p", 0.0)
    assert tracker.score("p", 10.0) == pytest.approx(1.0)  # halved after one half-life
    assert not tracker.record("p", 10.0)
    assert tracker.record("p", 10.0)


def test_backoff_grows_to_cap_with_jitter() -> None:
    rng = random.Random(1)
    b = Backoff(base=1.0, factor=2.0, cap=8.0)
    assert 0.5 <= b.delay(1, rng) <= 1.0
    assert 2.0 <= b.delay(3, rng) <= 4.0
    assert 4.0 <= b.delay(30, rng) <= 8.0


def test_peer_book_is_written_atomically_and_reloaded(tmp_path) -> None:
    book = PeerBook(tmp_path)
    assert book.add(PID, ["/ip4/127.0.0.1/tcp/4001", "/ip4/0.0.0.0/tcp/4001"])
    assert not book.add(PID, ["/ip4/127.0.0.1/tcp/4001"])
    book.save()
    assert not (tmp_path / "known-peers.json.tmp").exists()
    raw = json.loads((tmp_path / "known-peers.json").read_text())
    assert raw["peers"] == {PID: ["/ip4/127.0.0.1/tcp/4001"]}
    again = PeerBook(tmp_path)
    again.load()
    assert again.dial_addrs() == [f"/ip4/127.0.0.1/tcp/4001/p2p/{PID}"]


def test_corrupt_peer_file_is_ignored(tmp_path) -> None:
    (tmp_path / "known-peers.json").write_text("{not json")
    book = PeerBook(tmp_path)
    book.load()
    assert book.peers == {}


def test_peer_book_caps_peers() -> None:
    book = PeerBook(None, max_peers=2)
    for i in range(3):
        book.add(f"peer{i}", [f"/ip4/10.0.0.{i + 1}/tcp/1"])
    assert list(book.peers) == ["peer1", "peer2"]


@pytest.mark.parametrize(
    ("addr", "ok"),
    [
        ("/ip4/127.0.0.1/tcp/4001", True),
        ("/ip6/::1/tcp/4001", True),
        ("/ip4/0.0.0.0/tcp/4001", False),
        ("/ip4/127.0.0.1/tcp/0", False),
        ("/ip4/127.0.0.1/udp/4001/quic-v1", False),
    ],
)
def test_is_dialable(addr: str, ok: bool) -> None:
    assert is_dialable(addr) is ok


def test_split_p2p_addr() -> None:
    assert split_p2p_addr(f"/ip4/127.0.0.1/tcp/1/p2p/{PID}") == (PID, "/ip4/127.0.0.1/tcp/1")
    with pytest.raises(LocalError):
        split_p2p_addr("/ip4/127.0.0.1/tcp/1")


def test_topics() -> None:
    assert topic_for_scope("de/berlin") == "allmende/3/de/berlin"
    assert scope_of_topic("allmende/3/de/berlin") == "de/berlin"
    assert scope_of_topic("other/1/x") is None
    with pytest.raises(LocalError):
        topic_for_scope("")


def test_peer_id_derives_from_seed() -> None:
    seed = bytes(range(32))
    host = build_host(seed)
    assert host.get_id().to_base58() == peer_id_from_seed(seed)
    assert peer_id_from_seed(seed) != PID
    with pytest.raises(LocalError):
        peer_id_from_seed(b"short")


def test_host_offers_only_noise_and_yamux() -> None:
    host = build_host(bytes(32))
    upgrader = host.get_network().upgrader
    assert list(upgrader.security_multistream.transports) == ["/noise"]
    assert list(upgrader.muxer_multistream.transports) == ["/yamux/1.0.0"]


def test_listen_addrs_are_checked() -> None:
    with pytest.raises(LocalError):
        build_host(bytes(32), ["/ip4/127.0.0.1/udp/1"])
    with pytest.raises(LocalError):
        build_host(bytes(32), [])


def test_invalid_tracker_burst_triggers_despite_decay() -> None:
    tracker = InvalidTracker(threshold=3, half_life=300.0)
    assert not tracker.record("p", 0.0)
    assert not tracker.record("p", 0.5)
    assert tracker.record("p", 1.0)
