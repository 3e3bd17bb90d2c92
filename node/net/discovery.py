"""Finding peers: bootstrap dials, a remembered-peers file, optional mDNS, redial with backoff.

`PeerBook` and `Backoff` are pure (no trio); `Discovery` is the I/O edge.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from node.errors import LocalError
from node.files import replace_private

logger = logging.getLogger(__name__)

PEERS_FILE = "known-peers.json"
_FILE_VERSION = 1


def split_p2p_addr(text: str) -> tuple[str, str]:
    """Split ``/ip4/1.2.3.4/tcp/4001/p2p/12D3...`` into (peer id, transport address).

    Raises:
        LocalError: the address does not parse or has no ``/p2p/`` part.
    """
    try:
        info = info_from_p2p_addr(multiaddr.Multiaddr(text))
    except Exception as exc:
        raise LocalError(
            f"peer address {text!r} must be a multiaddr ending in /p2p/<peer id>: {exc}"
        ) from exc
    return info.peer_id.to_base58(), str(info.addrs[0])


def is_dialable(addr: str) -> bool:
    """True for ``/ip4|ip6/<ip>/tcp/<port>`` with a concrete IP and a non-zero port."""
    parts = addr.strip("/").split("/")
    return (
        len(parts) == 4
        and parts[0] in ("ip4", "ip6")
        and parts[1] not in ("0.0.0.0", "::")
        and parts[2] == "tcp"
        and parts[3] not in ("", "0")
    )


@dataclass(frozen=True)
class Backoff:
    """Exponential redial backoff with full jitter (pure; randomness injected)."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after `failures` consecutive failed dials (>= 1)."""
        ceiling = min(self.cap, self.base * self.factor ** max(0, failures - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class PeerBook:
    """Peers we have been connected to, persisted as JSON in `directory`.

    Writes are atomic: a temp file is written, fsynced and renamed over the old one,
    then the directory is fsynced, so a crash leaves either the old or the new list.
    """

    directory: Path | None
    max_peers: int = 64
    max_addrs_per_peer: int = 8
    peers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The JSON file, or None when the book is memory-only."""
        return None if self.directory is None else self.directory / PEERS_FILE

    def load(self) -> None:
        """Read the file; a missing or corrupt file yields an empty book (logged)."""
        path = self.path
        if path is None or not path.exists():
            return
        try:
            raw = json.loads(path.read_text("utf-8"))
            peers = raw["peers"]
            self.peers = {
                str(pid): [str(a) for a in addrs if is_dialable(str(a))][: self.max_addrs_per_peer]
                for pid, addrs in peers.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignoring unreadable peer file %s: %s", path, exc)
            self.peers = {}

    def add(self, peer_id: str, addrs: Iterable[str]) -> bool:
        """Remember dialable `addrs` of `peer_id`; return True if the book changed."""
        new = [a for a in addrs if is_dialable(a)]
        if not new:
            return False
        old = self.peers.get(peer_id, [])
        merged = list(dict.fromkeys([*new, *old]))[: self.max_addrs_per_peer]
        if merged == old:
            return False
        self.peers.pop(peer_id, None)
        self.peers[peer_id] = merged  # most recently seen last
        while len(self.peers) > self.max_peers:
            del self.peers[next(iter(self.peers))]
        return True

    def remove(self, peer_id: str) -> bool:
        """Forget `peer_id`; return True if it was known."""
        return self.peers.pop(peer_id, None) is not None

    def dial_addrs(self) -> list[str]:
        """All remembered addresses with their ``/p2p/<id>`` suffix."""
        return [f"{a}/p2p/{pid}" for pid, addrs in self.peers.items() for a in addrs]

    def save(self) -> None:
        """Write the book atomically (no-op when memory-only)."""
        path = self.path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": _FILE_VERSION, "peers": self.peers}, indent=1)
        replace_private(path, data)


@dataclass
class _Target:
    addrs: list[str]
    failures: int = 0
    next_try: float = 0.0


class Discovery:
    """Keeps the host connected to bootstrap peers, remembered peers and mDNS finds.

    Args:
        host: the libp2p host.
        bootstrap: multiaddrs with ``/p2p/<id>``; dialled first and redialled forever.
        book: the remembered peers; updated with connected peers' addresses.
        is_banned: peers for which this returns True are never dialled.
        use_peerstore: also dial peers the peerstore learned about (mDNS fills it).
        rng: injected randomness for backoff jitter.
        tick: seconds between redial rounds.
        dial_timeout: seconds allowed for one dial.
    """

    def __init__(
        self,
        host: IHost,
        *,
        bootstrap: Sequence[str],
        book: PeerBook,
        is_banned: Callable[[str], bool],
        use_peerstore: bool,
        rng: random.Random,
        backoff: Backoff = Backoff(),
        tick: float = 1.0,
        dial_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.book = book
        self.is_banned = is_banned
        self.use_peerstore = use_peerstore
        self.rng = rng
        self.backoff = backoff
        self.tick = tick
        self.dial_timeout = dial_timeout
        self.dials_ok = 0
        self.dials_failed = 0
        self._self_id = host.get_id().to_base58()
        self._bootstrap: dict[str, list[str]] = {}
        for text in bootstrap:
            pid, addr = split_p2p_addr(text)
            self._bootstrap.setdefault(pid, []).append(addr)
        self._targets: dict[str, _Target] = {}

    def add_bootstrap(self, text: str) -> str:
        """Keep dialling one more peer (with backoff) from now on; returns its peer id.

        Raises:
            LocalError: the address does not parse or has no ``/p2p/`` part.
        """
        pid, addr = split_p2p_addr(text)
        addrs = self._bootstrap.setdefault(pid, [])
        if addr not in addrs:
            addrs.append(addr)
        self._targets.pop(pid, None)  # no backoff left over from earlier failures
        return pid

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,  # type: ignore[name-defined]
    ) -> None:
        """Dial everything once concurrently, report started, then keep redialling."""
        self.book.load()
        await self._round()
        task_status.started()
        while True:
            await trio.sleep(self.tick)
            self._remember_connected()
            await self._round()

    def _connected(self) -> set[str]:
        return {p.to_base58() for p in self.host.get_connected_peers()}

    def _wanted(self) -> dict[str, list[str]]:
        wanted: dict[str, list[str]] = {}
        for pid, addrs in self.book.peers.items():
            wanted[pid] = list(addrs)
        for pid, addrs in self._bootstrap.items():
            wanted[pid] = list(dict.fromkeys([*addrs, *wanted.get(pid, [])]))
        if self.use_peerstore:
            store = self.host.get_peerstore()
            for peer in store.peers_with_addrs():
                pid = peer.to_base58()
                if pid not in wanted:
                    addrs = [str(a) for a in store.addrs(peer) if is_dialable(str(a))]
                    if addrs:
                        wanted[pid] = addrs
        wanted.pop(self._self_id, None)
        return wanted

    async def _round(self) -> None:
        now = trio.current_time()
        connected = self._connected()
        due: list[tuple[str, list[str]]] = []
        for pid, addrs in self._wanted().items():
            target = self._targets.setdefault(pid, _Target(addrs))
            target.addrs = addrs
            if pid in connected:
                target.failures = 0
                continue
            if self.is_banned(pid) or now < target.next_try:
                continue
            due.append((pid, addrs))
        if not due:
            return
        async with trio.open_nursery() as nursery:
            for pid, addrs in due:
                nursery.start_soon(self._dial, pid, addrs)
        self._remember_connected()

    async def _dial(self, pid: str, addrs: list[str]) -> None:
        target = self._targets[pid]
        for addr in addrs:
            ok = await self.dial(f"{addr}/p2p/{pid}")
            if ok:
                target.failures = 0
                if self.book.add(pid, [addr]):
                    self._save_book()
                return
        target.failures += 1
        target.next_try = trio.current_time() + self.backoff.delay(target.failures, self.rng)

    async def dial(self, p2p_addr: str) -> bool:
        """Dial one ``.../p2p/<id>`` address; True on success, failures are logged."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(p2p_addr))
        except Exception as exc:
            logger.warning("cannot dial %s: %s", p2p_addr, exc)
            return False
        # py-libp2p refuses every dial to a peer for 60 s after one failed dial; a
        # bootstrap peer that restarts, or was not listening yet, would wait that out.
        unblock = getattr(self.host.get_network(), "unblock_peer", None)
        if unblock is not None:
            with contextlib.suppress(Exception):
                unblock(info.peer_id)
        with trio.move_on_after(self.dial_timeout) as scope:
            try:
                await self.host.connect(info)
            except Exception as exc:
                logger.debug("dial %s failed: %s: %s", p2p_addr, type(exc).__name__, exc)
                self.dials_failed += 1
                return False
        if scope.cancelled_caught:
            logger.debug("dial %s timed out", p2p_addr)
            self.dials_failed += 1
            return False
        self.dials_ok += 1
        return True

    def _remember_connected(self) -> None:
        store = self.host.get_peerstore()
        changed = False
        for peer in self.host.get_connected_peers():
            pid = peer.to_base58()
            if self.is_banned(pid):
                continue
            try:
                # identify stores a peer's listen addresses with its /p2p/<id> suffix
                addrs = [str(a).split("/p2p/")[0] for a in store.addrs(peer)]
            except Exception:  # PeerStoreError when the peer has no addresses yet
                continue
            changed |= self.book.add(pid, addrs)
        if changed:
            self._save_book()

    def remove_bootstrap(self, peer_id: str) -> None:
        """Stop dialling `peer_id` and forget its remembered addresses."""
        self._bootstrap.pop(peer_id, None)
        self._targets.pop(peer_id, None)
        if self.book.remove(peer_id):
            self._save_book()

    def forget(self, peer: ID) -> None:
        """Forget a (banned) peer everywhere except the bootstrap list."""
        if self.book.remove(peer.to_base58()):
            self._save_book()

    def _save_book(self) -> None:
        try:
            self.book.save()
        except OSError as exc:
            logger.warning("cannot save peer file %s: %s", self.book.path, exc)
