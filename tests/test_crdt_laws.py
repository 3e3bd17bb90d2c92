"""Merge is commutative, associative and idempotent; equivocation converges."""

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crdt.record import Record
from node.crdt.replica import Replica

IDS = identities(3, seed=7)


def _pool() -> list[Record]:
    """Records with slot collisions, updates, tombstones and one equivocation."""
    out = []
    for i, ident in enumerate(IDS):
        a = Author(ident, scope=["eu/de/berlin/a", "eu/de/berlin/b", "eu/fr/paris/c"][i])
        for k in range(4):
            out.append(a.need(f"n{k % 2}", qty=str(k + 1)))
            out.append(a.capacity(f"c{k % 3}", qty=str(10 + k)))
        out.append(a.write("need", "n0", None))  # withdrawn
    # The third origin signs two different records with the same seq.
    liar = Author(IDS[2], scope="eu/fr/paris/c")
    liar.seq = 100
    out.append(liar.need("x", qty="1"))
    liar.seq = 99
    out.append(liar.need("x", qty="2"))
    liar.seq = 99
    out.append(liar.capacity("y", qty="3"))
    return out


POOL = _pool()
subsets = st.lists(st.sampled_from(POOL), max_size=len(POOL))


def _replica(records) -> Replica:
    r = Replica()
    for rec in records:
        r.receive(rec.raw)
    return r


def _merge(*groups) -> Replica:
    return _replica([rec for g in groups for rec in g])


def _contents(r: Replica) -> list[Record]:
    """A replica's whole state as records: what it holds, remembers, and its evidence."""
    return [*r.entries(), *r.remembered(), *(x for pair in r.evidence() for x in pair)]


def _state(r: Replica):
    return r.digest(), sorted(x.raw for x in r.records()), sorted(r.flagged.items())


@given(subsets, subsets)
def test_merge_commutes(a, b):
    assert _state(_merge(a, b)) == _state(_merge(b, a))


@given(subsets, subsets, subsets)
def test_merge_associates(a, b, c):
    ab_c = _merge(_contents(_merge(a, b)), c)
    a_bc = _merge(a, _contents(_merge(b, c)))
    assert _state(ab_c) == _state(a_bc)


@given(subsets)
def test_merge_idempotent(a):
    once = _merge(a)
    assert _state(_merge(a, a)) == _state(once)
    assert _state(_merge(_contents(once), a)) == _state(once)


@settings(max_examples=50)
@given(st.permutations(POOL))
def test_order_never_matters(order):
    assert _state(_replica(order)) == _state(_replica(POOL))


def test_equivocation_same_winner_and_flag():
    liar = Author(IDS[0])
    liar.seq = 5
    one = liar.need("x", qty="1")
    liar.seq = 5
    two = liar.need("x", qty="2")
    r1, r2 = _replica([one, two]), _replica([two, one])
    w1, w2 = r1.get(liar.origin, "need", "x"), r2.get(liar.origin, "need", "x")
    assert w1 == w2
    assert w1.rid == min(one.rid, two.rid)
    assert liar.origin in r1.flagged
    assert r1.flagged == r2.flagged
    assert r1.flagged[liar.origin] == tuple(sorted([one.rid, two.rid]))


SHARED_NAMES: dict = {}


@given(subsets, st.randoms(use_true_random=False))
def test_shared_names_change_nothing_a_replica_holds(records, rnd):
    """Replicas that share their (kind, key) pairs (the simnet) hold what one alone does."""
    alone = _replica(records)
    shuffled = list(records)
    rnd.shuffle(shuffled)
    shared = Replica(names=SHARED_NAMES)
    for rec in shuffled:
        shared.receive(rec.raw)
    assert _state(shared) == _state(alone)
    assert len(shared) == len(alone)
    for rec in records:
        assert shared.get(*rec.slot) == alone.get(*rec.slot)
