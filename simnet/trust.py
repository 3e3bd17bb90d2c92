"""The shared verified-record cache (``trust_signatures``): verify each record once per run.

A daemon verifies a record once, when it first changes its replica; afterwards the
record is stored as verified and duplicates cost a lookup. In a simnet of N nodes the
same record would be decoded and verified N times (55 us each: 50,000 records x 1,000
nodes is 45 CPU-minutes). With the cache, the first node that receives some bytes
decodes them, and the first that needs their signature checks it; every other node
that receives those same bytes gets the shared decoded record and the cached result.
Bytes that differ in any bit (a forged or tampered record) are different keys, decoded
and checked on their own, so forgeries are still rejected everywhere; a bad signature
is cached as bad. Body validation is shared the same way (by record id; the clock check
stays each node's own). Sharing the decoded records also keeps one copy of each record in
memory instead of one per node. A gossip message is split into its records once too
(`batch`): every node that receives it reads the same record bytes, whose hash Python
keeps, so the lookups above do not hash them again.
"""

from __future__ import annotations

from node.core import decode_batch
from node.crdt.record import Record, decode_record, signature_ok


class VerifiedCache:
    """Wire bytes -> decoded record, and record id -> signature check, for one run."""

    def __init__(self) -> None:
        self.records: dict[bytes, Record] = {}
        self.signatures: dict[bytes, bool] = {}
        self.bodies: dict[bytes, str | None] = {}  # record id -> why its body is invalid
        self.batches: dict[bytes, list[bytes]] = {}  # gossip message -> its records
        self.hits = 0
        self.verifications = 0

    def decode(self, raw: bytes) -> Record:
        """`decode_record`, once per distinct byte string (raises Rejected like it)."""
        record = self.records.get(raw)
        if record is None:
            record = self.records[raw] = decode_record(raw)
        return record

    def batch(self, data: bytes) -> list[bytes]:
        """`decode_batch`, once per distinct message (raises Rejected like it)."""
        raws = self.batches.get(data)
        if raws is None:
            raws = self.batches[data] = decode_batch(data)
            # Records gossiped again (in another batch) are kept once: as the bytes
            # their decoded record holds.
            records = self.records
            for k, raw in enumerate(raws):
                known = records.get(raw)
                if known is not None:
                    raws[k] = known.raw
        return raws

    def verify(self, record: Record) -> bool:
        """`signature_ok`, once per distinct record."""
        ok = self.signatures.get(record.rid)
        if ok is None:
            self.verifications += 1
            ok = self.signatures[record.rid] = signature_ok(record)
        else:
            self.hits += 1
        return ok
