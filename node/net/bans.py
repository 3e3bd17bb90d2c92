"""Bans that outlast a restart: peers banned for invalid data, saved with their end.

A ban is kept in memory on trio's clock; this file holds its end as wall-clock
seconds (the only clock that means the same after a restart), written atomically like
the peer book. A missing or unreadable file means no bans (logged).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from node.files import replace_private

logger = logging.getLogger("allmende.net")

BANS_FILE = "bans.json"
MAX_BANS = 4096  # a flood of throwaway peer ids cannot grow the file without bound


@dataclass
class BanFile:
    """`directory`/bans.json; memory-only when `directory` is None.

    Args:
        wall: wall-clock seconds (injected in tests).
    """

    directory: Path | None
    wall: Callable[[], float] = time.time

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / BANS_FILE

    def load(self) -> dict[str, float]:
        """Peer id -> seconds of ban left (only bans not over yet)."""
        path = self.path
        if path is None or not path.exists():
            return {}
        now = self.wall()
        try:
            raw = json.loads(path.read_text("utf-8"))
            return {
                str(pid): float(end) - now for pid, end in raw["bans"].items() if float(end) > now
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignoring unreadable ban file %s: %s", path, exc)
            return {}

    def save(self, remaining: Mapping[str, float]) -> None:
        """Write the bans (peer id -> seconds left) atomically; failures are logged."""
        path = self.path
        if path is None:
            return
        now = self.wall()
        longest = sorted(remaining.items(), key=lambda kv: -kv[1])[:MAX_BANS]
        data = {"version": 1, "bans": {pid: round(now + left, 3) for pid, left in longest}}
        try:
            replace_private(path, json.dumps(data, indent=1))
        except OSError as exc:
            logger.warning("cannot save ban file %s: %s", path, exc)
