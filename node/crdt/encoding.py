"""Canonical, bounded msgpack.

Every signed byte string in Allmende is the canonical msgpack of plain values:
maps with string keys sorted by their UTF-8 bytes, the shortest encoding for every
integer and string (what msgpack-python writes), no floats, no extension types.
Decoding checks the structure (`check_decoded`) but does not re-encode: a record's
signature binds its exact bytes, so any other encoding of it fails verification.
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
