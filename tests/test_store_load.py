"""Bulk loading equals merging record by record: the replica's whole state, for any
set of records in any order, and for what a store gives back."""

import tempfile
from pathlib import Path

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crdt.record import Record, load_trusted
from node.crdt.replica import Replica
from node.store import Store

IDS = identities(3, seed=12)
# Two partitions (the first three levels of a scope), one of them with two scopes.
SCOPES = ["eu/de/berlin/a", "eu/de/berlin/b", "eu/fr/paris/c"]


def _pool() -> list[Record]:
    """Records that collide in every way a replica knows: updates of a slot, stale
    copies, withdrawals, a slot moved to another partition and back, two records of
    one seq (same slot and other slots, same and other partitions)."""
    out = []
    for i, ident in enumerate(IDS):
        a = Author(ident, scope=SCOPES[i])
        for k in range(4):
            out.append(a.need(f"n{k % 2}", qty=str(k + 1)))
            out.append(a.capacity(f"c{k % 3}", qty=str(10 + k)))
        out.append(a.write("need", "n0", None))  # withdrawn
        out.append(a.need("n1", qty="7", scope=SCOPES[(i + 2) % 3]))  # moved
        out.append(a.write("need", "n1", None, scope=SCOPES[(i + 2) % 3]))
        out.append(a.need("n1", qty="8"))  # moved back
        # Equivocations: one seq for two records of one slot, of two slots, and of
        # one slot in two partitions.
        seq = a.seq + 1
        out.append(a.need("x", qty="1", seq=seq))
        out.append(a.need("x", qty="2", seq=seq))
        out.append(a.capacity("y", qty="3", seq=seq))
        out.append(a.need("x", qty="4", seq=seq, scope=SCOPES[(i + 2) % 3]))
        a.seq = seq
    return out


POOL = _pool()
records = st.lists(st.sampled_from(POOL), max_size=3 * len(POOL))


def _state(r: Replica) -> tuple:
    """Everything a replica holds, in the order it holds it."""
    return (
        r._parts,
        list(r._parts),
        [list(p.origins) for p in r._parts.values()],
        [list(op.slots) for p in r._parts.values() for op in p.origins.values()],
        [list(op.seen) for p in r._parts.values() for op in p.origins.values()],
        r._slots,
        [list(w.items()) for w in r._slots.values()],
        r._max_seq,
        list(r._superseded),
        r.flagged,
        r._new_evidence,
        r.version,
        +r.counts,
        len(r),
        r.digest(),
        list(r.records()),
        list(r.entries()),
    )


def _one_by_one(recs, max_superseded: int = 200_000) -> Replica:
    r = Replica(max_superseded=max_superseded)
    for rec in recs:
        r.merge_verified(rec)
    return r


def _bulk(recs, max_superseded: int = 200_000) -> tuple[Replica, int]:
    r = Replica(max_superseded=max_superseded)
    return r, r.load_trusted(recs)


def _store_order(recs: list[Record]) -> list[Record]:
    """Runs of one partition and origin, each slot once, as a store yields them."""
    from node import model

    best: dict[tuple, Record] = {}
    for r in recs:
        k = (model.partition_of(r.scope), r.origin, r.kind, r.key)
        old = best.get(k)
        if old is None or (r.seq, old.rid) > (old.seq, r.rid):
            best[k] = r
    return [best[k] for k in sorted(best)]


@settings(max_examples=300)
@given(records)
def test_bulk_load_equals_merging_one_by_one(recs):
    bulk, n = _bulk(recs)
    one = _one_by_one(recs)
    assert _state(bulk) == _state(one)
    assert n == sum(one.counts[k] for k in ("new", "replaced", "shadow"))


@settings(max_examples=300)
@given(records, st.integers(min_value=0, max_value=4))
def test_bulk_load_in_store_order_equals_merging_one_by_one(recs, bound):
    # The order a store gives (the bulk path's fast case), also with a replica that
    # already holds records and a small bound on remembered records.
    ordered = _store_order(recs)
    first, rest = recs[: len(recs) // 2], ordered
    bulk = _one_by_one(first, bound)
    one = _one_by_one(first, bound)
    bulk.load_trusted(rest)
    for rec in rest:
        one.merge_verified(rec)
    assert _state(bulk) == _state(one)
    assert _state(_bulk(ordered, bound)[0]) == _state(_one_by_one(ordered, bound))


@settings(max_examples=60, deadline=None)
@given(records)
def test_store_round_trip_equals_merging_what_was_saved(recs):
    src = _one_by_one(recs)
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "db.sqlite")
        store.save(list(src.entries()), evidence=src.evidence())
        rows = [raw for (raw,) in store._db.execute("SELECT raw FROM records")]
        loaded = Replica()
        n = store.load_into(loaded)
        store.close()
    one = _one_by_one(load_trusted(rows))
    for a, b in src.evidence():
        one.add_evidence(a, b)
    one.take_new_evidence()
    assert _state(loaded) == _state(one)
    assert n == len(rows)
    # What the store gave back holds what was saved.
    assert loaded.digest() == src.digest()
    assert loaded.flagged == src.flagged


def test_the_pool_covers_every_outcome():
    # The properties above mean something only if the records collide in every way.
    r, back = _one_by_one(POOL), _one_by_one(POOL[::-1])
    seen = set(+r.counts) | set(+back.counts)
    assert {"new", "replaced", "shadow", "stale", "equivocation"} <= seen
    assert r.flagged
    assert len(_store_order(POOL)) < len(POOL)


def test_a_run_put_in_whole_is_the_run_merged_one_by_one():
    # 50 records of one origin in one partition: the fast case, checked directly.
    a = Author(IDS[0], scope=SCOPES[0])
    recs = [a.need(f"n{k}", qty=str(k + 1)) for k in range(50)]
    bulk, n = _bulk(recs)
    assert n == 50
    assert _state(bulk) == _state(_one_by_one(recs))
    assert bulk._slots[a.origin] is not bulk._parts["eu/de/berlin"].origins[a.origin].slots
