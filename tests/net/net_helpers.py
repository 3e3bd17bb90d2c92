"""Fakes and builders for the node/net tests (real libp2p on 127.0.0.1)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.errors import RemoteError
from node.net import GossipConfig, GossipVerdict, NetConfig, NetService

SCOPE = "test"
TOPIC = "allmende/3/test"


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


@dataclass
class FakeSession:
    """Initiator sends ``ping<i>`` `rounds` times, responder answers ``pong<i>``."""

    initiator: bool
    rounds: int = 3
    log: list[bytes] = field(default_factory=list)
    fail_on: bytes | None = None
    sent: int = 0
    received: int = 0
    partitions: list[str] = field(default_factory=lambda: [SCOPE])
    ingested: int = 0

    def generate_message(self) -> bytes | None:
        if self.initiator:
            if self.sent < self.rounds and self.sent == self.received:
                self.sent += 1
                return b"ping%d" % self.sent
            return None
        if self.sent < self.received:
            self.sent += 1
            return b"pong%d" % self.sent
        return None

    def receive_message(self, data: bytes) -> None:
        if self.fail_on is not None and data.startswith(self.fail_on):
            raise RemoteError("malformed", f"malformed sync message {data[:16]!r}")
        self.log.append(data)
        self.received += 1

    def take_received(self) -> int:
        out, self.ingested = self.received - self.ingested, self.received
        return out

    @property
    def done(self) -> bool:
        return self.received >= self.rounds


@dataclass
class FakeHandler:
    """Records every call; `verdict` decides gossip validation."""

    name: str
    verdict: Callable[[bytes], GossipVerdict] = lambda _data: GossipVerdict.ACCEPT
    session_factory: Callable[[bool], Any] = lambda initiator: FakeSession(initiator)
    gossip: list[tuple[float, bytes, str]] = field(default_factory=list)
    sessions: list[tuple[str, bool, Any]] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)

    async def validate_gossip(self, topic: str, data: bytes, from_peer: str) -> GossipVerdict:
        assert topic == TOPIC
        verdict = self.verdict(data)
        if verdict is GossipVerdict.ACCEPT:
            self.gossip.append((trio.current_time(), data, from_peer))
        return verdict

    def new_sync_session(self, peer: str, initiator: bool) -> Any:
        session = self.session_factory(initiator)
        self.sessions.append((peer, initiator, session))
        return session

    async def sync_step(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    async def ingest_sync(self, peer: str, session: Any) -> None:
        session.take_received()

    def on_peer_connected(self, peer: str) -> None:
        self.connected.append(peer)

    def payloads(self) -> set[bytes]:
        return {d for _, d, _ in self.gossip}


def config(**overrides: Any) -> NetConfig:
    base: dict[str, Any] = {
        "listen_addrs": ["/ip4/127.0.0.1/tcp/0"],
        "scopes": [SCOPE],
        "enable_mdns": False,  # controlled topology: no LAN discovery
        "sync_interval": 3600.0,  # no periodic sync unless a test asks for it
        "gossip": GossipConfig(),
    }
    base.update(overrides)
    return NetConfig(**base)


@asynccontextmanager
async def started(
    nursery: trio.Nursery,
    names: Sequence[str],
    handlers: Sequence[FakeHandler] | None = None,
    **overrides: Any,
) -> AsyncIterator[list[NetService]]:
    handlers = handlers or [FakeHandler(n) for n in names]
    services = [
        NetService(seed(n), h, config(**overrides)) for n, h in zip(names, handlers, strict=True)
    ]
    for s in services:
        await nursery.start(s.run)
    yield services


async def link(a: NetService, b: NetService) -> None:
    """Dial b from a."""
    assert await a.connect(b.listen_addrs()[0])


async def wait_for(cond: Callable[[], bool], seconds: float = 10.0, step: float = 0.02) -> None:
    """Poll `cond` (state owned by py-libp2p has no event to wait on)."""
    with trio.fail_after(seconds):
        while not cond():  # noqa: ASYNC110
            await trio.sleep(step)


async def wait_for_mesh(services: Sequence[NetService], edges: int) -> None:
    """Wait until the gossip mesh has at least `edges` (directed) entries in total."""

    def count() -> int:
        return sum(len(s._router.mesh.get(TOPIC, ())) for s in services)

    await wait_for(lambda: count() >= edges)


def tmp_dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path
