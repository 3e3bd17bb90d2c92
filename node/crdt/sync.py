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
                                         <-     RANGES tails; per other differing origin,
                                                its seq range split (or listed)
    RANGES  records, wants, sub-ranges    ->
            ...                                 (until a RANGES asks for nothing)

The unit of comparison is one origin's records in one partition. Units are bucketed
by the origin's first bits (buckets ~ sqrt(5 x difference x units)); per differing
unit the initiator sends (count, max seq, digest). If the responder's records up to
that seq have that count and digest, the initiator lacks exactly the responder's
tail. Otherwise the two settle the unit by range-based set reconciliation (Meyer,
"Range-Based Set Reconciliation", 2023): a side splits a seq range whose fingerprint
differs into up to 16 sub-ranges and sends their fingerprints (count and a salted
sum of ids), or, when it holds at most `LEAF` records there, lists them as (seq, id
tag, slot tag); a list is answered by the records the lister lacks and wants for
those the answering side lacks. Bytes grow with the difference, not with the
origin's records. A slot holds one record per unit and side, so settling each listed
range on its own converges exactly as settling the whole unit would: for every pair
of sets, equivocations (one seq in two records) and moved slots included.

A RANGES message carrying neither ranges nor wants ends the session; one that
carries them is answered. Ranges of a unit come strictly ordered and disjoint, so a
message makes a side list or send each of its records at most once; a side stops
splitting after `MAX_RANGE_ROUNDS` messages (the rest in the next session).

Every hash an adversary could try to make collide is keyed with the session's salt
(chosen by the initiator), and bulk lists travel as byte strings read by
`encoding.Reader`, so a message decodes into a bounded number of objects.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from node.crdt.encoding import (
    MAX_RECORD_BYTES,
    Reader,
    Writer,
    check_decode_budget,
    encode_varint,
    unpack_unchecked,
)
from node.crdt.record import Record, decode_record, verify_record
from node.crdt.replica import OriginPart, Replica, records_digest
from node.errors import Rejected

VERSION = 3
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_PARTITIONS = 64
MAX_EVIDENCE_BYTES = 1024 * 1024
BUCKET_HASH_BYTES = 4
MAX_BUCKET_BITS = 10
ORIGIN_PREFIX = 16  # 2^64 key generations to make two origins share one
TAG = 8  # salted digest tags in entries
ID_TAG = 4  # salted id and slot tags in range lists and wants: a collision only
# holds a record back until a session with another salt
FP_BYTES = 4  # range fingerprints
LEAF = 8  # a range where a side holds at most this many records is listed, not split
MAX_RANGE_ROUNDS = 12  # RANGES messages a side answers with new ranges
_MASK = (1 << 64) - 1
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
    WAIT_RANGES = "wait-ranges"
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
_Units = dict[_Unit, tuple[bytes, OriginPart]]


@dataclass(slots=True)
class _Summary:
    """A replica's units over some partitions, and what each adds to its bucket hash."""

    units: _Units
    rows: list[tuple[int, bytes]]  # (the prefix's first 16 bits, hashed bytes), by unit


def _summary(replica: Replica, partitions: Sequence[str]) -> _Summary:
    # Kept on the replica while its version is unchanged: sessions with several peers
    # in a row, and both steps of a session that build buckets, share them.
    cached = replica.memo.get("sync")
    if cached is None or cached[0] != replica.version:
        cached = (replica.version, {})
        replica.memo["sync"] = cached
    key = tuple(partitions)
    summary = cached[1].get(key)
    if summary is None:
        units: _Units = {}
        for pi, p in enumerate(partitions):
            for origin, op in replica.partition(p).origins.items():
                if op.slots:
                    units[(pi, origin[:ORIGIN_PREFIX])] = (origin, op)
        rows = [
            (
                int.from_bytes(prefix[:2], "big"),
                bytes((pi,)) + origin + len(op.slots).to_bytes(4, "big") + op.digest(),
            )
            for (pi, prefix), (origin, op) in sorted(units.items())
        ]
        summary = cached[1][key] = _Summary(units, rows)
    return summary


@dataclass(slots=True)
class _View:
    """One unit's records as this session sees them, with salted tags and prefix sums
    of the tags, so a range's fingerprint costs two bisections."""

    records: list[Record]
    seqs: list[int]
    tags: list[bytes]
    sums: list[int]

    def span(self, lo: int, hi: int | None) -> tuple[int, int]:
        """Indices [i, j) of the records with lo < seq <= hi (hi None: no bound)."""
        i = bisect_right(self.seqs, lo)
        return i, len(self.seqs) if hi is None else bisect_right(self.seqs, hi)

    def fingerprint(self, i: int, j: int) -> bytes:
        return ((self.sums[j] - self.sums[i]) & 0xFFFFFFFF).to_bytes(FP_BYTES, "big")


@dataclass(slots=True)
class _Range:
    """A range the peer sent: a fingerprint (`fp`), or a list (`fp` None)."""

    lo: int
    hi: int | None
    count: int
    fp: bytes | None
    listed: bytes  # a list's entries as sent (validated), read again by `_listed`


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
        self._units: _Units | None = None
        self._entry_units: list[_Unit] = []  # units the initiator named, by index
        self._views: dict[_Unit, _View] = {}
        self._range_rounds = 0

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
        if type(msg.get("v")) is not int:
            raise SyncError("malformed", "a hello carries the sync version")
        if msg["v"] != VERSION:
            # Not the peer's fault (and not a reason to ban it): an older or newer node.
            raise SyncError(
                "version", f"sync version {msg.get('v')!r} not supported (this node: {VERSION})"
            )
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
        summary = _summary(self.replica, parts)
        self._units = summary.units
        estimate = abs(sum(theirs[p][1] for p in parts) - self.replica.count(parts))
        self._bits = _bucket_bits(len(summary.units), estimate)
        out = {
            "t": "buckets",
            "parts": parts,
            "evparts": evparts,
            "bits": self._bits,
            "h": self._bucket_hashes(summary, self._bits),
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
        summary = _summary(self.replica, parts)
        units = self._units = summary.units
        mine_h = self._bucket_hashes(summary, bits)
        w = BUCKET_HASH_BYTES
        buckets = [
            i for i in range(1 << bits) if mine_h[i * w : (i + 1) * w] != theirs[i * w : i * w + w]
        ]
        wanted = set(buckets)
        self._entry_units = []
        entries = Writer()
        for (pi, prefix), (_origin, op) in sorted(units.items()):
            if _bucket(prefix, bits) in wanted:
                self._entry_units.append((pi, prefix))
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
        return out, State.WAIT_RANGES

    def _on_evidence(self, msg: dict[str, Any]) -> tuple[None, State]:
        self._read_evidence(msg.get("ev"))
        return None, State.DONE

    def _on_entries(self, msg: dict[str, Any]) -> tuple[dict[str, Any] | None, State]:
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
        self._entry_units = []
        reader = Reader(_bytes(msg.get("e"), MAX_MESSAGE_BYTES))
        while not reader.done:
            unit = self._read_unit(reader)
            count, max_seq, digest = reader.varint(), reader.varint(), reader.fixed(TAG)
            if _bucket(unit[1], self._bits) not in wanted or unit in theirs:
                raise SyncError("malformed", "entry outside the differing buckets")
            theirs[unit] = (count, max_seq, digest)
            self._entry_units.append(unit)
        mine = self._my_units()
        records = _Outbox(self.stats, MAX_MESSAGE_BYTES - _HEADROOM)
        for unit in sorted(u for u in mine if _bucket(u[1], self._bits) in wanted):
            if unit not in theirs:
                records.add(mine[unit][1].ordered())  # the initiator lacks it all
        out = _Ranges(self, records)
        for idx, unit in enumerate(self._entry_units):
            count, max_seq, digest = theirs[unit]
            op = mine.get(unit)
            if (
                op is not None
                and (len(op[1].slots), op[1].max_seq) == (count, max_seq)
                and self._tag(op[1].digest()) == digest
            ):
                continue  # equal (a bucket mate of a differing unit)
            if op is not None:
                tail = self._tail(op[1], theirs[unit])
                if tail is not None:
                    records.add(tail)
                    continue
            if op is None:
                out.ask_all(idx)  # an empty list: the initiator sends it all
            else:
                out.differs(idx, self._view(unit), _Range(0, None, -1, b"", b""))
        return out.message()

    def _on_ranges(self, msg: dict[str, Any]) -> tuple[dict[str, Any] | None, State]:
        self._read_records(msg.get("r"))
        wants = self._read_wants(msg.get("w"))
        ranges = _bytes(msg.get("i"), MAX_MESSAGE_BYTES)
        if not wants and not ranges:
            return None, State.DONE  # nothing asked: the session is over
        self._range_rounds += 1
        if self._range_rounds > MAX_RANGE_ROUNDS + 1:
            raise SyncError("protocol", "too many range rounds")
        out = _Ranges(self, _Outbox(self.stats, MAX_MESSAGE_BYTES - _HEADROOM))
        out.split = self._range_rounds <= MAX_RANGE_ROUNDS
        for idx, tags in wants:
            view = self._view(self._entry_units[idx])
            index = {t: k for k, t in enumerate(view.tags)}
            picked = {index[t] for t in _chunks(tags, ID_TAG) if t in index}
            out.records.add(view.records[k] for k in sorted(picked))
        # Ranges are read and answered one at a time: a message of many small ranges
        # never stands in memory as objects.
        wanted: list[bytes] = []
        last = -1
        for idx, rg in self._read_ranges(ranges):
            if idx != last:
                out.want(last, wanted)
                wanted, last = [], idx
                view = self._view(self._entry_units[idx])
            i, j = view.span(rg.lo, rg.hi)
            if rg.fp is None:
                send, want = self._settle(view, i, j, rg.listed, rg.lo)
                out.records.add(send)
                wanted += want
            elif j - i != rg.count or view.fingerprint(i, j) != rg.fp:
                out.differs(idx, view, rg)
        out.want(last, wanted)
        return out.message()

    # --- helpers -------------------------------------------------------------

    def _tag(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._salt, digest_size=TAG).digest()

    def _my_units(self) -> _Units:
        if self._units is None:
            self._units = _summary(self.replica, self.partitions).units
        return self._units

    def _view(self, unit: _Unit) -> _View:
        view = self._views.get(unit)
        if view is None:
            mine = self._my_units().get(unit)
            records = mine[1].ordered() if mine is not None else []
            tags = [self._tag(r.rid) for r in records]
            sums = [0]
            for t in tags:
                sums.append((sums[-1] + int.from_bytes(t, "big")) & _MASK)
            tags = [t[:ID_TAG] for t in tags]
            view = self._views[unit] = _View(records, [r.seq for r in records], tags, sums)
        return view

    def _bucket_hashes(self, summary: _Summary, bits: int) -> bytes:
        hashers = [
            hashlib.blake2b(digest_size=BUCKET_HASH_BYTES, key=self._salt) for _ in range(1 << bits)
        ]
        shift = 16 - bits
        for top, data in summary.rows:
            hashers[top >> shift].update(data)
        return b"".join(h.digest() for h in hashers)

    def _read_unit(self, reader: Reader) -> _Unit:
        pi = reader.fixed(1)[0]
        if pi >= len(self.partitions):
            raise SyncError("malformed", "partition index out of range")
        return (pi, reader.fixed(ORIGIN_PREFIX))

    def _tail(self, op: OriginPart, theirs: tuple[int, int, bytes]) -> list[Record] | None:
        """My records above the peer's max seq, if its records are exactly the rest."""
        count, max_seq, digest = theirs
        if count > len(op.slots):
            return None
        ordered = op.ordered()
        n = bisect_right([r.seq for r in ordered], max_seq)
        if n == count and self._tag(records_digest(ordered[:n])) == digest:
            return ordered[n:]
        return None

    def _slot_tag(self, r: Record) -> bytes:
        return self._tag(r.kind.encode() + b"\0" + r.key.encode())[:ID_TAG]

    def _settle(
        self, view: _View, i: int, j: int, listed: bytes, lo: int
    ) -> tuple[list[Record], list[bytes]]:
        """From the peer's (seq, id tag, slot tag) list of a range, and my records
        [i, j) of it: what to send and what to want.

        A record is not sent where the peer holds a newer one of its slot, nor wanted
        where this node does; everything else either side lacks moves. (A unit holds
        one record per slot; a slot whose records differ has them in listed ranges on
        both sides, so settling range by range is settling the unit.)
        """
        # Tables of my records only: a long list from the peer is read, never stored.
        mine: dict[bytes, int] = {}  # my id tag -> index
        my_slots: dict[bytes, int] = {}  # slot tag -> my newest seq of it
        slot_of: list[bytes] = []
        for k in range(i, j):
            r = view.records[k]
            slot = self._slot_tag(r)
            slot_of.append(slot)
            mine[view.tags[k]] = k
            my_slots[slot] = max(r.seq, my_slots.get(slot, 0))
        held: set[int] = set()  # my records the peer listed
        their_slots: dict[bytes, int] = {}  # of my slots: the peer's newest seq
        want: list[bytes] = []
        for seq, tag, slot in _entries(listed, lo):
            index = mine.get(tag)
            if index is not None:
                held.add(index)
            elif my_slots.get(slot, 0) <= seq:
                want.append(tag)
            if slot in my_slots and seq > their_slots.get(slot, 0):
                their_slots[slot] = seq
        send = [
            view.records[k]
            for k in range(i, j)
            if k not in held and their_slots.get(slot_of[k - i], 0) <= view.records[k].seq
        ]
        return send, want

    def _listing(self, view: _View, i: int, j: int, lo: int) -> bytes:
        w = Writer()
        prev = lo
        for k in range(i, j):
            r = view.records[k]
            w.varint(r.seq - prev)
            w.fixed(view.tags[k] + self._slot_tag(r))
            prev = r.seq
        return w.getvalue()

    def _entry_index(self, reader: Reader, after: int) -> int:
        idx = reader.varint(len(self._entry_units))
        if idx >= len(self._entry_units) or idx <= after:
            raise SyncError("malformed", "unit index out of range or out of order")
        return idx

    def _read_wants(self, value: Any) -> list[tuple[int, bytes]]:
        """Per unit (in order), the wanted id tags as sent."""
        reader = Reader(_bytes(value, MAX_MESSAGE_BYTES))
        out: list[tuple[int, bytes]] = []
        idx = -1
        while not reader.done:
            idx = self._entry_index(reader, idx)
            n = reader.varint(MAX_MESSAGE_BYTES // ID_TAG)
            out.append((idx, reader.fixed(n * ID_TAG)))
        return out

    def _read_ranges(self, data: bytes) -> Iterator[tuple[int, _Range]]:
        """Per unit (in order), its ranges (in order, disjoint); lists within bounds."""
        reader = Reader(data)
        idx = -1
        while not reader.done:
            idx = self._entry_index(reader, idx)
            hi: int | None = 0
            for _ in range(reader.varint(MAX_MESSAGE_BYTES // 4)):
                if hi is None:
                    raise SyncError("malformed", "a range after the unbounded one")
                lo = hi + reader.varint()
                width = reader.varint()
                hi = lo + width if width else None
                head = reader.varint(MAX_MESSAGE_BYTES)
                if not head & 1:
                    yield idx, _Range(lo, hi, head >> 1, reader.fixed(FP_BYTES), b"")
                    continue
                start = reader.position
                seq = lo
                for _ in range(head >> 1):
                    seq += reader.varint()
                    reader.fixed(2 * ID_TAG)
                    if seq <= lo or (hi is not None and seq > hi):
                        raise SyncError("malformed", "a listed seq outside its range")
                yield idx, _Range(lo, hi, head >> 1, None, data[start : reader.position])

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
    (State.WAIT_RANGES, "ranges"): SyncSession._on_ranges,
}


class _Ranges:
    """A RANGES message being built: records, wants and ranges, per unit in order."""

    def __init__(self, session: SyncSession, records: _Outbox) -> None:
        self.session = session
        self.records = records
        self.split = True  # False past MAX_RANGE_ROUNDS: list, never split again
        # Byte arrays, not Writers: a message of many small ranges stays compact.
        self._wants = bytearray()
        self._ranges = bytearray()
        self._unit: tuple[int, bytearray, int, int | None] | None = None  # idx, items, n, hi

    def ask_all(self, idx: int) -> None:
        """This side lacks unit `idx`: an empty list of its whole range."""
        self._add(idx, 0, None, 1, b"")

    def want(self, idx: int, tags: list[bytes]) -> None:
        if tags:
            self._wants += encode_varint(idx) + encode_varint(len(tags)) + b"".join(tags)

    def differs(self, idx: int, view: _View, rg: _Range) -> None:
        """The peer's range `rg` differs from mine: answer with records, a list or
        sub-ranges."""
        i, j = view.span(rg.lo, rg.hi)
        if rg.count == 0:
            self.records.add(view.records[i:j])  # the peer holds nothing there
            return
        if len(self._ranges) > MAX_MESSAGE_BYTES // 4:
            self.session.stats.truncated = True  # the rest in the next session
            return
        split = self.split and j - i > LEAF
        edges = _split_points(view.seqs, i, j, rg.lo, rg.hi) if split else []
        if not edges:
            self._add(idx, rg.lo, rg.hi, 2 * (j - i) + 1, self.session._listing(view, i, j, rg.lo))
            return
        bounds: list[int | None] = [rg.lo, *edges, rg.hi]
        for lo, hi in itertools.pairwise(bounds):
            assert lo is not None
            a, b = view.span(lo, hi)
            self._add(idx, lo, hi, 2 * (b - a), view.fingerprint(a, b))

    def _add(self, idx: int, lo: int, hi: int | None, head: int, body: bytes) -> None:
        if self._unit is None or self._unit[0] != idx:
            self._flush()
            self._unit = (idx, bytearray(), 0, 0)
        uidx, items, n, prev = self._unit
        assert prev is not None
        items += encode_varint(lo - prev)
        items += encode_varint(0 if hi is None else hi - lo)
        items += encode_varint(head)
        items += body
        self._unit = (uidx, items, n + 1, hi)

    def _flush(self) -> None:
        if self._unit is not None:
            idx, items, n, _ = self._unit
            self._ranges += encode_varint(idx) + encode_varint(n) + items
            self._unit = None

    def message(self) -> tuple[dict[str, Any], State]:
        self._flush()
        asks = bool(self._ranges or self._wants)
        out = {
            "t": "ranges",
            "r": self.records.blob(),
            "w": bytes(self._wants),
            "i": bytes(self._ranges),
        }
        return out, State.WAIT_RANGES if asks else State.DONE


def _entries(listed: bytes, lo: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(seq, id tag, slot tag) of a list `_read_ranges` validated."""
    reader = Reader(listed)
    seq = lo
    while not reader.done:
        seq += reader.varint()
        tags = reader.fixed(2 * ID_TAG)
        yield seq, tags[:ID_TAG], tags[ID_TAG:]


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[k : k + size] for k in range(0, len(data), size))


def _split_points(seqs: list[int], i: int, j: int, lo: int, hi: int | None) -> list[int]:
    """Seqs that cut records [i, j) of a range into up to 8 (16 above 256 records)
    parts of about equal count, never between two records of one seq; [] if none."""
    n = j - i
    parts = 8 if n <= 256 else 16
    edges: list[int] = []
    for t in range(1, parts):
        edge = seqs[i + t * n // parts - 1]
        if edge > (edges[-1] if edges else lo) and (hi is None or edge < hi):
            edges.append(edge)
    return edges


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
