"""One node core: the daemon and a simnet node, fed the same inputs, end in the same state.

The daemon runs its ingest in stages (screen on the loop, verify in a thread, merge in
chunks, save in the store worker); a virtual node runs `NodeCore` in one go. Both get
the same gossip messages (valid, duplicated, forged, of the wrong topic, equivocating,
stamped ahead) and the same anti-entropy sessions with a peer, and must give the same
verdicts, hold the same records and evidence, flag the same origins and queue the same
records for gossip.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
from factories import Author, identities

from node.clock import pack_hlc
from node.config import Config, DataDir
from node.core import encode_batch
from node.crdt.record import Record, sign_record
from node.crdt.replica import Replica
from node.crdt.sync import Role, SyncSession
from node.daemon import Daemon, now_ms
from node.governance.admission import Charter
from node.keys import Identity
from node.model import partition_of
from node.net import topic_for_scope
from simnet.simnode import SimNode
from simnet.trust import VerifiedCache
from simnet.workload import NodeSpec

SCOPE = "eu/de/berlin/x"
PEER = "12D3KooWPeerPeerPeerPeerPeerPeerPeerPeerPeerPeer"


def _inputs(seed: int, node: bytes) -> tuple[Charter, list[tuple[str, bytes]], list[Replica]]:
    """The federation (the authors and `node` found it), gossip messages (topic
    partition, data) and peer replicas to sync with."""
    rng = random.Random(seed)
    authors = [
        Author(i, scope=rng.choice(["eu/de/berlin/a", "eu/de/berlin/b"]))
        for i in identities(6, seed)
    ]
    outsider = Author(identities(1, seed + 100)[0], scope="eu/de/hamburg/h")
    upper = Author(identities(1, seed + 200)[0], scope="eu/de")
    stranger = Author(identities(1, seed + 400)[0], scope="eu/de/berlin/s")
    mallory = identities(1, seed + 300)[0]
    charter = Charter.of("t", [node, upper.origin, *(a.origin for a in authors)])
    signatures = [a.write("charter", charter.id, charter.body(), scope="eu") for a in authors]
    signatures.append(upper.write("charter", charter.id, charter.body(), scope="eu"))
    pool: list[Record] = []
    for a in authors:
        for k in range(rng.randrange(3, 12)):
            pool.append(a.need(f"n{k % 5}", qty=str(rng.randrange(1, 500))))
        if rng.random() < 0.5:  # an equivocation: one seq, two records
            twin = a.need("e", qty="1")
            pool += [twin, a.need("e", qty="2", seq=twin.seq)]
        if rng.random() < 0.5:
            pool.append(a.write("need", "n0", None))  # withdrawn
    pool += [upper.capacity(f"c{k}") for k in range(3)]
    ahead = pack_hlc(now_ms() + 30 * 60 * 1000, 0)
    oddities = [
        outsider.need("h1"),  # a partition not followed
        authors[0].need("late", hlc=ahead),  # stamped too far ahead
        stranger.need("s1"),  # nobody vouches for its origin
        sign_record(  # forged: signed by mallory, claiming authors[1]
            mallory.signer(),
            authors[1].origin,
            "need",
            "f",
            1,
            0,
            authors[1].scope,
            {"item": "potatoes", "qty": "9", "unit": "kg", "period": "2027", "priority": "low"},
        ),
    ]
    messages: list[tuple[str, bytes]] = [("eu", encode_batch([r.raw for r in signatures]))]
    for _ in range(40):
        recs = rng.sample(pool, rng.randrange(1, 6))
        if rng.random() < 0.15:
            recs.append(rng.choice(oddities))
        by_part: dict[str, list[Record]] = {}
        for r in recs:
            by_part.setdefault(partition_of(r.scope), []).append(r)
        part = rng.choice(sorted(by_part))
        topic = part if rng.random() < 0.9 else "eu/de/berlin"  # sometimes the wrong topic
        messages.append((topic, encode_batch([r.raw for r in recs])))
    # Messages that are no batch: another version, a record cut short.
    good = messages[1][1]
    messages += [(messages[1][0], b"\x09" + good[1:]), (messages[1][0], good[:-3])]
    messages.append(messages[1])  # and a message seen before
    peers = []
    for _ in range(2):
        replica = Replica()
        for r in [*signatures, *rng.sample(pool, len(pool) // 2), oddities[0], oddities[2]]:
            replica.receive(r.raw)
        peers.append(replica)
    return charter, messages, peers


class _Sim:
    def __init__(self, seed: bytes, charter: Charter, cache: VerifiedCache | None) -> None:
        spec = NodeSpec(0, "x", "commune", SCOPE, "eu/de/berlin", seed)
        self.node = SimNode(spec, now_ms, cache=cache, charter=charter)

    async def gossip(self, topic: str, data: bytes) -> str:
        return self.node.validate_gossip(topic, data).value

    def session(self) -> SyncSession:
        return self.node.sync_session(False, random.Random(0))

    async def ingest(self, session: SyncSession) -> None:
        self.node.ingest_sync(session)

    @property
    def replica(self) -> Replica:
        return self.node.replica

    @property
    def outbox(self) -> list[Record]:
        return self.node.outbox


class _Daemon:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    async def gossip(self, topic: str, data: bytes) -> str:
        topic = topic_for_scope(topic, self.d.federation)
        return (await self.d.validate_gossip(topic, data, PEER)).value

    def session(self) -> SyncSession:
        return self.d.new_sync_session(PEER, initiator=False)

    async def ingest(self, session: SyncSession) -> None:
        await self.d.ingest_sync(PEER, session)

    @property
    def replica(self) -> Replica:
        return self.d.state.replica

    @property
    def outbox(self) -> list[Record]:
        return self.d.core.outbox


async def _sync(peer: Replica, node: Any) -> None:
    """One session, the peer initiating (as after a connection), same salt each time."""
    mine = SyncSession(
        peer, node.replica_partitions, Role.INITIATOR, salt=b"s" * 16, federation=node.federation
    )
    theirs = node.session()
    msg = mine.generate_message()
    while msg is not None:
        theirs.receive_message(msg)
        await node.ingest(theirs)
        reply = theirs.generate_message()
        if reply is None:
            break
        mine.receive_message(reply)
        mine.take_received()  # the peer's side is not under test
        msg = mine.generate_message()


def _state(node: Any, me: bytes) -> dict[str, Any]:
    held = sorted(r.rid for r in node.replica.entries() if r.origin != me)
    return {
        "held": held,
        "flagged": dict(node.replica.flagged),
        "evidence": [(a.rid, b.rid) for a, b in node.replica.evidence()],
        "outbox": sorted(r.rid for r in node.outbox if r.origin != me),
    }


@pytest.mark.parametrize("cached", [False, True], ids=["verify-each", "shared-cache"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_daemon_and_simnet_node_end_in_the_same_state(tmp_path, seed, cached) -> None:
    identity = Identity.from_seed(bytes([seed]) * 32)
    charter, messages, peers = _inputs(seed, identity.public)
    dd = DataDir(tmp_path / "d")
    dd.init(
        Config(
            name="x",
            scope=SCOPE,
            mdns=False,
            listen=("/ip4/127.0.0.1/tcp/0",),
            charter=charter.body(),
        ),
        identity=identity,
    )
    identity, config = dd.load()
    daemon = Daemon(dd, identity, config)
    # The shared cache (`simnet.trust`) as a run of many nodes has it: it has seen the
    # messages already (another node judged them first).
    cache = VerifiedCache() if cached else None
    if cache is not None:
        other = _Sim(bytes([seed + 50]) * 32, charter, cache)
        for topic, data in messages:
            other.node.validate_gossip(topic, data)
    nodes = [_Daemon(daemon), _Sim(identity.seed, charter, cache)]
    for n in nodes:
        n.replica_partitions = daemon.state.partitions
        n.federation = charter.id

    async def main() -> list[list[str]]:
        verdicts: list[list[str]] = [[], []]
        for i, node in enumerate(nodes):
            for k, (topic, data) in enumerate(messages):
                verdicts[i].append(await node.gossip(topic, data))
                if k == 20:
                    await _sync(peers[0], node)
            await _sync(peers[1], node)
        return verdicts

    try:
        verdicts = trio.run(main)
    finally:
        daemon.store.close()
    assert verdicts[0] == verdicts[1]
    assert {"accept", "ignore", "reject"} <= set(verdicts[0])  # the inputs cover every verdict
    me = identity.public
    a, b = _state(nodes[0], me), _state(nodes[1], me)
    assert a == b
    assert a["flagged"]  # equivocations were seen and flagged
    assert a["held"]
    refused = daemon.counters["gossip_rejected"] + daemon.counters["sync_rejected"]
    assert refused["not-admitted"] > 0  # the stranger's need
