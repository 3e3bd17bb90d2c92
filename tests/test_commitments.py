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


def offer(provider, receiver, key="o1", **terms):
    return provider.write(
        "offer", key, {"role": "provide", "with": receiver.origin.hex(), **TERMS, **terms}
    )


def accept(receiver, offerer, key="o1", **terms):
    by = offerer.origin.hex()
    body = {"by": by, "offer": key, **TERMS, **terms}
    return receiver.write("accept", model.reply_key(by, key), body)


def deliver(provider, offerer, key, qty, day="2027-03-01", offer_key="o1"):
    ref = model.offer_ref(offerer.origin.hex(), offer_key)
    body = {"offer": ref, "qty": qty, "unit": "kg", "date": day}
    return provider.write("deliver", key, body)


def confirm(receiver, provider, key, qty, day="2027-03-01"):
    by = provider.origin.hex()
    body = {"by": by, "delivery": key, "qty": qty, "unit": "kg", "date": day}
    return receiver.write("confirm", model.reply_key(by, key), body)


def dispute(receiver, provider, key, reason="not received"):
    by = provider.origin.hex()
    body = {"by": by, "delivery": key, "reason": reason}
    return receiver.write("dispute", model.reply_key(by, key), body)


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


def test_an_accept_binds_the_terms_it_repeats():
    a, b, _ = _authors()
    (c,) = commitments(held([offer(b, a), accept(a, b, qty="40")]))
    assert c.state == "offered"
    # the provider rewrites the offer after it was accepted: no longer committed
    rewritten = held([offer(b, a), accept(a, b), offer(b, a, qty="500")])
    assert commitments(rewritten)[0].state == "offered"


def test_either_side_may_decline_and_a_cancel_is_named():
    a, b, c = _authors()
    by = b.origin.hex()
    no = a.write("decline", model.reply_key(by, "o1"), {"by": by, "offer": "o1"})
    (d,) = commitments(held([offer(b, a), no]))
    assert (d.state, d.declined_by) == ("declined", a.origin.hex())
    cancel = b.write("decline", model.reply_key(by, "o1"), {"by": by, "offer": "o1"})
    (e,) = commitments(held([offer(b, a), accept(a, b), cancel]))
    assert e.state == "cancelled"
    assert track_records([e], TODAY)[by].cancelled == 1
    stranger = c.write("decline", model.reply_key(by, "o1"), {"by": by, "offer": "o1"})
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
    statuses = {d.key: d.status for d in cm.deliveries}
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
    recs = [offer(b, a), accept(a, b), offer(c, a, "o2"), accept(a, c, "o2", qty="1")]
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
        ("accept", "ab.o1", {"by": "ab" * 32, "offer": "o1", **TERMS}),
        ("accept", "abababababababab.o2", {"by": "ab" * 32, "offer": "o1", **TERMS}),
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


def test_reply_tombstones_keep_the_key_form():
    model.validate("accept", "abababababababab.o1", "eu/de/berlin", None)
    with pytest.raises(ValidationError):
        model.validate("accept", "not-a-reply", "eu/de/berlin", None)


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
    recs = held([offer(b, a), accept(c, b), offer(c, a, "o2"), accept(a, b, "o3")])
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
