"""A node's local state: its core, store and balance index, and what members ask of it.

`NodeState` builds the bodies of local writes (needs, capacities, items, withdrawals)
and reads the replica for the CLI (catalog, intents, balances). The rules themselves
(numbering, signing, merging, ingesting) are `node.core.NodeCore`'s. Every write
helper comes in two forms: `*_pending` returns a signed `Pending` write for an owner
that saves it asynchronously (the daemon), the plain form saves it durably through
the store and commits it at once (tests, offline tools).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from node import model
from node.config import Config, solo_charter
from node.core import IngestResult, NodeCore, Pending, Source
from node.crdt.kinds import KindIndex
from node.crdt.record import Record
from node.crdt.replica import Replica
from node.errors import LocalError, ValidationError
from node.governance.admission import Charter
from node.identity import Identity
from node.planning import BalanceIndex, BalanceRow
from node.planning.balance import INTENT_KINDS, Entry, as_rows
from node.planning.commitments import COMMIT_KIND_NAMES, Commitment, commitments
from node.planning.rollup import RollupView, scope_entries
from node.store import Store

# A region's figures from a rollup signed longer ago than this are marked stale (an
# attester refreshes whenever its region changes; an old one means they went quiet).
STALE_AFTER_MS = 24 * 3600 * 1000


@dataclass
class BalanceLevel:
    """One scope of a balance drill-down: its rows (as entries), what they rest on,
    and how many scopes right below it a page left out after the ones listed."""

    scope: str
    level: int
    entries: list[Entry]
    basis: dict[str, Any]
    more: int = 0

    @property
    def rows(self) -> list[BalanceRow]:
        return as_rows(self.scope, self.entries)

    def as_json(self) -> dict[str, Any]:
        out = {
            "scope": self.scope,
            "level": self.level,
            "rows": [r.as_json() for r in self.rows],
            "basis": self.basis,
        }
        if self.more:
            out["more"] = self.more
        return out


class NodeState:
    """The node's replica with its durable store.

    Args:
        identity: the node key.
        config: the node's settings.
        store: the open database (loaded here).
        now_ms: injected wall-clock milliseconds.
        rng: randomness for new ids (system randomness by default).
        resident: the state lives as long as the process (the daemon): the store is
            loaded with `Store.load_into(resident=True)`.
    """

    def __init__(
        self,
        identity: Identity,
        config: Config,
        store: Store,
        now_ms: Callable[[], int],
        rng: random.Random | None = None,
        *,
        resident: bool = False,
    ) -> None:
        self.identity = identity
        self.config = config
        self.store = store
        self.replica = Replica(now_ms=now_ms)
        self.loaded = store.load_into(self.replica, resident=resident)
        # The kinds read whole by views (the balance's commitments, node scopes, caps):
        # a few hundred records beside a federation's ~100,000 needs and capacities.
        self.kinds = KindIndex(("node", "proposal", "item", *COMMIT_KIND_NAMES))
        self.kinds.add_all(self.replica.records())
        self.replica.add_listener(self.kinds)
        self.index = BalanceIndex()
        self.charter = Charter.from_body(
            config.charter or solo_charter(config.name, identity.public)
        )
        self.core = NodeCore(
            identity.public,
            identity.signer(),
            config.scope,
            self.replica,
            now_ms,
            rng=rng or random.SystemRandom(),
            store=store,
            seq=store.get_meta("seq"),
            hlc=store.get_meta("hlc"),
            charter=self.charter,
            index=self.index,
        )
        self.partitions = self.core.partitions
        self.clock = self.core.clock
        for pending in (
            self.node_record_pending(),
            self.charter_pending(),
            self.application_pending(),
        ):
            if pending is not None:
                self.save_and_commit(pending)
        redeemed = self.core.redeem_invites()
        if redeemed:
            self.save_and_commit_all(redeemed)

    @property
    def me(self) -> bytes:
        return self.identity.public

    @property
    def outbox(self) -> list[Record]:
        return self.core.outbox

    # --- local writes ----------------------------------------------------------

    def prepare(
        self, kind: str, key: str, body: dict[str, Any] | None, scope: str | None = None
    ) -> Pending:
        return self.core.prepare_write(kind, key, body, scope)

    def save_and_commit(self, pending: Pending) -> Record:
        """Save durably (blocking), then merge and queue."""
        return self.save_and_commit_all([pending])[-1]

    def save_and_commit_all(
        self, pendings: Sequence[Pending], foreign: Sequence[Record] = ()
    ) -> list[Record]:
        """Save several writes in one durable transaction (blocking), then commit them."""
        records = [r for p in pendings for r in p.records]
        self.store.save([*records, *foreign], meta=self.write_meta(), durable=True)
        return self.commit_saved(pendings, foreign)

    def write_meta(self) -> dict[str, int]:
        """What is saved with local writes: the seq and clock to continue from."""
        return {"seq": self.core.seq, "hlc": self.core.clock.last}

    def commit_saved(
        self, pendings: Sequence[Pending], foreign: Sequence[Record] = ()
    ) -> list[Record]:
        """Merge and queue writes the store holds now; returns the own records asked for.

        `foreign` are records this node signed with other keys (an import's demo
        voters): merged as verified and gossiped.
        """
        own = [self.core.commit(p) for p in pendings]
        for r in foreign:
            if self.replica.insert_verified(r).stored:
                self.core.outbox.append(r)
        return own

    def write(
        self, kind: str, key: str, body: dict[str, Any] | None, scope: str | None = None
    ) -> Record:
        """Validate, sign, store durably, merge and queue one record of this node.

        Raises:
            LocalError: the record is invalid (the message says how to fix it).
        """
        return self.save_and_commit(self.prepare(kind, key, body, scope))

    def node_record_pending(self) -> Pending | None:
        return self.core.node_record_pending(self.config.name, self.config.kind)

    def charter_pending(self) -> Pending | None:
        """A founder's signature of its federation's charter, if not written yet."""
        if self.me not in self.charter.founders:
            return None
        if self.replica.get(self.me, "charter", self.charter.id) is not None:
            return None
        top = self.config.scope.split("/")[0]
        return self.prepare("charter", self.charter.id, self.charter.body(), scope=top)

    def application_pending(self) -> Pending | None:
        """The application of a node that joined by invite, if not written yet."""
        if self.config.application is None:
            return None
        ref, secret = self.config.application
        body = {"invite": ref, "secret": secret}
        current = self.replica.get(self.me, "apply", "self")
        if current is not None and current.body == body:
            return None
        return self.prepare("apply", "self", body)

    def intent_pending(
        self,
        kind: str,
        item: str,
        qty: str,
        unit: str,
        period: str,
        *,
        priority: str | None = None,
        note: str | None = None,
        flex: dict[str, Any] | None = None,
    ) -> Pending:
        """A need or capacity of this node, signed, not yet saved; `flex` adds how far
        it can move (`node.model.plan_kinds`: min, max, subs, use).

        Raises:
            LocalError: invalid input, e.g. a unit of the wrong dimension for the item.
        """
        if kind not in ("need", "capacity"):
            raise LocalError("kind must be need or capacity")
        catalog = self.items()
        if item not in catalog:
            raise LocalError(
                f"unknown item {item!r}; see `allmende item list` or add it with "
                "`allmende item add`"
            )
        u = model.unit(unit)
        if u.dimension != catalog[item].dimension:
            raise ValidationError(
                f"unit {unit} measures {u.dimension}, but {item} is measured in "
                f"{catalog[item].dimension} ({catalog[item].unit})"
            )
        qty = model.normalise_quantity(qty)
        body: dict[str, Any] = {"item": item, "qty": qty, "unit": unit, "period": period}
        if kind == "need":
            body["priority"] = priority or "medium"
        elif priority is not None:
            raise LocalError("capacities have no priority")
        if note:
            body["note"] = note
        if flex:
            body.update(flex)
            for sub, _ratio in body.get("subs") or ():
                if sub not in catalog:
                    raise LocalError(f"unknown substitute item {sub!r}; see `allmende item list`")
            model.validate(kind, "check", self.config.scope, body)
        key = self.core.new_key("n" if kind == "need" else "c", kind)
        return self.prepare(kind, key, body)

    def post_intent(
        self, kind: str, item: str, qty: str, unit: str, period: str, **kw: Any
    ) -> Record:
        """`intent_pending`, saved and committed."""
        return self.save_and_commit(self.intent_pending(kind, item, qty, unit, period, **kw))

    def withdraw_pending(self, kind: str, key: str) -> Pending:
        """A tombstone for one of this node's records.

        Raises:
            LocalError: there is no such record of this node, or it is withdrawn already.
        """
        current = self.replica.get(self.me, kind, key)
        if current is None:
            raise LocalError(f"this node has no {kind} with id {key!r}; see `allmende {kind} list`")
        if current.body is None:
            raise LocalError(f"{kind} {key} is withdrawn already")
        return self.prepare(kind, key, None, scope=current.scope)

    def withdraw(self, kind: str, key: str) -> Record:
        return self.save_and_commit(self.withdraw_pending(kind, key))

    def item_pending(self, item_id: str, name: str, dimension: str) -> Pending:
        existing = self.items().get(item_id)
        if existing is not None:
            raise LocalError(
                f"{item_id} is in the catalog already ({existing.name}, "
                f"{existing.dimension}); pick another id"
            )
        if dimension not in model.DIMENSIONS:
            raise LocalError(
                f"unknown dimension {dimension!r}; known: {', '.join(model.DIMENSIONS)}"
            )
        body = {
            "id": item_id,
            "name": name,
            "dimension": dimension,
            "unit": model.DIMENSIONS[dimension],
        }
        return self.prepare("item", item_id, body, scope=self.config.scope.split("/")[0])

    def add_item(self, item_id: str, name: str, dimension: str) -> Record:
        return self.save_and_commit(self.item_pending(item_id, name, dimension))

    def take_outbox(self) -> list[Record]:
        out, self.core.outbox = self.core.outbox, []
        return out

    # --- records from peers ----------------------------------------------------

    def ingest(self, raws: Sequence[bytes], source: Source = Source.SUBMIT) -> IngestResult:
        """Merge records from elsewhere and store them (blocking; tests, tools); honour
        this node's invites that they redeemed."""
        result = self.core.ingest(raws, source)
        redeemed = self.core.redeem_invites()
        if redeemed:
            self.save_and_commit_all(redeemed)
        return result

    # --- reading ---------------------------------------------------------------

    def items(self) -> dict[str, model.Item]:
        """The catalog: built-in items, then item records (first origin wins a clash)."""
        out = dict(model.STARTER_CATALOG)
        custom = sorted(
            (r for r in self.kinds.records("item") if r.body is not None),
            key=lambda r: r.origin,
        )
        for r in custom:
            b = r.body or {}
            out.setdefault(
                str(b["id"]),
                model.Item(str(b["id"]), str(b["name"]), str(b["dimension"]), str(b["unit"])),
            )
        return out

    def intents(
        self,
        kind: str,
        *,
        scope: str | None = None,
        mine: bool = True,
        withdrawn: bool = False,
    ) -> list[Record]:
        out = [
            r
            for r in self.replica.records(kind)
            if (not mine or r.origin == self.me)
            and (scope is None or model.in_scope(r.scope, scope))
            and (withdrawn or r.body is not None)
        ]
        return sorted(out, key=lambda r: (r.origin != self.me, r.scope, r.seq))

    def balance(
        self,
        scope: str,
        *,
        period: str | None = None,
        item: str | None = None,
        depth: int = 0,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[BalanceLevel]:
        """The balance of `scope` and `depth` levels below it: the node's own region
        from its records, other regions from their accepted rollups, each level saying
        what it rests on.

        Args:
            limit: list at most this many scopes below each scope (None: all).
            offset: skip this many of the scopes right below `scope` (a page of them;
                deeper levels start at their first).

        Returns:
            The levels in drill-down order, each with how many scopes right below it
            are not listed after the page shown (`more`).
        """
        view = self.core.rollup_view()
        region = self.core.region

        stale_before = self.core.now_ms() - STALE_AFTER_MS

        def level_of(s: str, level: int) -> BalanceLevel:
            entries, basis = scope_entries(
                self.index, view, region, s, period=period, item=item, stale_before=stale_before
            )
            return BalanceLevel(s, level, entries, basis)

        top = level_of(scope, 0)
        out = [top]
        frontier = [top]
        for level in range(1, depth + 1):
            nxt = []
            for parent in frontier:
                children = self._children(parent.scope, view)
                start = offset if level == 1 else 0
                shown = children[start:] if limit is None else children[start : start + limit]
                parent.more = len(children) - start - len(shown) if shown else 0
                for child in shown:
                    lv = level_of(child, level)
                    out.append(lv)
                    nxt.append(lv)
            frontier = nxt
        return out

    def _children(self, scope: str, view: RollupView) -> list[str]:
        """Scopes one level below `scope`: from the records held and the regions that
        rollups name."""
        found = set(self.index.children(scope))
        depth = scope.count("/") + 1
        for region in view.regions():
            if model.in_scope(region, scope) and region != scope:
                found.add("/".join(region.split("/")[: depth + 1]))
        return sorted(found)

    def warm_up(self) -> Iterator[None]:
        """Build what the first anti-entropy session and the first balance view would
        otherwise build on their request (the digests of the partitions followed, every
        scope's sums), in short steps: the daemon runs it after start between
        other work, yielding after each step."""
        yield from self.replica.warm_digests(self.partitions)
        yield from self.index.warm()

    def left_out(self, scope: str) -> tuple[int, int]:
        """Needs and capacities under `scope` that this node holds but does not count,
        because their origin is not admitted: (records, nodes)."""
        # Only the origins that do not count are looked at, per partition under (or
        # above) `scope`: a query costs the origins held there, not every record.
        replica = self.replica
        origins: set[bytes] = set()
        records = 0
        for p in replica.partitions():
            if not (model.in_scope(p, scope) or model.in_scope(scope, p)):
                continue
            for origin, part in replica.partition(p).origins.items():
                if self.core.counts(origin):
                    continue
                for r in part.slots.values():
                    if (
                        r.kind in INTENT_KINDS
                        and r.body is not None
                        and model.in_scope(r.scope, scope)
                        and replica.get(origin, r.kind, r.key) is r  # the slot's winner
                    ):
                        records += 1
                        origins.add(origin)
        return records, len(origins)

    def commitments(self) -> list[Commitment]:
        """Every offer held and what became of it, counting admitted nodes and the
        nodes suspended since (`node.planning.commitments`): a track record is about
        what happened, so a suspension does not erase the commitments a node made and
        kept while admitted (the edge takes no new records from it)."""
        held = [r for kind in COMMIT_KIND_NAMES for r in self.kinds.records(kind)]
        adm = self.core.admission
        return commitments(held, adm.admitted | adm.suspended)

    def node_scopes(self) -> dict[str, str]:
        """Each node's scope (key hex -> scope), from the node records held."""
        return {
            r.origin.hex(): str(r.body["scope"])
            for r in self.kinds.records("node")
            if r.body is not None
        }

    def node_names(self) -> dict[bytes, str]:
        return {
            r.origin: str(r.body["name"]) for r in self.kinds.records("node") if r.body is not None
        }


def record_json(r: Record, names: dict[bytes, str] | None = None) -> dict[str, Any]:
    """A record as plain JSON for the CLI and scripts."""
    return {
        "id": r.key,
        "kind": r.kind,
        "origin": r.origin.hex(),
        "origin_name": (names or {}).get(r.origin),
        "scope": r.scope,
        "seq": r.seq,
        "hlc": r.hlc,
        "withdrawn": r.body is None,
        **({} if r.body is None else {k: v for k, v in r.body.items() if not isinstance(v, bytes)}),
    }
