"""When an attester publishes its region's rollups: once they have settled.

Every rollup version an attester signs goes to the federation's root, where every
node of every region receives, checks and holds it: a federation of R regions and N
nodes merges (versions per region) x R x N of them. An attester that published at
each recomputation while its region is busy (every `rollup_every` seconds) would sign
a new version per period at nearly every one, each outdated by the next. So it waits
until what it computes has settled: it publishes a change once two recomputations in
a row give the same change (the region held still for one interval), or once a change
has waited `max_wait` seconds (a region that never holds still still gets fresh
figures at that pace). A reader's rules are untouched: what it accepts is the same
content, only fewer superseded versions of it come by.

Pure and clock-free: the owner (the daemon's attester loop, the simnet's) passes the
changes it computed and the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["MAX_WAIT", "WATCH_HOLD", "RollupPace"]

MAX_WAIT = 300.0  # seconds a busy region's change waits at most
WATCH_HOLD = 2 * MAX_WAIT  # seconds a watcher's change must hold before it signs

Change = TypeVar("Change")


class RollupPace:
    """An attester's debounce: which computed rollup changes to publish now.

    Args:
        max_wait: seconds after which a change that keeps changing is published anyway.
    """

    def __init__(self, max_wait: float = MAX_WAIT) -> None:
        if max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self.max_wait = max_wait
        self.pending: list[Any] | None = None  # the change computed last, unpublished
        self.since: float | None = None  # when the unpublished changes began
        self.stable: float | None = None  # since when they are what they are now

    def step(
        self, changes: Sequence[Change], now: float, *, hold: float | None = None
    ) -> list[Change]:
        """The changes to publish now, given the ones just computed.

        Args:
            changes: what would bring the published rollups up to date now (the
                attester's `rollup_changes`), in a deterministic order.
            now: the owner's clock, seconds.
            hold: for a watcher (`node.planning.rollup.watching`): publish only once
                the same changes were computed for `hold` seconds, whatever
                `max_wait` says. An attester whose rollups are late or missing is
                not overruled in passing.

        Returns:
            `changes` when they equal the ones computed at the previous step (settled)
            or the first unpublished change is `max_wait` old (or, with `hold`, the
            same changes are `hold` old); else nothing (yet).
        """
        if not changes:
            self.pending = self.since = self.stable = None
            return []
        current = list(changes)
        if self.since is None:
            self.since = now
        if current != self.pending or self.stable is None:
            self.stable = now
        if hold is not None:
            ready = now - self.stable >= hold
        else:
            ready = current == self.pending or now - self.since >= self.max_wait
        if ready:
            self.pending = self.since = self.stable = None
            return current
        self.pending = current
        return []
