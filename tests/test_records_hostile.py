"""Record decoding under hostile input: whatever bytes arrive, `decode_record` refuses
them with `Rejected` (never another exception), and a record that is validly signed but
not in the one canonical encoding is refused as non-canonical. (tests/test_records.py
has the hand-made cases; these are the properties.)"""

import contextlib
import struct

import msgpack
import nacl.bindings
import pytest
from factories import identities
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.crdt.encoding import MAX_RECORD_BYTES
from node.crdt.record import DOMAIN, decode_record, sign_record
from node.errors import Rejected

A = identities(1, seed=4)[0]
BODY = {"item": "potatoes", "note": "x" * 40, "period": "2027-Q1", "qty": "5", "unit": "kg"}
FIELDS = [2, A.public, "need", "k1", 7, 1 << 40, "eu/de/berlin", BODY]


def _refused(data):
    with pytest.raises(Rejected) as exc:
        decode_record(data)
    assert exc.value.reason
    return exc.value.reason


# --- arbitrary input ----------------------------------------------------------------------


@settings(max_examples=300)
@given(st.binary(max_size=MAX_RECORD_BYTES + 64))
def test_arbitrary_bytes_are_refused(data):
    _refused(data)


@settings(max_examples=300)
@given(st.binary(min_size=120, max_size=2000))
def test_arbitrary_bytes_behind_a_record_header_are_refused(tail):
    _refused(b"\x99" + tail)


msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["k\n", "eu/de\n", "\u0663", "k\u202e", "Need", "", "x" * 300])
    | st.binary(max_size=70)
    | st.sampled_from([A.public, b"\0" * 64])
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=6), inner, max_size=6)
        | st.dictionaries(st.integers(0, 9), inner, max_size=3)
    ),
    max_leaves=25,
)


def _pack(value):
    return msgpack.packb(value, use_bin_type=True)


@settings(max_examples=300)
@given(msgpack_values)
def test_msgpack_of_any_value_is_refused(value):
    _refused(_pack(value))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_record_with_any_field_replaced_is_refused_or_well_typed(data):
    fields = [*FIELDS, b"\0" * 64]
    i = data.draw(st.integers(0, len(fields) - 1))
    fields[i] = data.draw(msgpack_values)
    if data.draw(st.booleans()):
        fields = fields[: data.draw(st.integers(0, len(fields)))]
    try:
        record = decode_record(_pack(fields))
    except Rejected as exc:
        reason = exc.reason
    else:
        reason = None
        # Taken (to be verified next): every field has the type and form it must have.
        assert type(record.origin) is bytes
        assert len(record.origin) == 32
        assert type(record.seq) is int
        assert 0 < record.seq < 2**63
        assert type(record.hlc) is int
        assert 0 <= record.hlc < 2**64
        assert type(record.key) is str
        assert record.key.isascii()
        assert record.key.isprintable()
        assert record.body is None or type(record.body) is dict
        assert type(record.sig) is bytes
        assert len(record.sig) == 64
    assert reason != ""


BAD_KEYS = ["k\n", "k\r", "k\x00", "k\t", "k\x7f", "k\u200f", "k\u2066", "k\u2028", "\u0663", ""]


@pytest.mark.parametrize("key", [*BAD_KEYS, "k" * 65])
def test_a_key_with_control_bidi_or_non_ascii_characters_is_malformed(key):
    raw = _resigned(_pack([*FIELDS[:3], key, *FIELDS[4:]]))
    assert _refused(raw) == "malformed"


@pytest.mark.parametrize("scope", ["eu\n", "eu/\u202ede", "eu/\u0663", "eu/de\x00", "Eu", ""])
def test_a_scope_with_foreign_characters_is_malformed(scope):
    raw = _resigned(_pack([*FIELDS[:6], scope, FIELDS[7]]))
    assert _refused(raw) == "malformed"


# --- one value, one encoding ------------------------------------------------------------
#
# A hand-written msgpack encoder that can spell any one value with a longer header than
# needed. msgpack-python decodes every such spelling to the same value, so only the
# canonical check stands between it and a second record id for the same record.

_UINTS = [(0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16), (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)]
_INTS = [(0xD0, ">b", 1 << 7), (0xD1, ">h", 1 << 15), (0xD2, ">i", 1 << 31), (0xD3, ">q", 1 << 63)]
_STRS = [(0xD9, ">B", 1 << 8), (0xDA, ">H", 1 << 16), (0xDB, ">I", 1 << 32)]
_BINS = [(0xC4, ">B", 1 << 8), (0xC5, ">H", 1 << 16), (0xC6, ">I", 1 << 32)]
_ARRAYS = [(0xDC, ">H", 1 << 16), (0xDD, ">I", 1 << 32)]
_MAPS = [(0xDE, ">H", 1 << 16), (0xDF, ">I", 1 << 32)]


class Encoder:
    """Encodes like msgpack-python, except value number `widen` (in encoding order),
    whose header it writes one size larger; `count` says how many values there were."""

    def __init__(self, widen=-1, signed_ints=False):
        self.widen, self.signed_ints, self.count = widen, signed_ints, 0

    def __call__(self, v):
        wide = self.count == self.widen
        self.count += 1
        if v is None:
            return b"\xc0"
        if v is True or v is False:
            return b"\xc3" if v else b"\xc2"
        if isinstance(v, int):
            return self._int(v, wide)
        if isinstance(v, str):
            data = v.encode()
            fix = 0xA0 | len(data) if len(data) < 32 else None
            return self._sized(len(data), fix, _STRS, wide) + data
        if isinstance(v, bytes):
            return self._sized(len(v), None, _BINS, wide) + v
        if isinstance(v, list):
            head = self._sized(len(v), 0x90 | len(v) if len(v) < 16 else None, _ARRAYS, wide)
            return head + b"".join(self(x) for x in v)
        if isinstance(v, dict):
            head = self._sized(len(v), 0x80 | len(v) if len(v) < 16 else None, _MAPS, wide)
            return head + b"".join(self(k) + self(x) for k, x in v.items())
        raise TypeError(type(v))

    @staticmethod
    def _sized(n, fix, forms, wide):
        options = ([] if fix is None else [bytes((fix,))]) + [
            bytes((tag,)) + struct.pack(fmt, n) for tag, fmt, limit in forms if n < limit
        ]
        return options[1 if wide and len(options) > 1 else 0]

    def _int(self, v, wide):
        if 0 <= v < 128:
            options = [bytes((v,))]
        elif -32 <= v < 0:
            options = [struct.pack(">b", v)]
        else:
            options = []
        if v >= 0:
            forms = _INTS if self.signed_ints else _UINTS
            options += [bytes((t,)) + struct.pack(f, v) for t, f, lim in forms if v < lim]
        else:
            options += [bytes((t,)) + struct.pack(f, v) for t, f, lim in _INTS if -lim <= v]
        return options[1 if wide and len(options) > 1 else 0]


def _unsigned(fields, encoder):
    return b"\x98" + b"".join(encoder(f) for f in fields)


def _resigned(unsigned):
    """Sign `unsigned` (an 8-array, however encoded) and make the 9-array wire bytes."""
    if unsigned[0] == 0x99:  # packed with a signature slot: drop it
        unsigned = b"\x98" + unsigned[1:]
    sig = A.sign(DOMAIN + unsigned)
    # The signature holds: the only thing wrong is the spelling.
    nacl.bindings.crypto_sign_open(sig + DOMAIN + unsigned, A.public)
    return b"\x99" + unsigned[1:] + b"\xc4\x40" + sig


N_VALUES = 7 + 1 + 2 * len(BODY)  # seven fields, the body map, its keys and values


def test_the_encoder_spells_canonically_unless_told_otherwise():
    canonical = sign_record(A.signer(), *FIELDS[1:]).raw
    enc = Encoder()
    assert _resigned(_unsigned(FIELDS, enc)) == canonical
    assert enc.count == N_VALUES


@settings(max_examples=200)
@given(st.integers(0, N_VALUES - 1))
def test_any_longer_header_is_non_canonical_though_signed(which):
    plain = _unsigned(FIELDS, Encoder())
    wide = _unsigned(FIELDS, Encoder(widen=which))
    if wide == plain:  # a value with no longer spelling (none here, but be exact)
        return
    assert _refused(_resigned(wide)) == "non-canonical"


@pytest.mark.parametrize(("which", "name"), [(0, "version"), (4, "seq"), (5, "hlc")])
def test_positive_ints_in_signed_forms_are_non_canonical_though_signed(which, name):
    wide = _unsigned(FIELDS, Encoder(widen=which, signed_ints=True))
    assert wide != _unsigned(FIELDS, Encoder()), name
    assert _refused(_resigned(wide)) == "non-canonical"


def test_a_short_str_as_str8_is_non_canonical_though_signed():
    # The key "k1" (the fourth value) as d9 02 'k1' instead of a2 'k1'.
    wide = _unsigned(FIELDS, Encoder(widen=3))
    assert b"\xd9\x02k1" in wide
    assert _refused(_resigned(wide)) == "non-canonical"


@settings(max_examples=100)
@given(st.permutations(sorted(BODY)))
def test_unsorted_body_keys_are_non_canonical_though_signed(order):
    if order == sorted(BODY):
        return
    body = {k: BODY[k] for k in order}
    unsigned = _unsigned([*FIELDS[:7], body], Encoder())
    assert _refused(_resigned(unsigned)) == "non-canonical"


@settings(max_examples=100)
@given(st.sampled_from(sorted(BODY)), st.sampled_from(["same", "other"]), st.booleans())
def test_a_repeated_body_key_is_non_canonical_though_signed(key, value, first):
    enc = Encoder()
    entries = [enc(k) + enc(v) for k, v in BODY.items()]
    again = enc(key) + enc(BODY[key] if value == "same" else "zz")
    entries = [again, *entries] if first else [*entries, again]
    body = bytes((0x80 | len(entries),)) + b"".join(entries)
    unsigned = b"\x98" + b"".join(Encoder()(f) for f in FIELDS[:7]) + body
    assert _refused(_resigned(unsigned)) == "non-canonical"


# --- the one-pass decoder decides as the reference ---------------------------------------
#
# `decode_record` checks a body in the loop that builds it and skips the walk for a flat
# body whose keys it found canonical before. The reference below is the decoder before
# that (each check on its own, in order): for any bytes both refuse with the same reason
# or give equal records -- also after the keys of a body were seen in canonical order.

_BODY_KEYS = st.sampled_from(["item", "note", "period", "qty", "unit", "", "\u00e4", "b"])
_bodies = st.none() | st.dictionaries(
    _BODY_KEYS | st.binary(max_size=3) | st.integers(0, 3), msgpack_values, max_size=6
)


def _reference_decode(raw):
    from node.crdt import record as rec
    from node.crdt.encoding import check_decode_budget, check_decoded, unpack_unchecked

    if type(raw) is not bytes:
        raise Rejected("malformed", "")
    n = len(raw)
    if n > MAX_RECORD_BYTES:
        raise Rejected("oversize", "")
    if n < rec.MIN_RECORD_BYTES or raw[0] != 0x99:
        raise Rejected("malformed", "")
    check_decode_budget(raw, rec.DECODE_BUDGET_PER_BYTE * n + rec.DECODE_BUDGET_FIXED)
    fields = unpack_unchecked(raw, max_bytes=MAX_RECORD_BYTES)
    rec._check_fields(fields)
    if type(fields[8]) is not bytes or len(fields[8]) != 64:
        raise Rejected("malformed", "")
    if fields[7] is not None:
        check_decoded(fields[7], 1)
    if msgpack.Packer(use_bin_type=True).pack(fields) != raw:
        raise Rejected("non-canonical", "")
    return rec._shared(fields, raw)


def _outcome(decode, raw):
    try:
        return decode(raw)
    except Rejected as exc:
        return exc.reason


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_bodies, st.booleans(), st.sampled_from(["need", "node"])), max_size=6))
def test_the_one_pass_decoder_decides_as_the_reference(drawn):
    for body, sort_keys, kind in drawn:
        if sort_keys and body is not None:
            with contextlib.suppress(TypeError):  # keys of mixed types stay as drawn
                body = dict(sorted(body.items()))
        raw = _resigned(_pack([2, A.public, kind, "k1", 7, 1 << 40, "eu/de/berlin", body]))
        assert _outcome(decode_record, raw) == _outcome(_reference_decode, raw)


def test_a_body_with_known_keys_and_a_float_or_nested_map_is_still_checked():
    flat = {"item": "potatoes", "period": "2027-Q1", "qty": "5", "unit": "kg"}
    decode_record(_resigned(_pack([*FIELDS[:7], flat])))  # these keys are now known
    for value, reason in [(1.5, "malformed"), ({"b": 1, "a": 2}, "non-canonical")]:
        raw = _resigned(_pack([*FIELDS[:7], {**flat, "qty": value}]))
        assert _refused(raw) == reason


def _binding_verdict(record):
    import nacl.exceptions

    from node.crdt.record import signing_bytes

    try:
        nacl.bindings.crypto_sign_open(record.sig + signing_bytes(record.raw), record.origin)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


@settings(max_examples=300)
@given(st.integers(0, 10_000), st.integers(0, 7), st.booleans())
def test_signature_ok_agrees_with_the_binding(position, bit, other_origin):
    # `signature_ok` calls libsodium without an output buffer: any flipped bit of the
    # wire bytes, or another origin key, is refused exactly when the binding refuses.
    from node.crdt.record import signature_ok

    good = decode_record(_resigned(_pack(FIELDS)))
    assert signature_ok(good)
    assert _binding_verdict(good)
    raw = bytearray(good.raw)
    # Any byte but the headers of the array and of the signature (neither is signed).
    covered = [*range(1, len(raw) - 66), *range(len(raw) - 64, len(raw))]
    raw[covered[position % len(covered)]] ^= 1 << bit
    forged = good._replace(raw=bytes(raw))
    if other_origin:
        forged = forged._replace(origin=identities(2, seed=9)[1].public)
    assert signature_ok(forged) is _binding_verdict(forged) is False
