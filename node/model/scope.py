"""Scopes (region paths like ``eu/de/berlin/neukoelln``) and replication partitions."""

from __future__ import annotations

import re
from typing import Any

from node.errors import ValidationError
from node.model.fields import shown

_SEGMENT = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
MAX_SCOPE_DEPTH = 6
# Records replicate on the gossip topic of their scope cut to this many segments: a
# node holds full records for its region (see docs/architecture.md).
REGION_DEPTH = 3

_GOOD_SCOPES: set[str] = set()  # scopes seen valid: a record's scope is checked once


def check_scope(scope: Any) -> str:
    """Validate a region path like ``eu/de/berlin/neukoelln``.

    Raises:
        ValidationError: with what is wrong and an example of a valid path.
    """
    if isinstance(scope, str) and scope in _GOOD_SCOPES:
        return scope
    if not isinstance(scope, str) or not scope:
        raise ValidationError("scope is empty; give a path like eu/de/berlin/neukoelln")
    parts = scope.split("/")
    if len(parts) > MAX_SCOPE_DEPTH:
        raise ValidationError(f"scope {shown(scope)} has more than {MAX_SCOPE_DEPTH} levels")
    for p in parts:
        if not _SEGMENT.fullmatch(p):
            raise ValidationError(
                f"scope {shown(scope)}: segment {shown(p)} must be 1-40 lowercase letters, "
                "digits or '-' (e.g. eu/de/berlin/neukoelln)"
            )
    if len(_GOOD_SCOPES) < 100_000:
        _GOOD_SCOPES.add(scope)
    return scope


def in_scope(scope: str, prefix: str) -> bool:
    """True if `scope` is `prefix` or lies under it."""
    return scope == prefix or scope.startswith(prefix + "/")


def ancestors(scope: str) -> list[str]:
    """``eu/de/berlin`` -> ``["eu", "eu/de", "eu/de/berlin"]``."""
    parts = scope.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def partition_of(scope: str) -> str:
    """The replication partition (gossip topic scope) of a record's scope."""
    return "/".join(scope.split("/")[:REGION_DEPTH])
