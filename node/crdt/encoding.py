"""Canonical, bounded msgpack, and the byte-level framing of bulk data.

Every signed byte string in Allmende is the canonical msgpack of plain values:
maps with string keys sorted by their UTF-8 bytes, the shortest encoding for every
integer, string, binary, array and map header (what msgpack-python writes), no
floats, no extension types. A decoder checks that the bytes are exactly that
encoding (`decode_canonical`), so one value has one encoding and one record id.

Work per input byte is bounded: msgpack is decoded only after `check_decode_budget`
has made sure the decoded objects cannot take more than a small multiple of the
input (an 8 MiB frame of empty arrays would decode into ~600 MB of Python lists), and
bulk lists (records, digests, seq lists) travel as opaque byte strings framed by
`Writer` / `Reader`, so a message never decodes into more objects than it has fields.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from node.errors import Rejected

MAX_RECORD_BYTES = 16 * 1024
MAX_DEPTH = 6
MAX_CONTAINER_LEN = 256

Value = None | bool | int | str | bytes | list["Value"] | dict[str, "Value"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

# Header bytes that may allocate an object of their own when decoded: array and map
# headers, and negative fixints below -5 (CPython caches -5..256). Strings and
# binaries cost their length, so they cannot blow up.
_RISKY = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF, *range(0xE0, 0x100)])
# Approximate CPython sizes (64-bit) of what msgpack builds, plus the parent's pointer.
_LIST, _DICT, _DICT_ENTRY, _INT, _STR, _BYTES, _PTR = 56, 64, 48, 28, 49, 33, 8


def canonical(value: Any, depth: int = 0) -> Any:
    """Return `value` with every map's keys sorted, checking types and depth.

    Raises:
        Rejected: on a float, a non-string map key, an unknown type, too deep a nesting
            or too long a container.
    """
    if depth > MAX_DEPTH:
        raise Rejected("too-deep", f"nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise Rejected("malformed", "integer out of range")
        return value
    if isinstance(value, list | tuple):
        if len(value) > MAX_CONTAINER_LEN:
            raise Rejected("oversize", f"array longer than {MAX_CONTAINER_LEN}")
        return [canonical(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if len(value) > MAX_CONTAINER_LEN:
            raise Rejected("oversize", f"map larger than {MAX_CONTAINER_LEN}")
        for k in value:
            if not isinstance(k, str):
                raise Rejected("malformed", "map keys must be strings")
        # Code-point order of str equals the byte order of their UTF-8 encodings.
        return {k: canonical(value[k], depth + 1) for k in sorted(value)}
    raise Rejected("malformed", f"type {type(value).__name__} cannot be encoded")


def check_decoded(value: Any, depth: int = 0) -> None:
    """Check a freshly decoded value the way `canonical` would, without rebuilding it.

    Raises:
        Rejected: a float or other foreign type, a non-string key, unsorted map keys,
            too deep a nesting or too long a container.
    """
    t = type(value)
    if t is str or t is bytes or t is int or t is bool or value is None:
        return
    if depth >= MAX_DEPTH:
        raise Rejected("too-deep", f"nesting deeper than {MAX_DEPTH}")
    if t is list:
        if len(value) > MAX_CONTAINER_LEN:
            raise Rejected("oversize", f"array longer than {MAX_CONTAINER_LEN}")
        for v in value:
            tv = type(v)
            if not (tv is str or tv is bytes or tv is int or tv is bool or v is None):
                check_decoded(v, depth + 1)
        return
    if t is dict:
        if len(value) > MAX_CONTAINER_LEN:
            raise Rejected("oversize", f"map larger than {MAX_CONTAINER_LEN}")
        keys = list(value)
        for k in keys:
            if type(k) is not str:
                raise Rejected("malformed", "map keys must be strings")
        if keys != sorted(keys):
            raise Rejected("non-canonical", "map keys are not sorted")
        for v in value.values():
            tv = type(v)
            if not (tv is str or tv is bytes or tv is int or tv is bool or v is None):
                check_decoded(v, depth + 1)
        return
    raise Rejected("malformed", f"type {t.__name__} is not allowed in records")


def pack(value: Any) -> bytes:
    """Encode `value` canonically."""
    data: bytes = msgpack.packb(canonical(value), use_bin_type=True)
    return data


def check_decode_budget(data: bytes, budget: int) -> None:
    """Refuse msgpack whose decoded objects would take more than `budget` bytes.

    Without containers or small negative ints, decoded values cost at most ~20 bytes
    per encoded byte, and each header byte that can allocate (arrays, maps, negative
    fixints) adds at most ~100. That count runs at C speed and settles almost every
    input; only when it is over budget (deeply structured data, or text in scripts
    whose UTF-8 uses those byte values) are the headers walked exactly, one step per
    encoded value.

    Raises:
        Rejected: ``oversize`` over budget, ``malformed`` for a truncated or
            extension-typed encoding.
    """
    risky = len(data) - len(data.translate(None, _RISKY))
    if 20 * len(data) + 100 * risky <= budget:
        return
    if _decoded_size(data, budget) > budget:
        raise Rejected("oversize", "decodes into too many objects for its size")


def _decoded_size(data: bytes, budget: int) -> int:
    """An upper estimate of the memory `msgpack.unpackb(data)` allocates (stops early)."""
    n, pos, size, pending = len(data), 0, 0, 1
    unpack_from = struct.unpack_from
    try:
        while pending and size <= budget:
            pending -= 1
            b = data[pos]
            pos += 1
            size += _PTR
            if b <= 0x7F or b in (0xC0, 0xC2, 0xC3):
                continue
            if b <= 0x8F:
                pending += 2 * (b & 0x0F)
                size += _DICT + _DICT_ENTRY * (b & 0x0F)
            elif b <= 0x9F:
                pending += b & 0x0F
                size += _LIST + _PTR * (b & 0x0F)
            elif b <= 0xBF:
                pos += b & 0x1F
                if b & 0x1F > 1:  # "" and one ASCII character are cached
                    size += _STR + (b & 0x1F)
            elif b >= 0xE0:
                size += _INT
            elif b in (0xC4, 0xD9):
                length = data[pos]
                pos += 1 + length
                size += _BYTES + length
            elif b in (0xC5, 0xDA):
                (length,) = unpack_from(">H", data, pos)
                pos += 2 + length
                size += _BYTES + length
            elif b in (0xC6, 0xDB):
                (length,) = unpack_from(">I", data, pos)
                pos += 4 + length
                size += _BYTES + length
            elif b in (0xCA, 0xCB):
                pos += 4 if b == 0xCA else 8
                size += _INT
            elif 0xCC <= b <= 0xD3:
                pos += 1 << ((b - 0xCC) & 3)
                size += _INT
            elif b in (0xDC, 0xDE):
                (length,) = unpack_from(">H", data, pos)
                pos += 2
                pending += length * (2 if b == 0xDE else 1)
                size += (_DICT + _DICT_ENTRY * length) if b == 0xDE else (_LIST + _PTR * length)
            elif b in (0xDD, 0xDF):
                (length,) = unpack_from(">I", data, pos)
                pos += 4
                pending += length * (2 if b == 0xDF else 1)
                size += (_DICT + _DICT_ENTRY * length) if b == 0xDF else (_LIST + _PTR * length)
            else:  # 0xC1 (never used), ext and fixext
                raise Rejected("malformed", "extension types are not allowed")
            if pos > n:
                raise Rejected("malformed", "truncated msgpack")
    except (IndexError, struct.error):
        raise Rejected("malformed", "truncated msgpack") from None
    return size


def unpack_unchecked(data: bytes, *, max_bytes: int, max_len: int = MAX_CONTAINER_LEN) -> Any:
    """Decode bounded msgpack without the canonical check (framing, not signatures).

    Raises:
        Rejected: not msgpack, trailing bytes, or a container over `max_len`.
    """
    try:
        # msgpack's defaults (since 1.0) decode strings as str, arrays as lists, and
        # map keys as str or bytes only; not passed again on every call.
        return msgpack.unpackb(
            data,
            max_str_len=max_bytes,
            max_bin_len=max_bytes,
            max_array_len=max_len,
            max_map_len=max_len,
            max_ext_len=0,
        )
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        UnicodeDecodeError,
        RecursionError,
    ) as exc:
        raise Rejected("malformed", f"not valid msgpack ({type(exc).__name__})") from exc


def decode_canonical(data: bytes, *, max_bytes: int, budget: int) -> Any:
    """Decode msgpack that must be in canonical form: one value, one encoding.

    Raises:
        Rejected: over budget, malformed, or any encoding other than the canonical one
            (a longer header than needed, duplicate or unsorted map keys, floats).
    """
    check_decode_budget(data, budget)
    value = unpack_unchecked(data, max_bytes=max_bytes)
    check_decoded(value)
    # Re-encoding is the exact test: msgpack-python writes the shortest headers, and a
    # map decoded from duplicate keys re-encodes shorter. (packb would start from a
    # 256 KiB buffer for every record; the input's size is enough.)
    if msgpack.Packer(use_bin_type=True, buf_size=len(data) + 1).pack(value) != data:
        raise Rejected("non-canonical", "not the canonical encoding")
    return value


# --- bulk framing ------------------------------------------------------------------


class Writer:
    """Builds a byte string of varints, fixed-size fields and length-prefixed blobs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def varint(self, value: int) -> None:
        self._add(encode_varint(value))

    def fixed(self, data: bytes) -> None:
        self._add(data)

    def blob(self, data: bytes) -> None:
        self._add(encode_varint(len(data)))
        self._add(data)

    def _add(self, data: bytes) -> None:
        self._parts.append(data)
        self.size += len(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Reader:
    """Reads what `Writer` wrote; every read is bounds-checked.

    Raises (from every method):
        Rejected: ``malformed`` on truncated data or a non-minimal or over-long varint.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def done(self) -> bool:
        return self._pos >= len(self._data)

    @property
    def position(self) -> int:
        """Bytes read so far."""
        return self._pos

    def varint(self, limit: int = 2**63) -> int:
        data, pos = self._data, self._pos
        value = shift = 0
        while True:
            if pos >= len(data) or shift > 63:
                raise Rejected("malformed", "bad varint")
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if (b == 0 and shift > 7) or value > limit:
            raise Rejected("malformed", "non-minimal or out-of-range varint")
        self._pos = pos
        return value

    def fixed(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise Rejected("malformed", "truncated field")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def blob(self, limit: int) -> bytes:
        return self.fixed(self.varint(limit))
