"""The daemon acknowledges a write only after its commit, and a failed save changes nothing.

In process (no network): the daemon's control handler with its real store, whose
`save` is wrapped to see what the replica held at that moment.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from node.config import Config, DataDir
from node.daemon import Daemon
from node.errors import LocalError
from node.planning.balance import TICKS

NEED = {
    "kind": "need",
    "item": "potatoes",
    "qty": "5",
    "unit": "kg",
    "period": "2027-Q1",
    "priority": "high",
}


@pytest.fixture
def daemon(tmp_path):
    dd = DataDir(tmp_path / "d")
    dd.init(Config(name="x", scope="eu/de/berlin/x", listen=("/ip4/127.0.0.1/tcp/0",)))
    identity, config = dd.load()
    d = Daemon(dd, identity, config)
    yield d
    d.store.close()


def _watch_saves(daemon: Daemon, fail: bool = False) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    real = daemon.store.save

    def save(records: Any, **kw: Any) -> None:
        held = [daemon.state.replica.get(r.origin, r.kind, r.key) for r in records]
        seen.append({"durable": kw.get("durable"), "held_before": held, "records": records})
        if fail:
            raise OSError(28, "No space left on device")
        real(records, **kw)
        assert daemon.store.pragma("synchronous") == 2  # FULL: on disk at commit

    daemon.store.save = save  # type: ignore[method-assign]
    return seen


def test_a_write_is_committed_before_it_is_merged_and_acknowledged(daemon) -> None:
    seen = _watch_saves(daemon)
    reply = trio.run(daemon.handle, "post", NEED, None)
    assert len(seen) == 1
    assert seen[0]["durable"] is True
    assert seen[0]["held_before"] == [None]  # saved first, merged after
    assert daemon.state.replica.get(daemon.state.me, "need", reply["id"]) is not None
    assert daemon.store.count() == 3  # the node record, the charter and the need


def test_a_failed_save_merges_nothing_and_says_so(daemon) -> None:
    _watch_saves(daemon, fail=True)
    before = daemon.state.replica.digest()
    with pytest.raises(LocalError, match=r"could not save, nothing was written: .*No space"):
        trio.run(daemon.handle, "post", NEED, None)
    assert daemon.state.replica.digest() == before
    assert all(r.kind in ("node", "charter") for r in daemon.core.outbox)  # nothing refused


def _member_vote(daemon: Daemon) -> Any:
    """A vote of a member of the daemon's node (a member signs with its own key)."""
    from factories import Author, identities

    member = Author(identities(1)[0], scope="eu/de/berlin/x")
    add = {"member": member.origin.hex(), "pseudonym": "m"}
    trio.run(daemon.handle, "gov_member_add", add, None)
    return member.write("vote", "0123456789abcdef.p", {"ballot": ["a"]})


def test_a_submitted_record_is_durable_before_it_counts(daemon) -> None:
    rec = _member_vote(daemon)
    seen = _watch_saves(daemon)
    trio.run(daemon.handle, "submit", {"record": rec.raw.hex()}, None)
    assert seen[0]["durable"] is True
    assert seen[0]["held_before"] == [None]
    assert daemon.state.replica.get(rec.origin, rec.kind, rec.key) == rec


def test_a_submitted_record_that_cannot_be_saved_does_not_count(daemon) -> None:
    rec = _member_vote(daemon)
    _watch_saves(daemon, fail=True)
    with pytest.raises(LocalError, match="saving records failed"):
        trio.run(daemon.handle, "submit", {"record": rec.raw.hex()}, None)
    assert daemon.state.replica.get(rec.origin, rec.kind, rec.key) is None


def test_a_strangers_record_is_refused_at_submit(daemon) -> None:
    from factories import Author, identities

    rec = Author(identities(1, seed=8)[0], scope="eu/de/berlin/m").need("n1")
    with pytest.raises(LocalError, match="not-admitted"):
        trio.run(daemon.handle, "submit", {"record": rec.raw.hex()}, None)
    assert daemon.state.replica.get(rec.origin, "need", "n1") is None


def test_the_warm_up_after_start_builds_digests_and_sums(daemon) -> None:
    """`Daemon._warm_up` (started with the daemon) leaves the digests of the followed
    partitions and every scope's balance sums cached (not the printed rows: memory);
    a write during it is counted."""

    async def main() -> None:
        await daemon.handle("post", NEED, None)
        assert not daemon.state.index._sums
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon._warm_up)
        held = [p for p in daemon.state.partitions if daemon.state.replica.partition(p).count]
        assert held
        for p in held:
            assert daemon.state.replica.partition(p)._root is not None
        assert daemon.state.index._sums  # sums cached for the first view
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon._warm_up)
            await daemon.handle("post", NEED, None)

    trio.run(main)
    rows = daemon.state.balance("eu")[0].rows
    assert [(r.item, r.needs_ticks) for r in rows] == [("potatoes", 10 * TICKS)]
