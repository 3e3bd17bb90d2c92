"""NodeState: the local write path (validate, sign, store durably, merge, queue)."""

import pytest

from node.config import Config
from node.core import batches, decode_batch
from node.errors import LocalError
from node.identity import generate
from node.state import NodeState
from node.store import Store


@pytest.fixture
def state(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    s = NodeState(
        generate(),
        Config(name="Kommune", scope="eu/de/berlin/x"),
        store,
        now_ms=lambda: 1_800_000_000_000,
    )
    yield s
    store.close()


def test_write_is_stored_merged_and_queued(state, tmp_path):
    rec = state.post_intent("need", "potatoes", "1e3", "g", "2027-Q1", priority="high")
    assert rec.body["qty"] == "1000"  # normalised as people write it
    assert state.replica.get(state.me, "need", rec.key) == rec
    assert rec in state.take_outbox()
    again = Store(tmp_path / "db.sqlite")
    assert again.get_meta("seq") == rec.seq
    again.close()


def test_wrong_dimension_and_unknown_item(state):
    with pytest.raises(LocalError, match="unit l measures volume, but potatoes"):
        state.post_intent("need", "potatoes", "5", "l", "2027-Q1")
    with pytest.raises(LocalError, match="unknown item 'unobtainium'"):
        state.post_intent("need", "unobtainium", "5", "kg", "2027-Q1")
    with pytest.raises(LocalError, match="capacities have no priority"):
        state.post_intent("capacity", "potatoes", "5", "kg", "2027-Q1", priority="high")


def test_custom_item_then_dimension_checked(state):
    state.add_item("oat-milk", "Oat milk", "volume")
    state.post_intent("capacity", "oat-milk", "20", "l", "2027")
    with pytest.raises(LocalError, match="oat-milk is in the catalog already"):
        state.add_item("oat-milk", "Oat milk", "mass")
    with pytest.raises(LocalError, match="measures mass, but oat-milk"):
        state.post_intent("need", "oat-milk", "2", "kg", "2027")


def test_withdraw(state):
    rec = state.post_intent("need", "bread", "3", "kg", "2027-03")
    state.withdraw("need", rec.key)
    assert state.replica.get(state.me, "need", rec.key).body is None
    with pytest.raises(LocalError, match="withdrawn already"):
        state.withdraw("need", rec.key)
    with pytest.raises(LocalError, match="no need with id 'n999'"):
        state.withdraw("need", "n999")


def test_seq_resumes_past_what_peers_hold(tmp_path):
    """A node restored from an old backup never reuses a seq its peers have seen."""
    ident = generate()
    cfg = Config(name="K", scope="eu/de/berlin/x")
    s1 = NodeState(ident, cfg, Store(tmp_path / "a.db"), now_ms=lambda: 0)
    for i in range(5):
        s1.post_intent("need", "bread", str(i + 1), "kg", "2027")
    newest = [r.raw for r in s1.replica.records()]
    s2 = NodeState(ident, cfg, Store(tmp_path / "b.db"), now_ms=lambda: 0)  # empty backup
    s2.ingest(newest)
    rec = s2.post_intent("need", "bread", "9", "kg", "2027")
    assert rec.seq > max(r.seq for r in s1.replica.records())


def test_batches_round_trip_and_bound(state):
    recs = [state.post_intent("need", "eggs", str(i + 1), "pcs", "2027") for i in range(50)]
    msgs = batches(recs)
    assert [raw for m in msgs for raw in decode_batch(m)] == [r.raw for r in recs]


def test_restored_backup_never_reuses_a_seq(tmp_path):
    """Restored from an old backup and writing before any sync: no seq is reused."""
    import shutil

    ident = generate()
    cfg = Config(name="K", scope="eu/de/berlin/x")
    clock = [1_800_000_000_000]
    s1 = NodeState(ident, cfg, Store(tmp_path / "a.db"), now_ms=lambda: clock[0])
    s1.post_intent("need", "bread", "1", "kg", "2027")
    s1.store.close()
    shutil.copy(tmp_path / "a.db", tmp_path / "backup.db")  # the backup
    clock[0] += 60_000
    s1 = NodeState(ident, cfg, Store(tmp_path / "a.db"), now_ms=lambda: clock[0])
    lost = [s1.post_intent("need", "bread", str(i + 2), "kg", "2027") for i in range(20)]
    clock[0] += 60_000
    restored = NodeState(ident, cfg, Store(tmp_path / "backup.db"), now_ms=lambda: clock[0])
    new = restored.post_intent("need", "eggs", "3", "pcs", "2027")
    assert new.seq > max(r.seq for r in lost)
    assert new.key not in {r.key for r in lost}


def test_left_out_counts_winning_live_intents_of_origins_not_admitted(tmp_path):
    """What `left_out` reports equals a scan of every slot winner: needs and capacities
    of origins that do not count, tombstones and records a moved slot left behind
    in its old partition not included."""
    from factories import Author, identities

    a, b = (
        Author(i, s) for i, s in zip(identities(2, seed=4), ["eu/de/a/x", "eu/fr/b"], strict=True)
    )
    records = [
        a.need("n1", qty="1"),
        a.need("n1", qty="2", scope="eu/de/c/y"),  # the slot moved: n1 in a/x is a shadow
        a.capacity("c1"),
        a.need("n2"),
        a.write("need", "n2", None),  # withdrawn
        b.need("n1", scope="eu/fr/b/z"),
    ]
    store = Store(tmp_path / "db.sqlite")
    store.save(records)
    me = generate()
    s = NodeState(me, Config(name="K", scope="eu/de/a/me"), store, now_ms=lambda: 1_800_000_000_000)
    s.post_intent("need", "potatoes", "5", "kg", "2027-Q1", priority="high")  # counts
    for scope in ["eu", "eu/de", "eu/de/a", "eu/de/a/x", "eu/de/c", "eu/fr", "eu/fr/b/z", "eu/it"]:
        want = [
            r
            for r in s.replica.records()
            if r.kind in ("need", "capacity")
            and r.body is not None
            and not s.core.counts(r.origin)
            and (r.scope == scope or r.scope.startswith(scope + "/"))
        ]
        assert s.left_out(scope) == (len(want), len({r.origin for r in want})), scope
    assert s.left_out("eu") == (3, 2)
    store.close()


def test_balance_pages_the_scopes_below(tmp_path):
    from factories import Author, identities

    store = Store(tmp_path / "db.sqlite")
    s = NodeState(generate(), Config(name="K", scope="eu/r0/c0"), store, lambda: 1_800_000_000_000)
    # Records of 15 communes in 3 regions, counted as if their origin were admitted.
    other = Author(identities(1, seed=8)[0], "eu/r1/c0")
    for region in range(3):
        for commune in range(5):
            s.index.add(other.need(f"n{region}{commune}", scope=f"eu/r{region}/c{commune}"))

    def shown(levels):
        return [(lv.scope, lv.level, lv.more) for lv in levels]

    everything = s.balance("eu", depth=2)
    assert len(everything) == 1 + 3 + 15
    assert all(lv.more == 0 for lv in everything)
    page = s.balance("eu", depth=2, limit=2)
    assert shown(page)[:3] == [("eu", 0, 1), ("eu/r0", 1, 3), ("eu/r1", 1, 3)]
    assert [lv.scope for lv in page[3:]] == ["eu/r0/c0", "eu/r0/c1", "eu/r1/c0", "eu/r1/c1"]
    nxt = s.balance("eu", depth=1, limit=2, offset=2)
    assert shown(nxt) == [("eu", 0, 0), ("eu/r2", 1, 0)]
    assert [lv.as_json() for lv in page[1:]] == [
        lv.as_json() | ({"more": 3} if lv.level == 1 else {})
        for lv in everything
        if lv.scope in {x.scope for x in page[1:]}
    ]
    assert "more" not in everything[0].as_json()
    store.close()
