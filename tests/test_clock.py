"""The hybrid clock, and the cap on how far one peer can drag it ahead.

A peer accepts records stamped up to 10 minutes ahead of its own clock
(node.crdt.replica.MAX_CLOCK_AHEAD_MS). If an honest node adopted a 9.9-minute lead
from one record, its own next records would be ahead of every peer whose clock is a
little slower than its own, and those peers would refuse them. node.clock caps what a
received timestamp can pull the clock to (MAX_ADOPT_AHEAD_MS, one minute).
"""

import random

import pytest
from factories import Author, identities

import node.clock
from node.clock import MAX_ADOPT_AHEAD_MS, HybridClock, hlc_millis, pack_hlc
from node.core import NodeCore, Verdict, encode_batch
from node.crdt.replica import MAX_CLOCK_AHEAD_MS, Replica
from node.identity import Identity

NOW = 1_800_000_000_000
MINUTE = 60_000
SCOPE = "eu/de/berlin/x"
PART = "eu/de/berlin"
AHEAD = 9 * MINUTE + 54_000  # 9.9 minutes: inside what a replica accepts


class Time:
    """A settable physical clock in milliseconds."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def _node(seed: int, now: Time) -> NodeCore:
    me = Identity.from_seed(bytes([seed]) * 32)
    replica = Replica(now_ms=now)
    return NodeCore(me.public, me.signer(), SCOPE, replica, now, rng=random.Random(seed))


def _stamped_ahead(ms: int):
    return Author(identities(1, seed=3)[0], scope=SCOPE).need("far", hlc=pack_hlc(NOW + ms, 0))


def test_the_lead_one_record_can_give_is_under_what_peers_accept():
    assert AHEAD < MAX_CLOCK_AHEAD_MS
    assert MAX_ADOPT_AHEAD_MS <= MINUTE


def test_a_tick_after_a_far_ahead_timestamp_is_at_most_a_minute_ahead():
    clock = HybridClock(Time(NOW))
    clock.observe(pack_hlc(NOW + AHEAD, 0))
    stamp = clock.tick()
    assert hlc_millis(stamp) - NOW <= MAX_ADOPT_AHEAD_MS
    assert stamp > pack_hlc(NOW, 0)  # it still moved forward


def test_a_timestamp_within_the_cap_is_adopted_whole():
    # The cap only trims a lead; the clock still orders after what it saw.
    clock = HybridClock(Time(NOW))
    seen = pack_hlc(NOW + 30_000, 7)
    clock.observe(seen)
    assert clock.tick() > seen


def test_the_cap_follows_physical_time_and_never_moves_the_clock_back():
    now = Time(NOW)
    clock = HybridClock(now)
    clock.observe(pack_hlc(NOW + AHEAD, 0))
    first = clock.tick()
    now.ms += 2 * MINUTE
    clock.observe(pack_hlc(NOW + AHEAD, 0))
    second = clock.tick()
    assert first < second
    assert hlc_millis(second) - now.ms <= MAX_ADOPT_AHEAD_MS
    for _ in range(1000):  # many records, each at the cap: still bounded
        clock.observe(pack_hlc(now.ms + AHEAD, 0))
        assert hlc_millis(clock.tick()) - now.ms <= MAX_ADOPT_AHEAD_MS + 1


def _exchange() -> tuple[NodeCore, int, Verdict]:
    """An honest node sees a record stamped 9.9 minutes ahead, then writes; a peer whose
    clock is a minute slower gets that write by gossip."""
    honest = _node(1, Time(NOW))
    taken = honest.validate_gossip(PART, encode_batch([_stamped_ahead(AHEAD).raw]))
    assert taken.verdict is Verdict.ACCEPT  # 9.9 minutes ahead is still accepted
    own = honest.write("need", "mine", {**_stamped_ahead(AHEAD).body})
    slower = _node(2, Time(NOW - MINUTE))
    result = slower.validate_gossip(PART, encode_batch([own.raw]))
    return slower, hlc_millis(own.hlc) - NOW, result.verdict


def test_after_a_far_ahead_record_a_peer_a_minute_slower_still_takes_our_writes():
    slower, lead, verdict = _exchange()
    assert lead <= MAX_ADOPT_AHEAD_MS + 1  # ~60 s ahead of our own physical clock
    assert verdict is Verdict.ACCEPT
    assert len(slower.replica) == 1


def test_without_the_cap_the_slower_peer_refuses_our_writes(monkeypatch):
    # The test above can fail: with the cap gone, our next record carries the 9.9-minute
    # lead, 10.9 minutes ahead of the slower peer, which refuses it.
    monkeypatch.setattr(node.clock, "MAX_ADOPT_AHEAD_MS", 10**12)
    slower, lead, verdict = _exchange()
    assert lead >= AHEAD
    assert verdict is not Verdict.ACCEPT
    assert len(slower.replica) == 0
    with pytest.raises(AssertionError):
        test_after_a_far_ahead_record_a_peer_a_minute_slower_still_takes_our_writes()
