"""A node's local state: identity, replica, store and balance index, and its writes.

Every local write is validated, signed with the next seq, stored durably, merged,
then queued for gossip: what a caller is told was saved survives a `kill -9`.
Records from peers go through `ingest`, which merges and stores them in one
transaction. Synchronous and I/O-light; the daemon drives it from trio.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from node import model
from node.clock import HybridClock
from node.config import Config
from node.crdt.record import Record, sign_record
from node.crdt.replica import Replica
from node.errors import LocalError, Rejected, ValidationError
from node.identity import Identity
from node.planning import BalanceIndex, BalanceRow
from node.store import Store

MAX_BATCH_BYTES = 256 * 1024
REGOSSIP_LIMIT = 1000  # records merged by one sync that are gossiped on (see daemon)
_ID_CHARS = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: ids are read aloud
BATCH_VERSION = 1


def encode_batch(raws: Sequence[bytes]) -> bytes:
    """A gossip message: ``[1, [record, ...]]``."""
    data: bytes = msgpack.packb([BATCH_VERSION, list(raws)], use_bin_type=True)
    return data


def decode_batch(data: bytes) -> list[bytes]:
    """Parse a gossip message into raw records.

    Raises:
        Rejected: oversize or malformed.
    """
    if len(data) > MAX_BATCH_BYTES + 1024:
        raise Rejected("oversize", f"gossip message of {len(data)} bytes")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            max_bin_len=MAX_BATCH_BYTES,
            max_str_len=1024,
            max_array_len=10_000,
            max_map_len=0,
            max_ext_len=0,
        )
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        UnicodeDecodeError,
    ) as exc:
        raise Rejected(
            "malformed", f"gossip message is not msgpack ({type(exc).__name__})"
        ) from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or value[0] != BATCH_VERSION
        or not isinstance(value[1], list)
        or not all(isinstance(r, bytes) for r in value[1])
    ):
        raise Rejected("malformed", "gossip message is not [1, [records]]")
    return value[1]


def batches(records: Iterable[Record]) -> list[bytes]:
    """Pack records into gossip messages of at most MAX_BATCH_BYTES."""
    out: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for r in records:
        if cur and size + len(r.raw) + 8 > MAX_BATCH_BYTES:
            out.append(encode_batch(cur))
            cur, size = [], 0
        cur.append(r.raw)
        size += len(r.raw) + 8
    if cur:
        out.append(encode_batch(cur))
    return out


@dataclass(frozen=True)
class IngestResult:
    changed: list[Record]
    rejected: list[str]  # reasons
    known: int  # duplicates and stale records


class NodeState:
    """The node's replica with its durable store.

    Args:
        identity: the node key.
        config: the node's settings.
        store: the open database (loaded here).
        now_ms: injected wall-clock milliseconds.
    """

    def __init__(
        self,
        identity: Identity,
        config: Config,
        store: Store,
        now_ms: Callable[[], int],
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.config = config
        self.store = store
        self._signer = identity.signer()
        self.clock = HybridClock(now_ms, last=store.get_meta("hlc"))
        self.replica = Replica(now_ms=now_ms)
        self.loaded = store.load_into(self.replica)
        self.index = BalanceIndex()
        for r in self.replica.records():
            self.index(None, r)
        self.replica.add_listener(self.index)
        self.replica.add_flag_listener(store.save_flag)
        self.seq = max(store.get_meta("seq"), self.replica.max_seq(identity.public))
        # The first write after a start jumps to a seq derived from the clock. A node
        # restored from an old backup may not know its latest seqs until it syncs;
        # starting above every seq it can have used before (it writes far fewer than
        # 16 records per millisecond) means it never reuses one, so peers never see
        # an honest restore as an equivocation. One gap per restart costs nothing.
        self._seq_floor = now_ms() * 16
        self._rng = rng or random.SystemRandom()
        self.partitions = sorted({model.partition_of(a) for a in model.ancestors(config.scope)})
        self.outbox: list[Record] = []
        self.ensure_node_record()

    @property
    def me(self) -> bytes:
        return self.identity.public

    # --- local writes ----------------------------------------------------------

    def write(
        self, kind: str, key: str, body: dict[str, Any] | None, scope: str | None = None
    ) -> Record:
        """Validate, sign, store durably, merge and queue one record of this node.

        Raises:
            LocalError: the record is invalid (the message says how to fix it).
        """
        scope = scope or self.config.scope
        model.validate(kind, key, scope, body)
        # A restored backup may be behind what peers hold of our own records.
        seq = max(self.seq + 1, self.replica.max_seq(self.me) + 1, self._seq_floor)
        try:
            record = sign_record(
                self._signer, self.me, kind, key, seq, self.clock.tick(), scope, body
            )
        except Rejected as exc:
            raise LocalError(f"cannot write this record: {exc.detail}") from None
        self.store.save([record], meta={"seq": seq, "hlc": self.clock.last})
        self.seq = seq
        self.replica.insert_verified(record)
        self.outbox.append(record)
        return record

    def ensure_node_record(self) -> None:
        body = {"name": self.config.name, "kind": self.config.kind, "scope": self.config.scope}
        current = self.replica.get(self.me, "node", "self")
        if current is None or current.body != body:
            self.write("node", "self", body)

    def post_intent(
        self,
        kind: str,
        item: str,
        qty: str,
        unit: str,
        period: str,
        *,
        priority: str | None = None,
        note: str | None = None,
    ) -> Record:
        """Post a need or a capacity of this node; returns the signed record.

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
        # Stored normalised ("1e3" -> "1000", " 5" -> "5"): shown back as people write it.
        qty = format(model.parse_quantity(qty).normalize(), "f")
        body: dict[str, Any] = {"item": item, "qty": qty, "unit": unit, "period": period}
        if kind == "need":
            body["priority"] = priority or "medium"
        elif priority is not None:
            raise LocalError("capacities have no priority")
        if note:
            body["note"] = note
        return self.write(kind, self._new_key("n" if kind == "need" else "c", kind), body)

    def _new_key(self, prefix: str, kind: str) -> str:
        """A short random id, unused by this node: ids never come from a counter, so a
        node restored from an old backup cannot reuse (and overwrite) one it forgot."""
        while True:
            key = prefix + "".join(self._rng.choice(_ID_CHARS) for _ in range(5))
            if self.replica.get(self.me, kind, key) is None:
                return key

    def withdraw(self, kind: str, key: str) -> Record:
        """Withdraw one of this node's records (a tombstone).

        Raises:
            LocalError: there is no such record of this node, or it is withdrawn already.
        """
        current = self.replica.get(self.me, kind, key)
        if current is None:
            raise LocalError(f"this node has no {kind} with id {key!r}; see `allmende {kind} list`")
        if current.body is None:
            raise LocalError(f"{kind} {key} is withdrawn already")
        return self.write(kind, key, None, scope=current.scope)

    def add_item(self, item_id: str, name: str, dimension: str) -> Record:
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
        return self.write("item", item_id, body, scope=self.config.scope.split("/")[0])

    def take_outbox(self) -> list[Record]:
        out, self.outbox = self.outbox, []
        return out

    # --- records from peers ----------------------------------------------------

    def ingest(self, raws: Iterable[bytes]) -> IngestResult:
        """Merge records from a peer and store the winners in one transaction."""
        changed: list[Record] = []
        rejected: list[str] = []
        known = 0
        for raw in raws:
            try:
                outcome, record = self.replica.receive(raw)
            except Rejected as exc:
                rejected.append(exc.reason)
                continue
            if outcome.changed:
                changed.append(record)
                self.clock.observe(record.hlc)
            else:
                known += 1
        if changed:
            self.store.save(changed, meta={"hlc": self.clock.last})
        return IngestResult(changed, rejected, known)

    # --- reading ---------------------------------------------------------------

    def items(self) -> dict[str, model.Item]:
        """The catalog: built-in items, then item records (first origin wins a clash)."""
        out = dict(model.STARTER_CATALOG)
        custom = sorted(
            (r for r in self.replica.records("item") if r.body is not None), key=lambda r: r.origin
        )
        for r in custom:
            b = r.body or {}
            out.setdefault(
                str(b["id"]),
                model.Item(str(b["id"]), str(b["name"]), str(b["dimension"]), str(b["unit"])),
            )
        return out

    def intents(
        self, kind: str, *, scope: str | None = None, mine: bool = True, withdrawn: bool = False
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
        self, scope: str, *, period: str | None = None, item: str | None = None, depth: int = 0
    ) -> list[tuple[str, int, list[BalanceRow]]]:
        """The balance of `scope` and `depth` levels below it, as (scope, level, rows)."""
        out = [(scope, 0, self.index.rows(scope, period=period, item=item))]
        frontier = [scope]
        for level in range(1, depth + 1):
            nxt = []
            for s in frontier:
                for child in self.index.children(s):
                    out.append((child, level, self.index.rows(child, period=period, item=item)))
                    nxt.append(child)
            frontier = nxt
        return out

    def node_names(self) -> dict[bytes, str]:
        return {
            r.origin: str(r.body["name"])
            for r in self.replica.records("node")
            if r.body is not None
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
