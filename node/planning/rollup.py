"""Regional rollups: what a region needs and can provide, attested by its own nodes.

A node holds the full records of its own region only. For every other region it holds
*rollups*: per period, per item the exact totals (ticks of the base unit), the number
of contributing nodes and of records, a digest of exactly the records counted, and the
region's admitted nodes -- each signed by an admitted node of that region that
recomputed it from the full records (`compute_rollups`). Like transparency-log
witnesses, independent attesters cosign the same content, and a reader trusts a quorum:

* a region's **attesters** are at most `ATTESTERS` of its admitted nodes, the same on
  every node (`attesters`): its *anchors* first -- nodes every node trusts on its own,
  the founders and the nodes a founder vouches for at the federation's root (every new
  region's first node) -- then the others, each group ranked by a hash of (federation,
  region, key). Only they attest; a reader neither takes, stores, forwards nor counts
  another node's rollup;
* a content (the body, byte for byte) is **accepted** when at least
  ``q = min(3, attesters)`` of the attesters its admitted list makes signed it, one of
  them an anchor;
* two accepted contents for one region and period are a **split view**: shown with
  their attesters, never summed; attesters that signed a content others contradict
  are named;
* otherwise the region is **unattested** for that period and counts nowhere.

`RollupView` is a pure function of the rollup records and the anchors, so every node
that holds the same rollups shows the same figures. `federation_rows` adds a node's own
region (complete, from its records) and the accepted rollups of the others into the
balance of any scope, saying what each figure rests on.
"""

from __future__ import annotations

import enum
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msgpack import packb

from node import model
from node.crdt.record import Record
from node.planning.balance import BalanceIndex, BalanceRow, _contribution

__all__ = [
    "ATTESTERS",
    "QUORUM",
    "RegionStatus",
    "RollupView",
    "attester_rank",
    "attesters",
    "compute_rollups",
    "content_digest",
    "rollup_key",
]

QUORUM = 3  # attesters asked for, at most (fewer in a region of fewer admitted nodes)
ATTESTERS = 5  # a region's attesters, at most
MAX_ITEMS = 200  # a rollup must fit one record (16 KiB) with up to 100 admitted nodes


def attesters(
    admitted: Iterable[bytes], anchors: frozenset[bytes], federation: str, region: str
) -> frozenset[bytes]:
    """Which of a region's admitted nodes attest it: at most `ATTESTERS`, its anchors
    first, each group ranked by `attester_rank`.

    A pure function of what every node of the region and every reader holds (the
    region's admitted set, which the anchors' rollups list, and the federation's
    anchors), so all compute the same set; a reader's quorum of 3 needs no more, and the
    others stay quiet. The rank is salted with the federation and the region, so a key
    chosen before the charter existed ranks nowhere in particular (see
    docs/architecture.md on what a node that grinds its key can do).
    """
    ranked = sorted(
        set(admitted), key=lambda n: (n not in anchors, attester_rank(federation, region, n))
    )
    return frozenset(ranked[:ATTESTERS])


def attester_rank(federation: str, region: str, node: bytes) -> bytes:
    """A node's place in its region's queue of attesters (smallest first)."""
    salt = f"allmende/attester/1\x00{federation}\x00{region}\x00".encode()
    return hashlib.blake2b(salt + node, digest_size=16).digest()


def rollup_key(region: str, period: str) -> str:
    """The slot key of a region's rollup for a period (one per attester)."""
    h = hashlib.blake2b(region.encode(), digest_size=8).hexdigest()
    return f"{h}.{period}"


def content_digest(body: Mapping[str, Any]) -> str:
    """What attesters agree on: the hash of the whole body."""
    data = packb({k: body[k] for k in sorted(body)}, use_bin_type=True)
    return hashlib.blake2b(b"allmende/rollup/1\x00" + data, digest_size=16).hexdigest()


def compute_rollups(
    records: Iterable[Record], region: str, admitted: Iterable[bytes]
) -> dict[str, dict[str, Any]]:
    """The rollup bodies of `region`, one per period, from full records.

    Counts the live needs and capacities under `region` whose origin is admitted.

    Returns:
        period -> rollup body (see `node.model.kinds`); periods with nothing counted
        have none.
    """
    admitted_set = set(admitted)
    listed = sorted(a.hex() for a in admitted_set)
    per: dict[str, dict[tuple[str, str], list[Any]]] = {}
    ids: dict[str, list[bytes]] = {}
    origins: dict[str, set[bytes]] = {}
    for r in records:
        if r.origin not in admitted_set or not model.in_scope(r.scope, region):
            continue
        c = _contribution(r)
        if c is None:
            continue
        (item, dim, period), kind, amount = c
        acc = per.setdefault(period, {}).setdefault((item, dim), [0, 0, set()])
        acc[0 if kind == "need" else 1] += amount
        acc[2].add(r.origin)
        ids.setdefault(period, []).append(r.rid)
        origins.setdefault(period, set()).add(r.origin)
    out = {}
    for period, groups in sorted(per.items()):
        counted = hashlib.blake2b(b"".join(sorted(ids[period])), digest_size=32).hexdigest()
        out[period] = {
            "region": region,
            "period": period,
            "items": [
                [item, dim, str(n), str(c), len(who)]
                for (item, dim), (n, c, who) in sorted(groups.items())
            ][:MAX_ITEMS],
            "nodes": len(origins[period]),
            "records": len(ids[period]),
            "counted": counted,
            "admitted": listed,
        }
    return out


class RegionStatus(enum.Enum):
    ACCEPTED = "attested"
    SPLIT = "split"
    UNATTESTED = "unattested"


@dataclass(frozen=True)
class Content:
    """One content of a region's rollup for a period, and who signed it."""

    body: Mapping[str, Any]
    digest: str
    attesters: tuple[bytes, ...]  # those of the region's attesters who signed it
    of: int  # how many attesters the region has, by the content's admitted list
    quorum: int
    anchored: bool
    hlc: int  # the newest signature's

    @property
    def accepted(self) -> bool:
        return len(self.attesters) >= self.quorum and self.anchored


@dataclass(frozen=True)
class RegionPeriod:
    """What a reader makes of one region's rollups for one period."""

    region: str
    period: str
    status: RegionStatus
    contents: tuple[Content, ...]  # accepted first, then by attesters

    @property
    def accepted(self) -> Content | None:
        return self.contents[0] if self.status is RegionStatus.ACCEPTED else None

    @property
    def contradicting(self) -> tuple[bytes, ...]:
        """Attesters who signed a content that the accepted one contradicts."""
        if self.status is not RegionStatus.ACCEPTED:
            return ()
        return tuple(sorted(a for c in self.contents[1:] for a in c.attesters))


class RollupView:
    """The rollups of other regions as a reader sees them.

    A content's signatures count only from its region's attesters as the content's
    own admitted list makes them (`attesters`): another admitted node's counts nowhere.

    Args:
        rollups: the `rollup` records held (slot winners; tombstones ignored).
        anchors: nodes the reader trusts on its own (see the module docstring).
        own_region: the reader's region, whose full records it holds (its rollups are
            not used: the records are).
        federation: the federation id (it salts the attesters' ranking).
    """

    def __init__(
        self,
        rollups: Iterable[Record],
        anchors: frozenset[bytes],
        own_region: str,
        federation: str,
    ) -> None:
        self.own_region = own_region
        by_pair: dict[tuple[str, str], dict[str, list[Record]]] = {}
        for r in rollups:
            if r.kind != "rollup" or r.body is None:
                continue
            region, period = str(r.body["region"]), str(r.body["period"])
            if r.key != rollup_key(region, period) or region == own_region:
                continue
            digest = content_digest(r.body)
            by_pair.setdefault((region, period), {}).setdefault(digest, []).append(r)
        self.pairs: dict[tuple[str, str], RegionPeriod] = {}
        for (region, period), contents in sorted(by_pair.items()):
            built = []
            for digest, signed in contents.items():
                body: Mapping[str, Any] = signed[0].body or {}
                listed = {bytes.fromhex(str(a)) for a in body["admitted"]}
                chosen = attesters(listed, anchors, federation, region)
                signers = tuple(sorted({r.origin for r in signed if r.origin in chosen}))
                built.append(
                    Content(
                        body,
                        digest,
                        signers,
                        len(chosen),
                        min(QUORUM, len(chosen)),
                        any(a in anchors for a in signers),
                        max(r.hlc for r in signed),
                    )
                )
            accepted = [c for c in built if c.accepted]
            ordered = sorted(built, key=lambda c: (not c.accepted, -len(c.attesters), c.digest))
            if len(accepted) == 1:
                status = RegionStatus.ACCEPTED
            elif accepted:
                status = RegionStatus.SPLIT
            else:
                status = RegionStatus.UNATTESTED
            self.pairs[(region, period)] = RegionPeriod(region, period, status, tuple(ordered))

    def track_record(self) -> dict[bytes, tuple[int, int]]:
        """Per attester: (contents it signed that were accepted, contents it signed that
        an accepted one contradicts). Honest reporting shows as the first alone."""
        out: dict[bytes, list[int]] = {}
        for rp in self.pairs.values():
            accepted = rp.accepted
            if accepted is None:
                continue
            for a in accepted.attesters:
                out.setdefault(a, [0, 0])[0] += 1
            for a in rp.contradicting:
                out.setdefault(a, [0, 0])[1] += 1
        return {a: (n[0], n[1]) for a, n in sorted(out.items())}

    def regions(self) -> list[str]:
        """Every region some rollup names (the reader's own excluded)."""
        return sorted({region for region, _ in self.pairs})

    def under(self, scope: str) -> list[RegionPeriod]:
        return [rp for (region, _), rp in self.pairs.items() if model.in_scope(region, scope)]


@dataclass
class Basis:
    """What a scope's figures rest on."""

    own: bool = False  # the reader's own region (or part of it) is counted, complete
    attested: dict[str, tuple[int, int]] = field(default_factory=dict)  # region -> (k, n)
    missing: dict[str, str] = field(default_factory=dict)  # region -> why (split, unattested)
    stale: dict[str, int] = field(default_factory=dict)  # region -> ms of its newest rollup

    @property
    def complete(self) -> bool:
        """Everything known under the scope is counted."""
        return not self.missing

    def as_json(self) -> dict[str, Any]:
        regions = len(self.attested) + len(self.missing) + (1 if self.own else 0)
        if self.missing:
            status = "partial"  # some region's figures are not counted
        elif self.attested:
            status = "attested"  # every region known is counted, the others attested
        else:
            status = "own-region-only"  # no other region's rollup here (yet)
        return {
            "status": status,
            "own_region": self.own,
            "attested": {r: {"by": k, "of": n} for r, (k, n) in sorted(self.attested.items())},
            "missing": dict(sorted(self.missing.items())),
            "stale": dict(sorted(self.stale.items())),
            "regions_known": regions,
        }


def federation_rows(
    scope: str,
    own_rows: list[BalanceRow],
    own_in_scope: bool,
    view: RollupView,
    *,
    period: str | None = None,
    item: str | None = None,
    stale_before: int | None = None,
) -> tuple[list[BalanceRow], Basis]:
    """The balance of `scope`: the reader's own region's rows (already computed from
    its records) plus the accepted rollups of the other regions under `scope`.

    Args:
        own_rows: the rows of the reader's records under `scope` (its region's part).
        own_in_scope: whether the reader's region lies under `scope` at all.
        stale_before: a region whose newest accepted rollup was signed before this
            wall-clock millisecond is counted but marked stale.
    """
    basis = Basis(own=own_in_scope)
    under = view.under(scope)
    if not under:
        return own_rows, basis
    acc: dict[tuple[str, str, str], list[Any]] = {}
    for row in own_rows:
        key = (row.item, row.dimension, row.period)
        acc[key] = [row.needs_ticks, row.capacities_ticks, row.nodes]
    for rp in under:
        if period is not None and not model.period_within(rp.period, period):
            continue
        content = rp.accepted
        if content is None:
            basis.missing[rp.region] = rp.status.value
            continue
        if rp.region not in basis.missing:
            k, n = len(content.attesters), content.of
            basis.attested[rp.region] = (k, n)
            signed_ms = content.hlc >> 16
            if stale_before is not None and signed_ms < stale_before:
                basis.stale[rp.region] = max(basis.stale.get(rp.region, 0), signed_ms)
        for it, dim, needs, caps, nodes in content.body["items"]:
            if item is not None and it != item:
                continue
            key = (it, dim, period if period is not None else rp.period)
            total = acc.setdefault(key, [0, 0, 0])
            total[0] += int(needs)
            total[1] += int(caps)
            total[2] += int(nodes)
    for region in basis.missing:
        basis.attested.pop(region, None)
        basis.stale.pop(region, None)
    rows = [
        BalanceRow(scope, it, per, dim, model.DIMENSIONS[dim], n, c, nodes)
        for (it, dim, per), (n, c, nodes) in sorted(acc.items())
    ]
    return rows, basis


class RollupTracker:
    """The rollup records of a replica, kept current (a replica listener), and the
    edge's rule for them.

    A rollup is taken only from one of its region's attesters (`attesters`): for the
    reader's own region as its own admission makes them; for another region, which
    this replica cannot judge, as the region's admitted set that the anchors' rollups
    (held, or arriving in the same batch) list makes them. So a stranger places no
    rollup, and neither does an admitted node outside its region's few attesters. A
    withdrawal is taken for a rollup held (or from an anchor).
    """

    def __init__(self) -> None:
        self._records: dict[tuple[bytes, str], Record] = {}
        self._by_origin: dict[bytes, dict[str, Record]] = {}
        # region -> node -> how many held rollups of the anchors list it (kept up to
        # date record by record; rebuilt when the anchors change)
        self._listed: dict[str, Counter[bytes]] = {}
        self._anchors: frozenset[bytes] = frozenset()
        # region -> (the held listing, its attesters), dropped when the listing changes
        self._chosen: dict[str, tuple[frozenset[bytes], frozenset[bytes]]] = {}
        self._federation = ""
        self.version = 0

    def __call__(self, old: Record | None, new: Record) -> None:
        if new.kind == "rollup":
            prev = self._records.get((new.origin, new.key))
            self._records[(new.origin, new.key)] = new
            self._by_origin.setdefault(new.origin, {})[new.key] = new
            if new.origin in self._anchors and not _same_listing(prev, new):
                if prev is not None:
                    self._count(prev, -1)
                self._count(new, 1)
            self.version += 1

    def _count(self, r: Record, sign: int) -> None:
        if r.body is not None:
            region = str(r.body["region"])
            _count_listed(self._listed, r, sign)
            self._chosen.pop(region, None)

    def records(self) -> list[Record]:
        return list(self._records.values())

    def of(self, origin: bytes) -> dict[str, Record]:
        """One attester's rollups by key."""
        return dict(self._by_origin.get(origin, {}))

    def _held(
        self, region: str, anchors: frozenset[bytes], federation: str
    ) -> tuple[frozenset[bytes], frozenset[bytes]]:
        """The nodes the anchors' held rollups list for `region`, and the attesters
        they make (cached until an anchor's rollup of the region changes)."""
        if anchors != self._anchors or federation != self._federation:
            self._anchors, self._federation, self._listed, self._chosen = (
                anchors,
                federation,
                {},
                {},
            )
            for r in self._records.values():
                if r.origin in anchors:
                    _count_listed(self._listed, r, 1)
        cached = self._chosen.get(region)
        if cached is None:
            counts = self._listed.get(region)
            held = frozenset(n for n, c in counts.items() if c > 0) if counts else frozenset()
            cached = self._chosen[region] = (held, attesters(held, anchors, federation, region))
        return cached

    def chosen(
        self, batch: Iterable[Record], anchors: frozenset[bytes], federation: str
    ) -> dict[str, frozenset[bytes]]:
        """Per region that a rollup of `batch` names, its attesters as the anchors'
        rollups held and in `batch` list its admitted nodes."""
        batch = list(batch)
        extra = listed_by(batch, anchors)
        regions = {
            str(r.body.get("region")) for r in batch if r.kind == "rollup" and r.body is not None
        }
        out = {}
        for region in regions:
            held, chosen = self._held(region, anchors, federation)
            more = extra.get(region)
            if more is None or more <= held:
                out[region] = chosen
            else:
                out[region] = attesters(held | more, anchors, federation, region)
        return out

    def allows(
        self,
        r: Record,
        anchors: frozenset[bytes],
        federation: str,
        batch: Iterable[Record] = (),
        *,
        chosen: Mapping[str, frozenset[bytes]] | None = None,
        own: tuple[str, frozenset[bytes]] | None = None,
    ) -> bool:
        """Whether rollup `r` may be stored.

        Args:
            anchors: the federation's anchors (`Admission.anchors`).
            federation: the federation id.
            batch: the rollups arriving with `r`.
            chosen: `chosen(batch + [r], ...)`, when the caller asks for many.
            own: the reader's region and its attesters (by its own admission).
        """
        if r.body is None:
            # withdrawing a rollup held
            return (r.origin, r.key) in self._records or r.origin in anchors
        body: Mapping[str, Any] = r.body
        region = str(body.get("region"))
        if own is not None and region == own[0]:
            allowed = own[1]
        else:
            if chosen is None:
                chosen = self.chosen([*batch, r], anchors, federation)
            allowed = chosen.get(region, frozenset())
        # an attester lists itself among the admitted nodes it counted
        return r.origin in allowed and r.origin.hex() in body["admitted"]


def _same_listing(a: Record | None, b: Record) -> bool:
    """Whether two rollups list the same region's same admitted nodes (an anchor's
    next version mostly does: its counts stay as they are)."""
    if a is None or a.body is None or b.body is None:
        return False
    return a.body["region"] == b.body["region"] and a.body["admitted"] == b.body["admitted"]


def _count_listed(listed: dict[str, Counter[bytes]], r: Record, sign: int) -> None:
    if r.body is None:
        return
    body: Mapping[str, Any] = r.body
    counts = listed.setdefault(str(body["region"]), Counter())
    for a in body["admitted"]:
        counts[bytes.fromhex(a)] += sign


def listed_by(records: Iterable[Record], anchors: frozenset[bytes]) -> dict[str, set[bytes]]:
    """Per region, the nodes that the anchors' rollups among `records` list."""
    out: dict[str, set[bytes]] = {}
    for r in records:
        if r.kind == "rollup" and r.body is not None and r.origin in anchors:
            body: Mapping[str, Any] = r.body
            out.setdefault(str(body["region"]), set()).update(
                bytes.fromhex(a) for a in body["admitted"]
            )
    return out


def scope_balance(
    index: BalanceIndex,
    view: RollupView,
    region: str,
    scope: str,
    *,
    period: str | None = None,
    item: str | None = None,
    stale_before: int | None = None,
) -> tuple[list[BalanceRow], dict[str, Any]]:
    """The balance of `scope` as a node of `region` sees it, with its basis: its own
    region and what lies in it from its records (complete), a scope above or beside
    it from its records there plus the accepted rollups of the other regions under it,
    and nothing but a region's rollup for a scope inside another region."""
    own = index.rows(scope, period=period, item=item)
    if model.in_scope(scope, region):
        return own, {"status": "complete", "own_region": True}
    if scope.count("/") > 2:
        return own, {"status": "not-held", "region": model.partition_of(scope)}
    counted = model.in_scope(region, scope) or bool(own)
    rows, basis = federation_rows(
        scope, own, counted, view, period=period, item=item, stale_before=stale_before
    )
    return rows, basis.as_json()
