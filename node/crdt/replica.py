"""The replica: a state-based CRDT of signed records, merged slot by slot.

Per slot (origin, kind, key) the record with the highest `seq` wins. Two different
records with the same origin and seq are an equivocation: the one with the smaller
record id wins its slot on every replica, and the origin is flagged with both ids as
evidence. Only the origin can write its slots, because every record is verified
against the origin key before it changes anything.

Records are indexed by replication partition (see `node.model.partition_of`) and
origin, with an order-free digest (XOR of record ids) per (partition, origin) that the
anti-entropy session compares.
"""

from __future__ import annotations

import enum
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from node import model
from node.clock import LOGICAL_BITS
from node.crdt.record import Record, Slot, decode_record, record_id, verify_record
from node.errors import Rejected, ValidationError

MAX_CLOCK_AHEAD_MS = 10 * 60 * 1000

Listener = Callable[[Record | None, Record], None]


class Outcome(enum.Enum):
    """What merging one record did."""

    NEW = "new"  # first record in its slot
    REPLACED = "replaced"  # superseded an older record in its slot
    DUPLICATE = "duplicate"  # already held, byte for byte
    STALE = "stale"  # its slot holds a newer record
    EQUIVOCATION = "equivocation"  # same seq, different content: origin flagged

    @property
    def changed(self) -> bool:
        return self in (Outcome.NEW, Outcome.REPLACED)


@dataclass(slots=True)
class OriginPart:
    """One origin's live records in one partition, with their digest."""

    slots: dict[tuple[str, str], Record] = field(default_factory=dict)
    xor: int = 0
    max_seq: int = 0

    def add(self, r: Record) -> None:
        self.slots[(r.kind, r.key)] = r
        self.xor ^= _rid_int(r)
        self.max_seq = max(self.max_seq, r.seq)

    def remove(self, r: Record) -> None:
        del self.slots[(r.kind, r.key)]
        self.xor ^= _rid_int(r)
        if r.seq == self.max_seq:
            self.max_seq = max((x.seq for x in self.slots.values()), default=0)


def _rid_int(r: Record) -> int:
    return int.from_bytes(record_id(r.raw), "big")


class Replica:
    """All records this node holds, merged.

    Args:
        now_ms: injected time source; records stamped more than
            `MAX_CLOCK_AHEAD_MS` ahead of it are rejected. None disables the check.
        validate: body validator, `node.model.validate` by default.
    """

    def __init__(
        self,
        *,
        now_ms: Callable[[], int] | None = None,
        validate: Callable[[str, str, str, Any], None] = model.validate,
    ) -> None:
        self._now_ms = now_ms
        self._validate = validate
        self._slots: dict[Slot, Record] = {}
        # (origin, seq) -> smallest record id seen with it, for every verified record
        # (live, superseded or stale): two ids for one seq prove an equivocation.
        self._seen: dict[tuple[bytes, int], bytes] = {}
        self._seen_stale = False
        self._parts: dict[str, dict[bytes, OriginPart]] = {}
        self._partition_names: dict[str, str] = {}
        self.flagged: dict[bytes, tuple[bytes, bytes]] = {}
        self.version = 0
        self._listeners: list[Listener] = []
        self._flag_listeners: list[Callable[[bytes, tuple[bytes, bytes]], None]] = []
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    # --- reading -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, origin: bytes, kind: str, key: str) -> Record | None:
        return self._slots.get((origin, kind, key))

    def records(self, kind: str | None = None) -> Iterator[Record]:
        """Live records (tombstones included), optionally of one kind."""
        for r in self._slots.values():
            if kind is None or r.kind == kind:
                yield r

    def partitions(self) -> list[str]:
        return sorted(self._parts)

    def origin_parts(self, partitions: Iterable[str]) -> dict[bytes, list[OriginPart]]:
        """Per origin, its parts in the given partitions."""
        out: dict[bytes, list[OriginPart]] = {}
        for p in partitions:
            for origin, part in self._parts.get(p, {}).items():
                out.setdefault(origin, []).append(part)
        return out

    def count(self, partitions: Iterable[str]) -> int:
        """How many live records the given partitions hold."""
        return sum(
            len(part.slots) for p in set(partitions) for part in self._parts.get(p, {}).values()
        )

    def max_seq(self, origin: bytes) -> int:
        """The highest seq of `origin` held in any partition (0 if none)."""
        return max((ps[origin].max_seq for ps in self._parts.values() if origin in ps), default=0)

    def digest(self, partitions: Iterable[str] | None = None) -> bytes:
        """A 32-byte digest of the live state (of some partitions): equal iff equal state."""
        parts = self.partitions() if partitions is None else sorted(set(partitions))
        h = hashlib.blake2b(digest_size=32)
        for origin, ps in sorted(self.origin_parts(parts).items()):
            x = 0
            for p in ps:
                x ^= p.xor
            if ps and any(p.slots for p in ps):
                h.update(origin + x.to_bytes(16, "big"))
        return h.digest()

    def statistics(self) -> dict[str, Any]:
        return {
            "records": len(self._slots),
            "origins": len({s[0] for s in self._slots}),
            "partitions": len(self._parts),
            "flagged": len(self.flagged),
            **{f"merged_{k}": v for k, v in self.counts.items()},
            **{f"rejected_{k}": v for k, v in self.rejected.items()},
        }

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(old, new)` after every change of a slot's winner."""
        self._listeners.append(listener)

    def add_flag_listener(self, listener: Callable[[bytes, tuple[bytes, bytes]], None]) -> None:
        """Call `listener(origin, evidence)` when an origin is flagged for equivocation."""
        self._flag_listeners.append(listener)

    # --- writing -------------------------------------------------------------

    def receive(self, raw: bytes) -> tuple[Outcome, Record]:
        """Decode, check and merge wire bytes from anywhere outside this replica.

        The signature is verified only if the record would change the state: a
        duplicate or a stale record costs a hash lookup, not a verification.

        Raises:
            Rejected: with a reason; the replica is unchanged.
        """
        try:
            record = decode_record(raw)
            return self._merge(record, verified=False), record
        except Rejected as exc:
            self.rejected[exc.reason] += 1
            raise

    def load_trusted(self, records: Iterable[Record]) -> int:
        """Bulk-insert records verified before they were stored, one per slot.

        Faster than merging one by one: no checks, listeners are not called (build
        derived indexes afterwards from `records()`).
        """
        slots, parts_of = self._slots, self._parts
        self._seen_stale = True  # rebuilt from the slots when the next merge needs it
        part_cache: dict[str, str] = {}
        n = 0
        for r in records:
            slot = (r.origin, r.kind, r.key)
            if slot in slots:
                self._merge(r, verified=True)
                continue
            slots[slot] = r
            rid = record_id(r.raw)
            pname = part_cache.get(r.scope)
            if pname is None:
                pname = part_cache[r.scope] = model.partition_of(r.scope)
            origins = parts_of.get(pname)
            if origins is None:
                origins = parts_of[pname] = {}
            part = origins.get(r.origin)
            if part is None:
                part = origins[r.origin] = OriginPart()
            part.slots[(r.kind, r.key)] = r
            part.xor ^= int.from_bytes(rid, "big")
            if r.seq > part.max_seq:
                part.max_seq = r.seq
            n += 1
        self.version += 1
        return n

    def insert_verified(self, record: Record) -> Outcome:
        """Merge a record this node signed itself or verified before (e.g. loaded from disk)."""
        return self._merge(record, verified=True)

    def _rebuild_seen(self) -> None:
        self._seen_stale = False
        for r in self._slots.values():
            key, rid = (r.origin, r.seq), r.rid
            old = self._seen.setdefault(key, rid)
            if old != rid:
                self._flag(r.origin, old, rid)
                self._seen[key] = min(old, rid)

    def _merge(self, r: Record, *, verified: bool) -> Outcome:
        if self._seen_stale:
            self._rebuild_seen()
        current = self._slots.get(r.slot)
        if current is not None and current.raw == r.raw:
            self.counts["duplicate"] += 1
            return Outcome.DUPLICATE
        key = (r.origin, r.seq)
        seen = self._seen.get(key)
        rid = r.rid
        if seen == rid:  # held before, now superseded: nothing to learn
            self.counts["duplicate"] += 1
            return Outcome.DUPLICATE
        # Stale records are verified too (once): they may prove an equivocation.
        if not verified:
            self._check(r)
        if seen is None:
            self._seen[key] = rid
        else:
            self._flag(r.origin, seen, rid)
            if rid < seen:
                self._seen[key] = rid
        if current is not None:
            if current.seq > r.seq:
                self.counts["stale"] += 1
                return Outcome.STALE
            if current.seq == r.seq and current.rid < rid:
                return Outcome.EQUIVOCATION  # the other record wins this slot everywhere
        self._put(current, r)
        return Outcome.REPLACED if current is not None else Outcome.NEW

    def _flag(self, origin: bytes, a: bytes, b: bytes) -> None:
        """Record that `origin` signed two records with one seq (a != b)."""
        pair = (a, b) if a < b else (b, a)
        old = self.flagged.get(origin)
        if old is None or pair < old:
            # The smallest evidence pair, so every replica that saw the same records
            # shows the same evidence whatever the order they came in.
            self.flagged[origin] = pair
            for listener in self._flag_listeners:
                listener(origin, pair)
        self.counts["equivocation"] += 1

    def _check(self, r: Record) -> None:
        try:
            self._validate(r.kind, r.key, r.scope, r.body)
        except ValidationError as exc:
            raise Rejected("invalid-body", str(exc)) from None
        if self._now_ms is not None:
            ahead = (r.hlc >> LOGICAL_BITS) - self._now_ms()
            if ahead > MAX_CLOCK_AHEAD_MS:
                raise Rejected("clock-ahead", f"stamped {ahead // 1000} s in the future")
        verify_record(r)

    def _put(self, old: Record | None, new: Record) -> None:
        if old is not None:
            self._part(old.origin, old.scope).remove(old)
        self._slots[new.slot] = new
        self._part(new.origin, new.scope).add(new)
        self.version += 1
        self.counts["new" if old is None else "replaced"] += 1
        for listener in self._listeners:
            listener(old, new)

    def _part(self, origin: bytes, scope: str) -> OriginPart:
        name = self._partition_names.get(scope)
        if name is None:
            name = self._partition_names[scope] = model.partition_of(scope)
        parts = self._parts.get(name)
        if parts is None:
            parts = self._parts[name] = {}
        part = parts.get(origin)
        if part is None:
            part = parts[origin] = OriginPart()
        return part
