"""Records: canonical encoding, signatures, and everything that must be rejected."""

import hashlib
import struct

import msgpack
import pytest
from factories import Author, identities
from hypothesis import given
from hypothesis import strategies as st

from node.crdt.encoding import MAX_DEPTH, MAX_RECORD_BYTES, pack
from node.crdt.record import DOMAIN, decode_record, sign_record, verify_record
from node.crdt.replica import Replica
from node.errors import Rejected

A, B = identities(2)


def _raw(fields, signer=None):
    """Hand-build wire bytes (bypassing sign_record's own checks)."""
    unsigned = msgpack.packb(fields, use_bin_type=True)
    sig = (signer or A.sign)(DOMAIN + unsigned)
    return msgpack.packb([*fields, sig], use_bin_type=True)


def _fields(body, kind="need", origin=None, scope="eu/de/berlin"):
    return [2, origin or A.public, kind, "k1", 1, 0, scope, body]


GOOD = {"item": "potatoes", "period": "2027-Q1", "priority": "high", "qty": "5", "unit": "kg"}


def test_roundtrip_and_verify():
    r = Author(A).need("n1")
    back = decode_record(r.raw)
    assert back == r
    verify_record(back)
    assert pack([2, *back[:7], back.sig]) == r.raw
    assert back.rid == hashlib.blake2b(r.raw, digest_size=16).digest()


def _assert_rejected(raw, reason):
    replica = Replica()
    replica.insert_verified(Author(B).need("other"))
    before = (replica.digest(), len(replica), replica.version)
    with pytest.raises(Rejected) as exc:
        replica.receive(raw)
    assert exc.value.reason == reason
    assert (replica.digest(), len(replica), replica.version) == before
    assert replica.rejected[reason] == 1


def test_forged_origin_rejected():
    # B signs a record that claims A as its origin.
    _assert_rejected(_raw(_fields(GOOD), signer=B.sign), "bad-signature")


def test_tampered_body_rejected():
    raw = _raw(_fields(GOOD))
    tampered = raw.replace(b"potatoes", b"potatoex")
    assert tampered != raw
    _assert_rejected(tampered, "bad-signature")


def test_tampered_seq_rejected():
    raw = bytearray(_raw(_fields(GOOD)))
    # fields: fixarray, version, bin8 origin (2+32), fixstr kind, fixstr key, seq
    pos = 1 + 1 + 34 + 5 + 3
    assert raw[pos] == 1
    raw[pos] = 2
    _assert_rejected(bytes(raw), "bad-signature")


def test_oversize_rejected():
    body = {**GOOD, "note": "x" * MAX_RECORD_BYTES}
    _assert_rejected(_raw(_fields(body)), "oversize")


def test_deeply_nested_rejected():
    body: object = "x"
    for _ in range(MAX_DEPTH + 2):
        body = {"a": body}
    _assert_rejected(_raw(_fields(body)), "too-deep")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (b"\x93\x01\x02\x03", "malformed"),
        (msgpack.packb([1, 2, 3, 4, 5, 6, 7, 8, 9]), "malformed"),
        (_raw([1, A.public, "need", "k", 1, 0, "eu", GOOD]), "unknown-version"),
        (_raw([True, A.public, "need", "k", 1, 0, "eu", GOOD]), "unknown-version"),
        (_raw(_fields(GOOD)) + b"\x00", "malformed"),  # trailing bytes
        (_raw(_fields({**GOOD, "qty": 5.5})), "malformed"),  # floats never enter
        (_raw(_fields({1: "int key"})), "malformed"),
        (_raw(_fields(GOOD, kind="rumour")), "invalid-body"),
        (_raw(_fields({**GOOD, "qty": "-3"})), "invalid-body"),
        (_raw(_fields({**GOOD, "unit": "parsec"})), "invalid-body"),
        (_raw(_fields(GOOD, scope="EU//x")), "malformed"),
        (_raw(_fields(GOOD, scope="eu//x")), "invalid-body"),
        (_raw(_fields(GOOD, scope="eu/de\n")), "malformed"),
        (_raw([2, A.public, "need", "k 1", 1, 0, "eu", GOOD]), "malformed"),  # space in key
        (_raw([2, A.public, "need", "k\u202e", 1, 0, "eu", GOOD]), "malformed"),  # bidi
        (_raw([2, A.public, "Need", "k", 1, 0, "eu", GOOD]), "malformed"),
    ],
)
def test_malformed_rejected(raw, reason):
    _assert_rejected(raw, reason)


def test_non_canonical_rejected():
    unsorted = dict(reversed(list(GOOD.items())))
    raw = msgpack.packb([*_fields(unsorted), A.sign(b"x" * 10)], use_bin_type=True)
    _assert_rejected(raw, "non-canonical")


def test_clock_ahead_rejected():
    now = 1_800_000_000_000
    far = (now + 3600_000) << 16
    raw = sign_record(A.signer(), A.public, "need", "k", 1, far, "eu/de", GOOD).raw
    replica = Replica(now_ms=lambda: now)
    with pytest.raises(Rejected) as exc:
        replica.receive(raw)
    assert exc.value.reason == "clock-ahead"
    assert len(replica) == 0


@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(data):
    replica = Replica()
    with pytest.raises(Rejected) as exc:
        replica.receive(data)
    assert exc.value.reason
    assert len(replica) == 0


@given(st.integers(0, 180), st.integers(0, 255))
def test_any_single_byte_flip_is_rejected(pos, value):
    raw = bytearray(_raw(_fields(GOOD)))
    pos = pos % len(raw)
    if raw[pos] == value:
        return
    raw[pos] = value
    replica = Replica()
    with pytest.raises(Rejected):
        replica.receive(bytes(raw))
    assert len(replica) == 0


def _resign(unsigned: bytes) -> bytes:
    """Wrap hand-encoded unsigned fields (an 8-array) into a signed 9-array."""
    sig = A.sign(DOMAIN + unsigned)
    return b"\x99" + unsigned[1:] + b"\xc4\x40" + sig


def test_non_minimal_int_rejected_though_signed():
    # seq 1 written as uint32: the same value, another encoding, validly signed.
    canonical = msgpack.packb(_fields(GOOD), use_bin_type=True)
    i = canonical.index(b"\xa2k1") + 3
    assert canonical[i] == 1
    longer = canonical[:i] + b"\xce" + struct.pack(">I", 1) + canonical[i + 1 :]
    _assert_rejected(_resign(longer), "non-canonical")


def test_duplicate_map_keys_rejected_though_signed():
    canonical = msgpack.packb(_fields(GOOD), use_bin_type=True)
    body = msgpack.packb(GOOD, use_bin_type=True)
    assert body[0] == 0x85
    dup = b"\x86" + body[1:] + msgpack.packb("unit") + msgpack.packb("kg")
    _assert_rejected(_resign(canonical.replace(body, dup)), "non-canonical")


def test_container_bomb_is_refused_before_decoding():
    # 16 KiB of empty arrays would decode into ~1 MB of lists.
    bomb = {"a": [[]] * 250, "b": [[[[]] * 15] * 15] * 15}
    raw = _raw(_fields(bomb))
    assert len(raw) < MAX_RECORD_BYTES
    _assert_rejected(raw, "oversize")


def test_two_records_never_share_an_id():
    a = Author(A).need("n1")
    b = Author(A).need("n1", qty="11")
    assert a.seq == b.seq
    assert a.rid != b.rid
