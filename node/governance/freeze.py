"""Frozen lists split over chunk records: the vote set of a close, the pool of a draw.

A frozen list is published as one *head* record ``{chunks, count, hash}`` and
``chunks`` chunk records keyed ``"<key>/<i>"`` by the same origin. Records are limited
to 16 KiB, so a list of hundreds of entries needs several. The hash binds the whole
list independently of how it is chunked or ordered: it is SHA-256 over the sorted
SHA-256 digests of the canonical encoding of each entry. A replica that holds the
head but not every chunk knows exactly what it lacks.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from node.crdt.encoding import MAX_CONTAINER_LEN, canonical, pack
from node.governance.ledger import Ledger, body

__all__ = ["CHUNK_BYTES", "Frozen", "FrozenState", "chunk_entries", "freeze_hash", "gather"]

DOMAIN = b"allmende/freeze/1\x00"
# Room left under the 16 KiB record limit for the record's own fields.
CHUNK_BYTES = 14_000


def _digest(entry: Any) -> bytes:
    return hashlib.sha256(pack(canonical(entry))).digest()


def freeze_hash(entries: Sequence[Any]) -> str:
    """Order-free SHA-256 (hex) of a list of plain values."""
    return hashlib.sha256(DOMAIN + b"".join(sorted(_digest(e) for e in entries))).hexdigest()


def chunk_entries(entries: Sequence[Any]) -> list[list[Any]]:
    """Split entries (sorted by digest, so every node chunks alike) into record-sized lists."""
    ordered = sorted(entries, key=_digest)
    chunks: list[list[Any]] = []
    cur: list[Any] = []
    size = 0
    for e in ordered:
        n = len(pack(canonical(e)))
        if cur and (size + n > CHUNK_BYTES or len(cur) >= MAX_CONTAINER_LEN):
            chunks.append(cur)
            cur, size = [], 0
        cur.append(e)
        size += n
    if cur:
        chunks.append(cur)
    return chunks


class FrozenState(enum.Enum):
    ABSENT = "absent"  # no head record
    INCOMPLETE = "incomplete"  # head held, some chunks missing
    INCONSISTENT = "inconsistent"  # every chunk held, but count or hash disagree
    COMPLETE = "complete"


@dataclass(frozen=True)
class Frozen:
    """What a ledger holds of one frozen list.

    Attributes:
        state: see :class:`FrozenState`.
        entries: the entries of the chunks held (all of them when complete).
        count: the count the head declares (0 if absent).
        missing_chunks: indexes of chunks not held.
        problem: for INCONSISTENT, what disagrees.
    """

    state: FrozenState
    entries: tuple[Any, ...] = ()
    count: int = 0
    missing_chunks: tuple[int, ...] = ()
    problem: str = ""
    head: Any = field(default=None, compare=False)


def gather(
    ledger: Ledger, origin: bytes, head_kind: str, chunk_kind: str, key: str, entry_field: str
) -> Frozen:
    """Collect the frozen list `key` of `origin` from a ledger."""
    head = ledger.live(origin, head_kind, key)
    if head is None:
        return Frozen(FrozenState.ABSENT)
    h = body(head)
    n, count = int(h["chunks"]), int(h["count"])
    entries: list[Any] = []
    missing = []
    for i in range(n):
        c = ledger.live(origin, chunk_kind, f"{key}/{i}")
        if c is None:
            missing.append(i)
        else:
            entries.extend(body(c)[entry_field])
    if missing:
        return Frozen(FrozenState.INCOMPLETE, tuple(entries), count, tuple(missing), head=head)
    if len(entries) != count:
        return Frozen(
            FrozenState.INCONSISTENT,
            tuple(entries),
            count,
            problem=f"the chunks hold {len(entries)} entries, the head says {count}",
            head=head,
        )
    if freeze_hash(entries) != h["hash"]:
        return Frozen(
            FrozenState.INCONSISTENT,
            tuple(entries),
            count,
            problem="the chunks do not match the hash in the head record",
            head=head,
        )
    return Frozen(FrozenState.COMPLETE, tuple(entries), count, head=head)
