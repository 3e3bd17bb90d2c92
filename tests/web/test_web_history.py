"""The `history` op: records held per day of their stamp, and per kind."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from factories import Author, identities
from hypothesis import given
from hypothesis import strategies as st

from node.clock import pack_hlc
from node.errors import LocalError
from node.ops import TABLE, check_args
from node.ops.node_ops import DAY_MS

NOW = 20_000 * DAY_MS + 5 * 3_600_000  # 2024-10-04, 05:00 UTC


def _ctx(records):
    state = SimpleNamespace(replica=SimpleNamespace(records=lambda: iter(records)))
    return SimpleNamespace(state=state, now_ms=lambda: NOW)


def _history(records, **args):
    spec = TABLE["history"]
    return spec.fn(_ctx(records), check_args("history", spec, args))


@given(ages=st.lists(st.integers(-2 * DAY_MS, 40 * DAY_MS), max_size=40))
def test_each_record_counts_once_on_the_day_of_its_stamp(ages):
    a = Author(identities(1, seed=3)[0])
    records = [a.need(f"n{i}", hlc=pack_hlc(NOW - age, 0)) for i, age in enumerate(ages)]
    h = _history(records, days=14)
    assert len(h["days"]) == 14
    assert h["days"][-1]["day"] == "2024-10-04"
    inside = [age for age in ages if (NOW - age) // DAY_MS in range(20_000 - 13, 20_001)]
    assert sum(d["records"] for d in h["days"]) == len(inside)
    assert h["kinds"] == ({"need": len(ages)} if ages else {})


def test_history_counts_kinds_and_refuses_bad_ranges():
    a = Author(identities(1, seed=4)[0])
    records = [a.need("n", hlc=pack_hlc(NOW, 0)), a.capacity("c", hlc=pack_hlc(NOW, 0))]
    h = _history(records, days=1)
    assert h["days"] == [{"day": "2024-10-04", "records": 2}]
    assert h["kinds"] == {"capacity": 1, "need": 1}
    for bad in (0, 367, "7"):
        with pytest.raises(LocalError):
            _history(records, days=bad)
