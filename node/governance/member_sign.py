"""Records a member signs with their own key: votes and volunteering for a draw.

A member has no node and no counter. Its ``seq`` is the wall-clock millisecond of
signing (passed in by the caller, the edge that reads the clock), raised above the
highest seq of this member the node holds: a member can vote from two devices without
sharing state, a later vote replaces an earlier one (highest seq wins the slot), and
two records can only share a seq - an equivocation - if the member signs twice within
one millisecond on two devices that have not seen each other's records.
"""

from __future__ import annotations

from typing import Any

from node import model
from node.clock import pack_hlc
from node.crdt.record import Record, sign_record
from node.keys import Identity

__all__ = ["member_seq", "sign_member_record"]


def member_seq(now_ms: int, held_max_seq: int) -> int:
    """The seq of a member's next record: its signing time, above anything held."""
    return max(now_ms, held_max_seq + 1)


def sign_member_record(
    identity: Identity,
    kind: str,
    key: str,
    scope: str,
    body: dict[str, Any],
    *,
    now_ms: int,
    held_max_seq: int,
) -> Record:
    """Validate and sign a member's record (``vote`` or ``volunteer``).

    Raises:
        ValidationError: the body does not fit its kind.
    """
    model.validate(kind, key, scope, body)
    return sign_record(
        identity.signer(),
        identity.public,
        kind,
        key,
        member_seq(now_ms, held_max_seq),
        pack_hlc(now_ms, 0),
        scope,
        body,
    )
