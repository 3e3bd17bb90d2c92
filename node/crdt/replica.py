"""The replica: a state-based CRDT of signed records, merged slot by slot.

Per slot (origin, kind, key) the record with the highest `seq` wins; of two different
records with one seq, the one with the smaller record id wins on every replica. Only
the origin can write its slots, because every record is verified against the origin
key before it changes anything.

Records replicate by partition (see `node.model.partition_of`), and a slot can move
from one partition to another (an operator changes the node's scope). So the replica
keeps, per partition, the newest record of each slot *within that partition*; the
slot's winner is the newest over all partitions. A node that follows both partitions
then agrees with one that follows only the old one about the old partition, and
anti-entropy never resends the moved record forever.

Two different records of one origin with one seq in one partition are an
equivocation. Each record is compared with the smallest record of its (partition,
origin, seq) seen so far, so the evidence kept -- per partition and origin, the
smallest pair -- is a function of the records seen, not of their order. Evidence
travels in anti-entropy, and flags the origin on every replica that holds it. (A seq
reused in two partitions cannot make replicas diverge, since partitions replicate
apart; it is not tracked.)

Every partition has a digest of its records and one of its evidence: BLAKE2b over the
sorted ids (not an XOR, which an origin could make collide by choosing what it
signs), cached per (partition, origin) and recomputed only where something changed.
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
from node.crdt.record import Record, decode_record, verify_record
from node.errors import Rejected, ValidationError

MAX_CLOCK_AHEAD_MS = 10 * 60 * 1000
DIGEST_BYTES = 16

Listener = Callable[[Record | None, Record], None]
Evidence = tuple[Record, Record]  # same origin and seq, a.rid < b.rid
EvidenceListener = Callable[[Record, Record], None]


HELD = "held"
VERIFIED = "verified"


Name = tuple[str, str]  # a slot's (kind, key) within its origin


class Outcome(enum.Enum):
    """What merging one record did."""

    NEW = "new"  # first record of its slot
    REPLACED = "replaced"  # superseded the slot's winner
    SHADOW = "shadow"  # newest of its slot in its partition, but not the slot's winner
    DUPLICATE = "duplicate"  # already held, byte for byte
    STALE = "stale"  # its partition holds a newer record of the slot
    EQUIVOCATION = "equivocation"  # lost a same-seq tie in its slot (evidence kept)

    @property
    def changed(self) -> bool:
        """The slot's winner changed (balances, tallies and listeners see it)."""
        return self is Outcome.NEW or self is Outcome.REPLACED

    @property
    def stored(self) -> bool:
        """The record is now held (to be persisted and forwarded)."""
        return self is Outcome.NEW or self is Outcome.REPLACED or self is Outcome.SHADOW


@dataclass(slots=True)
class OriginPart:
    """One origin's records in one partition, with a cached digest.

    `seen` maps each seq to the smallest record verified with it here, held or not
    (superseded, stale, a lost tie, evidence from a peer).
    """

    slots: dict[Name, Record] = field(default_factory=dict)
    max_seq: int = 0
    seen: dict[int, Record] = field(default_factory=dict)
    _digest: bytes | None = None

    def add(self, r: Record, name: Name) -> None:
        self.slots[name] = r
        self._digest = None
        if r.seq > self.max_seq:
            self.max_seq = r.seq

    def remove(self, r: Record) -> None:
        del self.slots[(r.kind, r.key)]
        self._digest = None
        if r.seq == self.max_seq:
            self.max_seq = max((x.seq for x in self.slots.values()), default=0)

    def ordered(self) -> list[Record]:
        """The records by (seq, id): the order every digest is taken in."""
        return sorted(self.slots.values(), key=_seq_rid)

    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = records_digest(self.ordered())
        return self._digest


def _seq_rid(r: Record) -> tuple[int, bytes]:
    return (r.seq, r.rid)


def records_digest(ordered: Iterable[Record]) -> bytes:
    """BLAKE2b-128 over (seq, id) of records already sorted by (seq, id)."""
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for r in ordered:
        h.update(r.seq.to_bytes(8, "big") + r.rid)
    return h.digest()


@dataclass(slots=True)
class Partition:
    """The records and evidence of one partition, with cached digests."""

    origins: dict[bytes, OriginPart] = field(default_factory=dict)
    count: int = 0
    evidence: dict[bytes, Evidence] = field(default_factory=dict)
    _root: bytes | None = None
    _ev_root: bytes | None = None

    def root(self) -> bytes:
        if self._root is None:
            h = hashlib.blake2b(digest_size=DIGEST_BYTES)
            for origin in sorted(self.origins):
                part = self.origins[origin]
                if part.slots:
                    h.update(origin + len(part.slots).to_bytes(4, "big") + part.digest())
            self._root = h.digest()
        return self._root

    def evidence_root(self) -> bytes:
        if self._ev_root is None:
            h = hashlib.blake2b(digest_size=DIGEST_BYTES)
            for origin in sorted(self.evidence):
                a, b = self.evidence[origin]
                h.update(origin + a.rid + b.rid)
            self._ev_root = h.digest()
        return self._ev_root


class Replica:
    """All records this node holds, merged.

    Args:
        now_ms: injected time source; records stamped more than
            `MAX_CLOCK_AHEAD_MS` ahead of it are rejected. None disables the check.
        validate: body validator, `node.model.validate` by default.
        max_superseded: how many records no longer held are remembered as possible
            evidence of an equivocation.
        names: shared (kind, key) pairs, so that many replicas in one process (the
            simnet) hold one copy of each instead of one per replica.
        body_checks: shared results of body validation by record id (the simnet's
            replicas validate each distinct record once; a record id binds every byte).
    """

    def __init__(
        self,
        *,
        now_ms: Callable[[], int] | None = None,
        validate: Callable[[str, str, str, Any], None] = model.validate,
        max_superseded: int = 200_000,
        names: dict[Name, Name] | None = None,
        body_checks: dict[bytes, str | None] | None = None,
    ) -> None:
        self._now_ms = now_ms
        self._validate = validate
        # Slot winners per origin, by (kind, key): the same pair object as the
        # partition's, so a held record costs two dict entries and no tuple of its own.
        self._slots: dict[bytes, dict[Name, Record]] = {}
        self._held = 0
        self._names = names
        self._body_checks = body_checks
        self._parts: dict[str, Partition] = {}
        self._partition_names: dict[str, str] = {}
        # Records no longer held stay in `OriginPart.seen` (as possible evidence) up
        # to `max_superseded`, the oldest forgotten first.
        self._superseded: dict[tuple[str, bytes, int], None] = {}
        self.max_superseded = max_superseded
        self._max_seq: dict[bytes, int] = {}
        self.flagged: dict[bytes, tuple[bytes, bytes]] = {}
        self.version = 0
        # Views derived from the records by other modules (sync summaries), each kept
        # as (version, view): valid while `version` is unchanged.
        self.memo: dict[str, tuple[int, Any]] = {}
        self._listeners: list[Listener] = []
        self._evidence_listeners: list[EvidenceListener] = []
        self._new_evidence: list[Evidence] = []
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    # --- reading -------------------------------------------------------------

    def __len__(self) -> int:
        return self._held

    def get(self, origin: bytes, kind: str, key: str) -> Record | None:
        """The winner of a slot, or None."""
        winners = self._slots.get(origin)
        return None if winners is None else winners.get((kind, key))

    def records(self, kind: str | None = None) -> Iterator[Record]:
        """Slot winners (tombstones included), optionally of one kind."""
        for winners in self._slots.values():
            for r in winners.values():
                if kind is None or r.kind == kind:
                    yield r

    def entries(self, partitions: Iterable[str] | None = None) -> Iterator[Record]:
        """Every held record, per partition (a moved slot's older records included)."""
        names = self.partitions() if partitions is None else partitions
        for p in names:
            part = self._parts.get(p)
            if part is not None:
                for op in part.origins.values():
                    yield from op.slots.values()

    def remembered(self) -> Iterator[Record]:
        """Records verified here and no longer (or never) held, kept as possible
        evidence of an equivocation (bounded by `max_superseded`)."""
        for part in self._parts.values():
            for op in part.origins.values():
                for r in op.seen.values():
                    cur = op.slots.get((r.kind, r.key))
                    if cur is None or cur.rid != r.rid:
                        yield r

    def partitions(self) -> list[str]:
        return sorted(p for p, part in self._parts.items() if part.count or part.evidence)

    def partition(self, name: str) -> Partition:
        """The partition `name` (an empty one if nothing is held there)."""
        return self._parts.get(name) or Partition()

    def count(self, partitions: Iterable[str]) -> int:
        """How many records the given partitions hold."""
        return sum(self.partition(p).count for p in set(partitions))

    def max_seq(self, origin: bytes) -> int:
        """The highest seq of `origin` held in any partition (0 if none)."""
        return self._max_seq.get(origin, 0)

    def digest(self, partitions: Iterable[str] | None = None) -> bytes:
        """A 32-byte digest of the held records and evidence (of some partitions)."""
        names = self.partitions() if partitions is None else sorted(set(partitions))
        h = hashlib.blake2b(digest_size=32)
        for p in names:
            part = self._parts.get(p)
            if part is not None and (part.count or part.evidence):
                h.update(p.encode() + b"\0" + part.root() + part.evidence_root())
        return h.digest()

    def evidence(self, partitions: Iterable[str] | None = None) -> list[Evidence]:
        """The evidence pairs held for the given partitions, each once."""
        names = self.partitions() if partitions is None else partitions
        seen: dict[tuple[bytes, bytes], Evidence] = {}
        for p in names:
            for a, b in self.partition(p).evidence.values():
                seen[(a.rid, b.rid)] = (a, b)
        return [seen[k] for k in sorted(seen)]

    def statistics(self) -> dict[str, Any]:
        return {
            "records": self._held,
            "origins": len(self._max_seq),
            "partitions": len(self._parts),
            "flagged": len(self.flagged),
            **{f"merged_{k}": v for k, v in self.counts.items()},
            **{f"rejected_{k}": v for k, v in self.rejected.items()},
        }

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(old, new)` after every change of a slot's winner."""
        self._listeners.append(listener)

    def add_evidence_listener(self, listener: EvidenceListener) -> None:
        """Call `listener(a, b)` when a new evidence pair is kept."""
        self._evidence_listeners.append(listener)

    # --- deciding without changing -----------------------------------------------

    def partition_of(self, scope: str) -> str:
        name = self._partition_names.get(scope)
        if name is None:
            name = model.partition_of(scope)
            if len(self._partition_names) < 100_000:
                self._partition_names[scope] = name
        return name

    def known(self, r: Record) -> Outcome | None:
        """DUPLICATE if `r` is byte-equal to a record held here (equal ids mean equal
        bytes), else None: only such a record is dropped unverified."""
        part = self._parts.get(self.partition_of(r.scope))
        if part is not None:
            op = part.origins.get(r.origin)
            if op is not None:
                cur = op.slots.get((r.kind, r.key))
                if cur is not None and cur.rid == r.rid:
                    return Outcome.DUPLICATE
        return None

    def seen(self, r: Record, pname: str) -> str:
        """What this replica knows of `r` (of partition `pname`) in one lookup:
        ``HELD`` (byte-equal to a held record), ``VERIFIED`` (exactly this record was
        verified here before, held or not), or ``""``."""
        part = self._parts.get(pname)
        op = part.origins.get(r.origin) if part is not None else None
        if op is None:
            return ""
        cur = op.slots.get((r.kind, r.key))
        if cur is not None and cur.rid == r.rid:
            return HELD
        s = op.seen.get(r.seq)
        return VERIFIED if s is not None and s.rid == r.rid else ""

    def verified_before(self, r: Record) -> bool:
        """True if exactly this record was verified here before (held or not).

        Anything else is verified, even a stale record: it may prove an equivocation.
        """
        part = self._parts.get(self.partition_of(r.scope))
        op = part.origins.get(r.origin) if part is not None else None
        s = op.seen.get(r.seq) if op is not None else None
        return s is not None and s.rid == r.rid

    # --- writing -------------------------------------------------------------

    def receive(self, raw: bytes) -> tuple[Outcome, Record]:
        """Decode, check and merge wire bytes from anywhere outside this replica.

        The signature is verified only if the record could change anything.

        Raises:
            Rejected: with a reason; the replica is unchanged.
        """
        try:
            record = decode_record(raw)
            outcome = self.known(record)
            if outcome is not None:
                self.counts[outcome.value] += 1
                return outcome, record
            if not self.verified_before(record):
                self.check(record)
                verify_record(record)
        except Rejected as exc:
            self.rejected[exc.reason] += 1
            raise
        return self.merge_verified(record), record

    def check(self, r: Record) -> None:
        """Validate a decoded record's body and clock (not its signature).

        Raises:
            Rejected: ``invalid-body`` or ``clock-ahead``.
        """
        checks = self._body_checks
        if checks is None or r.rid not in checks:
            try:
                self._validate(r.kind, r.key, r.scope, r.body)
                problem = None
            except ValidationError as exc:
                problem = str(exc)
            if checks is not None:
                checks[r.rid] = problem
        else:
            problem = checks[r.rid]
        if problem is not None:
            raise Rejected("invalid-body", problem)
        if self._now_ms is not None:
            ahead = (r.hlc >> LOGICAL_BITS) - self._now_ms()
            if ahead > MAX_CLOCK_AHEAD_MS:
                raise Rejected("clock-ahead", f"stamped {ahead // 1000} s in the future")

    def insert_verified(self, record: Record) -> Outcome:
        """Merge a record this node signed itself (or verified before)."""
        return self.merge_verified(record)

    def load_trusted(self, records: Iterable[Record]) -> int:
        """Bulk-insert records verified before they were stored; returns how many
        are now held. The state is exactly the one `merge_verified` gives, record by
        record, in the same order.

        A store yields its rows by (partition, origin), each slot once. Such a run of
        one origin's records, new to its partition, with no seq and no slot twice,
        can only add every record (none is stale, a duplicate or a lost tie): it is
        put in as a whole. Any other run is merged record by record. Listeners are
        not called (build derived indexes afterwards from `records()`).
        """
        listeners, self._listeners = self._listeners, []
        tally = [0, 0, 0]  # new, replaced, shadow (of the runs put in whole)
        n = 0
        pnames = self._partition_names
        run: list[Record] = []
        scope = pname = ""
        origin = b""
        try:
            for r in records:
                if r.scope != scope:
                    scope = r.scope
                    p = pnames.get(scope) or self.partition_of(scope)
                    if p != pname:
                        if run:
                            n += self._load_run(pname, run, tally)
                        pname, origin, run = p, r.origin, [r]
                        continue
                if r.origin != origin:
                    if run:
                        n += self._load_run(pname, run, tally)
                    origin, run = r.origin, [r]
                else:
                    run.append(r)
            if run:
                n += self._load_run(pname, run, tally)
        finally:
            self._listeners = listeners
            for outcome, count in zip(("new", "replaced", "shadow"), tally, strict=True):
                if count:
                    self.counts[outcome] += count
        return n

    def _load_run(self, pname: str, run: list[Record], tally: list[int]) -> int:
        """Merge records of one partition and origin, in one piece where possible."""
        origin = run[0].origin
        part = self._parts.get(pname)
        if part is None:
            part = self._parts[pname] = Partition()
        elif origin in part.origins:
            return sum(1 for r in run if self.merge_verified(r).stored)
        shared = self._names
        if shared is None:
            slots = {(r.kind, r.key): r for r in run}
        else:
            slots = {}
            for r in run:
                name = (r.kind, r.key)
                slots[shared.setdefault(name, name)] = r
        seen = {r.seq: r for r in run}
        n = len(run)
        if len(slots) != n or len(seen) != n:
            return sum(1 for r in run if self.merge_verified(r).stored)
        top = max(seen)
        part.origins[origin] = OriginPart(slots, top, seen)
        part.count += n
        part._root = None
        self.version += n
        if top > self._max_seq.get(origin, 0):
            self._max_seq[origin] = top
        winners = self._slots.get(origin)
        if winners is None:
            winners = self._slots[origin] = {}
        if winners.keys().isdisjoint(slots):
            winners.update(slots)
            self._held += n
            tally[0] += n
            return n
        # A slot moved here from another partition: its winner is the newest record
        # over all of them, as `merge_verified` decides it.
        for name, r in slots.items():
            winner = winners.get(name)
            if winner is None:
                self._held += 1
                tally[0] += 1
            elif winner.seq > r.seq or (winner.seq == r.seq and winner.rid < r.rid):
                tally[2] += 1
                continue
            else:
                tally[1] += 1
            winners[name] = r
        return n

    def merge_verified(self, r: Record) -> Outcome:
        """Merge a record whose signature (and body) are known to be good."""
        pname = self.partition_of(r.scope)
        part = self._parts.get(pname)
        if part is None:
            part = self._parts[pname] = Partition()
        op = part.origins.get(r.origin)
        if op is None:
            op = part.origins[r.origin] = OriginPart()
        name = (r.kind, r.key)
        if self._names is not None:
            name = self._names.setdefault(name, name)
        cur = op.slots.get(name)
        if cur is not None and cur.rid == r.rid:
            self.counts["duplicate"] += 1
            return Outcome.DUPLICATE
        self._observe(pname, part, op, r)
        if cur is not None:
            if cur.seq > r.seq or (cur.seq == r.seq and cur.rid < r.rid):
                # Stale, or it lost a same-seq tie (the other wins the slot everywhere).
                self._remember(pname, op, r)
                outcome = Outcome.STALE if cur.seq > r.seq else Outcome.EQUIVOCATION
                self.counts[outcome.value] += 1
                return outcome
            op.remove(cur)
            part.count -= 1
            self._remember(pname, op, cur)
        op.add(r, name)
        part.count += 1
        part._root = None
        self.version += 1
        winners = self._slots.get(r.origin)
        if winners is None:
            winners = self._slots[r.origin] = {}
        winner = winners.get(name)
        if winner is not None and (
            winner.seq > r.seq or (winner.seq == r.seq and winner.rid < r.rid)
        ):
            self.counts["shadow"] += 1
            return Outcome.SHADOW
        if winner is None:
            self._held += 1
        winners[name] = r
        self.counts["new" if winner is None else "replaced"] += 1
        for listener in self._listeners:
            listener(winner, r)
        return Outcome.NEW if winner is None else Outcome.REPLACED

    def _observe(self, pname: str, part: Partition, op: OriginPart, r: Record) -> None:
        """Compare a verified record with the smallest of its seq seen here; keep
        evidence if they differ, and `r` as the smallest if it is."""
        smallest = op.seen.get(r.seq)
        if smallest is not None and smallest.rid != r.rid:
            self._keep_evidence(pname, part, smallest, r)
        if smallest is None or r.rid < smallest.rid:
            op.seen[r.seq] = r
        if r.seq > self._max_seq.get(r.origin, 0):
            self._max_seq[r.origin] = r.seq

    def observe_evidence(self, a: Record, b: Record) -> None:
        """Take a verified evidence pair from a peer (same origin, seq and partition).

        Both records are compared with what this replica has seen, so replicas that
        exchange evidence end with the same pairs: per (partition, origin), the two
        smallest records of the smallest such pair any of them saw.
        """
        pname = self.partition_of(a.scope)
        if (
            a.origin != b.origin
            or a.seq != b.seq
            or a.rid == b.rid
            or self.partition_of(b.scope) != pname
        ):
            return
        part = self._parts.get(pname)
        if part is None:
            part = self._parts[pname] = Partition()
        op = part.origins.get(a.origin)
        if op is None:
            op = part.origins[a.origin] = OriginPart()
        for r in (a, b):
            self._observe(pname, part, op, r)
            self._remember(pname, op, r)

    def _remember(self, pname: str, op: OriginPart, r: Record) -> None:
        """Mark a record no longer held (or never held), within the bound."""
        if op.seen.get(r.seq) is not r:
            return  # a smaller record of that seq is remembered already
        self._superseded[(pname, r.origin, r.seq)] = None
        while len(self._superseded) > self.max_superseded:
            key = next(iter(self._superseded))
            del self._superseded[key]
            p, origin, seq = key
            old_op = self._parts[p].origins.get(origin)
            if old_op is None:
                continue
            old = old_op.seen.get(seq)
            cur = old_op.slots.get((old.kind, old.key)) if old is not None else None
            if old is not None and (cur is None or cur.rid != old.rid):
                del old_op.seen[seq]

    def add_evidence(self, x: Record, y: Record) -> bool:
        """Keep two verified records of one origin, seq and partition as evidence
        (used when loading the store; see `observe_evidence` for peers' evidence)."""
        pname = self.partition_of(x.scope)
        if self.partition_of(y.scope) != pname or x.origin != y.origin or x.seq != y.seq:
            return False
        part = self._parts.get(pname)
        if part is None:
            part = self._parts[pname] = Partition()
        return self._keep_evidence(pname, part, x, y)

    def _keep_evidence(self, pname: str, part: Partition, x: Record, y: Record) -> bool:
        if x.rid == y.rid:
            return False
        a, b = (x, y) if x.rid < y.rid else (y, x)
        old = part.evidence.get(a.origin)
        if old is not None and (old[0].rid, old[1].rid) <= (a.rid, b.rid):
            return False
        part.evidence[a.origin] = (a, b)
        part._ev_root = None
        self.version += 1
        self._reflag(a.origin)
        self._new_evidence.append((a, b))
        for listener in self._evidence_listeners:
            listener(a, b)
        return True

    def take_new_evidence(self) -> list[Evidence]:
        """Evidence pairs kept since the last call (for the owner to persist)."""
        out, self._new_evidence = self._new_evidence, []
        return out

    def _reflag(self, origin: bytes) -> None:
        pairs = [
            (p.evidence[origin][0].rid, p.evidence[origin][1].rid)
            for p in self._parts.values()
            if origin in p.evidence
        ]
        self.flagged[origin] = min(pairs)
