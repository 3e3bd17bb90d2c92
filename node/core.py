"""The node's rules, in one place: write, ingest, gossip-validate, re-gossip.

Pure and synchronous, with storage injected: the daemon (`node.daemon`) and every
virtual node of the simnet (`simnet.simnode`) run this same code. It never touches a
socket, a thread or the clock by itself; the owner drives the stages:

* a local write is `prepare_write` (validate, number, sign), the owner makes it
  durable (`RecordStore.save(durable=True)`), then `commit` (merge and queue for
  gossip) -- what a caller is told was saved survives a crash;
* records from peers go through `screen` (decode, bounds, partition filter, duplicate
  check, body validation: cheap, no signatures), `verify` (Ed25519 only; touches
  nothing shared, so the owner may run it in a worker thread), then `apply` (merge,
  evidence, clock, re-gossip); the owner persists `IngestResult.stored` afterwards --
  except records a member submitted, which are acknowledged: those the owner saves
  durably between `verify` and `apply` (`Screened.to_save`), so nothing counts that
  is not on disk.

A record is verified, its partition followed and its body valid before it is merged,
stored or forwarded; a gossip message with any bad record merges nothing.
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node import model
from node.clock import HybridClock
from node.crdt.encoding import MAX_RECORD_BYTES, Reader, Writer
from node.crdt.record import (
    MIN_RECORD_BYTES,
    Record,
    Signer,
    decode_record,
    sign_record,
    signature_ok,
)
from node.crdt.replica import HELD, SHADOW, STORED, Evidence, Replica
from node.crdt.sync import Received
from node.errors import LocalError, Rejected
from node.governance.admission import (
    TRACKED_KINDS,
    Admission,
    AdmissionTracker,
    Charter,
    redeems,
)
from node.planning import BalanceIndex
from node.planning.pace import WATCH_HOLD, RollupPace
from node.planning.rollup import (
    RollupTracker,
    RollupView,
    attesters,
    compute_rollups,
    listed_by,
    rollup_key,
    watching,
)

ROLLUP_CACHE = 4096  # region computations a shared rollup cache keeps

# A gossip message is one libp2p RPC; below 64 KiB with its envelope it travels in a
# single yamux frame, and validating one costs at most a few hundred verifications.
MAX_BATCH_BYTES = 60 * 1024
BATCH_VERSION = 2
REGOSSIP_LIMIT = 1000  # a sync message bringing at most this many: gossiped on
# Rejections that an honest peer can cause: its clock is ahead of ours, or it admitted
# an origin before we did (its records of that origin reached it first). They are
# counted, never held against the peer.
NOT_BLAMED = frozenset({"clock-ahead", "not-admitted"})
_ID_CHARS = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: ids are read aloud


class Source(enum.Enum):
    """Where records come from; the rules differ a little per source."""

    GOSSIP = "gossip"  # one message on a topic: all or nothing
    SYNC = "sync"  # anti-entropy: record by record, gossiped on when few
    SUBMIT = "submit"  # signed elsewhere (a member's key), handed in locally


class Verdict(enum.Enum):
    """What a gossip message deserves."""

    ACCEPT = "accept"  # something new: keep and forward
    IGNORE = "ignore"  # nothing new: drop without penalty, do not forward
    REJECT = "reject"  # invalid: drop, do not forward, penalise the forwarder
    # Refused for now (an origin not admitted yet, a clock ahead): drop without penalty,
    # and judge the same message (same content, same id) again when it comes again.
    RETRY = "retry"


class RecordStore(Protocol):
    """Where records are persisted (SQLite in the daemon, nothing in the simnet)."""

    def save(
        self,
        records: Sequence[Record],
        *,
        evidence: Sequence[Evidence] = (),
        meta: Mapping[str, int] | None = None,
        durable: bool = True,
    ) -> None: ...


class NoStore:
    """A `RecordStore` that keeps nothing (virtual nodes, tests)."""

    def save(
        self,
        records: Sequence[Record],
        *,
        evidence: Sequence[Evidence] = (),
        meta: Mapping[str, int] | None = None,
        durable: bool = True,
    ) -> None:
        return None


def encode_batch(raws: Iterable[bytes]) -> bytes:
    """A gossip message: a version byte, then length-prefixed records."""
    w = Writer()
    w.fixed(bytes((BATCH_VERSION,)))
    for raw in raws:
        w.blob(raw)
    return w.getvalue()


def decode_batch(data: bytes) -> list[bytes]:
    """Split a gossip message into raw records (not decoded).

    Raises:
        Rejected: oversize, wrong version or broken framing.
    """
    if len(data) > MAX_BATCH_BYTES:
        raise Rejected("oversize", f"gossip message of {len(data)} bytes")
    if not data or data[0] != BATCH_VERSION:
        raise Rejected("malformed", "not an Allmende gossip message of this version")
    out = []
    pos, end = 1, len(data)
    while pos < end:
        # A record's length is a varint of one or two bytes (records are 110 bytes to
        # 16 KiB); any other is read by the general `Reader`, which also refuses it
        # where it must (non-minimal, too long, truncated).
        b = data[pos]
        if b < 0x80:
            n, pos = b, pos + 1
        elif pos + 1 < end and 0 < data[pos + 1] < 0x80:
            n, pos = (b & 0x7F) | (data[pos + 1] << 7), pos + 2
        else:
            reader = Reader(data)
            reader.fixed(pos)
            n = reader.varint(MAX_RECORD_BYTES)
            pos = reader.position
        if pos + n > end:
            raise Rejected("malformed", "truncated field")
        if n < MIN_RECORD_BYTES:
            raise Rejected("malformed", "a record in the batch is too short")
        out.append(data[pos : pos + n])
        pos += n
    if not out:
        raise Rejected("malformed", "empty gossip message")
    return out


def batches(records: Iterable[Record]) -> list[bytes]:
    """Pack records into gossip messages of at most MAX_BATCH_BYTES."""
    out: list[bytes] = []
    cur: list[bytes] = []
    size = 1
    for r in records:
        if cur and size + len(r.raw) + 3 > MAX_BATCH_BYTES:
            out.append(encode_batch(cur))
            cur, size = [], 1
        cur.append(r.raw)
        size += len(r.raw) + 3
    if cur:
        out.append(encode_batch(cur))
    return out


@dataclass
class Pending:
    """Records signed for a local write, not yet durable nor merged."""

    records: list[Record]
    meta: dict[str, int]

    @property
    def record(self) -> Record:
        """The record the caller asked for (a moved slot's tombstone comes first)."""
        return self.records[-1]


@dataclass
class Screened:
    """Records from a peer that passed every check but the signature."""

    source: Source
    partition: str | None  # the gossip topic's partition
    candidates: list[Record] = field(default_factory=list)
    preverified: list[Record] = field(default_factory=list)  # verified here before
    evidence: list[Evidence] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    known: int = 0
    verified: bool = False
    regossip: bool = False  # stored records go to the outbox

    @property
    def to_verify(self) -> int:
        return len(self.candidates) + 2 * len(self.evidence)

    @property
    def to_save(self) -> list[Record]:
        """What may be stored: every record that passed all checks."""
        return [*self.preverified, *self.candidates]

    @property
    def doomed(self) -> bool:
        """A gossip message with a bad record: nothing of it will be merged."""
        return self.source is Source.GOSSIP and bool(self.rejected)


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did."""

    stored: list[Record]  # now held: to persist (and forward)
    changed: list[Record]  # slot winners that changed
    evidence: list[Evidence]  # new evidence pairs: to persist
    rejected: Counter[str]
    known: int
    verdict: Verdict


class NodeCore:
    """One node's replicated state and its rules.

    Args:
        origin: the node's public key; signer: signs with it.
        scope: where the node belongs; it follows the partitions of its ancestors.
        replica: the records (loaded by the owner).
        now_ms: injected wall-clock milliseconds; rng: randomness for new ids.
        store: persistence used by the synchronous `write` and `ingest`.
        verify: checks a record's signature (a run-wide cache in large simnets).
        decode: parses wire bytes (a shared cache in large simnets).
        split: splits a gossip message into its records' wire bytes (likewise).
        seq: the highest seq this node has used (from its store).
        hlc: the last HLC it issued (from its store).
        charter: the node's federation; who it admits decides what it stores from
            others and what counts. None turns admission off (tests of other rules).
        index: a balance index to keep, counting admitted nodes only.
        rollup_cache: region computations shared by many cores in one process.
    """

    def __init__(
        self,
        origin: bytes,
        signer: Signer,
        scope: str,
        replica: Replica,
        now_ms: Callable[[], int],
        *,
        rng: random.Random,
        store: RecordStore | None = None,
        verify: Callable[[Record], bool] = signature_ok,
        decode: Callable[[bytes], Record] = decode_record,
        split: Callable[[bytes], list[bytes]] = decode_batch,
        seq: int = 0,
        hlc: int = 0,
        charter: Charter | None = None,
        index: BalanceIndex | None = None,
        rollup_cache: dict[Any, dict[str, Any]] | None = None,
    ) -> None:
        self.origin = origin
        self._signer = signer
        self.scope = model.check_scope(scope)
        self.replica = replica
        self.now_ms = now_ms
        self.clock = HybridClock(now_ms, last=hlc)
        self._rng = rng
        self.store: RecordStore = store or NoStore()
        self._verify = verify
        self._decode = decode
        self._split = split
        # A node follows its scope's partitions, and any other partition that still
        # holds a live record of its own: one whose scope it left (the operator moved
        # it to another region). There it can withdraw them, and the followers of the
        # old partition see the withdrawals instead of keeping the records forever.
        home = {model.partition_of(a) for a in model.ancestors(scope)}
        left = {
            replica.partition_of(r.scope)
            for r in replica.records()
            if r.origin == origin and r.body is not None
        }
        self.partitions = sorted(home | left)
        self._followed = frozenset(self.partitions)
        self.seq = max(seq, replica.max_seq(origin))
        # The first write after a start jumps to a seq derived from the clock. A node
        # restored from an old backup may not know its latest seqs until it syncs;
        # starting above every seq it can have used before (it writes far fewer than
        # 16 records per millisecond) means it never reuses one, so peers never see
        # an honest restore as an equivocation. One gap per restart costs nothing.
        self._seq_floor = now_ms() * 16
        self.writes = 0  # records this node signed since it started
        self.outbox: list[Record] = []
        self.charter = charter
        self.tracker: AdmissionTracker | None = None
        self.rollups: RollupTracker | None = None
        # the region's rollups as last computed, by (region, the ids of the records
        # counted, admitted)
        self._rollups_of: tuple[Any, dict[str, Any]] | None = None
        # the same, shared by many cores in one process (the simnet's nodes of a region
        # compute what one of them computed for the same records once)
        self._rollup_cache = rollup_cache
        if charter is not None:
            self.tracker = AdmissionTracker(charter)
            self.tracker.load(replica.records())
            for r in replica.entries([p for p in replica.partitions() if "/" not in p]):
                if r.kind == "endorse":
                    self.tracker.held_at_root(r)
            replica.add_listener(self.tracker)
            self.rollups = RollupTracker()
            for r in replica.records("rollup"):
                self.rollups(None, r)
            replica.add_listener(self.rollups)
        self.region = model.partition_of(self.scope)
        self.index = index
        self._counted: frozenset[bytes] | None = None
        if index is not None:
            self._counted = self.admission.admitted if self.tracker is not None else None
            index.add_all(r for r in replica.records() if self.counts(r.origin))
            replica.add_listener(self._index_change)

    # --- who counts ------------------------------------------------------------

    @property
    def admission(self) -> Admission:
        """The admission state of the records held.

        Raises:
            LocalError: admission is off (no charter).
        """
        if self.tracker is None:
            raise LocalError("this node has no charter: admission is off")
        return self.tracker.state

    def counts(self, origin: bytes) -> bool:
        """Whether `origin`'s needs and capacities count: an admitted node (all count
        when admission is off)."""
        return self._counted is None or origin in self._counted

    def _index_change(self, old: Record | None, new: Record) -> None:
        # `counts(new.origin)`, inlined: every record merged passes here.
        counted = self._counted
        if (counted is None or new.origin in counted) and self.index is not None:
            self.index(old, new)

    def _recount(self) -> None:
        """Bring the balance index up to a changed set of admitted nodes."""
        if self.index is None or self.tracker is None or self._counted is None:
            return
        now = self.tracker.state.admitted
        if now == self._counted:
            return
        gained, lost = now - self._counted, self._counted - now
        self._counted = now
        for r in self.replica.records():
            if r.origin in gained:
                self.index.add(r)
            elif r.origin in lost:
                self.index.remove(r)

    def follows(self, partition: str) -> bool:
        return partition in self._followed

    # --- local writes ----------------------------------------------------------

    def prepare_write(
        self, kind: str, key: str, body: dict[str, Any] | None, scope: str | None = None
    ) -> Pending:
        """Validate, number and sign one record of this node (nothing is changed).

        A slot that moves to a partition this node's peers there may not follow
        (its scope changed region) first gets a tombstone in the old scope, so the
        old partition's followers see the record withdrawn instead of keeping it.

        Raises:
            LocalError: the record is invalid (the message says how to fix it).
        """
        scope = scope or self.scope
        model.validate(kind, key, scope, body)
        if not self.follows(model.partition_of(scope)):
            raise LocalError(f"scope {scope} lies outside the partitions this node follows")
        records = []
        current = self.replica.get(self.origin, kind, key)
        if (
            current is not None
            and current.body is not None
            and model.partition_of(current.scope) != model.partition_of(scope)
        ):
            records.append(self._sign(kind, key, None, current.scope))
        records.append(self._sign(kind, key, body, scope))
        return Pending(records, {"seq": self.seq, "hlc": self.clock.last})

    def _sign(self, kind: str, key: str, body: dict[str, Any] | None, scope: str) -> Record:
        # A restored backup may be behind what peers hold of our own records.
        seq = max(self.seq + 1, self.replica.max_seq(self.origin) + 1, self._seq_floor)
        try:
            record = sign_record(
                self._signer, self.origin, kind, key, seq, self.clock.tick(), scope, body
            )
        except Rejected as exc:
            raise LocalError(f"cannot write this record: {exc.detail}") from None
        self.seq = seq  # burnt even if the write is never committed: seqs may have gaps
        return record

    def commit(self, pending: Pending) -> Record:
        """Merge a durable local write and queue it for gossip."""
        for r in pending.records:
            self.replica.insert_verified(r)
            self.outbox.append(r)
            self.writes += 1
        self._recount()
        return pending.record

    def write(
        self, kind: str, key: str, body: dict[str, Any] | None, scope: str | None = None
    ) -> Record:
        """`prepare_write`, save durably through the injected store, `commit`."""
        pending = self.prepare_write(kind, key, body, scope)
        self.store.save(pending.records, meta=pending.meta, durable=True)
        return self.commit(pending)

    def new_key(self, prefix: str, kind: str) -> str:
        """A short random id, unused by this node: ids never come from a counter, so a
        node restored from an old backup cannot reuse (and overwrite) one it forgot."""
        while True:
            key = prefix + "".join(self._rng.choice(_ID_CHARS) for _ in range(5))
            if self.replica.get(self.origin, kind, key) is None:
                return key

    def trust_scope(self, node: bytes | None) -> str:
        """Where this node's endorsement of `node` (or its invite, for None) is seen by
        those who decide on it.

        Admission is decided region by region: an endorsement of a node of this node's
        region goes in its region; a founder's, which counts for a new region's first
        node, at the federation's root, where every region sees it.

        Raises:
            LocalError: a node that is no founder vouches for one of another region.
        """
        founder = self.charter is not None and self.origin in self.charter.founders
        root = self.scope.split("/")[0]
        target = self.replica.get(node, "node", "self") if node is not None else None
        if target is None or target.body is None:
            return root if founder else self.scope
        theirs = str(target.body["scope"])
        if model.partition_of(theirs) == model.partition_of(self.scope):
            return self.scope
        if founder:
            return root
        raise LocalError(
            f"{node.hex()[:12] if node else ''} belongs to another region ({theirs}): only "
            "its own region's nodes, or the federation's founders, vouch for it"
        )

    def redeem_invites(self) -> list[Pending]:
        """Writes that honour this node's open invites: for each, the first applicant
        (smallest record id) that showed its secret is endorsed, and the invite is
        rewritten naming it (used once; who invited whom is public)."""
        if self.tracker is None:
            return []
        adm = self.admission
        mine = {key: h for (inviter, key), h in adm.open_invites.items() if inviter == self.origin}
        if not mine or self.origin not in adm.admitted:
            return []
        first: dict[str, Record] = {}
        for r in self.tracker.of_kind("apply"):
            if r.body is None or r.origin == self.origin or not redeems(adm, r):
                continue
            ref, key = model.parse_invite_ref(r.body["invite"])
            if ref == self.origin.hex() and key in mine:
                cur = first.get(key)
                if cur is None or r.rid < cur.rid:
                    first[key] = r
        out = []
        for key, app in sorted(first.items()):
            invite = self.replica.get(self.origin, "invite", key)
            if invite is None or invite.body is None:
                continue
            node = app.origin.hex()
            endorsed = self.replica.get(self.origin, "endorse", node)
            if endorsed is None or endorsed.body is None:
                out.append(self.prepare_write("endorse", node, {}, self.trust_scope(app.origin)))
            used = {**invite.body, "used_by": node}
            out.append(self.prepare_write("invite", key, used, invite.scope))
        return out

    # --- rollups ----------------------------------------------------------------

    def rollup_pendings(self) -> list[Pending]:
        """`rollup_changes`, signed (the owner saves and commits them)."""
        return [
            self.prepare_write("rollup", k, body, scope) for k, body, scope in self.rollup_changes()
        ]

    def rollup_changes(self) -> list[tuple[str, dict[str, Any] | None, str]]:
        """What brings this node's attestations of its region up to date, as (key, body
        or None for a withdrawal, scope): one rollup per period it recomputed from the
        region's records, a tombstone for a period with nothing left. Nothing unless the
        node is admitted (only admitted nodes attest). The region's attesters sign every
        period; any other admitted node watches (`watching`: it signs only where a
        reader elsewhere would not accept what it computed without it). Reads only: an
        owner may run it in a worker thread while nothing writes."""
        if self.tracker is None or self.rollups is None:
            return []
        adm = self.admission
        if self.origin not in adm.admitted or self.region.count("/") != 2:
            return []
        admitted = self._region_admitted()
        mine = self.rollups.of(self.origin)
        fresh = self._region_rollups(admitted)
        if self.origin not in attesters(admitted, adm.roots):
            held = self.rollups.of_region(self.region, fresh)
            fresh = watching(fresh, mine, held, adm.roots)
        root = self.scope.split("/")[0]
        out: list[tuple[str, dict[str, Any] | None, str]] = []
        for period, body in fresh.items():
            key = rollup_key(self.region, period)
            cur = mine.pop(key, None)
            if cur is None or cur.body != body:
                out.append((key, body, root))
        for key, cur in sorted(mine.items()):
            if cur.body is not None and str(cur.body.get("region")) == self.region:
                out.append((key, None, cur.scope))
        return out

    def rollups_due(
        self, pace: RollupPace, now: float, *, changed: bool, hold: float = WATCH_HOLD
    ) -> list[tuple[str, dict[str, Any] | None, str]]:
        """The rollup changes to sign now (the daemon's and the simnet's attester loop):
        recomputed if the replica `changed` since the last call, else what waited; an
        attester's once they settled, a watcher's after `hold` (`RollupPace.step`).
        Reads only, like `rollup_changes`."""
        changes = self.rollup_changes() if changed else pace.unpublished
        if self.attests():
            return pace.step(changes, now)
        return pace.step(changes, now, hold=hold, signing=self.rollups_signed())

    def rollups_signed(self) -> frozenset[str]:
        """The rollup keys of its region this node signs now (a live rollup)."""
        if self.rollups is None:
            return frozenset()
        return frozenset(
            k
            for k, r in self.rollups.of(self.origin).items()
            if r.body is not None and r.body.get("region") == self.region
        )

    def attests(self) -> bool:
        """Whether this node is one of its region's attesters (else it watches, or is
        not admitted)."""
        if self.tracker is None:
            return False
        adm = self.admission
        return self.origin in adm.admitted and self.origin in attesters(
            self._region_admitted(), adm.roots
        )

    def _region_admitted(self) -> list[bytes]:
        adm = self.admission
        return [
            s.node
            for s in adm.standings.values()
            if s.node in adm.admitted and s.scope and model.partition_of(s.scope) == self.region
        ]

    def _region_rollups(self, admitted: list[bytes]) -> dict[str, dict[str, Any]]:
        """`compute_rollups` of this node's region, kept while the records it counts (by
        their ids) and the region's admitted nodes stay the same."""
        get = self.replica.get
        intents = [
            r
            for r in self.replica.entries([self.region])
            if r.kind in ("need", "capacity") and get(r.origin, r.kind, r.key) is r
        ]
        ids = hashlib.blake2b(b"".join(sorted(r.rid for r in intents)), digest_size=32)
        key = (self.region, ids.digest(), tuple(sorted(admitted)))
        if self._rollups_of is not None and self._rollups_of[0] == key:
            return self._rollups_of[1]
        shared = self._rollup_cache
        fresh = shared.get(key) if shared is not None else None
        if fresh is None:
            fresh = compute_rollups(intents, self.region, admitted)
            if shared is not None:
                if len(shared) >= ROLLUP_CACHE:
                    del shared[next(iter(shared))]  # the oldest
                shared[key] = fresh
        self._rollups_of = (key, fresh)
        return fresh

    def rollup_view(self) -> RollupView:
        """The other regions' rollups as this node sees them.

        Raises:
            LocalError: admission is off (no charter).
        """
        if self.rollups is None:
            raise LocalError("this node has no charter: rollups are off")
        return RollupView(self.rollups.records(), self.admission.roots, self.region)

    def node_record_pending(self, name: str, kind: str) -> Pending | None:
        """The node record to write at start, if it changed."""
        body = {"name": name, "kind": kind, "scope": self.scope}
        current = self.replica.get(self.origin, "node", "self")
        if current is not None and current.body == body:
            return None
        return self.prepare_write("node", "self", body)

    # --- records from peers ----------------------------------------------------

    def screen(
        self,
        raws: Sequence[bytes],
        source: Source,
        *,
        partition: str | None = None,
        partitions: Iterable[str] | None = None,
        evidence: Sequence[tuple[bytes, bytes]] = (),
        received: int | None = None,
    ) -> Screened:
        """Every check but the signature, record by record; changes nothing.

        Args:
            raws: records as received.
            source: gossip, sync or submit.
            partition: gossip: the topic's partition, which every record must be in.
            partitions: sync: the session's partitions, which every record must be in.
            evidence: sync: raw evidence pairs.
            received: sync: how many records the session's message brought in all, when
                the owner screens them in parts (default: ``len(raws)``).
        """
        s = Screened(source, partition)
        # Records a sync brought are likely missing around us too (a healed
        # partition): gossip spreads them in seconds, where sync rounds would take one
        # interval per hop. A large catch-up is what a node that was away missed; its
        # peers hold those records, so they are not re-sent. The rule counts what the
        # message brought, so an owner that merges it in parts decides alike.
        brought = len(raws) if received is None else received
        s.regossip = source is Source.SUBMIT or (
            source is Source.SYNC and brought <= REGOSSIP_LIMIT
        )
        allowed = self._followed if partitions is None else self._followed & set(partitions)
        # Stage by stage (decode all, then check all; `verify` and `apply` follow):
        # each stage's code and data stay in the CPU's caches for the whole batch.
        # Every record is judged on its own, so the outcome is the same as record by
        # record.
        decoded = []
        decode = self._decode
        for raw in raws:
            try:
                decoded.append(decode(raw))
            except Rejected as exc:
                s.rejected[exc.reason] += 1
        passed = []
        replica = self.replica
        partition_of, seen_as, check = replica.partition_of, replica.seen, replica.check
        for r in decoded:
            try:
                p = partition_of(r.scope)
                if partition is not None and p != partition:
                    raise Rejected("wrong-topic", f"a record of {p} on the topic of {partition}")
                if p not in allowed:
                    raise Rejected("not-followed", f"a record of partition {p}")
                seen = seen_as(r, p)
                if seen:
                    if seen == HELD:
                        s.known += 1
                    else:  # VERIFIED
                        s.preverified.append(r)
                    continue
                check(r)
            except Rejected as exc:
                s.rejected[exc.reason] += 1
                continue
            passed.append(r)
        # Who may place records here, as it would be with this batch's own charter,
        # node, endorsement, invite, application and member records: a joining node
        # gets an endorsement and the records it vouches for in one message. `apply`
        # decides again from the verified ones.
        s.candidates = self._admitted_only(s, passed)
        for raw_a, raw_b in evidence:
            try:
                a, b = self._decode(raw_a), self._decode(raw_b)
                if a.origin != b.origin or a.seq != b.seq or a.rid == b.rid:
                    raise Rejected("bad-evidence", "not two records of one origin and seq")
                pa = self.replica.partition_of(a.scope)
                if pa != self.replica.partition_of(b.scope) or pa not in allowed:
                    raise Rejected("bad-evidence", "evidence outside the session's partitions")
                self.replica.check(a)
                self.replica.check(b)
                if self.tracker is not None and not self.tracker.state.counts(a.origin):
                    raise Rejected("not-admitted", "evidence against an origin not admitted")
            except Rejected as exc:
                s.rejected[exc.reason] += 1
                continue
            s.evidence.append((a, b))
        return s

    def _admitted_only(self, s: Screened, records: list[Record]) -> list[Record]:
        if self.tracker is None or self.rollups is None:
            return records
        adm = self.tracker.preview(records)
        out = []
        batch_listed = None
        for r in records:
            if r.kind == "rollup" and r.origin not in adm.admitted:
                if batch_listed is None:
                    batch_listed = listed_by(records, adm.roots)
                ok = self.rollups.allows(r, adm.roots, batch_listed=batch_listed)
            else:
                ok = adm.allows(r)
            if ok:
                out.append(r)
            else:
                s.rejected["not-admitted"] += 1
        return out

    def verify(self, s: Screened) -> None:
        """Check the signatures of what `screen` passed (pure: safe in a worker thread)."""
        if s.doomed:  # all or nothing: spend no verification on it
            s.candidates, s.preverified, s.evidence, s.verified = [], [], [], True
            return
        good = []
        for r in s.candidates:
            if self._verify(r):
                good.append(r)
            else:
                s.rejected["bad-signature"] += 1
        s.candidates = good
        pairs = []
        for a, b in s.evidence:
            if self._verify(a) and self._verify(b):
                pairs.append((a, b))
            else:
                s.rejected["bad-evidence"] += 1
        s.evidence = pairs
        s.verified = True

    def apply(self, s: Screened) -> IngestResult:
        """Merge verified records; gossip: nothing at all if any record was bad.

        Raises:
            LocalError: `verify` was not run first (a bug in the owner).
        """
        if not s.verified:
            raise LocalError("apply() before verify()")
        if self.tracker is not None and any(r.kind in TRACKED_KINDS for r in s.candidates):
            # Screening counted on this batch's trust records; only the verified count.
            s.candidates = self._admitted_only(s, s.candidates)
        if s.source is Source.GOSSIP and s.rejected:
            # All or nothing; only a fault of the forwarder is penalised.
            blamed = not set(s.rejected) <= NOT_BLAMED
            verdict = Verdict.REJECT if blamed else Verdict.RETRY
            return IngestResult([], [], [], s.rejected, s.known, verdict)
        stored: list[Record] = []
        changed: list[Record] = []
        merge = self.replica.merge_verified
        known = 0
        for r in (*s.preverified, *s.candidates) if s.preverified else s.candidates:
            outcome = merge(r)
            if outcome in STORED:  # `outcome.stored`, by identity
                stored.append(r)
                if outcome is not SHADOW:
                    changed.append(r)
                elif self.tracker is not None:
                    self.tracker.held_at_root(r)
            else:
                known += 1
        s.known += known
        if stored:
            self.clock.observe(max([r.hlc for r in stored]))
        for a, b in s.evidence:
            self.replica.observe_evidence(a, b)
        new_evidence = self.replica.take_new_evidence()
        self._recount()
        if s.regossip:
            self.outbox.extend(stored)
        verdict = Verdict.ACCEPT if stored else Verdict.IGNORE
        return IngestResult(stored, changed, new_evidence, s.rejected, s.known, verdict)

    def ingest(
        self,
        raws: Sequence[bytes],
        source: Source,
        *,
        partition: str | None = None,
        partitions: Iterable[str] | None = None,
        evidence: Sequence[tuple[bytes, bytes]] = (),
    ) -> IngestResult:
        """All stages at once, persisting through the injected store (submitted records
        durably, before they are merged)."""
        s = self.screen(raws, source, partition=partition, partitions=partitions, evidence=evidence)
        self.verify(s)
        submitted = source is Source.SUBMIT
        if submitted and s.to_save:
            self.store.save(s.to_save, meta={"hlc": self.clock.last}, durable=True)
        result = self.apply(s)
        stored = [] if submitted else result.stored
        if stored or result.evidence:
            self.store.save(
                stored, evidence=result.evidence, meta={"hlc": self.clock.last}, durable=False
            )
        return result

    def ingest_received(self, received: Received, partitions: Iterable[str]) -> IngestResult:
        """What a sync session received, merged (synchronous owners: simnet, tests)."""
        return self.ingest(
            received.records, Source.SYNC, partitions=partitions, evidence=received.evidence
        )

    def validate_gossip(self, partition: str, data: bytes) -> IngestResult:
        """A gossip message on the topic of `partition`, all stages, persisted."""
        try:
            raws = self._split(data)
        except Rejected as exc:
            return IngestResult([], [], [], Counter({exc.reason: 1}), 0, Verdict.REJECT)
        return self.ingest(raws, Source.GOSSIP, partition=partition)

    # --- gossip out ------------------------------------------------------------

    def take_batches(self) -> list[tuple[str, bytes]]:
        """The outbox as gossip messages (partition, encoded batch).

        Only partitions this node follows: it publishes on no other topic.
        """
        by_partition: dict[str, list[Record]] = {}
        for r in self.outbox:
            p = self.replica.partition_of(r.scope)
            if self.follows(p):
                by_partition.setdefault(p, []).append(r)
        self.outbox = []
        return [(p, data) for p, recs in by_partition.items() for data in batches(recs)]

    # --- reading ---------------------------------------------------------------

    def digest(self) -> bytes:
        return self.replica.digest(self.partitions)


__all__ = [
    "BATCH_VERSION",
    "MAX_BATCH_BYTES",
    "NOT_BLAMED",
    "REGOSSIP_LIMIT",
    "IngestResult",
    "NoStore",
    "NodeCore",
    "Pending",
    "RecordStore",
    "Screened",
    "Source",
    "Verdict",
    "batches",
    "decode_batch",
    "encode_batch",
]
