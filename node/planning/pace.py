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
from typing import Any

__all__ = ["MAX_WAIT", "WATCH_GRACE", "WATCH_HOLD", "RollupPace"]

MAX_WAIT = 300.0  # seconds a busy region's change waits at most
WATCH_HOLD = 2 * MAX_WAIT  # seconds a watcher finds a period wanting before it signs
WATCH_GRACE = 60.0  # seconds of each spell of wanting that do not count (attesters lag)

Change = tuple[str, Any, str]  # (rollup key, body or None, scope)


class RollupPace:
    """An attester's debounce: which computed rollup changes to publish now.

    Args:
        max_wait: seconds after which a change that keeps changing is published anyway.
    """

    def __init__(self, max_wait: float = MAX_WAIT) -> None:
        if max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self.max_wait = max_wait
        self.pending: list[Change] | None = None  # the change computed last, unpublished
        self.since: float | None = None  # when the unpublished changes began
        # a watcher's periods: rollup key -> (seconds found wanting, net of breaks;
        # when last seen; since when wanting without a break, or None while not
        # wanting; the latest change, or None while not wanting)
        self.wanting: dict[str, tuple[float, float, float | None, Change | None]] = {}

    @property
    def unpublished(self) -> list[Change]:
        """What was computed last and is not published yet (what an owner passes again
        when nothing changed since)."""
        waiting = (c for _, _, _, c in self.wanting.values() if c is not None)
        return [*(self.pending or []), *waiting]

    def step(
        self,
        changes: Sequence[Change],
        now: float,
        *,
        hold: float | None = None,
        signing: frozenset[str] = frozenset(),
        grace: float = WATCH_GRACE,
    ) -> list[Change]:
        """The changes to publish now, given the ones just computed.

        Args:
            changes: what would bring the published rollups up to date now (the
                attester's `rollup_changes`), in a deterministic order.
            now: the owner's clock, seconds.
            hold: for a watcher (`node.planning.rollup.watching`): a period it does
                not sign yet goes out, with what it computes then, once it was found
                wanting for `hold` seconds; the first `grace` seconds of each spell
                of wanting do not count (attesters sign a change some seconds after
                it), and a time it was not wanting takes off a quarter of its length
                (a leaky bucket), so an attester late by less is not overruled, and
                one that signs just in time and then falls silent again cannot keep
                the watchers waiting. Periods it signs already (`signing`, rollup
                keys) and withdrawals follow an attester's pace.
            signing: the rollup keys this node signs already (a live rollup).
            grace: see `hold`.

        Returns:
            the changes to publish now, in the order given: an attester's when they
            equal the ones computed at the previous step (settled) or the first
            unpublished one is `max_wait` old; a watcher's step-ins as above.
        """
        if hold is None:
            self.wanting = {}
            return self._settle(list(changes), now)
        stepins = {c[0]: c for c in changes if c[0] not in signing and c[1] is not None}
        wanting: dict[str, tuple[float, float, float | None, Change | None]] = {}
        for key in sorted(set(stepins) | set(self.wanting)):
            level, last, spell, _ = self.wanting.get(key, (0.0, now, None, None))
            if spell is not None:  # wanting since `spell`: the time past the grace counts
                level += max(0.0, now - spell - grace) - max(0.0, last - spell - grace)
            else:
                level = max(0.0, level - (now - last) / 4)
            if key in stepins:
                wanting[key] = (level, now, now if spell is None else spell, stepins[key])
            elif level > 0:
                wanting[key] = (level, now, None, None)
        ready = {key for key in stepins if wanting[key][0] >= hold}
        for key in ready:
            del wanting[key]
        self.wanting = wanting
        settled = self._settle([c for c in changes if c[0] not in stepins], now)
        return [c for c in changes if c[0] in ready or c in settled]

    def _settle(self, current: list[Change], now: float) -> list[Change]:
        if not current:
            self.pending = self.since = None
            return []
        if self.since is None:
            self.since = now
        if current == self.pending or now - self.since >= self.max_wait:
            self.pending = self.since = None
            return current
        self.pending = current
        return []
