"""Anti-entropy: a sans-IO session that brings two replicas to the same state.

The session is an explicit per-peer value driven by its owner: the initiator calls
`generate_message()` and sends what it returns; each side passes what it receives to
`receive_message()` and sends what `generate_message()` returns next, until that is
None and `done` is true. No I/O, no clock, no randomness happens here.

Traffic is proportional to the difference between the replicas:

    initiator                                   responder
    HELLO   per-partition roots, counts  ->
                                         <-     DONE (all equal) | BUCKETS hashes
    ENTRIES origins of differing buckets ->
                                         <-     DELTA1 records the initiator lacks,
                                                seq lists where unclear, absent origins
    DELTA2  records the responder lacks, ->
            wanted seqs
                                         <-     DELTA3 wanted records

Origins are bucketed by their first bits; the number of buckets grows with the
square root of (estimated difference x origins), which minimises hashes plus
entries. Per origin, an entry is (origin, count, max seq, XOR of record ids). If the
initiator's entry equals the responder's records up to that max seq, the initiator
lacks exactly the responder's tail; otherwise the responder's seq list (as runs)
settles it both ways. Three round trips at most.
"""

from __future__ import annotations

import contextlib
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
BUCKET_HASH_BYTES = 4  # salted per session, so a collision never repeats
MAX_BUCKET_BITS = 10
PREFIX = 8  # origins and digests travel as 8-byte prefixes inside a session

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
        salt: initiator only: 8 random bytes keying this session's bucket hashes.
    """

    def __init__(
        self,
        replica: Replica,
        partitions: Iterable[str],
        role: Role,
        ingest: Ingest | None = None,
        salt: bytes = bytes(8),
    ) -> None:
        self.replica = replica
        self._salt = salt
        self.role = role
        self._mine = sorted(set(partitions))
        self._parts: list[str] = []
        self._ingest = ingest or self._merge_into_replica
        self.state = State.START if role is Role.INITIATOR else State.WAIT_HELLO
        self.stats = SyncStats()
        self._outbox: dict[str, Any] | None = None
        self._bits = 0
        self._buckets: list[int] = []

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
        roots = [[p, self.replica.digest([p])[:16], self.replica.count([p])] for p in self._mine]
        return {"t": "hello", "v": 1, "salt": self._salt, "roots": roots}

    def _on_hello(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        if msg.get("v") != 1:
            raise SyncError("protocol", f"sync version {msg.get('v')!r} not supported")
        self._salt = _bytes(msg["salt"])
        theirs = {_str(p): (_bytes(h), _int(n)) for p, h, n in _list(msg["roots"], 64)}
        differ = [
            p for p in self._mine if p in theirs and self.replica.digest([p])[:16] != theirs[p][0]
        ]
        if not differ:
            return {"t": "done"}, State.DONE
        self._parts = differ
        summaries = self._summaries()
        estimate = abs(sum(theirs[p][1] for p in differ) - self.replica.count(differ))
        self._bits = _bucket_bits(len(summaries), estimate)
        hashes = _bucket_hashes(summaries, self._bits, self._salt)
        return (
            {"t": "buckets", "parts": differ, "bits": self._bits, "h": hashes},
            State.WAIT_ENTRIES,
        )

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
        theirs = msg["h"]
        if not isinstance(theirs, bytes) or len(theirs) != BUCKET_HASH_BYTES << bits:
            raise SyncError("malformed", "wrong number of bucket hashes")
        summaries = self._summaries()
        mine = _bucket_hashes(summaries, bits, self._salt)
        w = BUCKET_HASH_BYTES
        self._buckets = [
            i for i in range(1 << bits) if mine[i * w : (i + 1) * w] != theirs[i * w : (i + 1) * w]
        ]
        wanted = set(self._buckets)
        entries = [_entry(o, s) for o, s in sorted(summaries.items()) if _bucket(o, bits) in wanted]
        return {"t": "entries", "b": self._buckets, "e": entries}, State.WAIT_DELTA1

    def _on_entries(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._buckets = [
            b
            for b in _list(msg["b"], 1 << MAX_BUCKET_BITS)
            if isinstance(b, int) and 0 <= b < 1 << self._bits
        ]
        theirs = _entries(msg["e"])
        wanted = set(self._buckets)
        mine = {
            o[:PREFIX]: s for o, s in self._summaries().items() if _bucket(o, self._bits) in wanted
        }
        out = _Outbox(self.stats)
        seqs: list[list[Any]] = []
        absent: list[bytes] = []
        for prefix in sorted(set(mine) | set(theirs)):
            s = mine.get(prefix)
            if s is None:
                absent.append(prefix)  # the initiator sends all it has
                continue
            send = _tail_for(s, theirs.get(prefix, (0, 0, 0)))
            if send is None:
                seqs.append([prefix, _x8(s.xor), _runs({r.seq for r in s.records})])
            else:
                out.add(send)
        return {"t": "delta1", "r": out.raws, "s": seqs, "a": absent}, State.WAIT_DELTA2

    def _on_delta1(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._receive_records(msg["r"])
        mine = {o[:PREFIX]: s for o, s in self._summaries().items()}
        out = _Outbox(self.stats)
        wants: list[list[Any]] = []
        everything: list[bytes] = []
        for prefix in _list(msg["a"], 1 << 20):
            s = mine.get(_bytes(prefix))
            if s is not None:
                out.add(s.records)
        for prefix, xor, runs in _list(msg["s"], 1 << 20):
            prefix, peer_has = _bytes(prefix), set(_unruns(runs))
            s = mine.get(prefix, _Summary())
            my_seqs = {r.seq for r in s.records}
            out.add(r for r in s.records if r.seq not in peer_has)
            missing = peer_has - my_seqs
            if missing:
                wants.append([prefix, _runs(missing)])
            elif peer_has == my_seqs and _x8(s.xor) != _bytes(xor):
                out.add(s.records)  # same seqs, other content: an equivocation
                everything.append(prefix)
        return {"t": "delta2", "r": out.raws, "w": wants, "all": everything}, State.WAIT_DELTA3

    def _on_delta2(self, msg: dict[str, Any]) -> tuple[dict[str, Any], State]:
        self._receive_records(msg["r"])
        mine = {o[:PREFIX]: s for o, s in self._summaries().items()}
        out = _Outbox(self.stats)
        for prefix, runs in _list(msg["w"], 1 << 20):
            wanted = set(_unruns(runs))
            s = mine.get(_bytes(prefix))
            if s is not None:
                out.add(r for r in s.records if r.seq in wanted)
        for prefix in _list(msg["all"], 1 << 20):
            s = mine.get(_bytes(prefix))
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
            # A rejected record is counted by the replica; the rest of the batch counts.
            with contextlib.suppress(Rejected):
                self.replica.receive(raw)


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

    Args:
        theirs: the peer's (count, max seq, 64-bit digest) for this origin.

    Returns:
        The records to send (possibly none), or None if that rule does not decide.
    """
    count, max_seq, xor64 = theirs
    if count == 0:
        return list(mine.records)
    if (len(mine.records), mine.xor >> 64) == (count, xor64):
        return []
    prefix_count, prefix_xor, tail = 0, 0, []
    for r in mine.records:
        if r.seq <= max_seq:
            prefix_count += 1
            prefix_xor ^= int.from_bytes(r.rid, "big")
        else:
            tail.append(r)
    if (prefix_count, prefix_xor >> 64) == (count, xor64):
        return tail
    return None


def _bucket_bits(n_origins: int, estimated_difference: int) -> int:
    """Buckets ~ sqrt(5 d n): 4-byte hashes against ~20-byte entries per origin."""
    if n_origins <= 4:
        return 0
    best = math.sqrt(5 * max(1, estimated_difference) * n_origins)
    return max(0, min(MAX_BUCKET_BITS, round(math.log2(best)), n_origins.bit_length()))


def _bucket(origin: bytes, bits: int) -> int:
    return int.from_bytes(origin[:2], "big") >> (16 - bits) if bits else 0


def _bucket_hashes(summaries: dict[bytes, _Summary], bits: int, salt: bytes) -> bytes:
    hashers = [hashlib.blake2b(digest_size=BUCKET_HASH_BYTES, key=salt) for _ in range(1 << bits)]
    for origin in sorted(summaries):
        hashers[_bucket(origin, bits)].update(origin + summaries[origin].xor.to_bytes(16, "big"))
    return b"".join(h.digest() for h in hashers)


def _entry(origin: bytes, s: _Summary) -> list[Any]:
    count, max_seq, xor = s.entry
    return [origin[:PREFIX], count, max_seq, _x8(xor)]


def _x8(xor: int) -> bytes:
    return (xor >> 64).to_bytes(8, "big")


def _entries(value: Any) -> dict[bytes, tuple[int, int, int]]:
    out = {}
    for e in _list(value, 1 << 20):
        prefix, count, max_seq, xor = e
        out[_bytes(prefix)] = (_int(count), _int(max_seq), int.from_bytes(_bytes(xor), "big"))
    return out


def _runs(seqs: Iterable[int]) -> list[int]:
    """Sorted distinct seqs as [gap, length, gap, length, ...] runs."""
    out: list[int] = []
    prev = 0
    for q in sorted(seqs):
        if out and q == prev + 1:
            out[-1] += 1
        else:
            out += [q - prev, 1]
        prev = q
    return out


def _unruns(runs: Any) -> list[int]:
    values = _list(runs, 1 << 20)
    if len(values) % 2:
        raise SyncError("malformed", "runs come in pairs")
    out: list[int] = []
    prev = 0
    for gap, length in zip(values[::2], values[1::2], strict=True):
        if not (_int(gap) >= 1 and 1 <= _int(length) <= 1 << 20) or len(out) + length > 1 << 20:
            raise SyncError("malformed", "bad seq run")
        start = prev + gap
        out.extend(range(start, start + length))
        prev = start + length - 1
    return out


def _list(value: Any, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise SyncError("malformed", "expected a bounded list")
    return value


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) > 64:
        raise SyncError("malformed", "expected a short byte string")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise SyncError("malformed", "expected a non-negative integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise SyncError("malformed", "expected a short string")
    return value
