"""The shared verified-record cache (``trust_signatures``): verify each record once per run.

A daemon verifies a record once, when it first changes its replica; afterwards the
record is stored as verified and duplicates cost a lookup. In a simnet of N nodes the
same record would be verified N times (55 us each: 50,000 records x 1,000 nodes is
45 CPU-minutes). With the cache, the first node that receives a record runs the full
check (decode, body validation, clock, Ed25519); if it passes, the decoded record is
kept under its exact wire bytes, and every other node that receives those same bytes
merges the shared decoded record as verified. Bytes that differ in any bit (a forged
or tampered record) miss the cache and get the full check on every node, so forgeries
are still rejected everywhere. Records a node signs itself are not put in the cache:
the first *receiver* verifies them. Sharing the decoded records also keeps one copy of
each record in memory instead of one per node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node import model
from node.crdt.record import Record
from node.crdt.replica import Outcome, Replica


class VerifiedCache:
    """Wire bytes -> decoded record, for every record that passed a full check."""

    def __init__(self) -> None:
        self.records: dict[bytes, Record] = {}
        self.hits = 0
        self.verifications = 0


class TrustingReplica(Replica):
    """A `Replica` whose `receive` skips re-verifying bytes verified before in this run.

    Args:
        cache: shared by all simulated nodes of one run.
        now_ms, validate: as `Replica`.
    """

    def __init__(
        self,
        cache: VerifiedCache,
        *,
        now_ms: Callable[[], int] | None = None,
        validate: Callable[[str, str, str, Any], None] = model.validate,
    ) -> None:
        super().__init__(now_ms=now_ms, validate=validate)
        self._cache = cache

    def receive(self, raw: bytes) -> tuple[Outcome, Record]:
        record = self._cache.records.get(raw)
        if record is None:
            return super().receive(raw)  # full decode and check; fills the cache
        self._cache.hits += 1
        return self._merge(record, verified=True), record

    def _check(self, r: Record) -> None:
        super()._check(r)  # raises Rejected on any problem; nothing is cached then
        self._cache.verifications += 1
        self._cache.records[r.raw] = r
