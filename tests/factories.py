"""Shared builders for tests: identities, signed records, replicas."""

from __future__ import annotations

import random
from typing import Any

from node.crdt.record import Record, sign_record
from node.crdt.replica import Replica
from node.crdt.sync import Role, SyncSession, merge_received
from node.identity import Identity


def identities(n: int, seed: int = 0) -> list[Identity]:
    rng = random.Random(seed)
    return [Identity.from_seed(rng.randbytes(32)) for _ in range(n)]


class Author:
    """Writes records for one origin with an increasing seq."""

    def __init__(self, identity: Identity, scope: str = "eu/de/berlin/neukoelln") -> None:
        self.identity = identity
        self.signer = identity.signer()
        self.scope = scope
        self.seq = 0

    @property
    def origin(self) -> bytes:
        return self.identity.public

    def write(
        self,
        kind: str,
        key: str,
        body: dict[str, Any] | None,
        *,
        scope: str | None = None,
        seq: int | None = None,
        hlc: int = 0,
    ) -> Record:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return sign_record(self.signer, self.origin, kind, key, seq, hlc, scope or self.scope, body)

    def need(
        self,
        key: str,
        qty: str = "10",
        item: str = "potatoes",
        unit: str = "kg",
        period: str = "2027-Q1",
        **kw: Any,
    ) -> Record:
        body = {"item": item, "qty": qty, "unit": unit, "period": period, "priority": "high"}
        return self.write("need", key, body, **kw)

    def capacity(
        self,
        key: str,
        qty: str = "10",
        item: str = "potatoes",
        unit: str = "kg",
        period: str = "2027-Q1",
        **kw: Any,
    ) -> Record:
        body = {"item": item, "qty": qty, "unit": unit, "period": period}
        return self.write("capacity", key, body, **kw)


def run_session(
    a: Replica, b: Replica, parts_a: list[str], parts_b: list[str] | None = None
) -> tuple[SyncSession, SyncSession]:
    """One anti-entropy session between two local replicas, a initiating; both done."""
    i = SyncSession(a, parts_a, Role.INITIATOR)
    r = SyncSession(b, parts_a if parts_b is None else parts_b, Role.RESPONDER)
    msg = i.generate_message()
    while msg is not None:
        r.receive_message(msg)
        merge_received(b, r.take_received())
        reply = r.generate_message()
        if reply is None:
            break
        i.receive_message(reply)
        merge_received(a, i.take_received())
        msg = i.generate_message()
    assert i.done
    assert r.done
    return i, r
