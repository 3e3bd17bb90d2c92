"""Memory per held record (issue 15: the daemon's RSS with 50,000 records).

A record keeps its signature only inside its wire bytes, and records built from bytes
share their repeated values (origins, kinds, scopes, short body strings) through one
bounded pool. Sharing changes memory only: records compare, verify and merge as
before, and values met once the pool is full are kept as decoded.
"""

import random
import sys
import tracemalloc

import msgpack
import pytest
from factories import Author, identities
from hypothesis import given
from hypothesis import strategies as st

from node.crdt import record as record_mod
from node.crdt.record import (
    SIG_BYTES,
    Record,
    decode_record,
    load_trusted,
    signature_ok,
)
from node.crdt.replica import Replica
from node.planning import BalanceIndex

A, B = identities(2, seed=11)
ITEMS = [("potatoes", "kg"), ("milk", "l"), ("bread", "kg"), ("childcare", "h")]


def _needs(n: int, author: Author, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        item, unit = ITEMS[k % len(ITEMS)]
        scope = f"eu/r{rng.randrange(3)}/c{rng.randrange(40)}"
        out.append(
            author.need(f"n{k}", qty=str(rng.randrange(1, 50)), item=item, unit=unit, scope=scope)
        )
    return out


def test_the_signature_is_the_tail_of_the_wire_bytes_not_a_field():
    r = Author(A).need("n1")
    assert "sig" not in Record._fields
    assert r.sig == r.raw[-SIG_BYTES:]
    assert decode_record(r.raw).sig == r.sig
    assert signature_ok(r)
    # A record whose last byte is flipped no longer verifies: `sig` is read from `raw`.
    bad = r._replace(raw=r.raw[:-1] + bytes([r.raw[-1] ^ 1]))
    assert not signature_ok(bad)


def test_records_from_bytes_share_repeated_values():
    a, b = Author(A), Author(A)
    r1 = a.need("n1", qty="5", scope="eu/de/berlin")
    r2 = b.need("n2", qty="5", scope="eu/de/berlin")
    for x, y in [
        (decode_record(r1.raw), decode_record(r2.raw)),
        tuple(load_trusted([r1.raw, r2.raw])),
    ]:
        assert x.origin is y.origin
        assert x.kind is y.kind
        assert x.scope is y.scope
        for field in ("item", "qty", "unit", "period", "priority"):
            assert x.body[field] is y.body[field]
        assert x.key is not y.key  # keys are unique: not pooled
        assert (x, y) == (r1, r2)


@given(st.lists(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=60), max_size=30))
def test_a_full_pool_keeps_values_as_decoded(notes):
    # Unique values (notes) beyond the bound are not pooled: the pool stays within it
    # and every record decodes equal to what was signed.
    pool, limit = dict(record_mod._POOL), record_mod._POOL_MAX
    try:
        record_mod._POOL.clear()
        record_mod._POOL_MAX = 8
        author = Author(B)
        body = {"item": "milk", "qty": "2", "unit": "l", "period": "2027-Q1", "priority": "low"}
        signed = [
            author.write("need", f"n{i}", {**body, "note": note}) for i, note in enumerate(notes)
        ]
        decoded = [decode_record(r.raw) for r in signed] + list(
            load_trusted([r.raw for r in signed])
        )
        assert len(record_mod._POOL) <= 8
        assert decoded == signed + signed
        assert all(signature_ok(r) for r in decoded)
    finally:
        record_mod._POOL.clear()
        record_mod._POOL.update(pool)
        record_mod._POOL_MAX = limit


def test_a_loaded_record_with_its_indexes_costs_at_most_900_bytes():
    # Needs of 2 origins over 120 communes, loaded as the store loads them, merged and
    # counted, with the balance of the federation asked: 1,221 bytes a record before
    # the pool, the shared leaf sums and `sig` read from `raw`; 675 after.
    records = _needs(3000, Author(A), 1) + _needs(3000, Author(B), 2)
    raws = [r.raw for r in records]
    msgpack.unpackb(raws[0])  # warm up
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        replica = Replica()
        replica.load_trusted(load_trusted(raws))
        index = BalanceIndex.build(replica.records())
        index.rows("eu")
        per_record = (tracemalloc.get_traced_memory()[0] - base) / len(raws)
    finally:
        tracemalloc.stop()
    assert len(replica) == len(raws)
    assert per_record <= 900, f"{per_record:.0f} bytes per record"


@pytest.mark.parametrize("n", [1, 50])
def test_pooled_records_merge_to_the_same_replica(n):
    records = _needs(n, Author(A), 3)
    direct, loaded = Replica(), Replica()
    for r in records:
        direct.insert_verified(r)
    loaded.load_trusted(load_trusted([r.raw for r in records]))
    assert direct.digest() == loaded.digest()
    assert sorted(direct.records()) == sorted(loaded.records())


def test_loaded_bodies_are_plain_dicts_equal_to_the_decoded_ones():
    a = Author(A)
    written = [
        a.need("n1", qty="5"),
        a.capacity("c1", qty="7"),
        a.write("need", "n2", {"item": "milk", "qty": "1", "unit": "l", "note": "x"}),
        a.write("need", "n3", {"qty": "2", "item": "bread", "unit": "kg", "period": "2027"}),
        a.write("need", "n4", None),
    ]
    loaded = list(load_trusted([r.raw for r in written]))
    for w, got in zip(written, loaded, strict=True):
        assert got == decode_record(w.raw)
        if w.body is None:
            assert got.body is None
            continue
        assert type(got.body) is dict
        assert got.body == w.body
        assert list(got.body) == list(decode_record(w.raw).body)  # the wire's key order
        assert msgpack.packb(got.body) == msgpack.packb(decode_record(w.raw).body)


def test_loaded_bodies_of_one_kind_share_their_key_table():
    records = _needs(50, Author(A), 4)
    loaded = list(load_trusted([r.raw for r in records]))
    body = loaded[-1].body
    # A dict of its own (as decode_record makes) holds a key table; a shared one does not.
    assert sys.getsizeof(body) < sys.getsizeof(dict(body))
    # Taking one apart or adding to it gives it a table of its own; others are untouched.
    body2 = loaded[-2].body
    before = dict(body2)
    body["extra"] = 1
    assert body2 == before
    assert "extra" not in body2


def test_equal_seqs_of_different_origins_are_one_object():
    # Every origin counts from 1, so seqs repeat across origins (ints above 256 are
    # objects of their own unless pooled).
    r1 = Author(A).need("n1", seq=1000)
    r2 = Author(B).need("n1", seq=1000)
    x, y = load_trusted([r1.raw, r2.raw])
    assert x.seq == y.seq == 1000
    assert x.seq is y.seq
    assert (x, y) == (r1, r2)
