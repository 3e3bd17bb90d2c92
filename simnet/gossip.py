"""A gossipsub model per node: mesh, message cache, seen cache, IHAVE/IWANT, GRAFT/PRUNE.

Per topic each node keeps a mesh of about D peers among its connected peers that
subscribe to the topic. At every heartbeat it grafts peers when the mesh is below
D_lo and prunes it to D above D_hi, drops peers whose link went down, and advertises
the ids of messages from its last `history_gossip` heartbeats (IHAVE) to `d_lazy`
connected non-mesh peers; a peer asks for the ones it has not seen (IWANT) and gets
them from the message cache (`history_length` heartbeats). A message is validated
before it is forwarded, by the node's own validator (the daemon's rule: ACCEPT when it
changed the replica, IGNORE when it brought nothing new, REJECT for a bad record);
only ACCEPTed messages are forwarded to mesh peers and cached. Simplified: no peer
scoring, no PRUNE backoff or peer exchange, no flood publishing, fanout only while a
topic has no mesh, and subscriptions are known to peers at once.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from simnet.network import VirtualNetwork
from simnet.scenario import Gossip as GossipParams

MSG_OVERHEAD = 64  # topic, from, seqno, signature-less RPC framing
ID_BYTES = 42  # a gossipsub message id is from + seqno


class Verdict(enum.Enum):
    ACCEPT = "accept"
    IGNORE = "ignore"
    REJECT = "reject"
    RETRY = "retry"  # refused for now: not seen, so a later copy is judged again


@dataclass
class GossipStats:
    published: int = 0
    first_deliveries: int = 0
    duplicates: int = 0
    rejected: int = 0
    ihave: int = 0
    iwant: int = 0
    grafts: int = 0
    prunes: int = 0


class MessageStore:
    """Every published message of the run by id: (topic, data, publisher), and which
    nodes have seen it (a node's seen cache, kept here for all nodes).

    Args:
        nodes: how many nodes the run has (node ids are 0 .. nodes - 1).

    A seen cache per node, as a set of ids, costs ~50 bytes per message and node that
    saw it: every node sees every message of the root's topic, so it grows with the
    square of the node count. Here each message has one bit per node instead.
    """

    def __init__(self, nodes: int) -> None:
        self.messages: list[tuple[str, bytes, int]] = []
        self.seen: list[bytearray] = []  # per message id: bit i set = node i saw it
        self._width = (nodes + 7) // 8

    def add(self, topic: str, data: bytes, publisher: int) -> int:
        self.messages.append((topic, data, publisher))
        self.seen.append(bytearray(self._width))
        return len(self.messages) - 1


Validator = Callable[[str, bytes], Verdict]


class GossipNode:
    """One node's gossipsub state over the shared network.

    Args:
        index: this node.
        topics: topics it subscribes to.
        subs: every node's topics (subscriptions are known at once).
        nodes: every node's GossipNode (filled by the simulation), to deliver to.
        net, store, params, rng, stats: shared run objects.
        validate: the node's gossip validator.
        counts: whether a peer's node counts in this node's federation (None: every
            peer does). As the daemon (`node.net.pubsub.AllmendeGossipSub`), a node
            grafts only peers that count and refuses the grafts of the others.
    """

    def __init__(
        self,
        index: int,
        topics: tuple[str, ...],
        subs: list[tuple[str, ...]],
        nodes: list[GossipNode],
        net: VirtualNetwork,
        store: MessageStore,
        params: GossipParams,
        rng: random.Random,
        stats: GossipStats,
        validate: Validator,
        counts: Callable[[int], bool] | None = None,
    ) -> None:
        self._counts = counts
        self.index = index
        self.topics = topics
        self._subs = subs
        self._all = nodes
        self._net = net
        self._store = store
        self._p = params
        self._rng = rng
        self.stats = stats
        self._validate = validate
        self.mesh: dict[str, list[int]] = {t: [] for t in topics}
        self._seen = store.seen  # this node's seen cache: its bit of each message's row
        self._byte, self._bit = index >> 3, 1 << (index & 7)
        self._windows: dict[str, list[list[int]]] = {t: [[]] for t in topics}
        self._cached: set[int] = set()  # ids in the message cache (IWANT answers)

    # --- publishing and receiving -------------------------------------------------

    def publish(self, topic: str, data: bytes) -> int:
        mid = self._store.add(topic, data, self.index)
        self.stats.published += 1
        self._seen[mid][self._byte] |= self._bit
        self._cache(topic, mid)
        peers = self.mesh[topic] or self._fanout(topic)
        for p in peers:
            self._send_message(p, mid, len(data))
        return mid

    def on_message(self, mid: int, frm: int) -> None:
        row = self._seen[mid]
        if row[self._byte] & self._bit:
            self.stats.duplicates += 1
            return
        row[self._byte] |= self._bit
        self.stats.first_deliveries += 1
        topic, data, publisher = self._store.messages[mid]
        verdict = self._validate(topic, data)
        if verdict is Verdict.REJECT:
            self.stats.rejected += 1
            return
        if verdict is Verdict.IGNORE:
            return
        if verdict is Verdict.RETRY:
            row[self._byte] &= ~self._bit
            return
        self._cache(topic, mid)
        for p in self.mesh.get(topic, ()):
            if p != frm and p != publisher:
                self._send_message(p, mid, len(data))

    def _send_message(self, peer: int, mid: int, size: int) -> None:
        if self._seen[mid][peer >> 3] & (1 << (peer & 7)):
            # A sure duplicate (an id stays seen once judged; RETRY drops it at once):
            # counted as sent and, if its link is up, as delivered, without an event
            # (most copies of a message are these).
            if self._net.account(self.index, peer, "gossip", size + MSG_OVERHEAD):
                self.stats.duplicates += 1
            return
        self._net.send(
            self.index,
            peer,
            "gossip",
            size + MSG_OVERHEAD,
            _deliver,
            self._all,
            peer,
            mid,
            self.index,
        )

    def _fanout(self, topic: str) -> list[int]:
        cands = self._candidates(topic, exclude=())
        return self._rng.sample(cands, min(self._p.d, len(cands)))

    # --- control messages ------------------------------------------------------

    def on_ihave(self, ids: list[int], frm: int) -> None:
        rows, byte, bit = self._seen, self._byte, self._bit
        wanted = [m for m in ids if not rows[m][byte] & bit]
        if wanted:
            self.stats.iwant += 1
            self._net.send(
                self.index,
                frm,
                "iwant",
                16 + ID_BYTES * len(wanted),
                _iwant,
                self._all,
                frm,
                wanted,
                self.index,
            )

    def on_iwant(self, ids: list[int], frm: int) -> None:
        for mid in ids:
            if mid in self._cached:
                self._net.send(
                    self.index,
                    frm,
                    "gossip",
                    len(self._store.messages[mid][1]) + MSG_OVERHEAD,
                    _deliver,
                    self._all,
                    frm,
                    mid,
                    self.index,
                )

    def on_graft(self, topic: str, frm: int) -> None:
        mesh = self.mesh.get(topic)
        if mesh is None or frm in mesh:
            return
        if self._counts is not None and not self._counts(frm):
            self._net.send(self.index, frm, "prune", 40, _prune, self._all, frm, topic, self.index)
            return
        mesh.append(frm)

    def on_prune(self, topic: str, frm: int) -> None:
        mesh = self.mesh.get(topic)
        if mesh is not None and frm in mesh:
            mesh.remove(frm)

    def has_seen(self, mid: int) -> bool:
        """Whether this node saw message `mid` (and judged it, or published it)."""
        return bool(self._seen[mid][self._byte] & self._bit)

    def link_down(self, peer: int) -> None:
        """The connection to `peer` closed: it leaves every mesh at once."""
        for mesh in self.mesh.values():
            if peer in mesh:
                mesh.remove(peer)

    # --- heartbeat ---------------------------------------------------------------

    def heartbeat(self) -> None:
        p, rng, net, me = self._p, self._rng, self._net, self.index
        for topic in self.topics:
            mesh = self.mesh[topic]
            windows = self._windows[topic]
            if (
                p.d_lo <= len(mesh) <= p.d_hi
                and len(windows) == p.history_length
                and not any(windows)
            ):
                # A quiet topic with a mesh in bounds: no graft, no prune, nothing to
                # announce, and its empty windows rotate into the same empty windows.
                continue
            if len(mesh) < p.d_lo:
                cands = self._candidates(topic, exclude=mesh)
                if self._counts is not None:
                    cands = [q for q in cands if self._counts(q)]
                for peer in rng.sample(cands, min(p.d - len(mesh), len(cands))):
                    mesh.append(peer)
                    self.stats.grafts += 1
                    net.send(me, peer, "graft", 40, _graft, self._all, peer, topic, me)
            elif len(mesh) > p.d_hi:
                for peer in rng.sample(mesh, len(mesh) - p.d):
                    mesh.remove(peer)
                    self.stats.prunes += 1
                    net.send(me, peer, "prune", 40, _prune, self._all, peer, topic, me)
            ids = [m for w in windows[-p.history_gossip :] for m in w]
            if ids:
                cands = self._candidates(topic, exclude=mesh)
                for peer in rng.sample(cands, min(p.d_lazy, len(cands))):
                    self.stats.ihave += 1
                    net.send(
                        me,
                        peer,
                        "ihave",
                        16 + ID_BYTES * len(ids),
                        _ihave,
                        self._all,
                        peer,
                        ids,
                        me,
                    )
            windows.append([])
            if len(windows) > p.history_length:
                for mid in windows.pop(0):
                    self._cached.discard(mid)

    def _candidates(self, topic: str, exclude: list[int] | tuple[int, ...]) -> list[int]:
        net, subs, me = self._net, self._subs, self.index
        return [
            q for q in net.neighbours[me] if q not in exclude and topic in subs[q] and net.up(me, q)
        ]

    def _cache(self, topic: str, mid: int) -> None:
        self._windows[topic][-1].append(mid)
        self._cached.add(mid)


def _deliver(nodes: list[GossipNode], to: int, mid: int, frm: int) -> None:
    nodes[to].on_message(mid, frm)


def _ihave(nodes: list[GossipNode], to: int, ids: list[int], frm: int) -> None:
    nodes[to].on_ihave(ids, frm)


def _iwant(nodes: list[GossipNode], to: int, ids: list[int], frm: int) -> None:
    nodes[to].on_iwant(ids, frm)


def _graft(nodes: list[GossipNode], to: int, topic: str, frm: int) -> None:
    nodes[to].on_graft(topic, frm)


def _prune(nodes: list[GossipNode], to: int, topic: str, frm: int) -> None:
    nodes[to].on_prune(topic, frm)
