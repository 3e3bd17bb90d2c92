"""Records loaded from the store keep their bodies in their wire bytes
(`StoredRecord`): they read and compare like the records decoded from the same bytes,
the balances and digests built from them are the same, and a damaged row fails the
load with a clear error instead of counting something else."""

import tempfile
from pathlib import Path

import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crdt.record import StoredRecord, decode_record, intent_fields
from node.crdt.replica import Replica
from node.errors import StoreUnreadable
from node.planning import BalanceIndex
from node.store import Store

IDS = identities(3, seed=21)
SCOPES = ["eu/de/a", "eu/de/b", "eu/fr/c"]
ITEMS = [("milk", "l"), ("bread", "kg"), ("childcare", "h")]

bodies = st.one_of(
    st.none(),  # a withdrawal
    st.builds(
        lambda item, qty, note: {
            "item": item[0],
            "unit": item[1],
            "qty": qty,
            "period": "2027-Q1",
            "priority": "normal",
            **({"note": note} if note else {}),
        },
        st.sampled_from(ITEMS),
        st.sampled_from(["1", "2.5", "10", "0.125", "999"]),
        st.text(alphabet="abc xyz", max_size=8),
    ),
)
writes = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["need", "capacity", "note"]),
        st.integers(0, 5),
        bodies,
        st.sampled_from(SCOPES),
    ),
    max_size=40,
)


def _records(ws):
    authors = [Author(i, SCOPES[k]) for k, i in enumerate(IDS)]
    out = []
    for who, kind, key, body, scope in ws:
        if kind == "note" and body is not None:
            body = {"text": body["item"], "tags": [body["qty"], {"x": 1}]}
        out.append(authors[who].write(kind, f"k{key}", body, scope=scope))
    return out


def _load(recs):
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "db.sqlite")
        store.save(recs)
        loaded = Replica()
        store.load_into(loaded)
        store.close()
    return loaded


@settings(max_examples=80, deadline=None)
@given(writes)
def test_a_loaded_record_equals_the_decoded_one_and_counts_alike(ws):
    recs = _records(ws)
    eager = Replica()
    for r in recs:
        eager.merge_verified(r)
    lazy = _load(recs)
    assert lazy.digest() == eager.digest()
    got = sorted(lazy.records(), key=lambda r: r.rid)
    want = sorted(eager.records(), key=lambda r: r.rid)
    assert all(type(r) is StoredRecord for r in got)
    for a, b in zip(got, want, strict=True):
        d = decode_record(b.raw)
        for f in ("origin", "kind", "key", "seq", "hlc", "scope", "body", "raw", "rid", "sig"):
            assert getattr(a, f) == getattr(d, f), f
        assert a == b
        assert b == a
        assert not a.__ne__(b)
        assert a.tombstone == b.tombstone
        assert tuple(a) == tuple(b)
        assert a._replace(key="other") == b._replace(key="other")
        if a.kind in ("need", "capacity") and a.body is not None:
            assert intent_fields(a) == intent_fields(b)
    # The balance index built in bulk from loaded records counts as from decoded ones,
    # and so does one kept record by record.
    one = BalanceIndex()
    for r in eager.records():
        one.add(r)
    for scope in ("eu", "eu/de", "eu/fr/c"):
        assert BalanceIndex.build(lazy.records()).rows(scope) == one.rows(scope)
    # Replacing and withdrawing loaded records takes away what they counted.
    index = BalanceIndex.build(lazy.records())
    for r in lazy.records():
        index.remove(r)
    assert index.rows("eu") == []


def _damage(tmp_path, mutate):
    a = Author(IDS[0], "eu/de/a")
    recs = [a.need(f"n{k}", qty=str(k + 1)) for k in range(5)]
    store = Store(tmp_path / "db.sqlite")
    store.save(recs)
    raw = recs[2].raw
    bad = mutate(raw)
    store._db.execute("UPDATE records SET raw=? WHERE rid=?", (bad, recs[2].rid))
    store.close()
    return Store(tmp_path / "db.sqlite")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: raw[:60] + b"\xc1" + raw[61:],  # a byte no msgpack value starts with
        lambda raw: raw[:-70],  # the body's tail and the signature cut off
        lambda raw: raw + b"\x01",  # one value too many in the row
        lambda raw: raw.replace(b"\x85", b"\x84", 1),  # a body map one entry short
    ],
)
def test_a_row_that_is_not_one_record_fails_the_load(tmp_path, mutate):
    store = _damage(tmp_path, mutate)
    with pytest.raises(StoreUnreadable, match="damaged"):
        store.load_into(Replica())
    store.close()
