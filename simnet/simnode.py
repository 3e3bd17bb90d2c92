"""One simulated node: the daemon's very core (`node.core.NodeCore`), without a store
and sockets.

Writes, ingest, gossip validation and re-gossip are `NodeCore`'s, exactly as the
daemon runs them; this module only adapts it to the virtual network: a gossip verdict
for the gossipsub model, sync sessions whose received records are merged at once.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from node.core import NodeCore, Verdict
from node.crdt.record import Record
from node.crdt.replica import Replica
from node.crdt.sync import Role, SyncSession
from node.governance.admission import Charter
from node.identity import Identity, peer_id_of
from node.planning import BalanceIndex
from simnet.gossip import Verdict as GossipVerdict
from simnet.trust import VerifiedCache
from simnet.workload import NodeSpec

_VERDICTS = {
    Verdict.ACCEPT: GossipVerdict.ACCEPT,
    Verdict.IGNORE: GossipVerdict.IGNORE,
    Verdict.REJECT: GossipVerdict.REJECT,
    Verdict.RETRY: GossipVerdict.RETRY,
}


class SimNode:
    """A node's replicated state and its local writes.

    Args:
        spec: name, scope and key seed.
        now_ms: virtual wall-clock milliseconds.
        cache: the shared verified-record cache, or None to verify every record.
        with_index: keep a BalanceIndex (the daemon always does; see `balance_index`).
        charter: the federation (admission on), or None (admission off).
        preload: records held before the run (`simnet.federation`), as a store's.
        hoarder: False for a stranger of the sybil preset: it keeps nothing it
            receives and relays nothing (its gossip verdict is IGNORE), it only sends.
        names: the run's shared (kind, key) pairs (see `Replica`).
        rollup_cache: the run's shared region computations (see `NodeCore`).
        counts: the run's shared balance counts (see `BalanceIndex`).
    """

    def __init__(
        self,
        spec: NodeSpec,
        now_ms: Callable[[], int],
        cache: VerifiedCache | None,
        with_index: bool = True,
        charter: Charter | None = None,
        preload: Iterable[Record] = (),
        hoarder: bool = True,
        names: dict[tuple[str, str], tuple[str, str]] | None = None,
        rollup_cache: dict[Any, dict[str, Any]] | None = None,
        counts: dict[Any, Any] | None = None,
    ) -> None:
        self.hoarder = hoarder
        self.spec = spec
        identity = Identity.from_seed(spec.seed)
        self.origin = identity.public
        self.peer_id = peer_id_of(identity.public)
        self.replica = Replica(
            now_ms=now_ms,
            names=names,
            body_checks=cache.bodies if cache is not None else None,
        )
        self.replica.load_trusted(preload)
        self.index: BalanceIndex | None = BalanceIndex(counts) if with_index else None
        kw: dict[str, Any] = {}
        if cache is not None:
            kw = {"verify": cache.verify, "decode": cache.decode, "split": cache.batch}
        self.core = NodeCore(
            identity.public,
            identity.signer(),
            spec.scope,
            self.replica,
            now_ms,
            rng=random.Random(spec.seed),
            charter=charter,
            index=self.index,
            rollup_cache=rollup_cache,
            **kw,
        )
        self.federation = charter.id if charter is not None else ""
        self.partitions = tuple(self.core.partitions)
        self.rejected = 0
        self.refused: Counter[str] = Counter()  # rejections by reason

    @property
    def outbox(self) -> list[Record]:
        return self.core.outbox

    def write(
        self, kind: str, key: str, body: dict[str, Any] | None, scope: str | None = None
    ) -> Record:
        """Validate, sign, merge and queue one record of this node."""
        return self.core.write(kind, key, body, scope)

    def take_batches(self) -> list[tuple[str, bytes]]:
        """The outbox as gossip messages: (topic partition, encoded batch)."""
        return self.core.take_batches()

    def validate_gossip(self, topic: str, data: bytes) -> GossipVerdict:
        """The daemon's gossip validation: all stages of `NodeCore`, then the verdict."""
        if not self.hoarder:
            return GossipVerdict.IGNORE
        result = self.core.validate_gossip(topic, data)
        self.rejected += sum(result.rejected.values())
        self.refused.update(result.rejected)
        self._redeem(result.stored)
        return _VERDICTS[result.verdict]

    def _redeem(self, stored: list[Record]) -> None:
        """As the daemon: endorse a newcomer who showed one of this node's invites."""
        if any(r.kind == "apply" for r in stored):
            for pending in self.core.redeem_invites():
                self.core.commit(pending)

    def sync_session(self, initiator: bool, rng: random.Random) -> SyncSession:
        role = Role.INITIATOR if initiator else Role.RESPONDER
        return SyncSession(
            self.replica, self.partitions, role, salt=rng.randbytes(16), federation=self.federation
        )

    def ingest_sync(self, session: SyncSession) -> None:
        """Merge what `session` received, as the daemon does after each message."""
        received = session.take_received()
        if received and self.hoarder:
            result = self.core.ingest_received(received, session.partitions)
            self.rejected += sum(result.rejected.values())
            self.refused.update(result.rejected)
            self._redeem(result.stored)

    def digest(self) -> bytes:
        return self.core.digest()
