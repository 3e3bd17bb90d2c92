"""Test doubles for governance: a node without networking, and record builders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from node import gov_ops as ops
from node.config import Config
from node.control import InThread
from node.crdt.record import Record
from node.governance.ledger import object_id
from node.governance.member_sign import sign_member_record
from node.identity import Identity
from node.state import NodeState, record_json
from node.store import Store

SCOPE = "eu/nl/drenthe/assen"


class Clock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.t = start

    def __call__(self) -> int:
        return self.t


class FakeDaemon:
    """What the governance ops use of a daemon: state, config, _written."""

    def __init__(
        self,
        root: Path,
        *,
        name: str = "assen",
        scope: str = SCOPE,
        seed: bytes | None = None,
        clock: Clock | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.clock = clock or Clock()
        self.config = Config(name=name, scope=scope)
        identity = Identity.from_seed(seed or hashlib.sha256(name.encode()).digest())
        self.store = Store(root / "db.sqlite")
        self.state = NodeState(identity, self.config, self.store, self.clock)
        self.written: list[dict[str, Any]] = []

    def _written(self, record: Record) -> dict[str, Any]:
        out = record_json(record, self.state.node_names())
        self.written.append(out)
        return out

    def call(self, op: str, **args: Any) -> Any:
        result = ops.OPS[op](self, {k: v for k, v in args.items() if v is not None})
        # The control server runs InThread replies in a worker thread; here, inline.
        return result.fn() if isinstance(result, InThread) else result

    def submit(self, record: Record) -> None:
        result = self.state.ingest([record.raw])
        assert not result.rejected, result.rejected

    def close(self) -> None:
        self.store.close()


def member(seed: int) -> Identity:
    return Identity.from_seed(seed.to_bytes(32, "big"))


def vote(
    d: FakeDaemon,
    who: Identity,
    pid: str,
    ballot: Any,
    *,
    at: int | None = None,
    scope: str = SCOPE,
) -> Record:
    now = d.clock.t if at is None else at
    return sign_member_record(
        who,
        "vote",
        pid,
        scope,
        {"ballot": ballot},
        now_ms=now,
        held_max_seq=d.state.replica.max_seq(who.public),
    )


def pid_of(d: FakeDaemon, key: str) -> str:
    return object_id(d.state.me, key)
