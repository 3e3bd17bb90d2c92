"""The balance view printed as JSON text is what `json.dumps` printed of the objects
before (`BalanceRow.as_json` with the committed columns), byte for byte."""

import json
import tempfile
from pathlib import Path

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.config import Config
from node.control import JsonText, _encode, plain, reply_line
from node.identity import generate
from node.ops.balance_text import level_text, rows_text
from node.ops.node_ops import balance
from node.ops.plan_ops import cap_uses
from node.planning.balance import TICKS, as_rows
from node.planning.commitments import committed_fields, committed_totals
from node.state import NodeState
from node.store import Store

ticks = st.integers(0, 10**6 * TICKS) | st.integers(0, 10**25) | st.sampled_from([0, 1, 1500])
entries = st.lists(
    st.tuples(
        st.text(max_size=8),  # any text: quotes, escapes and non-ASCII are printed as json does
        st.sampled_from(sorted(model.DIMENSIONS)),
        st.text(max_size=8),
        ticks,
        ticks,
        st.integers(0, 10**6),
    ),
    max_size=6,
)


def _old_rows(scope, rows, committed):
    """The rows as the op built them before, for `json.dumps`."""
    out = []
    for row in rows:
        j = row.as_json()
        if committed is None:
            j.update(committed_fields(0, None))
        else:
            group = (row.item, row.dimension, row.period)
            j.update(committed_fields(row.needs_ticks, committed.get(group, (0, 0))))
        out.append(j)
    return out


@given(
    st.text(max_size=12),
    entries,
    st.none()
    | st.dictionaries(
        st.tuples(st.text(max_size=8), st.text(max_size=3), st.text(max_size=8)),
        st.tuples(ticks, ticks),
        max_size=3,
    ),
    st.data(),
)
def test_rows_print_what_json_dumps_printed(scope, ents, committed, data):
    if committed is not None and ents:  # some groups of the rows committed
        for it, dim, per, *_ in data.draw(st.lists(st.sampled_from(ents), max_size=3)):
            committed[(it, dim, per)] = data.draw(st.tuples(ticks, ticks))
    want = json.dumps(_old_rows(scope, as_rows(scope, ents), committed))
    assert rows_text(scope, ents, committed) == want


@given(
    st.text(max_size=12),
    st.integers(0, 6),
    entries,
    st.dictionaries(
        st.text(max_size=6), st.none() | st.booleans() | st.integers() | st.text(max_size=6)
    ),
    st.integers(0, 10**9),
)
def test_a_level_prints_what_json_dumps_printed(scope, level, ents, basis, more):
    rows = as_rows(scope, ents)
    old = {"scope": scope, "level": level, "rows": _old_rows(scope, rows, None), "basis": basis}
    if more:
        old["more"] = more
    assert level_text(scope, level, rows_text(scope, ents, None), basis, more) == json.dumps(old)


def test_a_reply_printed_as_text_is_the_line_of_its_value():
    value = {"scope": 'eu/\u00e9"x', "levels": [{"a": [1, None, True]}], "n": 2}
    line = reply_line(JsonText(json.dumps(value)))
    assert line == _encode({"ok": True, "result": value})
    assert plain(JsonText(json.dumps(value))) == value
    assert plain(value) is value  # anything else is the value itself


# --- the op, from a random index ----------------------------------------------------

ME = "eu/r0/c0"  # the node's region: eu/r0/c0 (rows with committed columns)
SCOPES = ["eu/r0/c0", "eu/r0/c0/x", "eu/r0/c1", "eu/r1/c0", "eu/r1/c2/y/z", "eu/r2/c1"]
GOODS = [
    ("potatoes", "kg"),
    ("potatoes", "g"),
    ("milk", "l"),
    ("eggs", "dozen"),
    ("childcare", "min"),
]
PERIODS = ["2027", "2027-Q1", "2027-02", "2027-W05"]
AUTHORS = [Author(i, "eu/r1/c0") for i in identities(3, seed=21)]
qty = st.integers(0, 10**9).map(str) | st.decimals(0, 10**6, places=3).map(lambda d: format(d, "f"))
records = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["need", "capacity"]),
        st.sampled_from(SCOPES),
        st.sampled_from(GOODS),
        st.sampled_from(PERIODS),
        qty,
    ),
    max_size=25,
)


def _old_reply(state, scope, period, item, depth, limit, offset):
    """`balance` as the op answered before: objects, printed by `json.dumps`."""
    levels = state.balance(scope, period=period, item=item, depth=depth, limit=limit, offset=offset)
    region = state.core.region
    comms, scopes = state.commitments(), state.node_scopes()
    out = []
    for lv in levels:
        here = (
            committed_totals(comms, scopes, lv.scope) if model.in_scope(lv.scope, region) else None
        )
        out.append({**lv.as_json(), "rows": _old_rows(lv.scope, lv.rows, here)})
    records, nodes = state.left_out(scope)
    return {
        "scope": scope,
        "levels": out,
        "left_out": {"records": records, "nodes": nodes},
        "caps": cap_uses(state, {lv.scope for lv in levels}),
    }


@settings(max_examples=60, deadline=None)
@given(
    records,
    st.sampled_from(["eu", "eu/r0", "eu/r1", "eu/r0/c0", "eu/r1/c2"]),
    st.none() | st.sampled_from(["2027", "2027-Q1"]),
    st.none() | st.sampled_from(["potatoes", "milk"]),
    st.integers(0, 3),
    st.none() | st.integers(1, 3),
    st.integers(0, 2),
)
def test_the_op_prints_what_json_dumps_printed(recs, scope, period, item, depth, limit, offset):
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "db.sqlite")
        state = NodeState(generate(), Config(name="K", scope=ME), store, lambda: 1_800_000_000_000)
        for k, (who, kind, where, (it, unit), per, q) in enumerate(recs):
            write = AUTHORS[who].need if kind == "need" else AUTHORS[who].capacity
            state.index.add(write(f"k{k}", qty=q, item=it, unit=unit, period=per, scope=where))

        class Ctx:
            config = state.config

        Ctx.state = state
        args = {"scope": scope, "period": period, "item": item, "depth": depth}
        got = balance(Ctx(), {**args, "limit": limit, "offset": offset})
        want = _old_reply(state, scope, period, item, depth, limit, offset)
        assert got.text == json.dumps(want)
        assert reply_line(got) == _encode({"ok": True, "result": want})
        store.close()
