"""Commitments both sides sign, fulfilment, and the track record (issue 13): one side's
signature never makes a commitment; forged, rewritten, stranger's and out-of-order
records change nothing they should not."""

from datetime import date

import pytest
from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node import model
from node.crdt.replica import Replica
from node.errors import Rejected, ValidationError
from node.planning.balance import TICKS
from node.planning.commitments import (
    commitments,
    committed_fields,
    committed_totals,
    track_records,
)

A, B, C, X = identities(4, seed=13)
TERMS = {"item": "potatoes", "qty": "50", "unit": "kg", "period": "2027-Q1", "due": "2027-03-31"}
TODAY = date(2027, 2, 1)


def _authors():
    return (
        Author(A, "eu/de/berlin/a"),
        Author(B, "eu/de/berlin/b"),
        Author(C, "eu/de/berlin/c"),
    )


KEYS: dict[tuple[bytes, str], str] = {}  # (offerer, short name) -> its offer's id


def okey(offerer, short="o1"):
    """The id of `offerer`'s offer called `short` here (written first)."""
    return KEYS[(offerer.origin, short)]


def offer(provider, receiver, key="o1", **terms):
    body = {"role": "provide", "with": receiver.origin.hex(), **TERMS, **terms}
    KEYS[(provider.origin, key)] = full = model.content_key(key, provider.scope, body)
    return provider.write("offer", full, body)


def accept(receiver, offerer, key="o1"):
    by = offerer.origin.hex()
    body = {"by": by, "offer": okey(offerer, key)}
    return receiver.write("accept", model.reply_key(by, okey(offerer, key)), body)


def decline(party, offerer, key="o1"):
    by = offerer.origin.hex()
    body = {"by": by, "offer": okey(offerer, key)}
    return party.write("decline", model.reply_key(by, okey(offerer, key)), body)


DKEYS: dict[tuple[bytes, str], str] = {}


def dkey(provider, short):
    return DKEYS[(provider.origin, short)]


def deliver(provider, offerer, key, qty, day="2027-03-01", offer_key="o1"):
    ref = model.offer_ref(offerer.origin.hex(), okey(offerer, offer_key))
    body = {"offer": ref, "qty": qty, "unit": "kg", "date": day}
    DKEYS[(provider.origin, key)] = full = model.content_key(key, provider.scope, body)
    return provider.write("deliver", full, body)


def confirm(receiver, provider, key, qty, day="2027-03-01"):
    by, d = provider.origin.hex(), dkey(provider, key)
    body = {"by": by, "delivery": d, "qty": qty, "unit": "kg", "date": day}
    return receiver.write("confirm", model.reply_key(by, d), body)


def dispute(receiver, provider, key, reason="not received"):
    by, d = provider.origin.hex(), dkey(provider, key)
    body = {"by": by, "delivery": d, "reason": reason}
    return receiver.write("dispute", model.reply_key(by, d), body)


def held(records):
    rep = Replica()
    for r in records:
        rep.receive(r.raw)
    return list(rep.records())


def test_the_issue_example_on_one_node():
    a, b, _ = _authors()
    recs = held([offer(b, a), accept(a, b), deliver(b, b, "d1", "50"), confirm(a, b, "d1", "50")])
    (c,) = commitments(recs)
    assert (c.state, c.provider, c.receiver) == ("committed", b.origin.hex(), a.origin.hex())
    assert c.confirmed == c.ticks == 50 * TICKS
    assert c.on_time
    tb = track_records([c], TODAY)[b.origin.hex()]
    assert (tb.committed, tb.delivered, tb.confirmed, tb.on_time, tb.overdue) == (1, 1, 1, 1, 0)
    assert track_records([c], TODAY)[a.origin.hex()].received == 1


def test_one_side_alone_never_commits():
    a, b, _ = _authors()
    (only_offer,) = commitments(held([offer(b, a)]))
    assert only_offer.state == "offered"
    assert track_records([only_offer], TODAY) == {}
    # an accept without its offer is nothing at all
    assert commitments(held([accept(a, b)])) == []


def test_a_forged_counter_signature_is_refused():
    a, b, c = _authors()
    good = accept(a, b)
    forged = bytearray(good.raw)
    forged[-5] ^= 1  # the signature no longer verifies
    rep = Replica()
    with pytest.raises(Rejected):
        rep.receive(bytes(forged))
    # a third node accepting in the receiver's place counts for nothing
    (x,) = commitments(held([offer(b, a), accept(c, b)]))
    assert x.state == "offered"
    # nor does the provider accepting its own offer
    (y,) = commitments(held([offer(b, a), accept(b, b)]))
    assert y.state == "offered"


def test_an_offer_cannot_be_rewritten_after_it_was_accepted():
    a, b, _ = _authors()
    first = offer(b, a)
    body = {**first.body, "qty": "500"}
    rewritten = b.write("offer", first.key, body)  # same id, other terms
    with pytest.raises(Rejected, match="invalid-body"):
        held([first, accept(a, b), rewritten])
    with pytest.raises(ValidationError, match="digest of its scope and body"):
        model.validate("offer", first.key, b.scope, body)
    # nor moved to another scope under the same id
    with pytest.raises(ValidationError):
        model.validate("offer", first.key, "eu/de/hamburg", first.body)
    # the same terms under another id are another offer
    again = offer(b, a, "o2")
    assert again.key != first.key
    assert [c.state for c in commitments(held([first, accept(a, b), again]))] == [
        "committed" if c == first.key else "offered" for c in sorted([first.key, again.key])
    ]


def test_either_side_may_decline_and_a_cancel_is_named():
    a, b, c = _authors()
    by = b.origin.hex()
    (d,) = commitments(held([offer(b, a), decline(a, b)]))
    assert (d.state, d.declined_by) == ("declined", a.origin.hex())
    (e,) = commitments(held([offer(b, a), accept(a, b), decline(b, b)]))
    assert e.state == "cancelled"
    assert track_records([e], TODAY)[by].cancelled == 1
    stranger = decline(c, b)
    assert commitments(held([offer(b, a), accept(a, b), stranger]))[0].state == "committed"


def test_partial_deliveries_confirms_and_disputes():
    a, b, c = _authors()
    recs = [offer(b, a), accept(a, b)]
    recs += [deliver(b, b, "d1", "20"), confirm(a, b, "d1", "20")]
    recs += [deliver(b, b, "d2", "30"), confirm(a, b, "d2", "25")]  # confirms another qty
    recs += [deliver(b, b, "d3", "5"), dispute(a, b, "d3")]
    recs += [deliver(c, b, "d4", "99")]  # not the provider
    recs += [deliver(b, b, "d5", "1"), confirm(c, b, "d5", "1")]  # not the receiver
    (cm,) = commitments(held(recs))
    statuses = {d.key.split("-")[0]: d.status for d in cm.deliveries}
    assert statuses == {"d1": "confirmed", "d2": "recorded", "d3": "disputed", "d5": "recorded"}
    assert cm.delivered == 56 * TICKS
    assert cm.confirmed == 20 * TICKS
    assert not cm.on_time
    late = track_records([cm], date(2027, 4, 1))[b.origin.hex()]
    assert (late.delivered, late.confirmed, late.overdue, late.disputed) == (1, 0, 1, 1)
    assert late.share == pytest.approx(0.4)


def test_the_receivers_later_word_stands():
    a, b, _ = _authors()
    base = [offer(b, a), accept(a, b), deliver(b, b, "d1", "50")]
    first_dispute = [dispute(a, b, "d1"), confirm(a, b, "d1", "50")]
    assert commitments(held(base + first_dispute))[0].deliveries[0].status == "confirmed"
    first_confirm = [confirm(a, b, "d1", "50"), dispute(a, b, "d1")]
    assert commitments(held(base + first_confirm))[0].deliveries[0].status == "disputed"


def test_a_late_delivery_is_not_on_time():
    a, b, _ = _authors()
    recs = [offer(b, a), accept(a, b), deliver(b, b, "d1", "50", day="2027-04-02")]
    recs.append(confirm(a, b, "d1", "50", day="2027-04-02"))
    (cm,) = commitments(held(recs))
    assert cm.confirmed == cm.ticks
    assert not cm.on_time


def test_a_strangers_records_count_for_nothing():
    a, b, _ = _authors()
    x = Author(X, "eu/de/berlin/x")
    counted = frozenset({a.origin, b.origin})
    recs = held([offer(x, a), accept(a, x), offer(b, a), accept(a, b)])
    assert [c.provider for c in commitments(recs, counted)] == [b.origin.hex()]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_arrival_order_gives_the_same_commitments(data):
    a, b, c = _authors()
    recs = [offer(b, a), accept(a, b), offer(c, a, "o2"), accept(a, c, "o2")]
    recs += [deliver(b, b, "d1", "20"), confirm(a, b, "d1", "20"), dispute(a, b, "d1")]
    recs += [deliver(b, b, "d2", "30")]
    order = data.draw(st.permutations(recs))
    assert [x.as_json() for x in commitments(held(order))] == [
        x.as_json() for x in commitments(held(recs))
    ]


def test_committed_next_to_posted():
    a, b, _ = _authors()
    comms = commitments(held([offer(b, a), accept(a, b)]))
    where = {a.origin.hex(): "eu/de/berlin/a", b.origin.hex(): "eu/de/hamburg/b"}
    key = ("potatoes", "mass", "2027-Q1")
    assert committed_totals(comms, where, "eu/de") == {key: (50 * TICKS, 50 * TICKS)}
    assert committed_totals(comms, where, "eu/de/berlin") == {key: (50 * TICKS, 0)}


@pytest.mark.parametrize(
    ("kind", "key", "body"),
    [
        ("offer", "o1", {"role": "give", "with": "ab" * 32, **TERMS}),
        ("offer", "o1", {"role": "provide", "with": "AB" * 32, **TERMS}),
        ("offer", "o1", {"role": "provide", "with": "ab" * 32, **TERMS, "due": "2027-02-30"}),
        ("offer", "o1", {"role": "provide", "with": "ab" * 32, **TERMS, "note": "x" * 501}),
        ("offer", "O1", {"role": "provide", "with": "ab" * 32, **TERMS}),
        ("accept", "ab.o1", {"by": "ab" * 32, "offer": "o1"}),
        ("accept", "abababababababab.o2", {"by": "ab" * 32, "offer": "o1"}),
        ("accept", "abababababababab.o1", {"by": "ab" * 32, "offer": "o1", **TERMS}),
        ("offer", "o1", {"role": "provide", "with": "ab" * 32, **TERMS}),
        ("offer", "o1-" + "0" * 32, {"role": "provide", "with": "ab" * 32, **TERMS}),
        ("offer", "toolong1-" + "0" * 32, {"role": "provide", "with": "ab" * 32, **TERMS}),
        ("decline", "abababababababab.o1", {"by": "ab" * 32, "offer": "o1", "x": 1}),
        ("deliver", "d1", {"offer": "o1", "qty": "1", "unit": "kg", "date": "2027-01-01"}),
        ("deliver", "d1", {"offer": "ab" * 32 + ".o1", "qty": "0", "unit": "kg", "date": "x"}),
        ("dispute", "abababababababab.d1", {"by": "ab" * 32, "delivery": "d1", "reason": ""}),
        (
            "dispute",
            "abababababababab.d1",
            {"by": "ab" * 32, "delivery": "d1", "reason": "y" * 501},
        ),
        ("confirm", "abababababababab.d1", {"by": "ab" * 32, "delivery": "d1", "qty": "1"}),
    ],
)
def test_malformed_or_oversize_bodies_are_refused(kind, key, body):
    with pytest.raises(ValidationError):
        model.validate(kind, key, "eu/de/berlin", body)


@pytest.mark.parametrize("kind", sorted(model.COMMIT_KINDS))
def test_no_commitment_record_can_be_withdrawn(kind):
    key = "o1-" + "0" * 32 if kind in ("offer", "deliver") else "abababababababab.o1"
    with pytest.raises(ValidationError, match="cannot be withdrawn"):
        model.validate(kind, key, "eu/de/berlin", None)


def _overdue(recs, node):
    comms = commitments(held(recs))
    return track_records(comms, date(2027, 4, 15)).get(node.origin.hex())


def test_a_provider_cannot_erase_its_bad_record_by_withdrawing():
    a, b, _ = _authors()
    recs = [offer(b, a), accept(a, b), deliver(b, b, "d1", "10"), dispute(a, b, "d1")]
    bad = _overdue(recs, b)
    assert (bad.committed, bad.overdue, bad.disputed, bad.share) == (1, 1, 1, 0)
    rep = Replica()
    for r in recs:
        rep.receive(r.raw)
    erasers = [
        b.write("offer", okey(b), None),  # the offer withdrawn
        b.write("deliver", dkey(b, "d1"), None),  # the disputed delivery withdrawn
        b.write("offer", okey(b), {**offer(b, a, "x").body, "qty": "1"}),  # other terms
        b.write("deliver", dkey(b, "d1"), {**deliver(b, b, "y", "10").body, "qty": "50"}),
    ]
    for r in erasers:
        with pytest.raises(Rejected):
            rep.receive(r.raw)
    assert track_records(commitments(rep.records()), date(2027, 4, 15))[b.origin.hex()] == bad


def test_nor_by_withdrawing_its_accept_of_the_receivers_offer():
    a, b, _ = _authors()
    body = {"role": "receive", "with": b.origin.hex(), **TERMS}
    asked = a.write("offer", model.content_key("r1", a.scope, body), body)
    KEYS[(a.origin, "r1")] = asked.key
    yes = accept(b, a, "r1")
    assert _overdue([asked, yes], b).overdue == 1
    with pytest.raises(Rejected):
        held([asked, yes, b.write("accept", yes.key, None)])
    # rewriting the accept can only change its note: still committed
    noted = b.write("accept", yes.key, {**yes.body, "note": "sorry"})
    assert _overdue([asked, yes, noted], b).overdue == 1
    # a cancel is possible, but it is named: the canceller's record shows it
    gone = _overdue([asked, yes, decline(b, a, "r1")], b)
    assert (gone.committed, gone.cancelled) == (0, 1)


def test_committed_fields_of_a_balance_row():
    assert committed_fields(100 * TICKS, None) == {
        "committed_in": None,
        "committed_out": None,
        "committed_coverage": None,
    }
    got = committed_fields(3 * TICKS, (2 * TICKS, 5 * TICKS))
    assert got == {"committed_in": "2", "committed_out": "5", "committed_coverage": "0.6667"}
    assert committed_fields(0, (TICKS, 0))["committed_coverage"] is None


def test_an_offer_alone_is_never_committed_in_the_balance():
    a, b, c = _authors()
    where = {x.origin.hex(): x.scope for x in (a, b, c)}
    recs = held([offer(b, a), accept(c, b), offer(c, a, "o2"), offer(a, b, "o3")])
    assert committed_totals(commitments(recs), where, "eu/de") == {}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_committed_totals_add_up_over_the_scopes_below(data):
    a, b, c = _authors()
    parties = [a, b, c]
    scopes = ["eu/de/berlin/x", "eu/de/berlin/y", "eu/de/hamburg/z"]
    where = {p.origin.hex(): data.draw(st.sampled_from(scopes)) for p in parties}
    recs = []
    for i in range(data.draw(st.integers(0, 5))):
        px, rx = data.draw(st.permutations(parties))[:2]
        qty = str(data.draw(st.integers(1, 999)))
        recs.append(offer(px, rx, f"o{i}", qty=qty))
        if data.draw(st.booleans()):
            recs.append(accept(rx, px, f"o{i}"))
    comms = commitments(held(data.draw(st.permutations(recs))))
    top = committed_totals(comms, where, "eu")
    parts = [committed_totals(comms, where, s) for s in ("eu/de/berlin", "eu/de/hamburg")]
    for key, (to_rx, by_px) in top.items():
        assert to_rx == sum(p.get(key, (0, 0))[0] for p in parts)
        assert by_px == sum(p.get(key, (0, 0))[1] for p in parts)
    live = [x for x in comms if x.state == "committed"]
    assert sum(v[0] for v in top.values()) == sum(x.ticks for x in live)
    assert sum(v[1] for v in top.values()) == sum(x.ticks for x in live)


@settings(max_examples=80, deadline=None)
@given(
    qty=st.integers(1, 10**6).map(str),
    due=st.dates(date(2027, 1, 1), date(2030, 12, 31)).map(date.isoformat),
    prefix=st.from_regex(r"[a-z0-9]{1,7}", fullmatch=True),
    field=st.sampled_from(["qty", "due", "role", "scope"]),
)
def test_an_offer_id_binds_its_scope_and_terms(qty, due, prefix, field):
    body = {"role": "provide", "with": "ab" * 32, **TERMS, "qty": qty, "due": due}
    key = model.content_key(prefix, "eu/de/berlin", body)
    model.validate("offer", key, "eu/de/berlin", body)
    changed, scope = dict(body), "eu/de/berlin"
    if field == "scope":
        scope = "eu/de/hamburg"
    elif field == "role":
        changed["role"] = "receive"
    else:
        changed[field] = str(int(qty) + 1) if field == "qty" else "2031-01-01"
    with pytest.raises(ValidationError, match="digest"):
        model.validate("offer", key, scope, changed)
