"""Anti-entropy: sessions converge replicas under any delivery history."""

import random

import factories
import msgpack
import pytest
from factories import Author, identities
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node.crdt.encoding import Writer, encode_varint
from node.crdt.replica import Replica
from node.crdt.sync import (
    _TABLE,
    MAX_RANGE_ROUNDS,
    Role,
    State,
    SyncError,
    SyncSession,
    merge_received,
)

PARTS = ["eu/de/berlin", "eu/fr/paris", "eu"]
SCOPES = ["eu/de/berlin/a", "eu/fr/paris/c", "eu"]
NEED = {"item": "potatoes", "period": "2027-Q1", "priority": "high", "qty": "1", "unit": "kg"}
CAP = {"item": "potatoes", "period": "2027-Q1", "qty": "1", "unit": "kg"}


def run_session(a: Replica, b: Replica, parts_a=PARTS, parts_b=PARTS):
    return factories.run_session(a, b, parts_a, parts_b)


class Replicas(RuleBasedStateMachine):
    """Several replicas, records delivered in any order, duplicated or lost, then synced."""

    def __init__(self):
        super().__init__()
        idents = identities(4, seed=3)
        scopes = ["eu/de/berlin/a", "eu/de/berlin/b", "eu/fr/paris/c", "eu"]
        self.authors = [Author(i, s) for i, s in zip(idents, scopes, strict=True)]
        self.replicas = [Replica() for _ in range(3)]
        self.model = Replica()
        self.written = []

    @rule(
        author=st.integers(0, 3),
        home=st.integers(0, 2),
        slot=st.integers(0, 3),
        qty=st.integers(1, 50),
        withdraw=st.booleans(),
    )
    def write(self, author, home, slot, qty, withdraw):
        a = self.authors[author]
        rec = a.write("need", f"n{slot}", None) if withdraw else a.need(f"n{slot}", qty=str(qty))
        self.replicas[home].receive(rec.raw)  # the origin's own node holds it
        self.model.receive(rec.raw)
        self.written.append(rec)

    @rule(
        author=st.integers(0, 3),
        home=st.integers(0, 2),
        other=st.integers(0, 2),
        slot=st.integers(0, 3),
        back=st.integers(0, 3),
    )
    def equivocate(self, author, home, other, slot, back):
        """The origin reuses a recent seq in another slot, showing each copy to one node."""
        a = self.authors[author]
        seq = max(1, a.seq - back)
        one = a.write("need", f"e{slot}", {**NEED, "qty": "1"}, seq=seq)
        two = a.write("capacity", f"e{slot}", {**CAP, "qty": "2"}, seq=seq)
        self.replicas[home].receive(one.raw)
        self.replicas[other].receive(two.raw)
        for rec in (one, two):
            self.model.receive(rec.raw)
            self.written.append(rec)

    @rule(
        author=st.integers(0, 3),
        home=st.integers(0, 2),
        slot=st.integers(0, 3),
        where=st.sampled_from(SCOPES),
    )
    def move(self, author, home, slot, where):
        """A slot's newer record lives in another partition (the scope changed)."""
        a = self.authors[author]
        rec = a.need(f"n{slot}", qty="7", scope=where)
        self.replicas[home].receive(rec.raw)
        self.model.receive(rec.raw)
        self.written.append(rec)

    @precondition(lambda self: self.written)
    @rule(data=st.data(), to=st.integers(0, 2), copies=st.integers(1, 2))
    def gossip(self, data, to, copies):
        rec = data.draw(st.sampled_from(self.written))
        for _ in range(copies):  # duplicates are harmless
            self.replicas[to].receive(rec.raw)

    @rule(a=st.integers(0, 2), b=st.integers(0, 2))
    def sync(self, a, b):
        if a != b:
            run_session(self.replicas[a], self.replicas[b])

    @invariant()
    def never_ahead_of_model(self):
        for r in self.replicas:
            assert len(r) <= len(self.model)

    def teardown(self):
        n = len(self.replicas)
        for _ in range(2):
            for a in range(n):
                for b in range(n):
                    if a != b:
                        run_session(self.replicas[a], self.replicas[b])
        for p in PARTS:  # the records of every partition are the union of all written
            assert {r.partition(p).root() for r in self.replicas} == {
                self.model.partition(p).root()
            }
        # Evidence travels too: the replicas end with the same evidence and flags. (They
        # can know less than the model, which saw every record: two records that no
        # single replica held together, and that nobody holds any more, prove nothing
        # to anyone.)
        assert len({r.digest() for r in self.replicas}) == 1
        flags = [r.flagged for r in self.replicas]
        assert all(f == flags[0] for f in flags)
        assert set(flags[0]) <= set(self.model.flagged)
        # Converged means quiet: one more session moves nothing.
        i, resp = run_session(self.replicas[0], self.replicas[1])
        assert i.stats.records_sent + resp.stats.records_sent == 0


TestReplicas = Replicas.TestCase
TestReplicas.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)


def _pair(n_origins=40, per_origin=20, missing=0.0, seed=1):
    rng = random.Random(seed)
    authors = [Author(i, "eu/de/berlin/x") for i in identities(n_origins, seed=seed)]
    a, b = Replica(), Replica()
    for au in authors:
        for k in range(per_origin):
            rec = au.need(f"n{k}")
            a.insert_verified(rec)
            if rng.random() >= missing:
                b.insert_verified(rec)
    return a, b, authors


def test_equal_replicas_cost_one_round_trip_under_1kb():
    a, b, _ = _pair()
    i, r = run_session(a, b)
    assert i.stats.bytes_sent + r.stats.bytes_sent < 1024
    assert i.stats.messages_sent == 1
    assert r.stats.messages_sent == 1


@pytest.mark.parametrize("direction", ["pull", "push"])
def test_missing_records_move_either_way(direction):
    a, b, _ = _pair(missing=0.1)
    first, second = (b, a) if direction == "pull" else (a, b)
    i, r = run_session(first, second)
    assert a.digest() == b.digest()
    # Pull: the initiator lists what differs, the responder sends. Push: the responder
    # asks for what the list shows it lacks, one more message.
    limit = 3 if direction == "pull" else 4
    assert max(i.stats.messages_sent, r.stats.messages_sent) <= limit


def test_updates_and_tombstones_supersede_over_sync():
    a, b, authors = _pair(n_origins=5, per_origin=5)
    newer = [authors[0].need("n1", qty="99"), authors[1].write("need", "n2", None)]
    for rec in newer:
        b.insert_verified(rec)
    run_session(a, b)
    assert a.get(authors[0].origin, "need", "n1").body["qty"] == "99"
    assert a.get(authors[1].origin, "need", "n2").body is None
    assert a.digest() == b.digest()


def test_equivocation_converges_over_sync():
    a, b, authors = _pair(n_origins=3, per_origin=3)
    liar = authors[0]
    liar.seq = 50
    one = liar.need("z", qty="1")
    liar.seq = 50
    two = liar.need("z", qty="2")
    a.receive(one.raw)
    b.receive(two.raw)
    run_session(a, b)
    assert a.digest() == b.digest()
    assert liar.origin in a.flagged
    assert liar.origin in b.flagged


def test_only_shared_partitions_sync():
    a, b, _ = _pair(n_origins=3, per_origin=3, missing=1.0)
    run_session(a, b, parts_a=["eu/fr/paris"], parts_b=["eu/de/berlin"])
    assert len(b) == 0


def test_forged_records_in_a_delta_are_dropped():
    _a, b, _authors = _pair(n_origins=3, per_origin=2, missing=1.0)
    liar = Author(identities(1, seed=99)[0])
    forged = bytearray(liar.need("f").raw)
    forged[-1] ^= 1
    i = SyncSession(b, PARTS, Role.INITIATOR)
    i.state = State.WAIT_RANGES
    w = Writer()
    w.blob(bytes(forged))
    i.receive_message(msgpack.packb({"t": "ranges", "r": w.getvalue(), "w": b"", "i": b""}))
    merge_received(b, i.take_received())
    assert len(b) == 0
    assert b.rejected["bad-signature"] == 1


def test_one_seq_in_two_slots_is_repaired():
    """The split two real daemons kept over 23 sessions: seq sets equal, contents not."""
    a, b, authors = _pair(n_origins=3, per_origin=3)
    liar = authors[0]
    seq = liar.seq + 1
    x = liar.need("x", qty="1", seq=seq)
    y = liar.capacity("y", qty="2", seq=seq)
    liar.seq = seq
    z = liar.need("z", qty="3")  # and a later record only one side holds
    a.receive(x.raw)
    b.receive(y.raw)
    b.receive(z.raw)
    run_session(a, b)
    assert a.digest() == b.digest()
    assert a.get(liar.origin, "need", "x") == x
    assert a.get(liar.origin, "capacity", "y") == y
    assert a.flagged == b.flagged == {liar.origin: tuple(sorted([x.rid, y.rid]))}


def test_evidence_reaches_a_node_that_never_saw_both_records():
    a, b, authors = _pair(n_origins=2, per_origin=2)
    c = Replica()
    liar = authors[0]
    seq = liar.seq + 1
    one = liar.need("x", qty="1", seq=seq)
    two = liar.need("x", qty="2", seq=seq)
    newer = liar.need("x", qty="3")  # supersedes both: no live record shows the lie
    for r in (one, two, newer):
        a.receive(r.raw)
    c.receive(newer.raw)
    assert liar.origin in a.flagged
    assert liar.origin not in c.flagged
    run_session(c, a)
    assert c.flagged == a.flagged
    run_session(b, c)  # and on, from c
    assert b.flagged == a.flagged


def test_a_moved_slot_leaves_the_old_partition_converged():
    mover = Author(identities(1, seed=5)[0], "eu/de/berlin/a")
    old = mover.write("node", "self", {"name": "N", "kind": "commune", "scope": "eu/de/berlin/a"})
    new = mover.write(
        "node",
        "self",
        {"name": "N", "kind": "commune", "scope": "eu/de/hamburg/b"},
        scope="eu/de/hamburg/b",
    )
    both, berlin = Replica(), Replica()
    both.receive(new.raw)
    berlin.receive(old.raw)
    i, r = run_session(both, berlin, ["eu/de/berlin", "eu/de/hamburg"], ["eu/de/berlin"])
    assert both.get(mover.origin, "node", "self") == new  # the winner stays the newer one
    assert both.digest(["eu/de/berlin"]) == berlin.digest(["eu/de/berlin"])
    i, r = run_session(both, berlin, ["eu/de/berlin", "eu/de/hamburg"], ["eu/de/berlin"])
    assert i.stats.records_sent + r.stats.records_sent == 0  # nothing resent, ever


def test_stale_copy_of_a_slot_is_not_requested():
    """Id lists name slots: a side holding a newer record of a slot does not ask for
    the older one the other side lists."""
    a, b, authors = _pair(n_origins=1, per_origin=4)
    au = authors[0]
    old = au.need("n9", qty="1")
    b.receive(old.raw)
    a.receive(old.raw)
    extra_b = au.need("only-b")
    b.receive(extra_b.raw)
    newer = au.need("n9", qty="2")
    a.receive(newer.raw)  # a: newer n9, b: old n9 and a record a lacks
    i, r = run_session(a, b)
    assert a.digest() == b.digest()
    assert i.stats.records_sent + r.stats.records_sent == 2  # newer -> b, only-b -> a


ALL_TYPES = [
    "hello",
    "buckets",
    "done",
    "entries",
    "evidence",
    "ranges",
    "junk",
]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("kind", ALL_TYPES)
def test_every_state_input_pair(state, kind):
    """Pairs outside the table are protocol errors; pairs inside need a valid body."""
    s = SyncSession(Replica(), PARTS, Role.RESPONDER)
    s.state = state
    message = msgpack.packb({"t": kind})
    if (state, kind) in ((State.WAIT_BUCKETS, "done"), (State.WAIT_ENTRIES, "evidence")):
        s.receive_message(message)  # the one message that needs no body
        assert s.done
        return
    with pytest.raises(SyncError) as exc:
        s.receive_message(message)
    if (state, kind) in _TABLE:
        assert exc.value.reason in ("malformed", "protocol")
        assert "not expected" not in str(exc.value)
    else:
        assert exc.value.reason == "protocol"
        assert "not expected" in str(exc.value)
    assert s.done


def test_done_message_ends_initiator():
    s = SyncSession(Replica(), PARTS, Role.INITIATOR)
    assert s.generate_message() is not None
    s.receive_message(msgpack.packb({"t": "done"}))
    assert s.done
    assert s.generate_message() is None


@pytest.mark.parametrize("data", [b"", b"\xc1", msgpack.packb([1, 2]), b"\x81" * 1000])
def test_garbage_messages_end_the_session(data):
    s = SyncSession(Replica(), PARTS, Role.RESPONDER)
    with pytest.raises(SyncError):
        s.receive_message(data)
    assert s.done


# --- sync 3: ranges within an origin ---------------------------------------------


def _big_origin(n=2000, lost=(), seed=4):
    au = Author(identities(1, seed=seed)[0], "eu/de/berlin/x")
    recs = [au.need(f"n{k}") for k in range(n)]
    a, b = Replica(), Replica()
    for k, rec in enumerate(recs):
        a.insert_verified(rec)
        if k not in lost:
            b.insert_verified(rec)
    return a, b, recs


@pytest.mark.parametrize("direction", ["pull", "push"])
def test_one_record_amid_a_large_origin_costs_bytes_of_the_difference(direction):
    """Sync 2 listed all 2,000 records of the origin (~34 KB); ranges find the one."""
    a, b, recs = _big_origin(lost={1000})
    first, second = (b, a) if direction == "pull" else (a, b)
    i, r = run_session(first, second)
    assert a.digest() == b.digest()
    assert i.stats.bytes_sent + r.stats.bytes_sent < 3000 + len(recs[1000].raw)
    assert max(i.stats.messages_sent, r.stats.messages_sent) <= 6


def test_scattered_differences_both_ways_in_a_large_origin_converge():
    full, b, recs = _big_origin(n=3000, lost=set(range(7, 3000, 97)))
    a = Replica()  # and records only b holds
    a.load_trusted(r for k, r in enumerate(recs) if k % 211 != 5)
    i, r = run_session(a, b)
    assert a.digest() == b.digest() == full.digest()
    assert not i.stats.truncated
    assert not r.stats.truncated
    assert max(i.stats.messages_sent, r.stats.messages_sent) <= 8


def _ranges_session(role=Role.INITIATOR, units=1):
    a, _b, _ = _pair(n_origins=units, per_origin=20)
    s = SyncSession(a, PARTS, role, salt=b"s" * 16)
    s.partitions = ["eu/de/berlin"]
    s._entry_units = sorted(s._my_units())
    s.state = State.WAIT_RANGES
    return s


def _ranges_msg(items=b"", wants=b"", records=b""):
    return msgpack.packb({"t": "ranges", "r": records, "w": wants, "i": items})


def _item_unit(idx, items):
    w = Writer()
    w.varint(idx)
    w.varint(len(items))
    for lo_gap, width, head, body in items:
        w.varint(lo_gap)
        w.varint(width)
        w.varint(head)
        w.fixed(body)
    return w.getvalue()


@pytest.mark.parametrize(
    "items",
    [
        _item_unit(5, [(0, 0, 0, b"\0" * 4)]),  # no such unit
        _item_unit(0, [(0, 0, 0, b"\0" * 4)]) + _item_unit(0, [(0, 0, 0, b"\0" * 4)]),  # twice
        _item_unit(0, [(0, 0, 0, b"\0" * 4), (1, 5, 0, b"\0" * 4)]),  # after the unbounded
        _item_unit(0, [(0, 5, 3, b"\x09" + b"t" * 8)]),  # a listed seq above the range
        _item_unit(0, [(3, 5, 3, b"\x00" + b"t" * 8)]),  # a listed seq at its bottom
        _item_unit(0, [(0, 0, 2 * 2**40 + 1, b"")]),  # a list claiming 2^40 entries
        _item_unit(0, [(0, 0, 0, b"\0\0")]),  # a truncated fingerprint
        b"\x00" + encode_varint(2**40),  # a unit claiming 2^40 ranges
    ],
)
def test_malformed_ranges_end_the_session(items):
    s = _ranges_session()
    with pytest.raises(SyncError) as exc:
        s.receive_message(_ranges_msg(items=items))
    assert exc.value.reason == "malformed"
    assert s.done


@pytest.mark.parametrize(
    "wants",
    [b"\x07\x01tttt", b"\x00\x01tttt\x00\x01uuuu", b"\x00\x05tttt", b"\x00" + encode_varint(2**40)],
)
def test_malformed_wants_end_the_session(wants):
    s = _ranges_session()
    with pytest.raises(SyncError) as exc:
        s.receive_message(_ranges_msg(wants=wants))
    assert exc.value.reason == "malformed"


def test_lying_fingerprints_cost_at_most_one_list_per_record():
    """A peer claiming every part of a unit differs gets sub-ranges, then lists: each
    record is listed at most once per message, and never sent unasked."""
    s = _ranges_session()
    s.receive_message(_ranges_msg(items=_item_unit(0, [(0, 0, 2 * 99, b"\xff" * 4)])))
    out = msgpack.unpackb(s.generate_message())
    assert out["r"] == b""  # no records for a lie
    assert len(out["i"]) < 20 * (1 + 2 * 4) + 64
    assert s.state is State.WAIT_RANGES


def test_a_peer_that_never_stops_splitting_is_cut_off():
    s = _ranges_session()
    lie = _ranges_msg(items=_item_unit(0, [(0, 0, 2 * 99, b"\xff" * 4)]))
    for _ in range(MAX_RANGE_ROUNDS + 1):  # answered, then listed, never split
        s.receive_message(lie)
        assert s.generate_message() is not None
    with pytest.raises(SyncError) as exc:
        s.receive_message(lie)
    assert exc.value.reason == "protocol"
    assert "rounds" in str(exc.value)


def test_another_sync_version_is_refused_without_blame():
    s = SyncSession(Replica(), PARTS, Role.RESPONDER)
    hello = {"t": "hello", "v": 2, "fed": "", "salt": b"s" * 16, "roots": []}
    with pytest.raises(SyncError) as exc:
        s.receive_message(msgpack.packb(hello))
    assert exc.value.reason == "version"
    assert "not supported" in str(exc.value)
