"""Regional rollups: what a region needs and can provide, attested by its own nodes.

A node holds the full records of its own region only. For every other region it holds
*rollups*: per period, per item the exact totals (ticks of the base unit), the number
of contributing nodes and of records, a digest of exactly the records counted, and the
region's admitted nodes -- each signed by an admitted node of that region that
recomputed it from the full records (`compute_rollups`). Like transparency-log
witnesses, independent attesters cosign the same content, and a reader trusts a quorum:

* a content (the body, byte for byte) is **accepted** when at least
  ``q = min(3, len(admitted))`` of the nodes it lists as admitted signed it, one of them
  a *root* (`Admission.roots`): a founder who signed the charter, or a node as many
  founders as the charter's rule asks vouch for at the federation's root (every
  region's first node) -- the same nodes for every reader, so every replica that
  holds the same rollups sees the same view;
* two accepted contents for one region and period are a **split view**: shown with
  their attesters, never summed; attesters that signed a content others contradict
  are named;
* otherwise the region is **unattested** for that period and counts nowhere.

`RollupView` is a pure function of the rollup records, the roots and the reader's own
region (whose rollups it does not use), so every node that holds the same rollups shows
the same figures of the other regions. `federation_entries` adds a node's own
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
from node.planning.balance import BalanceIndex, BalanceRow, Entry, _contribution, as_rows

__all__ = [
    "ATTESTERS",
    "QUORUM",
    "RegionStatus",
    "RollupView",
    "attesters",
    "compute_rollups",
    "content_digest",
    "rollup_key",
    "watching",
]

QUORUM = 3  # attesters asked for, at most (fewer in a region of fewer admitted nodes)
ATTESTERS = 5  # a region's attesters besides its roots
MAX_ITEMS = 200  # a rollup must fit one record (16 KiB) with up to 100 admitted nodes


def attesters(admitted: Iterable[bytes], roots: frozenset[bytes]) -> frozenset[bytes]:
    """Which of a region's admitted nodes attest it: its roots (the nodes every reader
    trusts alike: founders and the nodes founders vouch for at the root), so that every
    reader finds one among them, and the `ATTESTERS` others with the smallest
    keys, so that no one who makes roots can take the others' seats. Every node of the
    region computes the same set, and a reader's quorum of 3 needs no more; the other
    admitted nodes watch (`watching`)."""
    nodes = sorted(set(admitted))
    rooted = [n for n in nodes if n in roots]
    others = [n for n in nodes if n not in roots]
    return frozenset(rooted + others[:ATTESTERS])


def watching(
    fresh: Mapping[str, dict[str, Any]],
    held: Mapping[str, Record],
    region_rollups: Iterable[Record],
    roots: frozenset[bytes],
) -> dict[str, dict[str, Any]]:
    """What a region's node that is not one of its attesters signs: the periods whose
    content it computed (`fresh`) a reader elsewhere would not accept without it, and
    the periods it attests already (`held`, by key; it stays with a content it signed
    while that is still what it computes, so that watchers who stepped in do not all
    step out at once and leave the content short again).

    In an honest region the attesters' content is accepted and a watcher signs
    nothing; when attesters are missing, silent or lying, every watcher signs the
    content it computed, which restores the quorum or shows the split.

    Args:
        fresh: period -> the body this node computed from its region's records.
        held: key -> this node's own rollups of its region.
        region_rollups: the rollups held of this node's region (any origin).
        roots: the nodes every reader trusts alike (`Admission.roots`).
    """
    if not fresh:
        return {}
    region = str(next(iter(fresh.values()))["region"])
    rollups = list(region_rollups)
    view = RollupView(rollups, roots, "") if rollups else None
    out: dict[str, dict[str, Any]] = {}
    for period, body in fresh.items():
        mine = held.get(rollup_key(region, period))
        if mine is not None and mine.body is not None:
            out[period] = body
            continue
        rp = view.pairs.get((region, period)) if view is not None else None
        # a split view is wanting too: where the region's own content is one of two,
        # the other (made up) one must not stand alone once attesters fall silent
        if rp is None or rp.accepted is None or rp.accepted.digest != content_digest(body):
            out[period] = body
    return out


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
    attesters: tuple[bytes, ...]
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

    Args:
        rollups: the `rollup` records held (slot winners; tombstones ignored).
        roots: the nodes every reader trusts alike (`Admission.roots`).
        own_region: the reader's region, whose full records it holds (its rollups are
            not used: the records are).
    """

    def __init__(self, rollups: Iterable[Record], roots: frozenset[bytes], own_region: str) -> None:
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
                attesters = tuple(sorted({r.origin for r in signed if r.origin in listed}))
                built.append(
                    Content(
                        body,
                        digest,
                        attesters,
                        min(QUORUM, len(listed)),
                        any(a in roots for a in attesters),
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
    """`federation_entries` as `BalanceRow`s."""
    own = [
        (r.item, r.dimension, r.period, r.needs_ticks, r.capacities_ticks, r.nodes)
        for r in own_rows
    ]
    entries, basis = federation_entries(
        scope, own, own_in_scope, view, period=period, item=item, stale_before=stale_before
    )
    return (own_rows if entries is own else as_rows(scope, entries)), basis


def federation_entries(
    scope: str,
    own: list[Entry],
    own_in_scope: bool,
    view: RollupView,
    *,
    period: str | None = None,
    item: str | None = None,
    stale_before: int | None = None,
) -> tuple[list[Entry], Basis]:
    """The balance of `scope`: the reader's own region's entries (already computed from
    its records) plus the accepted rollups of the other regions under `scope`.

    Args:
        own: the entries of the reader's records under `scope` (its region's part).
        own_in_scope: whether the reader's region lies under `scope` at all.
        stale_before: a region whose newest accepted rollup was signed before this
            wall-clock millisecond is counted but marked stale.

    Returns:
        The entries, sorted (`own` itself where no rollup lies under `scope`), and
        what they rest on.
    """
    basis = Basis(own=own_in_scope)
    under = view.under(scope)
    if not under:
        return own, basis
    acc: dict[tuple[str, str, str], list[Any]] = {}
    for it, dim, per, n, c, nodes in own:
        acc[(it, dim, per)] = [n, c, nodes]
    for rp in under:
        if period is not None and not model.period_within(rp.period, period):
            continue
        content = rp.accepted
        if content is None:
            basis.missing[rp.region] = rp.status.value
            continue
        if rp.region not in basis.missing:
            k, n = len(content.attesters), len(content.body["admitted"])
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
    entries = [(it, dim, per, n, c, nodes) for (it, dim, per), (n, c, nodes) in sorted(acc.items())]
    return entries, basis


class RollupTracker:
    """The rollup records of a replica, kept current (a replica listener), and the
    edge's rule for them.

    A rollup from a node this replica cannot judge (another region's) is taken if its
    origin is a root, or is listed as admitted by a root's rollup of the same
    region: so a stranger cannot place a rollup, and a region's attesters are those its
    roots name.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[bytes, str], Record] = {}
        self._by_origin: dict[bytes, dict[str, Record]] = {}
        self._by_key: dict[str, dict[bytes, Record]] = {}  # slot key -> origin -> record
        # region -> node -> how many held rollups of the roots list it (kept up to
        # date record by record; rebuilt when the roots change)
        self._listed: dict[str, Counter[bytes]] = {}
        self._roots: frozenset[bytes] = frozenset()
        self.version = 0

    def __call__(self, old: Record | None, new: Record) -> None:
        if new.kind == "rollup":
            prev = self._records.get((new.origin, new.key))
            self._records[(new.origin, new.key)] = new
            self._by_origin.setdefault(new.origin, {})[new.key] = new
            self._by_key.setdefault(new.key, {})[new.origin] = new
            if new.origin in self._roots:
                if prev is not None:
                    _count_listed(self._listed, prev, -1)
                _count_listed(self._listed, new, 1)
            self.version += 1

    def records(self) -> list[Record]:
        return list(self._records.values())

    def of(self, origin: bytes) -> dict[str, Record]:
        """One attester's rollups by key."""
        return dict(self._by_origin.get(origin, {}))

    def of_region(self, region: str, periods: Iterable[str]) -> list[Record]:
        """The rollups held of `region` for `periods`, any origin, as readers elsewhere
        hold them: at the federation's root (their slot keys name them; a body naming
        another region under the same key, or a rollup placed where only the region
        sees it, is left out)."""
        out = []
        for period in periods:
            for r in self._by_key.get(rollup_key(region, period), {}).values():
                if r.body is not None and r.body.get("region") == region and "/" not in r.scope:
                    out.append(r)
        return out

    def _listed_by_roots(self, roots: frozenset[bytes]) -> dict[str, Counter[bytes]]:
        if roots != self._roots:
            self._roots, self._listed = roots, {}
            for r in self._records.values():
                if r.origin in roots:
                    _count_listed(self._listed, r, 1)
        return self._listed

    def allows(
        self,
        r: Record,
        roots: frozenset[bytes],
        batch: Iterable[Record] = (),
        *,
        batch_listed: Mapping[str, set[bytes]] | None = None,
    ) -> bool:
        """Whether rollup `r` may be stored (with `batch`: the rollups arriving with it;
        `batch_listed`: `listed_by(batch, roots)`, when the caller asks for many)."""
        if r.origin in roots:
            return True
        if r.body is None:
            return (r.origin, r.key) in self._records  # withdrawing a rollup held
        region = str(r.body.get("region"))
        if self._listed_by_roots(roots).get(region, Counter())[r.origin] > 0:
            return True
        if batch_listed is None:
            batch_listed = listed_by(batch, roots)
        return r.origin in batch_listed.get(region, set())


def _count_listed(listed: dict[str, Counter[bytes]], r: Record, sign: int) -> None:
    if r.body is None:
        return
    body: Mapping[str, Any] = r.body
    counts = listed.setdefault(str(body["region"]), Counter())
    for a in body["admitted"]:
        counts[bytes.fromhex(a)] += sign


def listed_by(records: Iterable[Record], roots: frozenset[bytes]) -> dict[str, set[bytes]]:
    """Per region, the nodes that the roots' rollups among `records` list."""
    out: dict[str, set[bytes]] = {}
    for r in records:
        if r.kind == "rollup" and r.body is not None and r.origin in roots:
            body: Mapping[str, Any] = r.body
            out.setdefault(str(body["region"]), set()).update(
                bytes.fromhex(a) for a in body["admitted"]
            )
    return out


def scope_entries(
    index: BalanceIndex,
    view: RollupView,
    region: str,
    scope: str,
    *,
    period: str | None = None,
    item: str | None = None,
    stale_before: int | None = None,
) -> tuple[list[Entry], dict[str, Any]]:
    """The balance of `scope` as a node of `region` sees it, with its basis: its own
    region and what lies in it from its records (complete), a scope above or beside
    it from its records there plus the accepted rollups of the other regions under it,
    and nothing but a region's rollup for a scope inside another region."""
    own = index.entries(scope, period=period, item=item)
    if model.in_scope(scope, region):
        return own, {"status": "complete", "own_region": True}
    if scope.count("/") > 2:
        return own, {"status": "not-held", "region": model.partition_of(scope)}
    counted = model.in_scope(region, scope) or bool(own)
    entries, basis = federation_entries(
        scope, own, counted, view, period=period, item=item, stale_before=stale_before
    )
    return entries, basis.as_json()
