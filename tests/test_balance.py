"""The balance: exact, normalised, and the same from the index as from scratch."""

from fractions import Fraction

import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.crdt.replica import Replica
from node.errors import ValidationError
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


# --- periods that add up ----------------------------------------------------------------


def test_a_monthly_need_and_a_quarterly_capacity_meet_in_the_quarter():
    a = Author(identities(1)[0], scope="eu/de/berlin/a")
    index = BalanceIndex()
    for r in (
        a.need("n1", qty="100", period="2027-01"),
        a.need("n2", qty="50", period="2027-W05"),  # Thursday 4 Feb: February, Q1
        a.capacity("c1", qty="150", period="2027-Q1"),
        a.capacity("c2", qty="999", period="2027-Q2"),
    ):
        index(None, r)
    [q1] = index.rows("eu/de", period="2027-Q1")
    assert (q1.period, q1.needs, q1.capacities, q1.deficit) == ("2027-Q1", 150, 150, False)
    [year] = index.rows("eu/de", period="2027")
    assert (year.needs, year.capacities) == (150, 1149)
    [feb] = index.rows("eu/de", period="2027-02")
    assert (feb.needs, feb.capacities) == (50, 0)  # a quarter does not lie in a month
    # without a period, each record stays in its own
    assert sorted(r.period for r in index.rows("eu/de")) == [
        "2027-01",
        "2027-Q1",
        "2027-Q2",
        "2027-W05",
    ]


@pytest.mark.parametrize(
    ("period", "parents"),
    [
        ("2027", ()),
        ("2027-Q3", ("2027",)),
        ("2027-11", ("2027-Q4", "2027")),
        ("2027-W01", ("2027-01", "2027-Q1", "2027")),  # Thursday 7 January
        ("2026-W53", ("2026-12", "2026-Q4", "2026")),  # Thursday 31 December
        ("2020-W53", ("2020-12", "2020-Q4", "2020")),  # Thursday 31 December 2020
        ("2021-W01", ("2021-01", "2021-Q1", "2021")),  # Monday 4 January
    ],
)
def test_period_parents(period, parents):
    assert model.period_parents(period) == parents


def test_a_week_its_year_does_not_have_is_refused():
    model.check_period("2026-W53")
    with pytest.raises(ValidationError, match="2027 has no ISO week 53"):
        model.check_period("2027-W53")


_PERIODS = [
    "2027",
    "2027-Q1",
    "2027-Q2",
    "2027-01",
    "2027-02",
    "2027-04",
    "2027-W01",
    "2027-W05",
    "2027-W14",
]


@given(
    st.lists(st.tuples(st.sampled_from(_PERIODS), st.integers(1, 50), st.booleans()), max_size=20)
)
def test_a_period_counts_everything_inside_it(entries):
    a = Author(identities(1)[0], scope="eu/de/berlin/a")
    index = BalanceIndex()
    for k, (period, qty, need) in enumerate(entries):
        make = a.need if need else a.capacity
        index(None, make(f"k{k}", qty=str(qty), period=period))
    for container in _PERIODS:
        rows = index.rows("eu", period=container)
        want_needs = sum(q for p, q, need in entries if need and model.period_within(p, container))
        want_caps = sum(
            q for p, q, need in entries if not need and model.period_within(p, container)
        )
        got_needs = sum(r.needs for r in rows)
        got_caps = sum(r.capacities for r in rows)
        assert (got_needs, got_caps) == (want_needs, want_caps)
