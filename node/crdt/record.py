"""Signed records: the only thing that replicates.

A record's wire form is the canonical msgpack array

    [1, origin, kind, key, seq, hlc, scope, body, sig]

and its signature covers the same array without `sig` (an 8-element array), prefixed
by a domain tag. Because the encoding is canonical, the signed bytes are a slice of the
wire bytes with a different array header: nothing is packed twice to verify.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, NamedTuple

import msgpack
import nacl.bindings
import nacl.exceptions

from node.crdt.encoding import (
    MAX_RECORD_BYTES,
    Value,
    canonical,
    check_decoded,
    pack,
    unpack_unchecked,
)
from node.errors import Rejected

VERSION = 1
DOMAIN = b"allmende/record/1\x00"
SIG_BYTES = 64
KEY_BYTES = 32
MAX_NAME = 64  # kind and key length
MAX_SCOPE = 200
_SIG_TAIL = 2 + SIG_BYTES  # msgpack bin8 header + 64 bytes
_ARRAY8 = b"\x98"

Slot = tuple[bytes, str, str]
_new = tuple.__new__
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
        sig: Ed25519 signature over the canonical unsigned fields.
        raw: the canonical wire bytes (what is stored and forwarded).
    """

    origin: bytes
    kind: str
    key: str
    seq: int
    hlc: int
    scope: str
    body: dict[str, Value] | None
    sig: bytes
    raw: bytes

    @property
    def slot(self) -> Slot:
        return (self.origin, self.kind, self.key)

    @property
    def rid(self) -> bytes:
        """16-byte content id: equal for equal records, different otherwise."""
        return record_id(self.raw)

    @property
    def tombstone(self) -> bool:
        return self.body is None


def record_id(raw: bytes) -> bytes:
    """The first 16 bytes of the signature, which ends the wire bytes.

    Ed25519 signatures are deterministic and bind the whole record, so two different
    verified records of any origins have different signatures; no extra hash needed.
    """
    return raw[-SIG_BYTES : -SIG_BYTES + 16]


def signing_bytes(raw: bytes) -> bytes:
    """The bytes the signature covers, cut out of canonical wire bytes."""
    return DOMAIN + _ARRAY8 + raw[1:-_SIG_TAIL]


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
    return Record(origin, kind, key, seq, hlc, scope, fields[7], sig, raw)


def decode_record(raw: bytes) -> Record:
    """Parse wire bytes into a record WITHOUT checking the signature.

    Raises:
        Rejected: oversize, malformed or non-canonical bytes, or ill-typed fields.
    """
    # No re-encoding here: the signature covers these exact bytes (see
    # `signing_bytes`), so a re-encoded record fails verification; the origin alone
    # could sign two encodings of one record, and that is an equivocation.
    if len(raw) > MAX_RECORD_BYTES:
        raise Rejected("oversize", f"{len(raw)} bytes, limit {MAX_RECORD_BYTES}")
    fields = unpack_unchecked(raw, max_bytes=MAX_RECORD_BYTES)
    check_decoded(fields)
    if not isinstance(fields, list) or len(fields) != 9:
        raise Rejected("malformed", "a record is an array of 9 fields")
    _check_fields(fields)
    if not isinstance(fields[8], bytes) or len(fields[8]) != SIG_BYTES:
        raise Rejected("malformed", "signature must be 64 bytes")
    _, origin, kind, key, seq, hlc, scope, body, sig = fields
    return Record(origin, kind, key, seq, hlc, scope, body, sig, raw)


def load_trusted(raws: Iterable[bytes], chunk: int = 4096) -> Iterator[Record]:
    """Rebuild records this node verified before it stored them: no checks, no verify.

    A chunk of concatenated records is decoded by one streaming unpacker, which costs
    less per record than one `unpackb` call each (loading a store is a start-up path).
    """
    it = iter(raws)
    while True:
        batch = list(islice(it, chunk))
        if not batch:
            return
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=sum(map(len, batch)) + 1)
        unpacker.feed(b"".join(batch))
        for f, raw in zip(unpacker, batch, strict=True):
            yield _new(Record, (f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], raw))


def verify_record(record: Record) -> None:
    """Check the Ed25519 signature of a decoded record.

    Raises:
        Rejected: ``bad-signature`` when the signature does not match the origin key.
    """
    msg = signing_bytes(record.raw)
    try:
        nacl.bindings.crypto_sign_open(record.sig + msg, record.origin)
    except (
        nacl.exceptions.BadSignatureError,
        nacl.exceptions.ValueError,
        nacl.exceptions.TypeError,
    ) as exc:
        raise Rejected("bad-signature", "signature does not match the origin key") from exc


def _check_fields(f: list[Any]) -> None:
    version, origin, kind, key, seq, hlc, scope, body = f[:8]
    if version != VERSION:
        raise Rejected("unknown-version", f"record version {version!r}, expected {VERSION}")
    if not isinstance(origin, bytes) or len(origin) != KEY_BYTES:
        raise Rejected("malformed", "origin must be a 32-byte public key")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_NAME:
        raise Rejected("malformed", "kind must be a short string")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_NAME:
        raise Rejected("malformed", f"key must be 1 to {MAX_NAME} characters")
    if type(seq) is not int or not 0 < seq < 2**63:
        raise Rejected("malformed", "seq must be a positive integer")
    if type(hlc) is not int or not 0 <= hlc < 2**64:
        raise Rejected("malformed", "hlc must be a 64-bit unsigned integer")
    if not isinstance(scope, str) or not 0 < len(scope) <= MAX_SCOPE:
        raise Rejected("malformed", "scope must be a region path")
    if body is not None and not isinstance(body, dict):
        raise Rejected("malformed", "body must be a map or nil")
