"""The balance: exact, normalised, and the same from the index as from scratch."""

from fractions import Fraction

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crdt.replica import Replica
from node.planning import BalanceIndex, compute_balance

IDS = identities(4, seed=11)
SCOPES = ["eu/de/berlin/a", "eu/de/berlin/b", "eu/de/hamburg/c", "eu/fr/paris/d"]


def _replica():
    r = Replica()
    idx = BalanceIndex()
    r.add_listener(idx)
    return r, idx


def test_units_normalise_and_nodes_count():
    r, idx = _replica()
    a, b = Author(IDS[0], SCOPES[0]), Author(IDS[1], SCOPES[1])
    for rec in [
        a.need("n1", qty="1500", unit="g"),
        a.need("n2", qty="1", unit="kg"),
        b.capacity("c1", qty="0.5", unit="t"),
    ]:
        r.receive(rec.raw)
    (row,) = idx.rows("eu/de/berlin")
    assert (row.needs, row.capacities, row.unit, row.nodes) == (Fraction(5, 2), 500, "kg", 2)
    assert row.balance == Fraction(995, 2)
    assert row.coverage == 200
    assert not row.deficit
    (commune,) = idx.rows("eu/de/berlin/a")
    assert commune.capacities == 0
    assert commune.deficit
    assert commune.coverage == 0
    assert idx.children("eu/de") == ["eu/de/berlin"]
    assert row.as_json()["needs"] == "2.5"


ops = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(["need", "capacity", "withdraw"]),
        st.integers(0, 2),
        st.integers(1, 999),
        st.sampled_from(["kg", "g", "t"]),
        st.sampled_from(["2027-Q1", "2027-Q2"]),
    ),
    max_size=40,
)


@settings(max_examples=150)
@given(ops)
def test_index_equals_recomputation(steps):
    r, idx = _replica()
    authors = [Author(i, s) for i, s in zip(IDS, SCOPES, strict=True)]
    for who, what, slot, qty, unit, period in steps:
        a = authors[who]
        kind = "need" if what == "withdraw" else what
        rec = (
            a.write(kind, f"x{slot}", None)
            if what == "withdraw"
            else getattr(a, what)(f"x{slot}", qty=str(qty), unit=unit, period=period)
        )
        r.receive(rec.raw)
    for scope in ["eu", "eu/de", "eu/de/berlin", "eu/de/berlin/a", "eu/fr"]:
        assert idx.rows(scope) == compute_balance(r.records(), scope)
        assert idx.rows(scope, period="2027-Q1") == compute_balance(
            r.records(), scope, period="2027-Q1"
        )


@given(st.permutations(list(range(12))))
def test_same_records_same_figures(order):
    authors = [Author(i, s) for i, s in zip(IDS, SCOPES, strict=True)]
    recs = [authors[i % 4].need(f"n{i}", qty=str(i + 1)) for i in range(6)]
    recs += [authors[i % 4].capacity(f"c{i}", qty=f"{i}.5") for i in range(6)]
    r1, i1 = _replica()
    r2, i2 = _replica()
    for rec in recs:
        r1.receive(rec.raw)
    for k in order:
        r2.receive(recs[k].raw)
    assert i1.rows("eu") == i2.rows("eu")
