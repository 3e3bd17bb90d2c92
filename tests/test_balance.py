"""The balance: exact, normalised, and the same from the index as from scratch."""

from decimal import Decimal
from fractions import Fraction

import pytest
from factories import Author, identities
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from node import model
from node.crdt.replica import Replica
from node.errors import ValidationError
from node.planning import BalanceIndex, BalanceRow, compute_balance, decimal_str
from node.planning.balance import TICKS, _ticks, ticks_str

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


QUERIED = ["eu", "eu/de", "eu/de/berlin", "eu/de/berlin/a", "eu/de/berlin/a/x", "eu/fr"]


def _check(idx, records, scopes=QUERIED):
    records = list(records)
    for scope in scopes:
        assert idx.rows(scope) == compute_balance(records, scope)
        assert idx.rows(scope, period="2027-Q1") == compute_balance(
            records, scope, period="2027-Q1"
        )
        assert idx.rows(scope, item="potatoes") == compute_balance(records, scope, item="potatoes")
        want_children = sorted(
            {
                "/".join(rec.scope.split("/")[: scope.count("/") + 2])
                for rec in records
                if rec.kind in ("need", "capacity")
                and rec.body is not None
                and model.in_scope(rec.scope, scope)
                and rec.scope != scope
            }
        )
        assert idx.children(scope) == want_children


def _steps_to_records(steps):
    # Records land in a commune, one level below it or one above, so that scopes hold
    # records of their own besides those of the scopes under them.
    authors = [Author(i, s) for i, s in zip(IDS, SCOPES, strict=True)]
    out = []
    for who, what, slot, qty, unit, period, depth in steps:
        a = authors[who]
        scope = {0: a.scope, 1: a.scope + "/x", 2: a.scope.rsplit("/", 1)[0]}[depth]
        kind = "need" if what == "withdraw" else what
        out.append(
            a.write(kind, f"x{slot}", None, scope=scope)
            if what == "withdraw"
            else getattr(a, what)(f"x{slot}", qty=str(qty), unit=unit, period=period, scope=scope)
        )
    return out


ops = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(["need", "capacity", "withdraw"]),
        st.integers(0, 2),
        st.one_of(st.integers(1, 999).map(str), st.sampled_from(["0.5", "1.000001", "12.25"])),
        st.sampled_from(["kg", "g", "t"]),
        st.sampled_from(["2027-Q1", "2027-Q2", "2027-01"]),
        st.integers(0, 2),
    ),
    max_size=40,
)


@settings(max_examples=150)
@given(ops, st.lists(st.sampled_from(QUERIED), max_size=40))
def test_index_equals_recomputation(steps, queries):
    """Queries between the updates (the lazily added sums cached, then dropped) and
    the end state: the index answers as a recomputation from scratch."""
    r, idx = _replica()
    for k, rec in enumerate(_steps_to_records(steps)):
        r.receive(rec.raw)
        if k < len(queries):
            scope = queries[k]
            assert idx.rows(scope) == compute_balance(r.records(), scope)
    _check(idx, r.records())


@settings(max_examples=100)
@given(ops, st.data())
def test_bulk_build_equals_recomputation_and_keeps_up(steps, data):
    """`BalanceIndex.build` over a replica's records, then further updates, removals
    and re-additions (admission changing), equals the recomputation."""
    recs = _steps_to_records(steps)
    cut = data.draw(st.integers(0, len(recs)))
    r = Replica()
    for rec in recs[:cut]:
        r.receive(rec.raw)
    idx = BalanceIndex.build(r.records())
    _check(idx, r.records())
    r.add_listener(idx)
    for rec in recs[cut:]:
        r.receive(rec.raw)
    _check(idx, r.records())
    # An origin stops counting, then counts again (`NodeCore._recount`).
    lost = {rec.origin for rec in recs[: len(recs) // 2]}
    for rec in r.records():
        if rec.origin in lost:
            idx.remove(rec)
    _check(idx, [rec for rec in r.records() if rec.origin not in lost])
    idx.add_all(rec for rec in r.records() if rec.origin in lost)
    _check(idx, r.records())


def test_bulk_build_counts_each_record_of_an_origin():
    """Two records of one origin in one scope and group: taking one away leaves the
    other counted."""
    a = Author(IDS[0], SCOPES[0])
    one, two = a.need("n1", qty="2"), a.need("n2", qty="3")
    idx = BalanceIndex.build([one, two])
    idx.remove(one)
    assert idx.rows("eu") == compute_balance([two], "eu")
    assert idx.children("eu") == ["eu/de"]
    idx.remove(two)
    assert idx.rows("eu") == []
    assert idx.children("eu") == []


def _decimal_str(x: Fraction, places: int = 6) -> str:
    """The Decimal formatting the JSON had before (the reference for strings)."""
    d = (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1).scaleb(-places))
    s = format(d.normalize(), "f")
    return s if s != "-0" else "0"


@given(st.integers(-(10**21), 10**21), st.integers(1, 10**12), st.sampled_from([4, 6]))
def test_decimal_strings_are_those_decimal_printed(num, den, places):
    assert decimal_str(Fraction(num, den), places) == _decimal_str(Fraction(num, den), places)


@given(st.integers(-(10**20), 10**20) | st.sampled_from([1500, 4500, -1500, 0, 2999, 3000]))
def test_tick_strings_are_those_decimal_printed(ticks):
    assert ticks_str(ticks) == _decimal_str(Fraction(ticks, TICKS))


@given(
    st.integers(0, 10**15 - 1),
    st.integers(0, 10**6 - 1),
    st.sampled_from(sorted(model.UNITS)),
    st.sampled_from(["", "0", "00"]),
)
def test_quantities_in_integer_ticks(whole, micro, unit, zeros):
    assume(whole or micro)
    qty = zeros + (f"{whole}.{micro:06d}".rstrip("0") if micro else str(whole))
    assume(len(qty.partition(".")[0]) <= 16)  # what a record may hold
    exact = Fraction(model.parse_quantity(qty)) * model.UNITS[unit].factor * TICKS
    assert exact.denominator == 1
    assert _ticks(qty, unit) == exact.numerator


def test_a_row_prints_the_strings_it_printed_before():
    row = BalanceRow("eu", "milk", "2027", "volume", "l", TICKS * 5 // 2, TICKS // 3, 2)
    assert row.as_json() == {
        "scope": "eu",
        "item": "milk",
        "period": "2027",
        "dimension": "volume",
        "unit": "l",
        "needs": "2.5",
        "capacities": "0.333333",
        "balance": "-2.166667",
        "coverage": "0.1333",
        "nodes": 2,
    }
    assert (row.needs, row.capacities, row.coverage) == (
        Fraction(5, 2),
        Fraction(1, 3),
        Fraction(2, 15),
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


@settings(max_examples=100)
@given(ops, st.data())
def test_indexes_sharing_single_counts_answer_as_alone(steps, data):
    """Indexes that keep the counts of single records in one shared map (the simnet's
    replicas) answer as an index of their own and as the recomputation, whatever the
    others sharing the map count, and in whatever order their records arrive."""
    recs = _steps_to_records(steps)
    shared: dict = {}
    replicas = []
    for _ in range(3):
        order = data.draw(st.permutations(recs))
        r = Replica()
        alone = BalanceIndex()
        idx = BalanceIndex(shared)
        r.add_listener(alone)
        r.add_listener(idx)
        replicas.append((r, idx, alone, order))
    for k in range(len(recs)):
        for r, idx, alone, order in replicas:
            r.receive(order[k].raw)
            scope = data.draw(st.sampled_from(QUERIED))
            assert idx.rows(scope) == alone.rows(scope) == compute_balance(r.records(), scope)
    for r, idx, _, _ in replicas:
        _check(idx, r.records())
    built = BalanceIndex(shared)
    built.add_all(replicas[0][0].records())
    _check(built, replicas[0][0].records())


def test_indexes_share_the_counts_of_one_origin():
    a, b = Author(IDS[0], SCOPES[0]), Author(IDS[1], SCOPES[0])
    n1, n2 = a.need("n1", qty="3", unit="kg"), a.need("n2", qty="1", unit="kg")
    shared: dict = {}
    first, second = BalanceIndex(shared), BalanceIndex(shared)

    def counts(index):
        (acc,) = index._own[SCOPES[0]].values()
        return acc

    # Another index counts one record of what two make up below: counts of its own.
    BalanceIndex(shared)(None, a.need("n9", qty="4", unit="kg"))
    first(None, n1)
    second.add_all([n1])
    assert counts(first) is counts(second)
    # A second record of the group: new counts for that index, the other's unchanged.
    first(None, n2)
    assert first.rows(SCOPES[0])[0].needs == 4
    assert second.rows(SCOPES[0])[0].needs == 3
    second.add_all([n2])
    assert counts(first) is counts(second)
    # Another origin's record: that index's own counts (a list).
    first(None, b.need("n1", qty="5", unit="kg"))
    (row,) = first.rows(SCOPES[0])
    assert (row.needs, row.nodes) == (9, 2)
    assert type(counts(first)) is list
    (row,) = second.rows(SCOPES[0])
    assert (row.needs, row.nodes) == (4, 1)
    # Withdrawn one by one: the group is gone.
    second(n1, a.write("need", "n1", None))
    assert second.rows(SCOPES[0])[0].needs == 1
    second(n2, a.write("need", "n2", None))
    assert second.rows(SCOPES[0]) == []
    assert not second._own[SCOPES[0]]
