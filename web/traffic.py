"""Gossip traffic per hour, kept in memory while the daemon runs (up to a week).

The daemon's counters only grow; a sampler reads them now and then and adds what
grew since the last reading to the hour it falls in. Pure: the time and the counters
are passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["HOUR_S", "TrafficLog"]

HOUR_S = 3600
KEEP_HOURS = 7 * 24


@dataclass
class TrafficLog:
    """Bytes in and out per hour: ``(hour, bytes_in, bytes_out)``, oldest first, where
    `hour` counts hours since the epoch."""

    keep: int = KEEP_HOURS
    hours: deque[tuple[int, int, int]] = field(default_factory=deque)
    _last: tuple[int, int] | None = None

    def sample(self, now_s: float, bytes_in: int, bytes_out: int) -> None:
        """Add what the counters grew by since the last sample to the hour of `now_s`.

        The first sample only sets the starting point. A counter lower than before
        (the daemon restarted) starts again from zero.
        """
        last = self._last
        self._last = (bytes_in, bytes_out)
        if last is None:
            return
        d_in = bytes_in - last[0] if bytes_in >= last[0] else bytes_in
        d_out = bytes_out - last[1] if bytes_out >= last[1] else bytes_out
        hour = int(now_s // HOUR_S)
        if self.hours and self.hours[-1][0] == hour:
            _, i, o = self.hours[-1]
            self.hours[-1] = (hour, i + d_in, o + d_out)
        elif not self.hours or self.hours[-1][0] < hour:
            self.hours.append((hour, d_in, d_out))
        else:  # the clock went back: count it in the newest hour
            h, i, o = self.hours[-1]
            self.hours[-1] = (h, i + d_in, o + d_out)
        while self.hours and self.hours[0][0] <= self.hours[-1][0] - self.keep:
            self.hours.popleft()

    def series(self, now_s: float, span: int) -> list[tuple[int, int, int]]:
        """The last `span` hours up to the hour of `now_s`, hours without traffic as 0."""
        end = int(now_s // HOUR_S)
        held = {h: (i, o) for h, i, o in self.hours}
        return [(h, *held.get(h, (0, 0))) for h in range(end - span + 1, end + 1)]
