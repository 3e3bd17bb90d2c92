"""The governance view of a set of records: proposals, members and who may vote.

A :class:`Ledger` is built from records this node holds (verified by the replica) and
keeps one winner per slot exactly like the replica does (highest ``seq``; on equal
``seq`` the smaller record id), so it is a function of the *set* of records, never of
the order they are given in.

Identifiers: a proposal (or assembly) is named across the network by
``"<origin hex[:16]>.<key>"`` (at most 57 characters, so it fits a record key). The
first 64 bits of the origin make a collision with another origin's key of the same
name cost about 2**64 key generations; should two origins still match, the id is
reported as ambiguous rather than guessed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Any

from node import model
from node.crdt.record import Record
from node.governance.errors import GovernanceError

__all__ = [
    "GOV_KINDS",
    "Eligibility",
    "Ledger",
    "body",
    "check_local_key",
    "object_id",
    "split_id",
]

GOV_KINDS = frozenset(
    {
        "node",
        "member",
        "proposal",
        "vote",
        "close",
        "closeset",
        "volunteer",
        "assembly",
        "pool",
        "poolset",
        "commit",
        "seal",
        "reveal",
        "panel",
        # deliberation (node.governance.deliberation)
        "comment",
        "statement",
        "reaction",
        "amendment",
        "decision",
        "hide",
    }
)
# Matched whole (fullmatch): with `match`, "$" also accepts a trailing newline. The
# classes are spelled out, so only ASCII letters and digits pass.
_LOCAL_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_ID = re.compile(r"([0-9a-f]{16})\.([a-z0-9][a-z0-9-]{0,39})")
PREFIX_HEX = 16


def check_local_key(key: str) -> str:
    """A proposal or assembly key: 1-40 lowercase letters, digits or '-'.

    Raises:
        GovernanceError: naming the rule.
    """
    if not isinstance(key, str) or not _LOCAL_KEY.fullmatch(key):
        raise GovernanceError(
            f"id {key!r} must be 1-40 lowercase letters, digits or '-' (e.g. playground-2027)"
        )
    return key


def object_id(origin: bytes, key: str) -> str:
    """The network-wide id of a proposal or assembly: ``<origin hex[:16]>.<key>``."""
    return f"{origin.hex()[:PREFIX_HEX]}.{key}"


def split_id(oid: str) -> tuple[str, str]:
    """``"ab12....cd.playground"`` -> (origin hex prefix, key).

    Raises:
        GovernanceError: if `oid` is not of that form.
    """
    m = _ID.fullmatch(oid) if isinstance(oid, str) else None
    if m is None:
        raise GovernanceError(
            f"{oid!r} is not an id like 0123456789abcdef.playground "
            "(16 hex digits of the origin, a dot, the key)"
        )
    return m.group(1), m.group(2)


class Eligibility(enum.Enum):
    """Whether a key may vote in an electorate, as far as this ledger can tell."""

    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"  # removed, or a member of nodes outside the electorate only
    UNKNOWN = "unknown"  # no member record held, or the admitting node's record is missing


def body(record: Record) -> dict[str, Any]:
    """A live record's body, typed loosely (its kind's validator has checked it)."""
    if record.body is None:
        raise GovernanceError(f"{record.kind} {record.key} is withdrawn")
    return record.body


class Ledger:
    """Governance records, one winner per slot.

    Args:
        records: records verified by a replica (any order, duplicates allowed).
        admitted: the nodes admitted in the federation (`node.governance.admission`);
            only their member records make members. None: every node's do (tests of
            other rules).
    """

    def __init__(self, records: Iterable[Record], admitted: frozenset[bytes] | None = None) -> None:
        self.admitted = admitted
        slots: dict[tuple[bytes, str, str], Record] = {}
        for r in records:
            if r.kind not in GOV_KINDS:
                continue
            slot = (r.origin, r.kind, r.key)
            cur = slots.get(slot)
            if cur is None or r.seq > cur.seq or (r.seq == cur.seq and r.rid < cur.rid):
                slots[slot] = r
        self._slots = slots
        self._by_kind: dict[str, list[Record]] = {}
        for slot in sorted(slots):
            r = slots[slot]
            self._by_kind.setdefault(r.kind, []).append(r)
        self._members: dict[str, list[Record]] = {}
        for r in self._by_kind.get("member", ()):
            if admitted is None or r.origin in admitted:
                self._members.setdefault(r.key, []).append(r)

    def get(self, origin: bytes, kind: str, key: str) -> Record | None:
        """The winning record of a slot, tombstones included."""
        return self._slots.get((origin, kind, key))

    def live(self, origin: bytes, kind: str, key: str) -> Record | None:
        """The winning record of a slot unless it is a tombstone."""
        r = self._slots.get((origin, kind, key))
        return None if r is None or r.body is None else r

    def of_kind(self, kind: str) -> list[Record]:
        """Every winner of one kind (tombstones included), in slot order."""
        return list(self._by_kind.get(kind, ()))

    def keyed(self, kind: str, key: str) -> list[Record]:
        """Every origin's winner for (kind, key), e.g. all votes on one proposal."""
        return [r for r in self._by_kind.get(kind, ()) if r.key == key]

    def find(self, kind: str, oid: str) -> Record:
        """The live proposal or assembly named `oid`.

        Raises:
            GovernanceError: malformed id, unknown, withdrawn or ambiguous.
        """
        prefix, key = split_id(oid)
        found = [
            r
            for r in self._by_kind.get(kind, ())
            if r.key == key and r.origin.hex().startswith(prefix)
        ]
        if not found:
            raise GovernanceError(
                f"no {kind} {oid} on this node (not created, or not received yet)"
            )
        if len(found) > 1:
            raise GovernanceError(f"{kind} id {oid} is ambiguous: two origins share its prefix")
        if found[0].body is None:
            raise GovernanceError(f"{kind} {oid} was withdrawn by its author")
        return found[0]

    def node_scope(self, node: bytes) -> str | None:
        """The scope a node declares in its live `node` record, or None."""
        r = self.live(node, "node", "self")
        return None if r is None else str(body(r)["scope"])

    def member_records(self, member: bytes) -> list[Record]:
        """Every node's member record (or its tombstone) for `member`."""
        return list(self._members.get(member.hex(), ()))

    def features(self, member: bytes, scope: str) -> dict[str, str] | None:
        """The features of `member` from its live record by a node under `scope`.

        When several nodes admitted the member, the record of the smallest node id
        counts, so every replica picks the same one.
        """
        for r in self._members.get(member.hex(), ()):
            node_scope = self.node_scope(r.origin)
            if r.body is not None and node_scope is not None and model.in_scope(node_scope, scope):
                return dict(body(r).get("features") or {})
        return None

    def members_per_node(self, electorate: str) -> dict[str, int]:
        """Live members by the node that admitted them, for the nodes under
        `electorate` (node id hex -> count): a node that inflates its members shows."""
        out: dict[str, int] = {}
        for records in self._members.values():
            for r in records:
                scope = self.node_scope(r.origin)
                if r.body is not None and scope is not None and model.in_scope(scope, electorate):
                    out[r.origin.hex()] = out.get(r.origin.hex(), 0) + 1
        return dict(sorted(out.items()))

    def eligibility(self, member: bytes, electorate: str) -> Eligibility:
        """Whether `member` is a live member of a node whose scope lies under `electorate`."""
        records = self._members.get(member.hex(), [])
        if not records:
            return Eligibility.UNKNOWN
        unknown = False
        for r in records:
            if r.body is None:
                continue
            node_scope = self.node_scope(r.origin)
            if node_scope is None:
                unknown = True
            elif model.in_scope(node_scope, electorate):
                return Eligibility.ELIGIBLE
        return Eligibility.UNKNOWN if unknown else Eligibility.INELIGIBLE
