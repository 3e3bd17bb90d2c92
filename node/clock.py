"""Hybrid logical clock (Kulkarni et al.), packed in 64 bits: 48 bits of wall-clock
milliseconds and a 16-bit logical counter. The time source is injected so that the
simnet and tests drive it; nothing here reads the wall clock by itself.

HLC values in records are advisory (display, deadlines); merge order is `seq`.
"""

from __future__ import annotations

from collections.abc import Callable

LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
# How far ahead of this node's own clock a received timestamp may pull it. Peers
# accept records up to 10 minutes ahead (node.crdt.replica.MAX_CLOCK_AHEAD_MS); a
# node that adopted a peer's 9.9-minute lead would stamp its own next records beyond
# what peers with a slightly slower clock accept. One minute leaves a wide margin.
MAX_ADOPT_AHEAD_MS = 60 * 1000


def pack_hlc(millis: int, logical: int) -> int:
    return (millis << LOGICAL_BITS) | logical


def hlc_millis(hlc: int) -> int:
    return hlc >> LOGICAL_BITS


class HybridClock:
    """A hybrid logical clock over an injected millisecond time source.

    Args:
        now_ms: returns the current physical time in milliseconds.
        last: a previously issued timestamp to continue from (e.g. after restart).
    """

    def __init__(self, now_ms: Callable[[], int], last: int = 0) -> None:
        self._now_ms = now_ms
        self._last = last

    def tick(self) -> int:
        """A timestamp for a local event, greater than every one issued or observed."""
        physical = self._now_ms()
        millis = max(hlc_millis(self._last), physical)
        logical = (self._last & _LOGICAL_MASK) + 1 if millis == hlc_millis(self._last) else 0
        if logical > _LOGICAL_MASK:
            millis, logical = millis + 1, 0
        self._last = pack_hlc(millis, logical)
        return self._last

    def observe(self, remote: int) -> None:
        """Account for a timestamp seen on a received record (call only after validation).

        A timestamp more than `MAX_ADOPT_AHEAD_MS` ahead of the physical clock is
        adopted only up to that lead: one origin cannot drag this clock far ahead.
        """
        ceiling = pack_hlc(self._now_ms() + MAX_ADOPT_AHEAD_MS, 0)
        remote = min(remote, ceiling)
        if remote > self._last:
            self._last = remote

    def now_ms(self) -> int:
        return self._now_ms()

    @property
    def last(self) -> int:
        return self._last
