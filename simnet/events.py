"""A discrete-event scheduler: a heap of (time, order, callback); virtual time only.

Nothing sleeps: `run_until` pops the earliest event, sets `now` to its time and calls
it. Ties run in the order they were scheduled, so a run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Scheduler:
    """Virtual time in seconds, starting at 0."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._order = 0
        self.events_run = 0

    def at(self, time: float, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` at virtual `time` (not before now)."""
        self._order += 1
        heapq.heappush(self._heap, (max(time, self.now), self._order, fn, args))

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + delay, fn, *args)

    def pending(self) -> int:
        return len(self._heap)

    def run_until(
        self, end: float, stop: Callable[[], bool] | None = None, check_every: int = 10_000
    ) -> None:
        """Run events up to virtual time `end`, or until `stop()` (checked every
        `check_every` events) is true."""
        heap, pop = self._heap, heapq.heappop
        n = 0
        while heap and heap[0][0] <= end:
            time, _, fn, args = pop(heap)
            self.now = time
            fn(*args)
            n += 1
            if stop is not None and n % check_every == 0 and stop():
                break
        self.events_run += n
