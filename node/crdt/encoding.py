"""Canonical, bounded msgpack.

Every signed byte string in Allmende is the canonical msgpack of plain values:
maps with string keys sorted by their UTF-8 bytes, the shortest encoding for every
integer and string (what msgpack-python writes), no floats, no extension types.
Decoding re-encodes and compares, so one value has exactly one encoding and a
signature cannot be made to cover two different readings of the same bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack

from node.errors import Rejected

MAX_RECORD_BYTES = 16 * 1024
MAX_DEPTH = 6
MAX_CONTAINER_LEN = 256

Value = None | bool | int | str | bytes | list["Value"] | dict[str, "Value"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


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
        return {k: canonical(value[k], depth + 1) for k in sorted(value, key=_utf8)}
    raise Rejected("malformed", f"type {type(value).__name__} cannot be encoded")


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def pack(value: Any) -> bytes:
    """Encode `value` canonically."""
    return msgpack.packb(canonical(value), use_bin_type=True)


def unpack(data: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """Decode canonical msgpack with hard limits.

    Raises:
        Rejected: oversize input, malformed or non-canonical bytes.
    """
    if len(data) > max_bytes:
        raise Rejected("oversize", f"{len(data)} bytes, limit {max_bytes}")
    value = unpack_unchecked(data, max_bytes=max_bytes)
    if pack(value) != data:
        raise Rejected("non-canonical", "bytes are not the canonical encoding")
    return value


def unpack_unchecked(data: bytes, *, max_bytes: int) -> Any:
    """Decode bounded msgpack without the canonical check (for framing, not signatures)."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=max_bytes,
            max_bin_len=max_bytes,
            max_array_len=max(MAX_CONTAINER_LEN, max_bytes // 8),
            max_map_len=max(MAX_CONTAINER_LEN, max_bytes // 16),
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, UnicodeDecodeError, RecursionError) as exc:
        raise Rejected("malformed", f"not valid msgpack ({type(exc).__name__})") from exc
