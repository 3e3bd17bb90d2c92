"""Shared field checks for record bodies: text, field sets, integers, hex, ids.

Every check takes any value (a body is whatever a peer sent) and either returns it
or raises `ValidationError` with what is wrong and how to fix it -- never another
exception. Patterns are matched whole (`re.fullmatch`): Python's ``$`` also matches
before a trailing newline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from node.errors import ValidationError

# Characters no text field may hold: C0 and C1 controls (newline and tab are allowed
# in free text), line and paragraph separators, and the bidi controls that make text
# display differently from how it reads (U+200E/F, U+202A-E, U+2066-9).
_BAD_IN_TEXT = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_BAD_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX = re.compile(r"(?:[0-9a-f]{2}){1,64}")


_SHOWN_CHARS = 60


def shown(value: Any) -> str:
    """`repr(value)` for an error message, bounded: a message never costs more than a
    few dozen characters, and never fails (``repr`` of an int over 4,300 digits raises).
    """
    if type(value) is int and value.bit_length() > 200:
        return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, str | bytes) and len(value) > _SHOWN_CHARS:
        return repr(value[:_SHOWN_CHARS]) + "..."
    if isinstance(value, list | dict | tuple):
        return f"<a {type(value).__name__} of {len(value)} entries>"
    try:
        out = repr(value)
    except ValueError:
        return f"<a {type(value).__name__}>"
    return out if len(out) <= _SHOWN_CHARS else out[:_SHOWN_CHARS] + "..."


def text(
    body: Mapping[str, Any],
    name: str,
    limit: int,
    *,
    required: bool = True,
    multiline: bool = False,
) -> str:
    """A string field of at most `limit` characters.

    Args:
        multiline: free text (a note, a proposal's text): newlines and tabs allowed.

    Raises:
        ValidationError: missing, not text, too long, or holding control or bidi
            characters.
    """
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"{name} is required and must be text")
    if len(value) > limit:
        raise ValidationError(f"{name} is {len(value)} characters long; the limit is {limit}")
    bad = (_BAD_IN_TEXT if multiline else _BAD_IN_NAME).search(value)
    if bad is not None:
        raise ValidationError(
            f"{name} holds the control character U+{ord(bad.group()):04X}; remove it"
        )
    return value


def only_fields(body: Mapping[str, Any], allowed: AbstractSet[str]) -> None:
    """Raises ValidationError naming any field not in `allowed`."""
    if body.keys() <= allowed:
        return
    extra = set(body) - allowed
    if extra:
        raise ValidationError(f"unexpected field(s) {', '.join(sorted(map(str, extra)))}")


def int_field(body: Mapping[str, Any], name: str, low: int, high: int) -> int:
    """An integer field from `low` to `high` (a bool is not an integer here)."""
    value = body.get(name)
    if type(value) is not int or not low <= value <= high:
        raise ValidationError(f"{name} must be an integer from {low} to {high}")
    return value


def hex64(value: Any, name: str) -> str:
    """64 lowercase hex digits (a key or a hash)."""
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise ValidationError(f"{name} must be 64 lowercase hex digits")
    return value


def matches(pattern: re.Pattern[str], value: Any) -> bool:
    """True if `value` is a string that `pattern` matches whole."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None
