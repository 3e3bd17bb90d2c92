"""Anti-entropy: a sans-IO session that brings two replicas to the same state.

The session is an explicit per-peer value driven by its owner: the initiator calls
`generate_message()` and sends what it returns; each side passes what it receives to
`receive_message()`, merges what `take_received()` hands out, and sends what
`generate_message()` returns next, until that is None and `done` is true. No I/O, no
clock, no randomness happens here; what to send never depends on what was just
received, so the owner may merge received records later (in a worker thread, in
chunks).

    initiator                                   responder
    HELLO   per-partition roots, counts,  ->
            evidence roots
                                         <-     DONE (all equal) | BUCKETS hashes, evidence
    ENTRIES origins of differing buckets, ->    (or EVIDENCE when only evidence differs)
            evidence
                                         <-     DELTA1 tails, id lists, absent origins
    DELTA2  records the responder lacks, ->
            wanted ids
                                         <-     DELTA3 wanted records

The unit of comparison is one origin's records in one partition. Units are bucketed
by the origin's first bits (buckets ~ sqrt(5 x difference x units)); per differing
unit the initiator sends (count, max seq, digest). If the responder's records up to
that seq have that count and digest, the initiator lacks exactly the responder's
tail. Otherwise the responder lists (seq, id tag, slot tag) of all its records of the
unit and the initiator settles both directions: this converges for every pair of
sets, equivocations (one seq in two records) and moved slots included.

Every hash an adversary could try to make collide is keyed with the session's salt
(chosen by the initiator), and bulk lists travel as byte strings read by
`encoding.Reader`, so a message decodes into a bounded number of objects.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from node.crdt.encoding import (
    MAX_RECORD_BYTES,
    Reader,
    Writer,
    check_decode_budget,
    unpack_unchecked,
)
from node.crdt.record import Record, decode_record, verify_record
from node.crdt.replica import OriginPart, Replica, records_digest
from node.errors import Rejected

VERSION = 2
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_PARTITIONS = 64
MAX_EVIDENCE_BYTES = 1024 * 1024
BUCKET_HASH_BYTES = 4
MAX_BUCKET_BITS = 10
ORIGIN_PREFIX = 16  # 2^64 key generations to make two origins share one
TAG = 8  # salted id and slot tags in id lists and wants
# Bytes kept free in a message for everything besides the records it carries.
_HEADROOM = 256 * 1024


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class State(enum.Enum):
    START = "start"  # initiator, nothing sent yet
    WAIT_HELLO = "wait-hello"
    WAIT_BUCKETS = "wait-buckets"
    WAIT_ENTRIES = "wait-entries"
    WAIT_DELTA1 = "wait-delta1"
    WAIT_DELTA2 = "wait-delta2"
    WAIT_DELTA3 = "wait-delta3"
    DONE = "done"


class SyncError(Rejected):
    """The peer broke the sync protocol."""


@dataclass
class SyncStats:
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    records_sent: int = 0
    records_received: int = 0
    truncated: bool = False

    @property
    def round_trips(self) -> int:
        return math.ceil(max(self.messages_sent, self.messages_received))


@dataclass
class Received:
    """What the peer sent to be merged: raw records and raw evidence pairs."""

    records: list[bytes] = field(default_factory=list)
    evidence: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.evidence)


_Unit = tuple[int, bytes]  # (partition index in the session, origin prefix)


class SyncSession:
    """One anti-entropy exchange with one peer.

    Args:
        replica: the local replica (read only; the owner merges what is received).
        partitions: partitions this node follows; the session covers those both follow.
        role: initiator or responder.
        salt: initiator only: 8+ random bytes keying this session's hashes.
        federation: the federation id; a peer of another federation is refused
            (``other-federation``, not a fault of the peer).
    """

    def __init__(
        self,
        replica: Replica,
        partitions: Iterable[str],
        role: Role,
        salt: bytes = bytes(8),
        federation: str = "",
    ) -> None:
        self.replica = replica
        self._salt = salt
        self.federation = federation
        self.role = role
        self._mine = sorted(set(partitions))[:MAX_PARTITIONS]
        self.partitions: list[str] = []  # partitions whose records are compared
        self._evparts: list[str] = []
        self.state = State.START if role is Role.INITIATOR else State.WAIT_HELLO
        self.stats = SyncStats()
        self._outbox: dict[str, Any] | None = None
        self._received = Received()
        self._bits = 0
        self._units: dict[_Unit, tuple[bytes, OriginPart]] | None = None

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    # --- the driver interface ------------------------------------------------

    def generate_message(self) -> bytes | None:
        """The next message to send, or None when there is nothing to send now."""
        if self.state is State.START:
            self._outbox = self._hello()
            self.state = State.WAIT_BUCKETS
        if self._outbox is None:
            return None
        data: bytes = msgpack.packb(self._outbox, use_bin_type=True)
        self._outbox = None
        self.stats.messages_sent += 1
        self.stats.bytes_sent += len(data)
        return data

    def receive_message(self, data: bytes) -> None:
        """Handle one message from the peer.

        Raises:
            SyncError: the message is malformed or not expected in this state; the
                session is over.
        """
        self.stats.messages_received += 1
        self.stats.bytes_received += len(data)
        try:
            if len(data) > MAX_MESSAGE_BYTES:
                raise SyncError("oversize", f"sync message of {len(data)} bytes")
            check_decode_budget(data, 24 * len(data) + 65536)
            msg = unpack_unchecked(data, max_bytes=MAX_MESSAGE_BYTES, max_len=MAX_PARTITIONS)
            if type(msg) is not dict or type(msg.get("t")) is not str:
                raise SyncError("malformed", "a sync message is a map with a type")
            handler = _TABLE.get((self.state, msg["t"]))
            if handler is None:
                raise SyncError("protocol", f"{msg['t']!r} not expected in {self.state.value}")
            self._outbox, self.state = handler(self, msg)
        except SyncError:
            self.state = State.DONE
            raise
        except Rejected as exc:
            self.state = State.DONE
            raise SyncError(exc.reason, exc.detail) from exc

    def take_received(self) -> Received:
        """Records and evidence received since the last call, for the owner to merge."""
        out, self._received = self._received, Received()
        self.stats.records_received += len(out.records)
        return out

    # --- steps ---------------------------------------------------------------

    def _hello(self) -> dict[str, Any]:
        roots = []
        for p in self._mine:
            part = self.replica.partition(p)
            roots.append([p, part.root(), part.count, part.evidence_root()])
        return {
            "t": "hello",
            "v": VERSION,
            "fed": self.federation,
            "salt": self._salt,
            "roots": roots,
        }

    def _on_hello(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        if msg.get("v") != VERSION or type(msg.get("v")) is not int:
            raise SyncError("protocol", f"sync version {msg.get('v')!r} not supported")
        fed = msg.get("fed")
        if type(fed) is not str or len(fed) > 64:
            raise SyncError("malformed", "federation must be an id")
        if fed != self.federation:
            raise SyncError("other-federation", "the peer belongs to another federation")
        salt = _bytes(msg.get("salt"), 64)
        if len(salt) < 8:
            raise SyncError("malformed", "salt must be at least 8 bytes")
        self._salt = salt
        theirs: dict[str, tuple[bytes, int, bytes]] = {}
        for entry in _list(msg.get("roots"), MAX_PARTITIONS):
            p, root, count, evroot = _list(entry, 4, exact=True)
            theirs[_str(p)] = (_bytes(root, 16), _int(count), _bytes(evroot, 16))
        common = [p for p in self._mine if p in theirs]
        parts = [p for p in common if self.replica.partition(p).root() != theirs[p][0]]
        evparts = [p for p in common if self.replica.partition(p).evidence_root() != theirs[p][2]]
        if not parts and not evparts:
            return {"t": "done"}, State.DONE
        self.partitions, self._evparts = parts, evparts
        units = self._my_units()
        estimate = abs(sum(theirs[p][1] for p in parts) - self.replica.count(parts))
        self._bits = _bucket_bits(len(units), estimate)
        out = {
            "t": "buckets",
            "parts": parts,
            "evparts": evparts,
            "bits": self._bits,
            "h": self._bucket_hashes(units, self._bits),
            "ev": self._evidence_blob(evparts),
        }
        return out, State.WAIT_ENTRIES

    def _on_done(self, msg: dict[str, Any]) -> tuple[None, State]:
        return None, State.DONE

    def _on_buckets(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        mine = set(self._mine)
        parts = [_str(p) for p in _list(msg.get("parts"), MAX_PARTITIONS)]
        evparts = [_str(p) for p in _list(msg.get("evparts"), MAX_PARTITIONS)]
        if not set(parts) | set(evparts) <= mine or len(set(parts)) != len(parts):
            raise SyncError("protocol", "peer named partitions this node did not offer")
        self._read_evidence(msg.get("ev"))
        self.partitions, self._evparts = parts, evparts
        if not parts:
            return {"t": "evidence", "ev": self._evidence_blob(evparts)}, State.DONE
        bits = msg.get("bits")
        if type(bits) is not int or not 0 <= bits <= MAX_BUCKET_BITS:
            raise SyncError("malformed", "bucket bits out of range")
        self._bits = bits
        theirs = _bytes(msg.get("h"), BUCKET_HASH_BYTES << MAX_BUCKET_BITS)
        if len(theirs) != BUCKET_HASH_BYTES << bits:
            raise SyncError("malformed", "wrong number of bucket hashes")
        units = self._my_units()
        mine_h = self._bucket_hashes(units, bits)
        w = BUCKET_HASH_BYTES
        buckets = [
            i for i in range(1 << bits) if mine_h[i * w : (i + 1) * w] != theirs[i * w : i * w + w]
        ]
        wanted = set(buckets)
        entries = Writer()
        for (pi, prefix), (_origin, op) in sorted(units.items()):
            if _bucket(prefix, bits) in wanted:
                entries.fixed(bytes((pi,)) + prefix)
                entries.varint(len(op.slots))
                entries.varint(op.max_seq)
                entries.fixed(self._tag(op.digest()))
        out = {
            "t": "entries",
            "b": b"".join(i.to_bytes(2, "big") for i in buckets),
            "e": entries.getvalue(),
            "ev": self._evidence_blob(evparts),
        }
        return out, State.WAIT_DELTA1

    def _on_evidence(self, msg: dict[str, Any]) -> tuple[None, State]:
        self._read_evidence(msg.get("ev"))
        return None, State.DONE

    def _on_entries(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._read_evidence(msg.get("ev"))
        raw_buckets = _bytes(msg.get("b"), 2 << MAX_BUCKET_BITS)
        if len(raw_buckets) % 2:
            raise SyncError("malformed", "bucket list of odd length")
        wanted = {
            int.from_bytes(raw_buckets[i : i + 2], "big") for i in range(0, len(raw_buckets), 2)
        }
        if any(b >= 1 << self._bits for b in wanted):
            raise SyncError("malformed", "bucket out of range")
        theirs: dict[_Unit, tuple[int, int, bytes]] = {}
        reader = Reader(_bytes(msg.get("e"), MAX_MESSAGE_BYTES))
        while not reader.done:
            unit = self._read_unit(reader)
            count, max_seq, digest = reader.varint(), reader.varint(), reader.fixed(TAG)
            if _bucket(unit[1], self._bits) not in wanted or unit in theirs:
                raise SyncError("malformed", "entry outside the differing buckets")
            theirs[unit] = (count, max_seq, digest)
        units = {u: v for u, v in self._my_units().items() if _bucket(u[1], self._bits) in wanted}
        records = _Outbox(self.stats, MAX_MESSAGE_BYTES - _HEADROOM)
        lists = Writer()
        absent = Writer()
        for unit in sorted(set(units) | set(theirs)):
            mine = units.get(unit)
            if mine is None:
                absent.fixed(bytes((unit[0],)) + unit[1])  # the initiator sends it all
                continue
            ordered = mine[1].ordered()
            entry = theirs.get(unit)
            if entry is None:
                records.add(ordered)
                continue
            tail = self._tail(ordered, entry)
            if tail is not None:
                records.add(tail)
            elif lists.size < MAX_MESSAGE_BYTES // 4:
                lists.fixed(bytes((unit[0],)) + unit[1])
                lists.varint(len(ordered))
                prev = 0
                for r in ordered:
                    lists.varint(r.seq - prev)
                    lists.fixed(self._tag(r.rid) + self._slot_tag(r))
                    prev = r.seq
            else:
                self.stats.truncated = True  # the rest in the next session
        out = {"t": "delta1", "r": records.blob(), "l": lists.getvalue(), "a": absent.getvalue()}
        return out, State.WAIT_DELTA2

    def _on_delta1(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._read_records(msg.get("r"))
        units = self._my_units()
        records = _Outbox(self.stats, MAX_MESSAGE_BYTES - _HEADROOM)
        reader = Reader(_bytes(msg.get("a"), MAX_MESSAGE_BYTES))
        while not reader.done:
            mine = units.get(self._read_unit(reader))
            if mine is not None:
                records.add(mine[1].ordered())
        wants = Writer()
        reader = Reader(_bytes(msg.get("l"), MAX_MESSAGE_BYTES))
        while not reader.done:
            unit = self._read_unit(reader)
            n = reader.varint(MAX_MESSAGE_BYTES // (TAG * 2))
            listed: list[tuple[int, bytes, bytes]] = []
            seq = 0
            for _ in range(n):
                seq += reader.varint()
                listed.append((seq, reader.fixed(TAG), reader.fixed(TAG)))
            mine = units.get(unit)
            ordered = mine[1].ordered() if mine is not None else []
            send, want = self._settle(ordered, listed)
            records.add(send)
            if want:
                wants.fixed(bytes((unit[0],)) + unit[1])
                wants.varint(len(want))
                wants.fixed(b"".join(want))
        return {"t": "delta2", "r": records.blob(), "w": wants.getvalue()}, State.WAIT_DELTA3

    def _on_delta2(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._read_records(msg.get("r"))
        units = self._my_units()
        records = _Outbox(self.stats, MAX_MESSAGE_BYTES - _HEADROOM)
        reader = Reader(_bytes(msg.get("w"), MAX_MESSAGE_BYTES))
        while not reader.done:
            unit = self._read_unit(reader)
            n = reader.varint(MAX_MESSAGE_BYTES // TAG)
            wanted = {reader.fixed(TAG) for _ in range(n)}
            mine = units.get(unit)
            if mine is not None:
                records.add(r for r in mine[1].ordered() if self._tag(r.rid) in wanted)
        return {"t": "delta3", "r": records.blob()}, State.DONE

    def _on_delta3(self, msg: dict[str, Any]) -> tuple[None, State]:
        self._read_records(msg.get("r"))
        return None, State.DONE

    # --- helpers -------------------------------------------------------------

    def _tag(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._salt, digest_size=TAG).digest()

    def _slot_tag(self, r: Record) -> bytes:
        return self._tag(r.kind.encode() + b"\0" + r.key.encode())

    def _my_units(self) -> dict[_Unit, tuple[bytes, OriginPart]]:
        if self._units is None:
            self._units = {}
            for pi, p in enumerate(self.partitions):
                for origin, op in self.replica.partition(p).origins.items():
                    if op.slots:
                        self._units[(pi, origin[:ORIGIN_PREFIX])] = (origin, op)
        return self._units

    def _bucket_hashes(self, units: dict[_Unit, tuple[bytes, OriginPart]], bits: int) -> bytes:
        hashers = [
            hashlib.blake2b(digest_size=BUCKET_HASH_BYTES, key=self._salt) for _ in range(1 << bits)
        ]
        for (pi, prefix), (origin, op) in sorted(units.items()):
            hashers[_bucket(prefix, bits)].update(
                bytes((pi,)) + origin + len(op.slots).to_bytes(4, "big") + op.digest()
            )
        return b"".join(h.digest() for h in hashers)

    def _read_unit(self, reader: Reader) -> _Unit:
        pi = reader.fixed(1)[0]
        if pi >= len(self.partitions):
            raise SyncError("malformed", "partition index out of range")
        return (pi, reader.fixed(ORIGIN_PREFIX))

    def _tail(self, ordered: list[Record], theirs: tuple[int, int, bytes]) -> list[Record] | None:
        """My records above the peer's max seq, if its records are exactly the rest."""
        count, max_seq, digest = theirs
        n = 0
        while n < len(ordered) and ordered[n].seq <= max_seq:
            n += 1
        if n == count and self._tag(records_digest(ordered[:n])) == digest:
            return ordered[n:]
        return None

    def _settle(
        self, ordered: list[Record], listed: list[tuple[int, bytes, bytes]]
    ) -> tuple[list[Record], list[bytes]]:
        """From the peer's (seq, id tag, slot tag) list: what to send and what to want.

        A record is not sent where the peer holds a newer one of its slot, nor wanted
        where this node does; everything else either side lacks moves.
        """
        their_ids = {t for _, t, _ in listed}
        their_slots: dict[bytes, int] = {}
        for seq, _, s in listed:
            their_slots[s] = max(seq, their_slots.get(s, 0))
        my_ids: set[bytes] = set()
        my_slots: dict[bytes, int] = {}
        send = []
        for r in ordered:
            tag, slot = self._tag(r.rid), self._slot_tag(r)
            my_ids.add(tag)
            my_slots[slot] = max(r.seq, my_slots.get(slot, 0))
            if tag not in their_ids and their_slots.get(slot, 0) <= r.seq:
                send.append(r)
        want = [
            tag for seq, tag, slot in listed if tag not in my_ids and my_slots.get(slot, 0) <= seq
        ]
        return send, want

    def _read_records(self, value: Any) -> None:
        reader = Reader(_bytes(value, MAX_MESSAGE_BYTES))
        out = self._received.records
        while not reader.done:
            out.append(reader.blob(MAX_RECORD_BYTES))

    def _evidence_blob(self, partitions: Sequence[str]) -> bytes:
        w = Writer()
        for a, b in self.replica.evidence(partitions):
            if w.size + len(a.raw) + len(b.raw) > MAX_EVIDENCE_BYTES:
                self.stats.truncated = True
                break
            w.blob(a.raw)
            w.blob(b.raw)
        return w.getvalue()

    def _read_evidence(self, value: Any) -> None:
        if value is None:
            return  # no evidence to give
        reader = Reader(_bytes(value, MAX_EVIDENCE_BYTES + 64))
        while not reader.done:
            a = reader.blob(MAX_RECORD_BYTES)
            self._received.evidence.append((a, reader.blob(MAX_RECORD_BYTES)))


_Handler = Callable[[SyncSession, dict[str, Any]], tuple[dict[str, Any] | None, State]]

# Everything that moves the session lives in this table: (state, message) -> step.
# A message missing from it is a protocol error.
_TABLE: dict[tuple[State, str], _Handler] = {
    (State.WAIT_HELLO, "hello"): SyncSession._on_hello,
    (State.WAIT_BUCKETS, "buckets"): SyncSession._on_buckets,
    (State.WAIT_BUCKETS, "done"): SyncSession._on_done,
    (State.WAIT_ENTRIES, "entries"): SyncSession._on_entries,
    (State.WAIT_ENTRIES, "evidence"): SyncSession._on_evidence,
    (State.WAIT_DELTA1, "delta1"): SyncSession._on_delta1,
    (State.WAIT_DELTA2, "delta2"): SyncSession._on_delta2,
    (State.WAIT_DELTA3, "delta3"): SyncSession._on_delta3,
}


class _Outbox:
    """Records to send as one length-prefixed blob, bounded in size."""

    def __init__(self, stats: SyncStats, limit: int) -> None:
        self._w = Writer()
        self._stats = stats
        self._limit = limit
        self._seen: set[bytes] = set()

    def add(self, records: Iterable[Record]) -> None:
        for r in records:
            if r.rid in self._seen:
                continue
            if self._w.size + len(r.raw) + 3 > self._limit:
                self._stats.truncated = True  # the rest goes in the next session
                return
            self._seen.add(r.rid)
            self._w.blob(r.raw)
            self._stats.records_sent += 1

    def blob(self) -> bytes:
        return self._w.getvalue()


def _bucket_bits(n_units: int, estimated_difference: int) -> int:
    """Buckets ~ sqrt(5 d n): 4-byte hashes against ~30-byte entries per unit."""
    if n_units <= 4:
        return 0
    best = math.sqrt(5 * max(1, estimated_difference) * n_units)
    return max(0, min(MAX_BUCKET_BITS, round(math.log2(best)), n_units.bit_length()))


def _bucket(prefix: bytes, bits: int) -> int:
    return int.from_bytes(prefix[:2], "big") >> (16 - bits) if bits else 0


def _list(value: Any, limit: int, *, exact: bool = False) -> list[Any]:
    if type(value) is not list or len(value) > limit or (exact and len(value) != limit):
        raise SyncError("malformed", "expected a bounded list")
    return value


def _bytes(value: Any, limit: int) -> bytes:
    if type(value) is not bytes or len(value) > limit:
        raise SyncError("malformed", "expected a bounded byte string")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise SyncError("malformed", "expected a non-negative integer")
    return value


def _str(value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= 256:
        raise SyncError("malformed", "expected a short string")
    return value


def merge_received(replica: Replica, received: Received) -> int:
    """Merge what a session received straight into a replica (tests, simple owners).

    Records and evidence that fail their checks are counted by the replica and
    dropped. Returns how many records were stored.
    """
    stored = 0
    for raw in received.records:
        try:
            outcome, _ = replica.receive(raw)
        except Rejected:
            continue
        stored += outcome.stored
    for raw_a, raw_b in received.evidence:
        try:
            a, b = decode_record(raw_a), decode_record(raw_b)
            for r in (a, b):
                replica.check(r)
                verify_record(r)
        except Rejected:
            continue
        replica.observe_evidence(a, b)
    return stored
