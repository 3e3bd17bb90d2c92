"""Slot winners of a few kinds, kept beside the replica.

Reads such as the balance view ask for every node record, every offer or every
proposal; a replica of a federation holds ~100,000 needs and capacities besides them,
and walking all of them for a few hundred others made each such read cost a full
scan. `KindIndex` listens to the replica and keeps the winners of the kinds asked
for, so those reads cost the records of those kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from node.crdt.record import Record

_Slot = tuple[bytes, str]  # (origin, key) within one kind


class KindIndex:
    """The slot winners of `kinds`; attach with `replica.add_listener`.

    Args:
        kinds: the kinds to keep (others are ignored at the cost of one set lookup).
    """

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        self._by_kind: dict[str, dict[_Slot, Record]] = {k: {} for k in self.kinds}

    def add_all(self, records: Iterable[Record]) -> None:
        """Take in slot winners (a replica's `records()` after a bulk load)."""
        by_kind = self._by_kind
        for r in records:
            slots = by_kind.get(r.kind)
            if slots is not None:
                slots[(r.origin, r.key)] = r

    def __call__(self, old: Record | None, new: Record) -> None:
        slots = self._by_kind.get(new.kind)
        if slots is not None:
            slots[(new.origin, new.key)] = new  # the slot's winner, replacing `old`

    def records(self, kind: str) -> Iterator[Record]:
        """The winners of `kind` (tombstones included), like `Replica.records(kind)`.

        Raises:
            KeyError: `kind` is not kept here.
        """
        return iter(list(self._by_kind[kind].values()))
