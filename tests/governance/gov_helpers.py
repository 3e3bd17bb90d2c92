"""Test doubles for governance: a node without networking, and record builders."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from node.config import Config
from node.control import plain
from node.crdt.record import Record
from node.governance.admission import Charter
from node.governance.ledger import object_id
from node.governance.member_sign import sign_member_record
from node.identity import Identity
from node.ops import TABLE, InThread, Job, Submit, Writes, check_args
from node.state import NodeState, record_json
from node.store import Store

SCOPE = "eu/nl/drenthe/assen"
# The nodes of these tests found one federation together (admission is tested apart).
FOUNDERS = ("assen", "a", "b", "c", "other", "stranger")


def _identity(name: str) -> Identity:
    return Identity.from_seed(hashlib.sha256(name.encode()).digest())


CHARTER = Charter.of("Governance tests", [_identity(n).public for n in FOUNDERS]).body()


class Clock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.t = start

    def __call__(self) -> int:
        return self.t


class FakeDaemon:
    """An `OpContext` without networking: ops run synchronously, writes are saved
    and committed at once (the daemon does the same off its event loop)."""

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
        self.config = Config(name=name, scope=scope, charter=CHARTER)
        identity = Identity.from_seed(seed) if seed else _identity(name)
        self.store = Store(root / "db.sqlite")
        self.state = NodeState(identity, self.config, self.store, self.clock)
        self.written: list[dict[str, Any]] = []
        self.progress: list[tuple[int, int, str]] = []  # what Jobs reported
        self._on_progress: Any = None
        self.net = None
        self.counters: dict[str, Counter[str]] = {}

    def save_config(self, config: Config) -> None:
        self.config = config

    def dial_soon(self, p2p_addr: str) -> None:
        raise AssertionError("no network here")

    def now_ms(self) -> int:
        return self.clock()

    def uptime(self) -> float:
        return 0.0

    def call(self, op: str, *, on_progress: Any = None, **args: Any) -> Any:
        """Run one op as the daemon would; `on_progress` also gets a Job's progress."""
        self._on_progress = on_progress
        spec = TABLE[op]
        result = spec.fn(
            self, check_args(op, spec, {k: v for k, v in args.items() if v is not None})
        )
        # The daemon runs InThread replies in a worker thread and saves Writes in its
        # store worker; here, inline.
        if isinstance(result, InThread):
            return result.fn()
        if isinstance(result, Submit):
            return result.reply(self.state.ingest(result.raws))
        if isinstance(result, Job):
            # The daemon awaits the job on its loop; here, in a trio run of its own
            # (its worker threads and checkpoints work the same).
            result = trio.run(result.run, self._progress)
        if isinstance(result, Writes):
            own = self.state.save_and_commit_all(result.pendings, result.foreign)
            self.written.extend(record_json(r, self.state.node_names()) for r in own)
            return result.reply(own)
        return plain(result)  # a reply printed as JSON text, as the socket's client reads it

    def _progress(self, done: int, total: int, what: str) -> None:
        self.progress.append((done, total, what))
        if self._on_progress is not None:
            self._on_progress(done, total, what)

    def submit(self, record: Record) -> None:
        result = self.state.ingest([record.raw])
        assert not result.rejected, result.rejected
        assert result.stored

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
