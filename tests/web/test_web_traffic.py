"""Gossip traffic per hour (`web.traffic.TrafficLog`) and its chart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from web.charts import in_out_columns
from web.traffic import HOUR_S, TrafficLog

# Samples: (seconds since the last sample, bytes in added, bytes out added).
steps = st.lists(
    st.tuples(st.integers(0, 3 * HOUR_S), st.integers(0, 10**6), st.integers(0, 10**6)),
    max_size=60,
)


@given(steps=steps)
def test_every_byte_lands_in_exactly_one_hour(steps):
    log = TrafficLog(keep=10**6)
    t, i, o = 1_700_000_000.0, 500, 700
    log.sample(t, i, o)
    for dt, di, do in steps:
        t, i, o = t + dt, i + di, o + do
        log.sample(t, i, o)
    assert sum(h[1] for h in log.hours) == i - 500
    assert sum(h[2] for h in log.hours) == o - 700
    hours = [h[0] for h in log.hours]
    assert hours == sorted(set(hours))
    span = hours[-1] - hours[0] + 1 if hours else 1
    series = log.series(t, span)
    assert sum(s[1] for s in series) == i - 500
    assert len(series) == span


def test_a_restart_counts_from_zero_and_old_hours_are_dropped():
    log = TrafficLog(keep=2)
    log.sample(0, 100, 100)
    log.sample(10, 150, 120)  # +50 in, +20 out in hour 0
    log.sample(HOUR_S + 1, 30, 5)  # counters restarted: 30 and 5 more
    assert list(log.hours) == [(0, 50, 20), (1, 30, 5)]
    log.sample(2 * HOUR_S + 1, 40, 5)
    assert [h for h, _, _ in log.hours] == [1, 2]  # a window of two hours
    assert log.series(2 * HOUR_S + 1, 3) == [(0, 0, 0), (1, 30, 5), (2, 10, 0)]


def test_columns_scale_to_the_busiest_hour():
    svg = in_out_columns([("00h", 100, 50), ("01h", 0, 0), ("02h", 25, 100)], "t")
    assert 'height="50"' in svg  # the largest value fills half the chart
    assert 'height="25"' in svg  # in 50 of 100 and out 50 of 100
    assert in_out_columns([], "t") == ""
    assert "nan" not in in_out_columns([("00h", 0, 0)], "t")
