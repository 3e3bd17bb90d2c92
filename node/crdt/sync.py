"""Anti-entropy: a sans-IO session that brings two replicas to the same state.

The session is an explicit per-peer value driven by its owner: the initiator calls
`generate_message()` and sends what it returns; each side passes what it receives to
`receive_message()` and sends what `generate_message()` returns next, until that is
None and `done` is true. No I/O, no clock, no randomness happens here.

Traffic is proportional to the difference between the replicas:

    initiator                                   responder
    HELLO   per-partition roots          ->
                                         <-     DONE (all equal) | BUCKETS hashes
    ENTRIES origins of differing buckets ->
                                         <-     DELTA1 records the initiator lacks,
                                                own entries, seq lists where unclear
    DELTA2  records the responder lacks, ->
            wanted seqs
                                         <-     DELTA3 wanted records

Per origin, an entry is (origin, count, max seq, XOR of record ids). If the peer's
entry equals my records up to its max seq, the peer lacks exactly my tail; otherwise
the seq list of the origin settles it. Three round trips at most.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from node.crdt.encoding import unpack_unchecked
from node.crdt.record import Record
from node.crdt.replica import OriginPart, Replica
from node.errors import Rejected

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
BUCKET_HASH_BYTES = 8
MAX_BUCKET_BITS = 8
ORIGINS_PER_BUCKET = 4

Ingest = Callable[[Sequence[bytes]], None]


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
class _Summary:
    """One origin's records in the session's partitions."""

    records: list[Record] = field(default_factory=list)
    xor: int = 0

    @property
    def entry(self) -> tuple[int, int, int]:
        return (len(self.records), max((r.seq for r in self.records), default=0), self.xor)


class SyncSession:
    """One anti-entropy exchange with one peer.

    Args:
        replica: the local replica (read, and written through `ingest`).
        partitions: partitions this node follows; the session covers those both follow.
        role: initiator or responder.
        ingest: merges received raw records (and persists them); by default they are
            merged into `replica`, rejected ones counted and dropped.
    """

    def __init__(
        self,
        replica: Replica,
        partitions: Iterable[str],
        role: Role,
        ingest: Ingest | None = None,
    ) -> None:
        self.replica = replica
        self.role = role
        self._mine = sorted(set(partitions))
        self._parts: list[str] = []
        self._ingest = ingest or self._merge_into_replica
        self.state = State.START if role is Role.INITIATOR else State.WAIT_HELLO
        self.stats = SyncStats()
        self._outbox: dict[str, Any] | None = None
        self._bits = 0
        self._buckets: list[int] = []
        self._peer_entries: dict[bytes, tuple[int, int, int]] = {}
        self._peer_seqs: dict[bytes, list[int]] = {}

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
        data = msgpack.packb(self._outbox, use_bin_type=True)
        self._outbox = None
        self.stats.messages_sent += 1
        self.stats.bytes_sent += len(data)
        return data

    def receive_message(self, data: bytes) -> None:
        """Handle one message from the peer.

        Raises:
            SyncError: the message is malformed or not expected in this state; the
                session is over (the replica keeps what was merged so far).
        """
        self.stats.messages_received += 1
        self.stats.bytes_received += len(data)
        try:
            msg = unpack_unchecked(data, max_bytes=MAX_MESSAGE_BYTES)
            if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
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
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            self.state = State.DONE
            raise SyncError("malformed", f"bad sync message ({type(exc).__name__})") from exc

    # --- steps ---------------------------------------------------------------

    def _hello(self) -> dict[str, Any]:
        roots = [[p, self.replica.digest([p])[:16]] for p in self._mine]
        return {"t": "hello", "v": 1, "roots": roots}

    def _on_hello(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        if msg.get("v") != 1:
            raise SyncError("protocol", f"sync version {msg.get('v')!r} not supported")
        theirs = {_str(p): _bytes(h) for p, h in _list(msg["roots"], 64)}
        differ = [p for p in self._mine if p in theirs
                  and self.replica.digest([p])[:16] != theirs[p]]
        if not differ:
            return {"t": "done"}, State.DONE
        self._parts = differ
        summaries = self._summaries()
        self._bits = _bucket_bits(len(summaries))
        hashes = _bucket_hashes(summaries, self._bits)
        return {"t": "buckets", "parts": differ, "bits": self._bits, "h": hashes}, State.WAIT_ENTRIES

    def _on_done(self, msg: dict[str, Any]) -> tuple[None, State]:
        return None, State.DONE

    def _on_buckets(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        parts = [_str(p) for p in _list(msg["parts"], 64)]
        if not set(parts) <= set(self._mine):
            raise SyncError("protocol", "peer named partitions this node did not offer")
        self._parts = parts
        bits = msg["bits"]
        if not isinstance(bits, int) or not 0 <= bits <= MAX_BUCKET_BITS:
            raise SyncError("malformed", "bucket bits out of range")
        self._bits = bits
        theirs = [_bytes(h) for h in _list(msg["h"], 1 << bits)]
        if len(theirs) != 1 << bits:
            raise SyncError("malformed", "wrong number of bucket hashes")
        summaries = self._summaries()
        mine = _bucket_hashes(summaries, bits)
        self._buckets = [i for i in range(1 << bits) if mine[i] != theirs[i]]
        wanted = set(self._buckets)
        entries = [_entry(o, s) for o, s in sorted(summaries.items())
                   if _bucket(o, bits) in wanted]
        return {"t": "entries", "b": self._buckets, "e": entries}, State.WAIT_DELTA1

    def _on_entries(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._buckets = [b for b in _list(msg["b"], 1 << MAX_BUCKET_BITS)
                         if isinstance(b, int) and 0 <= b < 1 << self._bits]
        theirs = _entries(msg["e"])
        wanted = set(self._buckets)
        summaries = {o: s for o, s in self._summaries().items() if _bucket(o, self._bits) in wanted}
        out = _Outbox(self.stats)
        entries, seqs = [], []
        for origin in sorted(set(summaries) | set(theirs)):
            if _bucket(origin, self._bits) not in wanted:
                continue
            mine = summaries.get(origin, _Summary())
            entries.append(_entry(origin, mine))
            send = _tail_for(mine, theirs.get(origin, (0, 0, 0)))
            if send is None:
                seqs.append([origin, _deltas(sorted(r.seq for r in mine.records))])
            else:
                out.add(send)
        return {"t": "delta1", "r": out.raws, "e": entries, "s": seqs}, State.WAIT_DELTA2

    def _on_delta1(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._receive_records(msg["r"])
        theirs = _entries(msg["e"])
        their_seqs = {_bytes(o): _undeltas(d) for o, d in _list(msg["s"], 1 << 20)}
        wanted = set(self._buckets)
        summaries = {o: s for o, s in self._summaries().items() if _bucket(o, self._bits) in wanted}
        out = _Outbox(self.stats)
        wants: list[list[Any]] = []
        everything: list[bytes] = []
        for origin in sorted(set(summaries) | set(theirs)):
            mine = summaries.get(origin, _Summary())
            entry = theirs.get(origin, (0, 0, 0))
            if origin in their_seqs:
                peer_has = set(their_seqs[origin])
                my_seqs = {r.seq for r in mine.records}
                out.add(r for r in mine.records if r.seq not in peer_has)
                missing = sorted(peer_has - my_seqs)
                if missing:
                    wants.append([origin, _deltas(missing)])
                elif peer_has == my_seqs and mine.xor != entry[2]:
                    out.add(mine.records)  # same seqs, other content: equivocation
                    everything.append(origin)
                continue
            if mine.entry[0] == entry[0] and mine.xor == entry[2]:
                continue
            send = _tail_for(mine, entry)
            if send is None:
                out.add(mine.records)
                everything.append(origin)
            else:
                out.add(send)
        return {"t": "delta2", "r": out.raws, "w": wants, "all": everything}, State.WAIT_DELTA3

    def _on_delta2(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._receive_records(msg["r"])
        summaries = self._summaries()
        out = _Outbox(self.stats)
        for o, d in _list(msg["w"], 1 << 20):
            wanted = set(_undeltas(d))
            s = summaries.get(_bytes(o))
            if s is not None:
                out.add(r for r in s.records if r.seq in wanted)
        for o in _list(msg["all"], 1 << 20):
            s = summaries.get(_bytes(o))
            if s is not None:
                out.add(s.records)
        return {"t": "delta3", "r": out.raws}, State.DONE

    def _on_delta3(self, msg: dict[str, Any]) -> tuple[None, State]:
        self._receive_records(msg["r"])
        return None, State.DONE

    # --- helpers -------------------------------------------------------------

    def _summaries(self) -> dict[bytes, _Summary]:
        out: dict[bytes, _Summary] = {}
        for origin, parts in self.replica.origin_parts(self._parts).items():
            s = _summarise(parts)
            if s.records:
                out[origin] = s
        return out

    def _receive_records(self, raws: Any) -> None:
        batch = [r for r in _list(raws, 1 << 20) if isinstance(r, bytes)]
        self.stats.records_received += len(batch)
        if batch:
            self._ingest(batch)

    def _merge_into_replica(self, raws: Sequence[bytes]) -> None:
        for raw in raws:
            try:
                self.replica.receive(raw)
            except Rejected:
                pass  # counted by the replica; the rest of the batch still counts


_Handler = Callable[[SyncSession, dict[str, Any]], tuple[dict[str, Any] | None, State]]

# Everything that moves the session lives in this table: (state, message) -> step.
# A message missing from it is a protocol error.
_TABLE: dict[tuple[State, str], _Handler] = {
    (State.WAIT_HELLO, "hello"): SyncSession._on_hello,
    (State.WAIT_BUCKETS, "buckets"): SyncSession._on_buckets,
    (State.WAIT_BUCKETS, "done"): SyncSession._on_done,
    (State.WAIT_ENTRIES, "entries"): SyncSession._on_entries,
    (State.WAIT_DELTA1, "delta1"): SyncSession._on_delta1,
    (State.WAIT_DELTA2, "delta2"): SyncSession._on_delta2,
    (State.WAIT_DELTA3, "delta3"): SyncSession._on_delta3,
}


class _Outbox:
    """Raw records to send, bounded by the message size."""

    def __init__(self, stats: SyncStats) -> None:
        self.raws: list[bytes] = []
        self._size = 0
        self._stats = stats

    def add(self, records: Iterable[Record]) -> None:
        for r in records:
            if self._size + len(r.raw) > MAX_MESSAGE_BYTES - 64 * 1024:
                self._stats.truncated = True  # the rest goes in the next session
                return
            self.raws.append(r.raw)
            self._size += len(r.raw) + 3
            self._stats.records_sent += 1


def _summarise(parts: Sequence[OriginPart]) -> _Summary:
    s = _Summary()
    for p in parts:
        s.records.extend(p.slots.values())
        s.xor ^= p.xor
    return s


def _tail_for(mine: _Summary, theirs: tuple[int, int, int]) -> list[Record] | None:
    """What the peer lacks if its records are exactly my records up to its max seq.

    Returns:
        The records to send (possibly none), or None if that rule does not decide.
    """
    count, max_seq, xor = theirs
    if count == 0:
        return list(mine.records)
    if (len(mine.records), mine.xor) == (count, xor):
        return []
    prefix_count, prefix_xor, tail = 0, 0, []
    for r in mine.records:
        if r.seq <= max_seq:
            prefix_count += 1
            prefix_xor ^= int.from_bytes(r.rid, "big")
        else:
            tail.append(r)
    if (prefix_count, prefix_xor) == (count, xor):
        return tail
    return None


def _bucket_bits(n_origins: int) -> int:
    if n_origins <= ORIGINS_PER_BUCKET:
        return 0
    return min(MAX_BUCKET_BITS, math.ceil(math.log2(n_origins / ORIGINS_PER_BUCKET)))


def _bucket(origin: bytes, bits: int) -> int:
    return origin[0] >> (8 - bits) if bits else 0


def _bucket_hashes(summaries: dict[bytes, _Summary], bits: int) -> list[bytes]:
    hashers = [hashlib.blake2b(digest_size=BUCKET_HASH_BYTES) for _ in range(1 << bits)]
    for origin in sorted(summaries):
        s = summaries[origin]
        hashers[_bucket(origin, bits)].update(origin + s.xor.to_bytes(16, "big"))
    return [h.digest() for h in hashers]


def _entries(value: Any) -> dict[bytes, tuple[int, int, int]]:
    out = {}
    for e in _list(value, 1 << 20):
        origin, count, max_seq, xor = e
        if not (isinstance(count, int) and isinstance(max_seq, int)):
            raise SyncError("malformed", "entry counts must be integers")
        out[_bytes(origin)] = (count, max_seq, int.from_bytes(_bytes(xor), "big"))
    return out


def _entry(origin: bytes, s: _Summary) -> list[Any]:
    count, max_seq, xor = s.entry
    return [origin, count, max_seq, xor.to_bytes(16, "big")]


def _deltas(seqs: list[int]) -> list[int]:
    return [b - a for a, b in zip([0, *seqs], seqs, strict=False)]


def _undeltas(deltas: Any) -> list[int]:
    out, acc = [], 0
    for d in _list(deltas, 1 << 20):
        if not isinstance(d, int) or d < 0:
            raise SyncError("malformed", "seq deltas must be non-negative integers")
        acc += d
        out.append(acc)
    return out


def _list(value: Any, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise SyncError("malformed", "expected a bounded list")
    return value


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) > 64:
        raise SyncError("malformed", "expected a short byte string")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise SyncError("malformed", "expected a short string")
    return value
