"""Per-record convergence: when did every live node that follows a record hold it?

A node holds a record once its replica's slot has that record or a newer one (a
superseded record never needs to arrive). A record converges at the first moment
when every follower of its partition that is online holds it; a node that is away
does not hold convergence up, and catches up when it comes back (its catch-up time
is measured separately).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from node import model
from node.crdt.record import Record, Slot


@dataclass(slots=True)
class Track:
    created: float
    seq: int
    slot: Slot
    missing: set[int]  # followers that do not hold it yet
    live_missing: int
    converged: float | None = None


class Tracker:
    """Watches every node's replica (attach `listener(i)` to node i's replica).

    Args:
        followers: partition -> nodes that follow it.
        online: shared liveness flags (the network's).
        now: virtual time.
    """

    def __init__(
        self, followers: dict[str, list[int]], online: list[bool], now: Callable[[], float]
    ) -> None:
        self._followers = followers
        self._online = online
        self._now = now
        self.tracks: list[Track] = []
        self._by_slot: dict[Slot, list[Track]] = {}  # tracks some follower lacks
        self._pending: dict[int, Track] = {}  # id(track) -> unconverged track
        self._open: dict[int, Track] = {}  # id(track) -> track some follower lacks
        self._absent: dict[int, set[int]] = {}  # away node -> ids of tracks it lacks
        self.catching_up: dict[int, tuple[float, set[int]]] = {}
        self.catch_up_times: list[float] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def listener(self, node: int) -> Callable[[Record | None, Record], None]:
        def on_change(_old: Record | None, new: Record) -> None:
            self.held(node, new)

        return on_change

    def created(self, record: Record, author: int) -> None:
        followers = self._followers.get(model.partition_of(record.scope), [])
        missing = {n for n in followers if n != author}
        live = sum(1 for n in missing if self._online[n])
        t = Track(self._now(), record.seq, record.slot, missing, live)
        self.tracks.append(t)
        if missing:
            self._by_slot.setdefault(record.slot, []).append(t)
            self._open[id(t)] = t
        for n in missing:
            if not self._online[n]:
                self._absent.setdefault(n, set()).add(id(t))
        if live == 0:
            t.converged = t.created
        else:
            self._pending[id(t)] = t

    def held(self, node: int, record: Record) -> None:
        tracks = self._by_slot.get(record.slot)
        if not tracks:
            return
        for t in list(tracks):
            if t.seq > record.seq or node not in t.missing:
                continue
            t.missing.discard(node)
            if not t.missing:
                # a set keeps its table when emptied: a run of 10^6 records would keep
                # one table per record for nothing
                t.missing = set()
                tracks.remove(t)
                del self._open[id(t)]
            if self._online[node]:
                t.live_missing -= 1
                if t.live_missing == 0 and t.converged is None:
                    t.converged = self._now()
                    del self._pending[id(t)]
            catching = self.catching_up.get(node)
            if catching is not None:
                catching[1].discard(id(t))
                if not catching[1]:
                    self.catch_up_times.append(self._now() - catching[0])
                    del self.catching_up[node]
        if not tracks:
            del self._by_slot[record.slot]

    def node_left(self, node: int) -> None:
        """Call after the node is marked offline."""
        self.catching_up.pop(node, None)
        absent = self._absent.setdefault(node, set())
        for key, t in list(self._pending.items()):
            if node in t.missing:
                absent.add(key)
                t.live_missing -= 1
                if t.live_missing == 0:
                    t.converged = self._now()
                    del self._pending[key]
        for key, t in self._open.items():
            if node in t.missing:
                absent.add(key)

    def node_joined(self, node: int, *, first: bool = False) -> None:
        """Call after the node is marked online again (`first`: it just started, and
        only a real catch-up is measured)."""
        lacking = self._absent.pop(node, set())
        for t in self._pending.values():
            if node in t.missing:
                t.live_missing += 1
        lacking = {k for k in lacking if k in self._open and node in self._open[k].missing}
        if lacking:
            self.catching_up[node] = (self._now(), lacking)
        elif not first:
            self.catch_up_times.append(0.0)
