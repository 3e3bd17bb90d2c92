"""A readers-writer lock for trio: many readers at once, or one writer.

The daemon's replica is read by anti-entropy steps running in worker threads (so a
large or hostile sync message never stalls the event loop) and changed only on the
event loop. Readers hold `read()` while their thread runs; every change holds
`write()`. Writers go first: a waiting writer keeps new readers out, so a stream of
sync sessions cannot starve merges.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._cond = trio.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        async with self._cond:
            while self._writer or self._writers_waiting:
                await self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                async with self._cond:
                    self._readers -= 1
                    self._cond.notify_all()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        async with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    await self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                async with self._cond:
                    self._writer = False
                    self._cond.notify_all()

    def statistics(self) -> dict[str, int | bool]:
        return {
            "readers": self._readers,
            "writer": self._writer,
            "writers_waiting": self._writers_waiting,
        }
