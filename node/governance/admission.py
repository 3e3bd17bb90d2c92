"""Who counts: admission to a federation's regions by endorsement, a pure function of
the records held.

A federation is founded by a charter (`node.model.trust_kinds`): its founders, and the
rule by which a region admits a node. A founder counts once it has signed the charter
(its own `charter` record). Any other node counts in its region (its scope cut to
`model.REGION_DEPTH` segments) once enough admitted nodes of that region endorse it:
at least ``rule.threshold(k)`` of the region's k admitted nodes, Karrot's
``min(3, max(1, ceil(k / 2)))`` by default. The first node of a new region is admitted
by the founders (the threshold of their number): admission is decided region by region
from the records a region's nodes hold -- their region's, and the charter's and the
founders' at the federation's root -- so no node needs another region's records to
know who counts in its own. An endorsement is a live `endorse` record. Invites bring a
newcomer to its first one: an admitted node's `invite` publishes the hash of a secret;
a new node's `apply` that shows the secret is taken by every node (so are its node
record and application, not more), and the inviter, seeing the first such application,
endorses that node and marks the invite used (`NodeCore.redeem_invites`): one use, and
who invited whom is public.

Admission is computed in rounds from the founders: each round admits, in every region,
one node whose endorsements from the nodes admitted so far meet the region's threshold
(the one with the most such endorsements, then the smallest key), until a round
admits nobody. One newcomer per region per round is what makes the threshold bind: a
region of one admitted node admits one newcomer on its word, and a region of three
asks two of them for the fourth, however many nodes its first member endorsed. It
depends on the set of live records only, never on the order they arrived in, so every
replica holding the same records agrees. Withdrawing an endorsement (its tombstone)
can leave a node below the rule: it stops counting.

What admission changes: balances, electorates, assembly pools and committers count
admitted nodes and the members of admitted nodes only; and at the edge a node takes
from a non-admitted origin only its application and node record, and only once an
admitted node vouches for it (`Admission.allows`).
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

from node import model
from node.crdt.record import Record, Slot
from node.errors import ValidationError
from node.governance.errors import GovernanceError
from node.governance.ledger import Ledger, object_id
from node.governance.tally import results
from node.keys import peer_id_of

__all__ = [
    "INVITE_PREFIX",
    "MEMBER_KINDS",
    "TRACKED_KINDS",
    "Admission",
    "AdmissionTracker",
    "Charter",
    "InviteCode",
    "Rule",
    "Standing",
    "Status",
    "admit",
    "redeems",
]

INVITE_PREFIX = "allmende-invite-1:"
MAX_INVITE_CODE = 8192

# Kinds a member signs with the member's own key (node.governance.member_sign).
MEMBER_KINDS = frozenset(
    {"vote", "volunteer", "comment", "statement", "reaction", "amendment"}  # + deliberation
)
# Kinds admission is computed from (proposals and their closes: a region's decisions).
TRACKED_KINDS = frozenset(
    {"charter", "node", "endorse", "invite", "apply", "member", "proposal", "close", "closeset"}
)


@dataclass(frozen=True)
class Rule:
    """How many endorsements a region asks of a newcomer: ``min(cap, max(1,
    ceil(active * num / den)))`` of its `active` admitted nodes."""

    cap: int = 3
    num: int = 1
    den: int = 2

    def threshold(self, active: int) -> int:
        return min(self.cap, max(1, -(-active * self.num // self.den)))


@dataclass(frozen=True)
class Charter:
    """A federation's charter; its hash is the federation id.

    Attributes:
        name: the federation's name.
        founders: node keys, sorted.
        rule: the admission rule.
    """

    name: str
    founders: tuple[bytes, ...]
    rule: Rule = Rule()

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "founders": [f.hex() for f in self.founders],
            "rule": {"cap": self.rule.cap, "num": self.rule.num, "den": self.rule.den},
        }

    @property
    def id(self) -> str:
        return model.federation_id(self.body())

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Charter:
        """Raises GovernanceError: the body is not a valid charter."""
        try:
            model.check_charter(body)
        except ValidationError as exc:
            raise GovernanceError(f"not a valid charter: {exc}") from None
        r = body["rule"]
        return cls(
            str(body["name"]),
            tuple(bytes.fromhex(f) for f in body["founders"]),
            Rule(int(r["cap"]), int(r["num"]), int(r["den"])),
        )

    @classmethod
    def of(cls, name: str, founders: Iterable[bytes], rule: Rule = Rule()) -> Charter:
        """A charter for `founders` (sorted and checked here).

        Raises:
            GovernanceError: too many founders, a bad name or rule.
        """
        return cls.from_body(cls(name, tuple(sorted(set(founders))), rule).body())


class Status(enum.Enum):
    ADMITTED = "admitted"
    PENDING = "pending"
    SUSPENDED = "suspended"  # by a decision of its region


@dataclass(frozen=True)
class Standing:
    """One node's place in the federation, with what it rests on.

    Attributes:
        node: its key.
        scope: the scope of its live node record (None if none is held).
        status: admitted or pending.
        founder: a founder that signed the charter.
        endorsers: the admitted nodes that endorse it, sorted.
        needed: endorsements its region asks for (0 for a founder; for a pending node
            with nobody to endorse it, the rule applied to none).
        invited_by: whose invite brought it (the invite the inviter marked used).
    """

    node: bytes
    scope: str | None
    status: Status
    founder: bool
    endorsers: tuple[bytes, ...]
    needed: int
    invited_by: bytes | None


@dataclass(frozen=True)
class Admission:
    """The admission state of a federation as one replica's records decide it."""

    charter: Charter
    admitted: frozenset[bytes]
    standings: Mapping[bytes, Standing]
    sponsored: frozenset[bytes]  # pending, but vouched for by an admitted node
    members: frozenset[bytes]  # member keys that a live member record of an admitted node names
    open_invites: Mapping[tuple[bytes, str], str] = field(
        default_factory=dict
    )  # (admitted inviter, key) -> secret hash, of invites not used yet
    # The nodes every replica trusts alike, whatever its region: the founders who
    # signed and the nodes a founder vouches for at the federation's root. A rollup of
    # a region counts only with a root among its signers, and a region's attesters
    # are drawn from these first, so that every reader finds one among them.
    roots: frozenset[bytes] = frozenset()
    # Nodes admitted until a decision of their region suspended them: what they did
    # while admitted stays in the record (track records count it), their new records
    # and their needs and capacities do not count.
    suspended: frozenset[bytes] = frozenset()
    # The founders whose signature of the charter is held at the federation's root,
    # whatever their region decided of them (the same on every replica).
    signed: frozenset[bytes] = frozenset()

    def is_admitted(self, node: bytes) -> bool:
        return node in self.admitted

    def counts(self, origin: bytes) -> bool:
        """An admitted node, or a member of one: whose records count."""
        return origin in self.admitted or origin in self.members

    def allows(self, r: Record) -> bool:
        """Whether a record may be stored at all: the edge's quota for the others.

        An admitted node may write anything; a member of one the kinds a member signs;
        a founder its charter, and once it signed its endorsements at the federation's
        root, even where its region suspended it (they make roots, which every replica
        must hold alike);
        a node an admitted node vouches for, its node record and application; and an
        application that redeems an open invite is taken so that the vouching can
        begin. Everything else from a stranger is refused.
        """
        o = r.origin
        if o in self.admitted:
            return True
        if r.kind in MEMBER_KINDS:
            return o in self.members
        if r.kind == "charter":
            return o in self.charter.founders
        if r.kind == "endorse" and "/" not in r.scope:
            return o in self.signed
        if r.kind == "node":
            return o in self.sponsored
        if r.kind == "apply":
            return o in self.sponsored or self._redeems(r)
        return False

    def _redeems(self, r: Record) -> bool:
        return redeems(self, r)


def redeems(adm: Admission, r: Record) -> bool:
    """Whether application `r` shows the secret of an open invite of an admitted node."""
    invite = _redeemed_invite(r)
    if invite is None:
        return False
    return adm.open_invites.get((invite[0], invite[1])) == invite[2]


def _redeemed_invite(r: Record) -> tuple[bytes, str, str] | None:
    """(inviter, invite key, hash of the secret shown) of a live application."""
    if r.body is None:
        return None
    try:
        inviter, key = model.parse_invite_ref(r.body.get("invite"))
        secret = bytes.fromhex(str(r.body.get("secret")))
    except (ValidationError, ValueError):
        return None
    return bytes.fromhex(inviter), key, model.invite_hash(secret)


def _region(scope: str) -> str:
    return model.partition_of(scope)


def admit(
    charter: Charter, records: Iterable[Record], at_root: Iterable[Record] | None = None
) -> Admission:
    """Decide who is admitted, from slot winners of any kinds (others are ignored).

    Args:
        charter: the federation's charter.
        records: what a replica holds (one record per slot, tombstones included).
        at_root: the founders' endorsements held at the federation's root, the newest
            of each slot there (`AdmissionTracker` keeps them); default: those among
            `records`. A slot's winner may lie in a region's partition that only the
            region holds, where every replica holds the root's.
    """
    records_list = [r for r in records if r.kind in TRACKED_KINDS]
    live: dict[str, list[Record]] = {k: [] for k in TRACKED_KINDS}
    for r in records_list:
        if r.body is not None:
            live[r.kind].append(r)
    fid = charter.id
    founders = set(charter.founders)
    signed = {
        r.origin
        for r in live["charter"]
        if r.origin in founders and r.key == fid and "/" not in r.scope
    }
    scopes = {r.origin: str(r.body["scope"]) for r in live["node"] if r.key == "self" and r.body}
    endorsed: dict[bytes, set[bytes]] = {}
    for r in live["endorse"]:
        endorsed.setdefault(bytes.fromhex(r.key), set()).add(r.origin)
    invites: dict[tuple[bytes, str], str] = {}
    invited_by: dict[bytes, bytes] = {}
    for r in live["invite"]:
        b = r.body or {}
        if "used_by" in b:
            invited_by.setdefault(bytes.fromhex(str(b["used_by"])), r.origin)
        else:
            invites[(r.origin, r.key)] = str(b["hash"])

    admitted = _rounds(charter.rule, signed, scopes, endorsed, {}, set())
    signed_at_root = frozenset(signed)  # before any region's decisions (see roots)
    suspended, rules = _decisions(records_list, live["proposal"], admitted, scopes)
    was_admitted = suspended & admitted
    if suspended or rules:
        # A region's decisions, tallied with the admission before them, apply once.
        signed -= suspended
        admitted = _rounds(charter.rule, signed, scopes, endorsed, rules, suspended)

    by_region = _admitted_by_region(admitted, scopes)
    standings: dict[bytes, Standing] = {}
    sponsored = set()
    for n in sorted(set(scopes) | signed | set(endorsed)):
        scope = scopes.get(n)
        counting = (
            _counting_endorsers(scope, by_region, signed) - {n} if scope is not None else set()
        )
        rule = rules.get(_region(scope), charter.rule) if scope is not None else charter.rule
        endorsers = tuple(sorted((admitted & endorsed.get(n, set())) - {n}))
        if n not in admitted and any(e in admitted for e in endorsed.get(n, ())):
            sponsored.add(n)
        standings[n] = Standing(
            node=n,
            scope=scope,
            status=Status.ADMITTED
            if n in admitted
            else (Status.SUSPENDED if n in suspended else Status.PENDING),
            founder=n in signed,
            endorsers=endorsers,
            needed=0 if n in signed else rule.threshold(len(counting)),
            invited_by=invited_by.get(n),
        )
    members = frozenset(
        bytes.fromhex(r.key)
        for r in live["member"]
        if r.origin in admitted and model.matches(model.HEX64, r.key)
    )
    open_invites = {invite: hashed for invite, hashed in invites.items() if invite[0] in admitted}
    # Roots from what every replica holds alike: the founders who signed and the nodes
    # they vouch for at the federation's root (their endorsements of another region's
    # first node), as many founders as the charter's rule asks of such a node; never
    # a region's own decisions or endorsements, which only that region holds.
    vouches: dict[bytes, int] = {}
    for r in live["endorse"] if at_root is None else at_root:
        if r.body is not None and r.origin in signed_at_root and "/" not in r.scope:
            n = bytes.fromhex(r.key)
            vouches[n] = vouches.get(n, 0) + 1
    need = charter.rule.threshold(len(signed_at_root))
    vouched_at_root = {n for n, k in vouches.items() if k >= need}
    state = Admission(
        charter,
        frozenset(admitted),
        standings,
        frozenset(sponsored),
        members,
        open_invites,
        frozenset(signed_at_root | vouched_at_root),
        frozenset(was_admitted - admitted),
        signed_at_root,
    )
    # A newcomer whose application shows an open invite's secret may place its node
    # record before the inviter's endorsement arrives.
    shown = {r.origin for r in live["apply"] if redeems(state, r)} - state.admitted
    if shown - state.sponsored:
        state = replace(state, sponsored=state.sponsored | shown)
    return state


def _rounds(
    default: Rule,
    founders: set[bytes],
    scopes: Mapping[bytes, str],
    endorsed: Mapping[bytes, set[bytes]],
    rules: Mapping[str, Rule],
    excluded: set[bytes],
) -> set[bytes]:
    """Admit from the founders, one newcomer per region per round (see the module)."""
    admitted = set(founders)
    candidates = sorted(n for n in scopes if n not in admitted and n not in excluded)
    while True:
        by_region = _admitted_by_region(admitted, scopes)
        best: dict[str, tuple[int, bytes]] = {}  # region -> (endorsements, node)
        for n in candidates:
            if n in admitted:
                continue
            counting = _counting_endorsers(scopes[n], by_region, founders)
            if not counting:
                continue
            have = len(counting & endorsed.get(n, set()))
            region = _region(scopes[n])
            if have >= rules.get(region, default).threshold(len(counting)):
                cur = best.get(region)
                if cur is None or have > cur[0] or (have == cur[0] and n < cur[1]):
                    best[region] = (have, n)
        if not best:
            return admitted
        admitted.update(n for _, n in best.values())


def _decisions(
    records: list[Record],
    proposals: list[Record],
    admitted: set[bytes],
    scopes: Mapping[bytes, str],
) -> tuple[set[bytes], dict[str, Rule]]:
    """The suspensions and rules a region decided: closed `admission` proposals of
    admitted nodes whose final result is ``yes``, tallied with this admission. Of
    several rule decisions for one region the one that closes last counts (then the
    larger id)."""
    decided = [
        p
        for p in proposals
        if p.body is not None and "admission" in p.body and p.origin in admitted
    ]
    if not decided:
        return set(), {}
    ledger = Ledger(records, frozenset(admitted))
    suspended: set[bytes] = set()
    latest: dict[str, tuple[int, str, Rule]] = {}
    for p in decided:
        body: dict[str, Any] = dict(p.body or {})
        pid = object_id(p.origin, p.key)
        try:
            res = results(ledger, pid, int(body["closes"]))
        except GovernanceError:
            continue
        if res.status != "final" or res.winners != ("yes",):
            continue
        region = str(body["electorate"])
        decision: dict[str, Any] = body["admission"]
        if "suspend" in decision:
            node = bytes.fromhex(str(decision["suspend"]))
            if scopes.get(node) is not None and _region(scopes[node]) == region:
                suspended.add(node)
        else:
            r = decision["rule"]
            rule = Rule(int(r["cap"]), int(r["num"]), int(r["den"]))
            key = (int(body["closes"]), pid)
            if region not in latest or key > latest[region][:2]:
                latest[region] = (*key, rule)
    return suspended, {region: rule for region, (_, _, rule) in latest.items()}


def _admitted_by_region(admitted: set[bytes], scopes: Mapping[bytes, str]) -> dict[str, set[bytes]]:
    """Admitted nodes by region (nodes whose node record is not held have none)."""
    out: dict[str, set[bytes]] = {}
    for a in admitted:
        scope = scopes.get(a)
        if scope is not None:
            out.setdefault(_region(scope), set()).add(a)
    return out


def _counting_endorsers(
    scope: str, by_region: Mapping[str, set[bytes]], founders: set[bytes]
) -> set[bytes]:
    """The admitted nodes whose endorsements count for a node of `scope`: those of its
    region, or, in a region with none yet, the founders who signed the charter."""
    return set(by_region.get(_region(scope)) or founders)


class AdmissionTracker:
    """The admission state of a replica, kept current: a replica listener that collects
    the records admission depends on and recomputes when one of them changed.

    Args:
        charter: the federation's charter.
    """

    def __init__(self, charter: Charter) -> None:
        self.charter = charter
        self._records: dict[Slot, Record] = {}
        # per slot, the newest endorsement held at the federation's root, even where a
        # newer record of the slot lies in a region's partition (what every replica
        # holds alike: the roots are made of these)
        self._at_root: dict[Slot, Record] = {}
        self._state: Admission | None = None
        self.recomputed = 0

    def __call__(self, old: Record | None, new: Record) -> None:
        if new.kind in TRACKED_KINDS:
            self._records[new.slot] = new
            self._state = None
            self.held_at_root(new)

    def held_at_root(self, r: Record) -> None:
        """Note a record stored at the federation's root that may win no slot (a
        replica's `SHADOW`)."""
        if r.kind == "endorse" and "/" not in r.scope and _newer(r, self._at_root.get(r.slot)):
            self._at_root[r.slot] = r
            self._state = None

    def of_kind(self, kind: str) -> list[Record]:
        """The held records of one tracked kind (slot winners)."""
        return [r for r in self._records.values() if r.kind == kind]

    def load(self, records: Iterable[Record]) -> None:
        for r in records:
            self(None, r)

    def preview(self, records: Iterable[Record]) -> Admission:
        """The state as it would be with `records` merged too (those of the tracked
        kinds that would win their slots): what a batch means for its own records."""
        tracked = [r for r in records if r.kind in TRACKED_KINDS]
        if not tracked:
            return self.state
        slots = dict(self._records)
        at_root = dict(self._at_root)
        for r in tracked:
            if _newer(r, slots.get(r.slot)):
                slots[r.slot] = r
            if r.kind == "endorse" and "/" not in r.scope and _newer(r, at_root.get(r.slot)):
                at_root[r.slot] = r
        return admit(self.charter, slots.values(), at_root.values())

    @property
    def state(self) -> Admission:
        if self._state is None:
            self._state = admit(self.charter, self._records.values(), self._at_root.values())
            self.recomputed += 1
        return self._state


def _newer(r: Record, cur: Record | None) -> bool:
    return cur is None or r.seq > cur.seq or (r.seq == cur.seq and r.rid < cur.rid)


@dataclass(frozen=True)
class InviteCode:
    """What an invite code carries: the federation's charter (so the new node knows
    whom to trust before it hears from anyone), where to reach the inviter, the invite
    it redeems and the secret that redeems it.
    """

    charter: Charter
    address: str  # the inviter's multiaddr, with /p2p/<peer id>
    invite: str  # "<inviter key hex>.<invite key>"
    secret: bytes

    def encode(self) -> str:
        data = msgpack.packb(
            [1, self.charter.body(), self.address, self.invite, self.secret], use_bin_type=True
        )
        return INVITE_PREFIX + base64.urlsafe_b64encode(data).decode().rstrip("=")

    @classmethod
    def decode(cls, code: str) -> InviteCode:
        """Raises GovernanceError: not an invite code of this version."""
        code = code.strip()
        if not code.startswith(INVITE_PREFIX) or len(code) > MAX_INVITE_CODE:
            raise GovernanceError(
                f"not an invite code (it starts with {INVITE_PREFIX!r}; copy it whole)"
            )
        text = code[len(INVITE_PREFIX) :]
        try:
            data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            fields = msgpack.unpackb(data, raw=False, max_str_len=4096, max_bin_len=64)
        except (binascii.Error, ValueError, msgpack.ExtraData, msgpack.FormatError):
            raise GovernanceError("the invite code is damaged; copy it whole") from None
        if not (isinstance(fields, list) and len(fields) == 5 and fields[0] == 1):
            raise GovernanceError("the invite code is damaged or of another version")
        _, body, address, invite, secret = fields
        if not isinstance(body, dict) or not isinstance(address, str):
            raise GovernanceError("the invite code is damaged")
        charter = Charter.from_body(body)
        try:
            inviter, _ = model.parse_invite_ref(invite)
        except ValidationError as exc:
            raise GovernanceError(f"the invite code is damaged: {exc}") from None
        if not address.endswith("/p2p/" + peer_id_of(bytes.fromhex(inviter))):
            raise GovernanceError("the invite code's address is not the inviter's")
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise GovernanceError("the invite code is damaged (its secret)")
        return cls(charter, address, invite, secret)
