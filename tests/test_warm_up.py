"""What a node builds ahead of use after start changes no answer: the replica's
digests (`Replica.warm_digests`), the balance sums (`BalanceIndex.warm`),
and the winners of a few kinds kept beside the replica (`KindIndex`), with changes
merged between the steps."""

import random

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st
from test_balance import _check, _steps_to_records, ops
from test_crdt_laws import POOL

from node.config import Config
from node.crdt.kinds import KindIndex
from node.crdt.record import Record
from node.crdt.replica import Replica
from node.crdt.sync import Role, SyncSession
from node.planning import BalanceIndex
from node.state import NodeState
from node.store import Store

KINDS = ("need", "capacity")
subsets = st.lists(st.sampled_from(POOL), max_size=len(POOL))


def _fresh(records: list[Record]) -> Replica:
    r = Replica()
    for rec in records:
        r.receive(rec.raw)
    return r


def _run(steps, stop_after: int, between) -> int:
    """Advance a warm-up generator up to `stop_after` steps, calling `between()` after
    each; returns the steps taken."""
    n = 0
    for _ in steps:
        n += 1
        between()
        if n >= stop_after:
            break
    return n


@settings(max_examples=150)
@given(subsets, subsets, st.integers(1, 5), st.integers(1, 4))
def test_warm_digests_between_merges_change_no_digest(first, later, chunk, stop_after):
    """Digests warmed in steps, with records merged between the steps, equal the
    digests of a replica that merged the same records and warmed nothing."""
    r = _fresh(first)
    todo = list(later)

    def merge_one() -> None:
        if todo:
            r.receive(todo.pop().raw)

    parts = r.partitions()
    _run(r.warm_digests(parts, chunk=chunk), stop_after, merge_one)
    for rec in todo:
        r.receive(rec.raw)
    for _ in r.warm_digests(r.partitions(), chunk=chunk):
        pass
    cold = _fresh([*first, *later])
    assert r.digest() == cold.digest()
    for p in r.partitions():
        assert r.partition(p).root() == cold.partition(p).root()
        assert r.partition(p).evidence_root() == cold.partition(p).evidence_root()


def test_a_warmed_replica_syncs_like_a_cold_one():
    """A session between a warmed replica and a cold one sends what one between two
    cold ones sends (the digests it compares are the same bytes)."""
    authors = [Author(i, f"eu/de/r/c{k}") for k, i in enumerate(identities(20, seed=3))]
    recs = [a.need(f"n{j}", qty=str(j + 1)) for a in authors for j in range(10)]
    partial = recs[:150] + recs[151:]

    def session(warm: bool) -> list[bytes]:
        a, b = _fresh(partial), _fresh(recs)
        if warm:
            for _ in a.warm_digests(["eu/de/r"]):
                pass
            for _ in b.warm_digests(["eu/de/r"]):
                pass
        i = SyncSession(a, ["eu/de/r"], Role.INITIATOR, salt=bytes(range(16)))
        s = SyncSession(b, ["eu/de/r"], Role.RESPONDER)
        sent = []
        msg = i.generate_message()
        while msg is not None:
            sent.append(msg)
            s.receive_message(msg)
            reply = s.generate_message()
            if reply is None:
                break
            sent.append(reply)
            i.receive_message(reply)
            msg = i.generate_message()
        assert len(i.take_received().records) == 1
        return sent

    assert session(True) == session(False)


@settings(max_examples=100)
@given(ops, st.data())
def test_balance_warm_between_updates_equals_recomputation(steps, data):
    """The index warmed in steps, with records merged between the steps and after,
    answers as a recomputation; so does each scope's printed rows."""
    recs = _steps_to_records(steps)
    cut = data.draw(st.integers(0, len(recs)))
    r = Replica()
    for rec in recs[:cut]:
        r.receive(rec.raw)
    idx = BalanceIndex.build(r.records())
    r.add_listener(idx)
    todo = list(recs[cut:])

    def merge_one() -> None:
        if todo:
            r.receive(todo.pop(0).raw)

    _run(idx.warm(chunk=data.draw(st.integers(1, 3))), data.draw(st.integers(1, 6)), merge_one)
    _check(idx, r.records())
    for rec in todo:
        r.receive(rec.raw)
    for _ in idx.warm():
        pass
    _check(idx, r.records())
    fresh = BalanceIndex.build(r.records())
    for scope in ("eu", "eu/de", "eu/fr"):
        assert [x.as_json() for x in idx.rows(scope)] == [x.as_json() for x in fresh.rows(scope)]


@settings(max_examples=150)
@given(subsets, subsets)
def test_kind_index_holds_the_replicas_winners(loaded, merged):
    """Filled after a bulk load and kept by listening, the index holds exactly the
    replica's winners of its kinds, for any records in any order."""
    r = Replica()
    r.load_trusted(_fresh(loaded).entries())
    kinds = KindIndex(KINDS)
    kinds.add_all(r.records())
    r.add_listener(kinds)
    for rec in merged:
        r.receive(rec.raw)
    for kind in KINDS:
        assert sorted(x.raw for x in kinds.records(kind)) == sorted(x.raw for x in r.records(kind))


def test_kind_index_refuses_a_kind_it_does_not_keep():
    kinds = KindIndex(["node"])
    try:
        kinds.records("need")
    except KeyError:
        return
    raise AssertionError("a kind not kept must not read as empty")


def test_node_state_reads_kinds_and_warms_up(tmp_path):
    """`NodeState` keeps its node records and offers in the kind index, and its
    warm-up leaves every view as it was."""
    me = identities(1, seed=11)[0]
    state = NodeState(
        me,
        Config(name="w", scope="eu/de/r/c0"),
        Store(tmp_path / "db.sqlite"),
        lambda: 1_800_000_000_000,
        rng=random.Random(1),
    )
    for k in range(5):
        state.post_intent("need", "potatoes", str(k + 1), "kg", "2027-01")
    state.post_intent("capacity", "potatoes", "2.5", "kg", "2027-01")
    before = [lv.as_json() for lv in state.balance("eu", depth=3)]
    steps = sum(1 for _ in state.warm_up())
    assert steps >= 2
    assert [lv.as_json() for lv in state.balance("eu", depth=3)] == before
    held = {r.origin.hex() for r in state.replica.records("node") if r.body is not None}
    assert set(state.node_scopes()) == held == {me.public.hex()}
    state.store.close()
