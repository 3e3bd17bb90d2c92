"""The in-memory network: links between simulated nodes, with a routing hook.

Every message between nodes goes through `send`, which asks `route(src, dst, kind,
size, reliable)` for a list of delivery delays: an empty list drops the message, two
entries duplicate it (trio's `testing/_fake_net.py` idea). The default route draws a
lognormal latency around the link's own mean, adds serialisation time, and applies
loss and duplication to unreliable traffic (gossip RPCs); anti-entropy runs over a
reliable stream, so it is delayed but never lost or duplicated. A message is dropped
when its link is down at sending or at delivery (partition, a node away).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from simnet.events import Scheduler
from simnet.scenario import Network as NetParams

Route = Callable[[int, int, str, int, bool], list[float]]


class VirtualNetwork:
    """Links, liveness and partitions of N nodes.

    Args:
        n: number of nodes.
        params: latency, loss, duplication, bandwidth.
        sched: the scheduler deliveries are put on.
        rng: the network's own seeded random source.
    """

    def __init__(self, n: int, params: NetParams, sched: Scheduler, rng: random.Random) -> None:
        self.params = params
        self.sched = sched
        self.rng = rng
        self.neighbours: list[list[int]] = [[] for _ in range(n)]
        self._latency: dict[tuple[int, int], float] = {}
        self.online = [True] * n
        self.group: list[int] | None = None
        self.route: Route = self.default_route
        self.messages: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.duplicated = 0
        sigma = params.latency_sigma
        self._mu = math.log(params.latency_ms / 1000.0) - sigma * sigma / 2

    def connect(self, a: int, b: int) -> bool:
        """Add the link a-b (no-op if present or a == b); its mean latency is drawn now."""
        if a == b:
            return False
        key = (min(a, b), max(a, b))
        if key in self._latency:
            return False
        self._latency[key] = self.rng.lognormvariate(self._mu, self.params.latency_sigma)
        self.neighbours[a].append(b)
        self.neighbours[b].append(a)
        return True

    def links(self) -> int:
        return len(self._latency)

    def up(self, a: int, b: int) -> bool:
        """Whether a message can travel between a and b now."""
        return (
            self.online[a]
            and self.online[b]
            and (self.group is None or self.group[a] == self.group[b])
        )

    def live_neighbours(self, a: int) -> list[int]:
        return [b for b in self.neighbours[a] if self.up(a, b)]

    def link_latency(self, a: int, b: int) -> float:
        return self._latency[(min(a, b), max(a, b))]

    def mean_latency(self) -> float:
        return sum(self._latency.values()) / max(1, len(self._latency))

    def default_route(
        self, src: int, dst: int, kind: str, size: int, reliable: bool
    ) -> list[float]:
        p, rng = self.params, self.rng
        base = self.link_latency(src, dst) + size * 8 / (p.bandwidth_mbps * 1e6)
        if reliable:
            return [base * rng.lognormvariate(0.0, p.jitter_sigma)]
        if p.loss and rng.random() < p.loss:
            return []
        delays = [base * rng.lognormvariate(0.0, p.jitter_sigma)]
        if p.duplicate and rng.random() < p.duplicate:
            delays.append(base * rng.lognormvariate(0.0, p.jitter_sigma))
        return delays

    def send(
        self,
        src: int,
        dst: int,
        kind: str,
        size: int,
        deliver: Callable[..., None],
        *args: Any,
        reliable: bool = False,
    ) -> None:
        """Send a message of `size` bytes; `deliver(*args)` runs at the receiver."""
        self.messages[kind] += 1
        self.bytes[kind] += size
        if not self.up(src, dst):
            self.dropped[kind] += 1
            return
        delays = self.route(src, dst, kind, size, reliable)
        if not delays:
            self.dropped[kind] += 1
        self.duplicated += max(0, len(delays) - 1)
        for d in delays:
            self.sched.after(d, self._arrive, src, dst, kind, deliver, args)

    def account(self, src: int, dst: int, kind: str, size: int) -> bool:
        """Count a message whose delivery would change nothing (see `send`) without
        scheduling it; True if its link is up. Loss and duplication are not drawn."""
        self.messages[kind] += 1
        self.bytes[kind] += size
        if not self.up(src, dst):
            self.dropped[kind] += 1
            return False
        return True

    def _arrive(
        self, src: int, dst: int, kind: str, deliver: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        if not self.up(src, dst):
            self.dropped[kind] += 1
            return
        deliver(*args)
