"""The node core's rules (node/core.py): what a node takes from peers, stores and gossips.

Each test here is a hostile input or a rule the daemon and the simnet share: a bad
record in a gossip message merges nothing and is not verified at all; records of the
wrong topic or of partitions the node does not follow are never stored; what only
an honest peer's clock can cause is not penalised; a member's submission is durable
before it counts; re-gossip after a sync depends on what the message brought, not on
how the owner cut it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.clock import pack_hlc
from node.core import (
    BATCH_VERSION,
    MAX_BATCH_BYTES,
    REGOSSIP_LIMIT,
    NodeCore,
    Source,
    Verdict,
    batches,
    decode_batch,
    encode_batch,
)
from node.crdt.encoding import MAX_RECORD_BYTES, Reader, encode_varint
from node.crdt.record import Record, sign_record, signature_ok
from node.crdt.replica import Replica
from node.errors import LocalError, Rejected

NOW = 1_800_000_000_000
SCOPE = "eu/de/berlin/x"
PART = "eu/de/berlin"


class RecordingStore:
    """A store that remembers what it was asked to save, and can fail."""

    def __init__(self) -> None:
        self.saved: list[tuple[list[Record], bool]] = []
        self.fail = False

    def save(
        self,
        records: Sequence[Record],
        *,
        evidence: Sequence[Any] = (),
        meta: Any = None,
        durable: bool = True,
    ) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.saved.append((list(records), durable))

    def records(self) -> list[Record]:
        return [r for batch, _ in self.saved for r in batch]


class CountingVerify:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, r: Record) -> bool:
        self.calls += 1
        return signature_ok(r)


def make_core(
    scope: str = SCOPE, store: RecordingStore | None = None, verify: Any = signature_ok
) -> NodeCore:
    me = identities(1, seed=99)[0]
    return NodeCore(
        me.public,
        me.signer(),
        scope,
        Replica(now_ms=lambda: NOW),
        lambda: NOW,
        rng=random.Random(1),
        store=store,
        verify=verify,
    )


def forged(author: Author, key: str) -> Record:
    """Signed by someone else, claiming `author` as origin."""
    mallory = identities(1, seed=666)[0]
    body = {"item": "potatoes", "qty": "1", "unit": "kg", "period": "2027-Q1", "priority": "low"}
    return sign_record(mallory.signer(), author.origin, "need", key, 1, 0, author.scope, body)


def test_a_gossip_message_with_one_bad_record_merges_nothing_and_verifies_nothing() -> None:
    verify = CountingVerify()
    store = RecordingStore()
    core = make_core(store=store, verify=verify)
    alice = Author(identities(2)[0], scope="eu/de/berlin/a")
    good = [alice.need(f"n{i}") for i in range(5)]
    bad_body = {"item": "potatoes", "qty": "1", "unit": "parsec", "period": "2027-Q1"}
    data = encode_batch([r.raw for r in good] + [alice.write("capacity", "evil", bad_body).raw])
    result = core.validate_gossip(PART, data)
    assert result.verdict is Verdict.REJECT
    assert result.stored == []
    assert len(core.replica) == 0
    assert store.saved == []
    assert core.outbox == []
    assert result.rejected == {"invalid-body": 1}
    assert verify.calls == 0  # screened out before any signature was checked
    # the same good records alone are taken
    assert core.validate_gossip(PART, encode_batch([r.raw for r in good])).verdict is Verdict.ACCEPT
    assert len(core.replica) == 5


def test_a_forged_record_in_a_gossip_message_is_rejected_after_verification() -> None:
    core = make_core()
    alice = Author(identities(2)[0], scope="eu/de/berlin/a")
    result = core.validate_gossip(PART, encode_batch([forged(alice, "n1").raw]))
    assert result.verdict is Verdict.REJECT
    assert result.rejected == {"bad-signature": 1}
    assert len(core.replica) == 0


def test_a_record_of_another_topic_is_rejected_and_never_stored() -> None:
    store = RecordingStore()
    core = make_core(scope="eu/de/berlin/x", store=store)
    # eu/de/hamburg is not followed; eu/de is followed (an ancestor) but it is another topic
    for scope in ("eu/de/hamburg/y", "eu/de"):
        rec = Author(identities(1, seed=5)[0], scope=scope).need("n1")
        result = core.validate_gossip(PART, encode_batch([rec.raw]))
        assert result.verdict is Verdict.REJECT
        assert result.rejected == {"wrong-topic": 1}
    assert len(core.replica) == 0
    assert store.saved == []


def test_a_record_of_a_partition_not_followed_is_refused_in_sync() -> None:
    """Found: such a record was merged, went into the outbox, and the publisher raised on
    the unknown topic, which stopped the daemon."""
    store = RecordingStore()
    core = make_core(store=store)
    foreign = Author(identities(1, seed=7)[0], scope="eu/de/hamburg/y").need("n1")
    ours = Author(identities(1, seed=8)[0], scope="eu/de/berlin/z").need("n1")
    result = core.ingest([foreign.raw, ours.raw], Source.SYNC, partitions=[PART, "eu/de/hamburg"])
    assert result.rejected == {"not-followed": 1}
    assert result.stored == [ours]
    assert store.records() == [ours]
    assert core.outbox == [ours]
    assert [p for p, _ in core.take_batches()] == [PART]


def test_take_batches_publishes_only_on_followed_topics() -> None:
    core = make_core()
    stray = Author(identities(1, seed=7)[0], scope="eu/fr/paris/y").need("n1")
    core.outbox.append(stray)  # however it got there
    assert core.take_batches() == []


def test_a_message_of_records_held_already_is_ignored() -> None:
    core = make_core()
    rec = Author(identities(1)[0], scope="eu/de/berlin/a").need("n1")
    assert core.validate_gossip(PART, encode_batch([rec.raw])).verdict is Verdict.ACCEPT
    again = core.validate_gossip(PART, encode_batch([rec.raw]))
    assert again.verdict is Verdict.IGNORE
    assert again.known == 1


def test_a_byte_different_copy_of_a_held_record_is_verified_not_taken_as_known() -> None:
    """A duplicate is byte-equal or it is new: a forged copy of a held record's slot
    and seq is checked (and rejected), never IGNOREd as if held."""
    core = make_core()
    alice = Author(identities(1)[0], scope="eu/de/berlin/a")
    rec = alice.need("n1")
    core.validate_gossip(PART, encode_batch([rec.raw]))
    fake = forged(alice, "n1")
    assert fake.slot == rec.slot
    assert fake.seq == rec.seq
    result = core.validate_gossip(PART, encode_batch([fake.raw]))
    assert result.verdict is Verdict.REJECT
    assert result.rejected == {"bad-signature": 1}


def test_a_record_from_an_honest_clock_ahead_of_ours_is_not_penalised() -> None:
    core = make_core()
    ahead = pack_hlc(NOW + 11 * 60 * 1000, 0)  # beyond the 10 minutes accepted
    rec = Author(identities(1)[0], scope="eu/de/berlin/a").need("n1", hlc=ahead)
    result = core.validate_gossip(PART, encode_batch([rec.raw]))
    assert result.rejected == {"clock-ahead": 1}
    assert result.verdict is Verdict.RETRY  # dropped, not forwarded, not penalised
    assert len(core.replica) == 0


def test_a_record_stamped_ahead_cannot_drag_the_clock_beyond_a_minute() -> None:
    core = make_core()
    ahead = pack_hlc(NOW + 9 * 60 * 1000 + 54_000, 0)  # 9.9 minutes: accepted
    rec = Author(identities(1)[0], scope="eu/de/berlin/a").need("n1", hlc=ahead)
    assert core.validate_gossip(PART, encode_batch([rec.raw])).verdict is Verdict.ACCEPT
    own = core.write("need", "mine", rec.body)
    assert (own.hlc >> 16) - NOW <= 60_000 + 1


def test_a_submitted_record_is_saved_durably_before_it_counts() -> None:
    store = RecordingStore()
    core = make_core(store=store)
    rec = Author(identities(1)[0], scope="eu/de/berlin/a").need("n1")
    store.fail = True
    with pytest.raises(OSError, match="No space"):
        core.ingest([rec.raw], Source.SUBMIT)
    assert len(core.replica) == 0  # nothing counts that is not on disk
    assert core.outbox == []
    store.fail = False
    result = core.ingest([rec.raw], Source.SUBMIT)
    assert result.stored == [rec]
    assert store.saved == [([rec], True)]
    assert core.outbox == [rec]


@pytest.mark.parametrize(
    ("brought", "regossiped"), [(REGOSSIP_LIMIT, True), (REGOSSIP_LIMIT + 1, False)]
)
def test_regossip_after_sync_depends_on_what_the_message_brought(brought, regossiped) -> None:
    alice = Author(identities(1)[0], scope="eu/de/berlin/a")
    records = [alice.need(f"n{i}") for i in range(brought)]
    whole = make_core()
    whole.ingest([r.raw for r in records], Source.SYNC, partitions=[PART])
    assert bool(whole.outbox) is regossiped
    # the daemon screens a large message in parts: the same decision
    parts = make_core()
    for i in range(0, brought, 300):
        chunk = [r.raw for r in records[i : i + 300]]
        s = parts.screen(chunk, Source.SYNC, partitions=[PART], received=brought)
        parts.verify(s)
        parts.apply(s)
    assert parts.outbox == whole.outbox
    assert parts.digest() == whole.digest()


def test_a_write_outside_the_followed_partitions_is_refused() -> None:
    core = make_core()
    body = {"item": "potatoes", "qty": "1", "unit": "kg", "period": "2027-Q1", "priority": "low"}
    with pytest.raises(LocalError, match="outside the partitions"):
        core.write("need", "n1", body, scope="eu/de/hamburg/x")


def test_batches_stay_below_the_gossip_limit() -> None:
    alice = Author(identities(1)[0], scope="eu/de/berlin/a")
    records = [alice.need(f"n{i}", qty=str(i + 1)) for i in range(2000)]
    out = batches(records)
    assert len(out) > 1
    assert all(len(b) <= 60 * 1024 for b in out)


def _reference_split(data: bytes) -> list[bytes] | str:
    """`decode_batch` as it was: every length read by `Reader`."""
    try:
        if len(data) > MAX_BATCH_BYTES:
            raise Rejected("oversize", "")
        if not data or data[0] != BATCH_VERSION:
            raise Rejected("malformed", "")
        reader, out = Reader(data[1:]), []
        while not reader.done:
            raw = reader.blob(MAX_RECORD_BYTES)
            if len(raw) < 110:
                raise Rejected("malformed", "")
            out.append(raw)
        if not out:
            raise Rejected("malformed", "")
        return out
    except Rejected as exc:
        return exc.reason


def _split(data: bytes) -> list[bytes] | str:
    try:
        return decode_batch(data)
    except Rejected as exc:
        return exc.reason


_lengths = st.integers(0, 130) | st.integers(16_000, 16_400) | st.sampled_from([127, 128])


@settings(max_examples=300)
@given(
    st.lists(st.tuples(_lengths, st.sampled_from(["ok", "long", "zero", "cut"])), max_size=4),
    st.binary(max_size=3),
)
def test_decode_batch_splits_and_refuses_as_the_general_reader(parts, tail):
    # Lengths of one, two and three bytes, spelled minimally or not, and truncated.
    data = bytes([BATCH_VERSION])
    for n, how in parts:
        head = encode_varint(n)
        if how == "long":
            head = bytes([head[0] | 0x80]) + head[1:] + b"\x00"  # non-minimal
        elif how == "zero":
            head = head[:-1] + bytes([head[-1] | 0x80]) + b"\x00"
        body = bytes(n if how != "cut" else n // 2)
        data += head + body
    data += tail
    assert _split(data) == _reference_split(data)


def test_a_node_moved_to_another_region_withdraws_its_old_records_there() -> None:
    """The old region's followers must see the withdrawal, so the mover keeps following
    a partition while it holds a live record of its own there."""
    me = identities(1, seed=99)[0]
    replica = Replica(now_ms=lambda: NOW)
    node_body = {"name": "x", "kind": "commune", "scope": "eu/de/berlin/x"}
    rec = sign_record(me.signer(), me.public, "node", "self", 1, 0, "eu/de/berlin/x", node_body)
    replica.insert_verified(rec)
    moved = NodeCore(
        me.public, me.signer(), "eu/de/hamburg/x", replica, lambda: NOW, rng=random.Random(1)
    )
    assert moved.partitions == ["eu", "eu/de", "eu/de/berlin", "eu/de/hamburg"]
    pending = moved.node_record_pending("x", "commune")
    assert pending is not None
    moved.commit(pending)
    tombstone, new = pending.records
    assert tombstone.body is None
    assert tombstone.scope == "eu/de/berlin/x"
    assert new.scope == "eu/de/hamburg/x"
    published = dict(moved.take_batches())
    assert set(published) == {"eu/de/berlin", "eu/de/hamburg"}
    # once nothing of its own is live there, a restart leaves the old partition
    again = NodeCore(
        me.public, me.signer(), "eu/de/hamburg/x", replica, lambda: NOW, rng=random.Random(1)
    )
    assert again.partitions == ["eu", "eu/de", "eu/de/hamburg"]


def test_the_inviter_vouches_for_the_first_applicant_only() -> None:
    from node import model
    from node.governance.admission import Charter

    me = identities(1, seed=99)[0]
    charter = Charter.of("t", [me.public])
    core = NodeCore(
        me.public,
        me.signer(),
        "eu/de/berlin/x",
        Replica(now_ms=lambda: NOW),
        lambda: NOW,
        rng=random.Random(1),
        charter=charter,
    )
    core.write("charter", charter.id, charter.body(), scope="eu")
    core.write("node", "self", {"name": "x", "kind": "commune", "scope": "eu/de/berlin/x"})
    secret = bytes(range(32))
    core.write("invite", "inv00001", {"hash": model.invite_hash(secret)})
    assert core.redeem_invites() == []
    newcomers = [Author(i, scope="eu/de/berlin/n") for i in identities(2, seed=4)]
    body = {"invite": f"{me.public.hex()}.inv00001", "secret": secret.hex()}
    apps = [n.write("apply", "self", body) for n in newcomers]
    nodes = [
        n.write("node", "self", {"name": "n", "kind": "commune", "scope": n.scope})
        for n in newcomers
    ]
    result = core.ingest(
        [a.raw for a in apps] + [n.raw for n in nodes], Source.GOSSIP, partition=PART
    )
    assert result.verdict is Verdict.ACCEPT  # applications showing the secret, node records
    pendings = core.redeem_invites()
    first = min(apps, key=lambda r: r.rid).origin
    kinds = [(r.kind, r.key) for p in pendings for r in p.records]
    assert kinds == [("endorse", first.hex()), ("invite", "inv00001")]
    for p in pendings:
        core.commit(p)
    assert core.admission.is_admitted(first)
    assert core.redeem_invites() == []  # used once
    second = next(a.origin for a in apps if a.origin != first)
    assert not core.admission.is_admitted(second)
    assert core.admission.standings[first].invited_by == me.public
