"""The replica lock: readers share, a writer is alone, a waiting writer goes first."""

import trio
import trio.testing

from node.rwlock import ReadWriteLock


def test_readers_share_writers_exclude_and_go_first():
    log = []

    async def reader(lock, name, hold):
        async with lock.read():
            log.append(("in", name, trio.current_time()))
            await trio.sleep(hold)
            log.append(("out", name, trio.current_time()))

    async def writer(lock, name):
        async with lock.write():
            log.append(("in", name, trio.current_time()))
            await trio.sleep(1)
            log.append(("out", name, trio.current_time()))

    async def main():
        lock = ReadWriteLock()
        async with trio.open_nursery() as n:
            n.start_soon(reader, lock, "r1", 2)
            n.start_soon(reader, lock, "r2", 2)
            await trio.sleep(0.5)
            n.start_soon(writer, lock, "w")
            await trio.sleep(0.5)
            n.start_soon(reader, lock, "r3", 1)  # arrives while w waits: after w

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    times = {(ev, name): t for ev, name, t in log}
    assert times[("in", "r1")] == times[("in", "r2")] == 0  # readers at once
    assert times[("in", "w")] == 2  # after both readers
    assert times[("in", "r3")] == 3  # after the writer that was waiting before it
