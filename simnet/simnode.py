"""One simulated node: the daemon's core (Replica, BalanceIndex, HLC, sync sessions)
without its store and sockets.

Writes follow `node.state.NodeState.write` (validate, sign with the next seq, merge,
queue for gossip); records from peers go through `replica.receive`; the gossip
validator and the sync ingest follow `node.daemon.Daemon`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from node import model
from node.clock import HybridClock
from node.crdt.record import Record, sign_record
from node.crdt.replica import Replica
from node.crdt.sync import Role, SyncSession
from node.errors import Rejected
from node.identity import Identity
from node.planning import BalanceIndex
from node.state import REGOSSIP_LIMIT, batches, decode_batch
from simnet.gossip import Verdict
from simnet.trust import TrustingReplica, VerifiedCache
from simnet.workload import NodeSpec


class SimNode:
    """A node's replicated state and its local writes.

    Args:
        spec: name, scope and key seed.
        now_ms: virtual wall-clock milliseconds.
        cache: the shared verified-record cache, or None to verify every record.
        with_index: keep a BalanceIndex (the daemon always does; see `balance_index`).
    """

    def __init__(
        self,
        spec: NodeSpec,
        now_ms: Callable[[], int],
        cache: VerifiedCache | None,
        with_index: bool = True,
    ) -> None:
        self.spec = spec
        identity = Identity.from_seed(spec.seed)
        self.origin = identity.public
        self._signer = identity.signer()
        self.clock = HybridClock(now_ms)
        self.replica: Replica = (
            Replica(now_ms=now_ms) if cache is None else TrustingReplica(cache, now_ms=now_ms)
        )
        self.index: BalanceIndex | None = None
        if with_index:
            self.index = BalanceIndex()
            self.replica.add_listener(self.index)
        self.partitions = spec.partitions
        self.seq = 0
        self.outbox: list[Record] = []
        self.rejected = 0

    def write(
        self, kind: str, key: str, body: dict[str, Any] | None, scope: str | None = None
    ) -> Record:
        """Validate, sign, merge and queue one record of this node."""
        scope = scope or self.spec.scope
        model.validate(kind, key, scope, body)
        self.seq += 1
        record = sign_record(
            self._signer, self.origin, kind, key, self.seq, self.clock.tick(), scope, body
        )
        self.replica.insert_verified(record)
        self.outbox.append(record)
        return record

    def write_node_record(self) -> Record:
        return self.write(
            "node",
            "self",
            {"name": self.spec.name, "kind": self.spec.kind, "scope": self.spec.scope},
        )

    def take_batches(self) -> list[tuple[str, bytes]]:
        """The outbox as gossip messages: (topic, encoded batch)."""
        by_topic: dict[str, list[Record]] = {}
        for r in self.outbox:
            by_topic.setdefault(model.partition_of(r.scope), []).append(r)
        self.outbox = []
        return [(topic, data) for topic, recs in by_topic.items() for data in batches(recs)]

    def ingest(self, raws: list[bytes]) -> tuple[list[Record], int]:
        """Merge records from a peer; returns (records that changed the state, rejected)."""
        changed: list[Record] = []
        rejected = 0
        for raw in raws:
            try:
                outcome, record = self.replica.receive(raw)
            except Rejected:
                rejected += 1
                continue
            if outcome.changed:
                changed.append(record)
                self.clock.observe(record.hlc)
        self.rejected += rejected
        return changed, rejected

    def validate_gossip(self, topic: str, data: bytes) -> Verdict:
        """`Daemon.validate_gossip`: merge, then ACCEPT / IGNORE / REJECT."""
        try:
            raws = decode_batch(data)
        except Rejected:
            self.rejected += 1
            return Verdict.REJECT
        changed, rejected = self.ingest(raws)
        if rejected or any(model.partition_of(r.scope) != topic for r in changed):
            return Verdict.REJECT
        return Verdict.ACCEPT if changed else Verdict.IGNORE

    def sync_session(self, initiator: bool, rng: random.Random) -> SyncSession:
        role = Role.INITIATOR if initiator else Role.RESPONDER
        return SyncSession(
            self.replica, self.partitions, role, ingest=self._sync_ingest, salt=rng.randbytes(8)
        )

    def _sync_ingest(self, raws: Any) -> None:
        changed, _ = self.ingest(list(raws))
        # As `Daemon.new_sync_session`: a small batch merged by sync is gossiped on.
        if changed and len(changed) <= REGOSSIP_LIMIT:
            self.outbox.extend(changed)

    def digest(self) -> bytes:
        return self.replica.digest(self.partitions)
