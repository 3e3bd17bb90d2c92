"""Signed records: the only thing that replicates.

A record's wire form is the canonical msgpack array

    [2, origin, kind, key, seq, hlc, scope, body, sig]

and its signature covers the same array without `sig` (an 8-element array), prefixed
by a domain tag. Because the encoding is canonical (and checked to be), the signed
bytes are a slice of the wire bytes with a different array header: nothing is packed
twice to verify. A record's id is a hash of its wire bytes, so equal ids mean equal
records, whatever the signer chose to sign.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import islice, repeat
from typing import Any, NamedTuple

import msgpack
from nacl._sodium import ffi as _ffi  # PyNaCl's own cffi module (what nacl.bindings uses)
from nacl._sodium import lib as _sodium

from node.crdt.encoding import (
    MAX_RECORD_BYTES,
    Value,
    canonical,
    check_decode_budget,
    check_decoded,
    pack,
    unpack_unchecked,
)
from node.errors import Rejected

VERSION = 2
DOMAIN = b"allmende/record/2\x00"
SIG_BYTES = 64
KEY_BYTES = 32
ID_BYTES = 16
MAX_NAME = 64  # key length
MAX_SCOPE = 200
# The smallest possible record: origin and signature alone take 98 bytes.
MIN_RECORD_BYTES = 110
# What a record may decode into: bodies are small maps and lists (a 200-option ranked
# ballot is the densest real one, ~31 bytes of objects per byte).
DECODE_BUDGET_PER_BYTE = 32
DECODE_BUDGET_FIXED = 4096
_SIG_TAIL = 2 + SIG_BYTES  # msgpack bin8 header + 64 bytes
_ARRAY8 = b"\x98"
_SIGNED_HEAD = DOMAIN + _ARRAY8  # what precedes the fields in the signed bytes
_KIND = re.compile(r"[a-z][a-z0-9-]{0,31}")
_KEY = re.compile(rf"[!-~]{{1,{MAX_NAME}}}")  # printable ASCII, no space
_SCOPE_CHARS = re.compile(rf"[a-z0-9/-]{{1,{MAX_SCOPE}}}")

_sign_open = _sodium.crypto_sign_open
_NULL = _ffi.NULL
Slot = tuple[bytes, str, str]
_new = tuple.__new__
_blake2b = hashlib.blake2b
Signer = Callable[[bytes], bytes]


class Record(NamedTuple):
    """One signed fact. `body is None` marks a tombstone (the fact was withdrawn).

    Immutable like a frozen dataclass, but a NamedTuple: building one costs a third
    as much, and loading a store builds hundreds of thousands.

    Attributes:
        origin: Ed25519 public key of the author (node or member).
        kind: record kind, e.g. ``need``.
        key: unique within (origin, kind).
        seq: the origin's own counter, strictly increasing over all its writes.
        hlc: hybrid logical clock timestamp (advisory).
        scope: region path the record belongs to, e.g. ``eu/de/berlin``.
        body: kind-specific map, or None for a tombstone.
        raw: the canonical wire bytes (what is stored and forwarded).
        rid: the record id, a 16-byte hash of `raw`.
        sig: Ed25519 signature over the canonical unsigned fields (a property: the
            last 64 bytes of `raw`, not held twice).
    """

    origin: bytes
    kind: str
    key: str
    seq: int
    hlc: int
    scope: str
    body: dict[str, Value] | None
    raw: bytes
    rid: bytes

    @property
    def sig(self) -> bytes:
        return self.raw[-SIG_BYTES:]

    @property
    def slot(self) -> Slot:
        return (self.origin, self.kind, self.key)

    @property
    def tombstone(self) -> bool:
        return self.body is None


class _Unread:
    """The body field of a `StoredRecord` whose body is left in its wire bytes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unread>"


_UNREAD: Any = _Unread()
_field: Callable[[Any, int], Any] = tuple.__getitem__
# What a loaded need or capacity keeps of its body, for the balance index: the values
# of these fields (`intent_fields`), read as the record is loaded.
INTENT_KINDS = frozenset(("need", "capacity"))
INTENT_FIELDS = ("item", "unit", "period", "qty")


class StoredRecord(Record):
    """A record loaded from this node's store, its body left in its wire bytes.

    It reads like any `Record` and equals the record decoded from the same bytes:
    `body` decodes the body from `raw` on every read (a fresh plain dict). The body
    field holds None for a tombstone, for a need or capacity the values of its
    `INTENT_FIELDS` (a tuple, which is never a body: the balance index reads them
    with `intent_fields`), else a marker. A node holds its whole store and most
    bodies are read by no one after start: not holding them makes loading faster and
    a held record smaller.
    """

    __slots__ = ()

    @property
    def body(self) -> dict[str, Value] | None:  # overrides the field, read from `raw`
        b = _field(self, 6)
        if b is not _UNREAD and type(b) is not tuple:
            return b  # type: ignore[no-any-return]
        body: dict[str, Value] = msgpack.unpackb(_field(self, 7))[7]
        return body

    def decoded(self) -> Record:
        """The same record with its body decoded, as a plain `Record`."""
        return _new(Record, (*self[:6], self.body, *self[7:]))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoredRecord):
            other = other.decoded()
        return tuple.__eq__(self.decoded(), other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.decoded())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.decoded())

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickling and copying
        return tuple(self.decoded())

    def _asdict(self) -> dict[str, Any]:
        return self.decoded()._asdict()


def intent_fields(r: Record) -> tuple[Any, ...] | None:
    """The values of `INTENT_FIELDS` in the body of a need or capacity `r` (read as it
    was loaded, if it was), or None for a tombstone.

    Raises:
        KeyError: the body lacks one of them (no valid need or capacity does).
    """
    b = _field(r, 6)
    if type(b) is tuple:
        return b
    body = r.body
    if body is None:
        return None
    return (body["item"], body["unit"], body["period"], body["qty"])


def record_id(raw: bytes) -> bytes:
    """The id of a record: BLAKE2b-128 of its wire bytes.

    It binds every byte, so a record offered as one held before is byte-equal to it,
    and nobody (the signer included) can give two different records one id.
    """
    return _blake2b(raw, digest_size=ID_BYTES).digest()


def signing_bytes(raw: bytes) -> bytes:
    """The bytes the signature covers, cut out of canonical wire bytes."""
    return _SIGNED_HEAD + raw[1:-_SIG_TAIL]


def sign_record(
    signer: Signer,
    origin: bytes,
    kind: str,
    key: str,
    seq: int,
    hlc: int,
    scope: str,
    body: dict[str, Any] | None,
) -> Record:
    """Build and sign a record.

    Args:
        signer: returns the Ed25519 signature of the bytes it is given.
        origin..body: the record's fields (see `Record`).

    Returns:
        The signed record with its wire bytes.

    Raises:
        Rejected: if the fields cannot form a well-formed record (the caller validated
            the body first, so this is a programming error surfaced with its reason).
    """
    fields = [VERSION, origin, kind, key, seq, hlc, scope, canonical(body)]
    _check_fields(fields)
    unsigned = pack(fields)
    sig = signer(DOMAIN + unsigned)
    raw = pack([*fields, sig])
    if len(raw) > MAX_RECORD_BYTES:
        raise Rejected("oversize", f"record is {len(raw)} bytes, limit {MAX_RECORD_BYTES}")
    return _shared([*fields, sig], raw)


def decode_record(raw: bytes) -> Record:
    """Parse wire bytes into a record WITHOUT checking the signature.

    Raises:
        Rejected: oversize, malformed or non-canonical bytes, or ill-typed fields.
    """
    if type(raw) is not bytes:
        raise Rejected("malformed", "a record is a byte string")
    n = len(raw)
    if n > MAX_RECORD_BYTES:
        raise Rejected("oversize", f"{n} bytes, limit {MAX_RECORD_BYTES}")
    if n < MIN_RECORD_BYTES or raw[0] != 0x99:
        raise Rejected("malformed", "a record is an array of 9 fields")
    # `decode_canonical` in one pass for the one shape a record has: the nine fields'
    # types are checked here, and the body is checked for canonical form (a flat map
    # of scalars, the common case, in the same loop that builds the record's body).
    check_decode_budget(raw, DECODE_BUDGET_PER_BYTE * n + DECODE_BUDGET_FIXED)
    fields = unpack_unchecked(raw, max_bytes=MAX_RECORD_BYTES)
    _check_fields(fields)
    decoded, sig = fields[7], fields[8]
    if type(sig) is not bytes or len(sig) != SIG_BYTES:
        raise Rejected("malformed", "signature must be 64 bytes")
    # The pool, as `_shared` consults it (inlined: this runs for every record received).
    # It adds at most four fields and the body's values, within its bound.
    pool = _POOL
    room = len(pool) + 4 + (len(decoded) if decoded is not None else 0) <= _POOL_MAX
    pooled = pool.setdefault if room else _pool_get
    kind = fields[2]
    body = None
    if decoded is not None:
        # Canonical form without a walk for the common body, a map of scalars whose
        # keys (strings, ascending) are those of a body seen before.
        keys = tuple(decoded)
        plain = keys in _SORTED_KEYS
        body = _body_dict(kind)
        for k, v in decoded.items():
            t = type(v)
            if t is str:
                if len(v) <= _POOL_LEN:
                    v = pooled(v, v)
            elif t is not int and t is not bool and t is not bytes and v is not None:
                plain = False  # a nested value: walked below
            body[k] = v
        if not plain:
            check_decoded(decoded, 1)
            if len(_SORTED_KEYS) < _SORTED_KEYS_MAX:
                _SORTED_KEYS[keys] = None
    try:
        packer = _PACKERS.packer
    except AttributeError:  # the first record this thread decodes
        packer = _PACKERS.packer = msgpack.Packer(use_bin_type=True)
    if packer.pack(fields) != raw:
        raise Rejected("non-canonical", "not the canonical encoding")
    origin, seq, scope = fields[1], fields[4], fields[6]
    return _new(
        Record,
        (
            pooled(origin, origin),
            pooled(kind, kind),
            fields[3],
            pooled(seq, seq),
            fields[5],
            pooled(scope, scope),
            body,
            raw,
            _blake2b(raw, digest_size=ID_BYTES).digest(),
        ),
    )


# One packer per thread for the canonical check (records are decoded in the event
# loop and in worker threads; a packer is not to be shared between threads).
_PACKERS = threading.local()

# Key tuples of bodies found canonical (strings, ascending): a body with the same keys
# needs only its values' types checked. Bounded; a tuple met when it is full is
# walked every time (only speed differs).
_SORTED_KEYS: dict[tuple[Any, ...], None] = {}
_SORTED_KEYS_MAX = 4096


def _pool_get(x: Any, default: Any) -> Any:
    """`_POOL.setdefault` once the pool is full: a lookup that adds nothing."""
    return _POOL.get(x, default)


def load_trusted(raws: Iterable[bytes], chunk: int = 4096) -> Iterator[Record]:
    """Rebuild records this node verified before it stored them: no checks, no verify.

    A chunk of concatenated records is decoded by one streaming unpacker, which costs
    less per record than one `unpackb` call each (loading a store is a start-up path),
    and the pool is consulted inline (what `_shared` does, without a call per value;
    a run of one origin's records takes the origin of the one before).
    """
    it = iter(raws)
    return _rebuild((batch, None) for batch in iter(lambda: list(islice(it, chunk)), []))


def load_stored(rows: Iterable[tuple[bytes, bytes]], chunk: int = 4096) -> Iterator[Record]:
    """Records of a store's rows of (record id, wire bytes), verified before they were
    stored: no checks, no verify, and their ids taken as this node stored them
    (computed from the bytes when it saved them) instead of hashing every record again.

    Their bodies are left in the wire bytes (`StoredRecord`): a loaded body is read
    when asked for, and most never are (the balance index reads the fields it needs
    of needs and capacities, kept at load: `intent_fields`). Each chunk of rows is
    decoded whole by one streaming unpacker, and every row must decode into exactly
    one record of nine fields.

    Raises:
        StoredRecordError: a row is not the wire bytes of a record (a damaged store).
    """
    it = iter(rows)
    return _rebuild_stored(iter(lambda: list(islice(it, chunk)), []))


class StoredRecordError(ValueError):
    """A stored row does not decode into a record (the database is damaged)."""


def _rebuild(chunks: Iterable[tuple[list[bytes], list[bytes] | None]]) -> Iterator[Record]:
    """Records of chunks of wire bytes, with their ids or None (hashed here)."""
    pool = _POOL
    get = pool.get
    blake2b = _blake2b
    origin: bytes = b""
    for batch, ids in chunks:
        limit = _POOL_MAX  # read per chunk: tests lower the bound
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=sum(map(len, batch)) + 1)
        unpacker.feed(b"".join(batch))
        rids: Iterable[bytes | None] = repeat(None, len(batch)) if ids is None else ids
        for f, raw, rid in zip(unpacker, batch, rids, strict=True):
            _, o, kind, key, seq, hlc, scope, body, _ = f  # the fields `_shared` reads
            if o != origin:
                origin = get(o) or o
                if origin is o and len(pool) < limit:
                    pool[o] = o
            kind_ = get(kind)
            if kind_ is None:
                kind_ = kind
                if len(pool) < limit:
                    pool[kind] = kind
            scope_ = get(scope)
            if scope_ is None:
                scope_ = scope
                if len(pool) < limit:
                    pool[scope] = scope
            seq_ = get(seq)
            if seq_ is None:
                seq_ = seq
                if len(pool) < limit:
                    pool[seq] = seq
            if body is not None:
                decoded, body = body, _body_dict(kind_)
                for k, v in decoded.items():
                    if type(v) is str and len(v) <= _POOL_LEN:
                        got = get(v)
                        if got is not None:
                            v = got
                        elif len(pool) < limit:
                            pool[v] = v
                    body[k] = v
            if rid is None:
                rid = blake2b(raw, digest_size=ID_BYTES).digest()
            yield _new(Record, (origin, kind_, key, seq_, hlc, scope_, body, raw, rid))


def _rebuild_stored(chunks: Iterable[list[tuple[bytes, bytes]]]) -> Iterator[Record]:
    """`StoredRecord`s of chunks of (id, wire bytes) rows; see `load_stored`."""
    pool = _POOL
    get = pool.get
    new = _new
    unread = _UNREAD
    intents = INTENT_KINDS
    origin: bytes = b""
    for batch in chunks:
        limit = _POOL_MAX  # read per chunk: tests lower the bound
        data = b"".join([raw for _, raw in batch])
        unpacker = msgpack.Unpacker(use_list=False, max_buffer_size=len(data) + 1)
        unpacker.feed(data)
        end = 0
        try:
            for f, (rid, raw) in zip(unpacker, batch, strict=True):
                # Every row is one record: the unpacker ends where the row does (so a
                # damaged body cannot borrow bytes of the next row unnoticed).
                end += len(raw)
                if unpacker.tell() != end or type(f) is not tuple:
                    raise StoredRecordError("a stored row is not one record")
                _, o, kind, key, seq, hlc, scope, body, _ = f  # or ValueError
                if o != origin:
                    origin = get(o) or o
                    if origin is o and len(pool) < limit:
                        pool[o] = o
                kind_ = get(kind)
                if kind_ is None:
                    kind_ = kind
                    if len(pool) < limit:
                        pool[kind] = kind
                scope_ = get(scope)
                if scope_ is None:
                    scope_ = scope
                    if len(pool) < limit:
                        pool[scope] = scope
                seq_ = get(seq)
                if seq_ is None:
                    seq_ = seq
                    if len(pool) < limit:
                        pool[seq] = seq
                if body is not None:
                    if kind_ in intents:
                        # `_intent_summary`'s common case inlined: a pooled tuple holds
                        # strings only, and no other value equals a string.
                        try:
                            t = (body["item"], body["unit"], body["period"], body["qty"])
                            body = get(t) or _intent_summary(body)
                        except (KeyError, TypeError):
                            body = unread
                    else:
                        body = unread
                yield new(StoredRecord, (origin, kind_, key, seq_, hlc, scope_, body, raw, rid))
        except StoredRecordError:
            raise
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise StoredRecordError(f"a stored row is not one record ({exc})") from None


def _intent_summary(body: Any) -> Any:
    """The `INTENT_FIELDS` of a loaded need's or capacity's body, from the pool (a
    federation's intents repeat their items, units, periods and often quantities),
    or the marker of an unread body if they are not four strings (no valid intent)."""
    try:
        t = (body["item"], body["unit"], body["period"], body["qty"])
    except (KeyError, TypeError):
        return _UNREAD
    for v in t:
        if type(v) is not str:
            return _UNREAD
    got = _POOL.get(t)
    if got is not None:
        return got
    got = tuple([_pooled(v) if len(v) <= _POOL_LEN else v for v in t])
    if len(_POOL) < _POOL_MAX:
        _POOL[got] = got
    return got


# A node holds many records and their fields repeat: a few origins, kinds and scopes,
# seqs (every origin counts from 1; an int above 256 is an object of 28 bytes), and
# bodies of the same items, units, periods and quantities. Records built here
# take those from a pool, so that a store of 100,000 records holds one copy of each
# value instead of one per record (most of a held record's memory otherwise). The
# pool is bounded; a value met once it is full is kept as decoded (only memory
# differs). Keys are left out: they are unique within their origin and kind.
_POOL: dict[Any, Any] = {}
_POOL_MAX = 1 << 15
_POOL_LEN = 40  # longer strings in a body (notes, titles) are rarely repeated


def _pooled(x: Any) -> Any:
    got = _POOL.get(x)
    if got is not None:
        return got
    if len(_POOL) < _POOL_MAX:
        _POOL[x] = x
    return x


# The bodies of one kind have the same keys in the same order (canonical encoding
# sorts them). A body built as the attribute dict of an instance of one class per
# kind is still a plain `dict`, but CPython shares its key table among all the
# bodies of that kind (PEP 412): 128 bytes for a need's body instead of 192. A body
# whose keys differ from the first of its kind gets a table of its own, as before.
_BODY_TYPES: dict[str, type] = {}
_BODY_TYPES_MAX = 256


def _body_dict(kind: str) -> dict[str, Any]:
    cls = _BODY_TYPES.get(kind)
    if cls is None:
        if len(_BODY_TYPES) >= _BODY_TYPES_MAX:
            return {}
        cls = _BODY_TYPES[kind] = type("Body", (), {"__module__": __name__})
    body: dict[str, Any] = cls().__dict__
    return body


def _shared(f: list[Any], raw: bytes) -> Record:
    """A record of decoded fields [version, origin, ..., body, sig] and its wire bytes,
    with repeated values taken from the pool (the body's top-level strings) and the
    body's keys shared with its kind's (`_body_dict`)."""
    pool = _POOL
    decoded = f[7]
    body = None
    if decoded is not None:
        body = _body_dict(f[2])
        for k, v in decoded.items():
            if type(v) is str and len(v) <= _POOL_LEN:
                got = pool.get(v)
                if got is not None:
                    v = got
                elif len(pool) < _POOL_MAX:
                    pool[v] = v
            body[k] = v
    return _new(
        Record,
        (
            _pooled(f[1]),
            _pooled(f[2]),
            f[3],
            _pooled(f[4]),
            f[5],
            _pooled(f[6]),
            body,
            raw,
            _blake2b(raw, digest_size=ID_BYTES).digest(),
        ),
    )


def verify_record(record: Record) -> None:
    """Check the Ed25519 signature of a decoded record (thread-safe, pure).

    Raises:
        Rejected: ``bad-signature`` when the signature does not match the origin key.
    """
    if not signature_ok(record):
        raise Rejected("bad-signature", "signature does not match the origin key")


def signature_ok(record: Record) -> bool:
    """True if the signature of `record` matches its origin key."""
    raw, origin = record.raw, record.origin
    if len(origin) != KEY_BYTES or len(raw) <= _SIG_TAIL:
        return False
    # libsodium's crypto_sign_open, as `nacl.bindings.crypto_sign_open` calls it, but
    # without an output buffer: it verifies the same bytes and writes nothing when
    # given none. (The binding allocates a buffer and copies the message out on every
    # call, ~3 % of a verification.)
    signed = raw[-SIG_BYTES:] + _SIGNED_HEAD + raw[1:-_SIG_TAIL]
    ok: bool = _sign_open(_NULL, _NULL, signed, len(signed), origin) == 0
    return ok


# Kinds and scopes repeat: the ones that passed are remembered (bounded sets).
_GOOD_KINDS: set[str] = set()
_GOOD_SCOPES: set[str] = set()
_GOOD_MAX = 100_000


def _good_kind(kind: str) -> bool:
    if not _KIND.fullmatch(kind):
        return False
    if len(_GOOD_KINDS) < 1024:
        _GOOD_KINDS.add(kind)
    return True


def _good_scope(scope: str) -> bool:
    if not _SCOPE_CHARS.fullmatch(scope):
        return False
    if len(_GOOD_SCOPES) < _GOOD_MAX:
        _GOOD_SCOPES.add(scope)
    return True


def _check_fields(f: list[Any]) -> None:
    if type(f) is not list or len(f) < 8:
        raise Rejected("malformed", "a record is an array of 9 fields")
    version, origin, kind, key, seq, hlc, scope, body = f[:8]
    if type(version) is not int or version != VERSION:
        raise Rejected("unknown-version", f"record version {version!r}, expected {VERSION}")
    if type(origin) is not bytes or len(origin) != KEY_BYTES:
        raise Rejected("malformed", "origin must be a 32-byte public key")
    if type(kind) is not str or (kind not in _GOOD_KINDS and not _good_kind(kind)):
        raise Rejected("malformed", "kind must be 1-32 lowercase letters, digits or '-'")
    if type(key) is not str or not _KEY.fullmatch(key):
        raise Rejected("malformed", f"key must be 1 to {MAX_NAME} printable ASCII characters")
    if type(seq) is not int or not 0 < seq < 2**63:
        raise Rejected("malformed", "seq must be a positive integer")
    if type(hlc) is not int or not 0 <= hlc < 2**64:
        raise Rejected("malformed", "hlc must be a 64-bit unsigned integer")
    if type(scope) is not str or (scope not in _GOOD_SCOPES and not _good_scope(scope)):
        raise Rejected("malformed", "scope must be a region path")
    if body is not None and type(body) is not dict:
        raise Rejected("malformed", "body must be a map or nil")
