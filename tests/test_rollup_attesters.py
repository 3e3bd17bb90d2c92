"""A region's attesters (issue 12): at most five, the same on every node, and the only
nodes whose rollups a reader takes, stores, forwards or counts.

The set is a pure function of the region's admitted nodes, the federation's anchors
(founders, and the nodes a founder vouches for at the root) and the federation id; the
properties check its size, that the order admissions arrive in does not matter, and
that admitting or suspending a node changes it only by the ranking's rule. The hostile
tests drive a reader's core (node/core.py) with a rollup from an admitted node of a
region that is not one of its attesters: refused over gossip and sync, nothing stored,
nothing forwarded, nothing counted, in another region and in the reader's own.
"""

from __future__ import annotations

import random

from factories import Author, identities
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import NodeCore, Source, Verdict, encode_batch
from node.crdt.record import Record, sign_record
from node.crdt.replica import Replica
from node.governance.admission import Charter, Rule, admit
from node.planning.rollup import (
    ATTESTERS,
    RegionStatus,
    RollupTracker,
    RollupView,
    attester_rank,
    attesters,
    compute_rollups,
    rollup_key,
)

NOW = 1_800_000_000_000
HH = "eu/de/hamburg"
FID = "f" * 64
KEYS = [i.public for i in identities(40, seed=12)]

keys = st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS))


def _ranked(admitted: set[bytes], anchors: frozenset[bytes]) -> list[bytes]:
    return sorted(admitted, key=lambda n: (n not in anchors, attester_rank(FID, HH, n)))


# --- the set ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(keys, keys, st.data())
def test_the_set_is_bounded_anchors_first_and_the_same_in_any_order(admitted, anchors, data):
    anchor_set = frozenset(anchors)
    chosen = attesters(admitted, anchor_set, FID, HH)
    assert len(chosen) == min(ATTESTERS, len(admitted))
    assert chosen <= set(admitted)
    # anchors first: no other node while an admitted anchor is left out
    if chosen - anchor_set:
        assert anchor_set & set(admitted) <= chosen
    # whatever order the admissions arrived in
    order = data.draw(st.permutations(admitted))
    assert attesters(order, anchor_set, FID, HH) == chosen
    assert attesters(iter(order), anchor_set, FID, HH) == chosen


@settings(max_examples=200, deadline=None)
@given(keys.filter(lambda ks: len(ks) >= 2), st.data())
def test_admitting_or_suspending_a_node_changes_the_set_only_by_its_rank(admitted, data):
    anchors = frozenset(data.draw(st.lists(st.sampled_from(admitted), max_size=2)))
    node = data.draw(st.sampled_from(admitted))
    before = attesters([n for n in admitted if n != node], anchors, FID, HH)
    after = attesters(admitted, anchors, FID, HH)  # `node` admitted
    if node not in after:
        assert after == before  # it ranks below every attester: nothing moves
    else:
        # it takes a place; at most the last of the others leaves
        assert after - before == {node}
        left = before - after
        assert len(left) <= 1
        if left:
            (gone,) = left
            assert _ranked(set(before), anchors)[-1] == gone
    # suspending it again (its admission ends) restores the set before
    assert attesters([n for n in admitted if n != node], anchors, FID, HH) == before
    # an attester stays one whoever else is suspended
    others = [n for n in admitted if n != node]
    for a in after:
        kept = [n for n in others if data.draw(st.booleans())] + [a]
        assert a in attesters(kept, anchors, FID, HH)


def test_the_ranking_depends_on_the_federation_and_the_region() -> None:
    sets = {
        attesters(KEYS, frozenset(), fid, region)
        for fid in ("a" * 64, "b" * 64)
        for region in (HH, "eu/de/berlin")
    }
    assert len(sets) == 4  # a key ground for one federation or region ranks anywhere elsewhere


def test_anchors_are_the_founders_and_whom_they_vouch_for_at_the_root() -> None:
    founder, head, local, member = (
        Author(i, scope=f"{HH}/n{k}") for k, i in enumerate(identities(4, seed=3))
    )
    charter = Charter.of("t", [founder.origin], Rule(cap=1))
    recs = [
        founder.write("charter", charter.id, charter.body(), scope="eu"),
        *(
            a.write("node", "self", {"name": "n", "kind": "commune", "scope": a.scope})
            for a in (founder, head, local, member)
        ),
        founder.write("endorse", head.origin.hex(), {}, scope="eu"),  # at the root
        founder.write("endorse", local.origin.hex(), {}),  # in its region: seen there only
        local.write("endorse", member.origin.hex(), {}),
    ]
    state = admit(charter, recs)
    assert {founder.origin, head.origin, local.origin, member.origin} <= state.admitted
    assert state.anchors == {founder.origin, head.origin}  # not every node admitted here


# --- the reader's edge -----------------------------------------------------------


class Region:
    """Hamburg: a founder and `n` nodes it endorsed, all admitted (one endorsement
    suffices); Berlin: the reader's founder."""

    def __init__(self, n: int = 7) -> None:
        people = identities(n + 2, seed=77)
        self.founder = Author(people[0], scope=f"{HH}/f")
        self.nodes = [Author(p, scope=f"{HH}/n{k}") for k, p in enumerate(people[1 : n + 1])]
        self.reader_id = people[n + 1]
        self.charter = Charter.of("t", [self.founder.origin, self.reader_id.public], Rule(cap=1))
        self.everyone = [self.founder, *self.nodes]
        self.admitted = [a.origin for a in self.everyone]
        self.chosen = attesters(
            self.admitted, frozenset({self.founder.origin}), self.charter.id, HH
        )
        self.outside = [a for a in self.nodes if a.origin not in self.chosen]
        self.inside = [a for a in self.nodes if a.origin in self.chosen]
        recs = [a.need(f"n{k}", qty="10", period="2027-Q1") for k, a in enumerate(self.everyone)]
        self.needs = recs
        self.body = compute_rollups(recs, HH, self.admitted)["2027-Q1"]

    def trust_records(self) -> list[Record]:
        """What the region's nodes hold of admission (a Hamburg reader takes them)."""
        f = self.founder
        return [
            *(
                a.write("node", "self", {"name": "n", "kind": "commune", "scope": a.scope})
                for a in self.everyone
            ),
            *(f.write("endorse", a.origin.hex(), {}) for a in self.nodes),
        ]

    def rollup(self, a: Author, body: dict | None = None) -> Record:
        b = self.body if body is None else body
        return a.write("rollup", rollup_key(HH, b["period"]), b, scope="eu")

    def reader(self, scope: str) -> NodeCore:
        me = self.reader_id
        core = NodeCore(
            me.public,
            me.signer(),
            scope,
            Replica(now_ms=lambda: NOW),
            lambda: NOW,
            rng=random.Random(1),
            charter=self.charter,
        )
        core.write("charter", self.charter.id, self.charter.body(), scope="eu")
        core.write("node", "self", {"name": "r", "kind": "commune", "scope": scope})
        founder_charter = self.founder.write(
            "charter", self.charter.id, self.charter.body(), scope="eu"
        )
        assert (
            core.ingest([founder_charter.raw], Source.GOSSIP, partition="eu").verdict
            is Verdict.ACCEPT
        )
        return core


def test_the_region_has_non_attesters_to_test_with() -> None:
    region = Region()
    assert len(region.chosen) == ATTESTERS
    assert region.founder.origin in region.chosen  # the anchor heads them
    assert len(region.outside) == 3


def test_another_regions_non_attester_is_refused_over_gossip_and_sync() -> None:
    region = Region()
    core = region.reader("eu/de/berlin/r")
    first = [region.rollup(region.founder), *(region.rollup(a) for a in region.inside)]
    ok = core.validate_gossip("eu", encode_batch([r.raw for r in first]))
    assert ok.verdict is Verdict.ACCEPT
    assert core.rollup_view().pairs[(HH, "2027-Q1")].status is RegionStatus.ACCEPTED
    sneaky = region.rollup(region.outside[0])  # admitted, listed by the anchor, signed well
    result = core.validate_gossip("eu", encode_batch([sneaky.raw]))
    # dropped and not forwarded, unblamed: a peer may hold a newer listing
    assert result.verdict is Verdict.RETRY
    assert result.rejected == {"not-admitted": 1}
    assert result.stored == []
    assert core.replica.get(sneaky.origin, "rollup", sneaky.key) is None
    assert core.rollups is not None
    assert core.rollups.of(sneaky.origin) == {}
    # in a batch with good records, over sync: the good ones taken, it is not
    more = region.rollup(region.outside[1])
    synced = core.ingest([more.raw, sneaky.raw], Source.SYNC, partitions=["eu"])
    assert synced.stored == []
    assert synced.rejected == {"not-admitted": 2}
    held = {r.origin for r in core.rollups.records()}
    assert held == {region.founder.origin, *(a.origin for a in region.inside)}


def test_a_non_attester_cannot_list_itself_in() -> None:
    region = Region()
    core = region.reader("eu/de/berlin/r")
    core.validate_gossip("eu", encode_batch([region.rollup(region.founder).raw]))
    liar = region.outside[0]
    # a content whose admitted list would make it an attester: the anchors' list rules
    mine = {**region.body, "admitted": sorted([liar.origin.hex(), region.founder.origin.hex()])}
    result = core.validate_gossip("eu", encode_batch([region.rollup(liar, mine).raw]))
    assert result.verdict is Verdict.RETRY
    assert result.rejected == {"not-admitted": 1}
    # an attester whose own content does not list it is refused too
    inside = region.inside[0]
    without = {
        **region.body,
        "admitted": sorted(set(region.body["admitted"]) - {inside.origin.hex()}),
    }
    result = core.validate_gossip("eu", encode_batch([region.rollup(inside, without).raw]))
    assert result.verdict is Verdict.RETRY


def test_own_regions_non_attester_is_refused_though_admitted() -> None:
    region = Region()
    core = region.reader(f"{HH}/r")  # a founder too: one more anchor of Hamburg
    trust = [*region.trust_records(), *region.needs]
    assert core.ingest([r.raw for r in trust], Source.SYNC, partitions=[HH]).rejected == {}
    adm = core.admission
    here = [*region.admitted, region.reader_id.public]
    assert set(here) <= adm.admitted
    chosen = attesters(here, adm.anchors, region.charter.id, HH)
    assert len(chosen) == ATTESTERS
    outside = next(a for a in region.nodes if a.origin not in chosen)
    inside = next(a for a in region.nodes if a.origin in chosen)
    sneaky = region.rollup(outside)  # admitted here, and still no attester
    result = core.validate_gossip("eu", encode_batch([sneaky.raw]))
    assert result.verdict is Verdict.RETRY
    assert result.rejected == {"not-admitted": 1}
    good = region.rollup(inside)
    assert core.validate_gossip("eu", encode_batch([good.raw])).verdict is Verdict.ACCEPT
    # the node itself attests only as one of them
    assert (core.origin in chosen) == bool(core.rollup_changes())


def test_a_non_attesters_signature_counts_nowhere() -> None:
    region = Region()
    anchors = frozenset({region.founder.origin})
    # the anchor and one attester, and every non-attester: three signatures too few
    signed = [region.rollup(a) for a in (region.founder, region.inside[0], *region.outside)]
    rp = RollupView(signed, anchors, "eu/de/berlin", region.charter.id).pairs[(HH, "2027-Q1")]
    assert rp.status is RegionStatus.UNATTESTED
    assert set(rp.contents[0].attesters) == {region.founder.origin, region.inside[0].origin}
    assert rp.contents[0].of == ATTESTERS
    signed.append(region.rollup(region.inside[1]))
    rp = RollupView(signed, anchors, "eu/de/berlin", region.charter.id).pairs[(HH, "2027-Q1")]
    assert rp.status is RegionStatus.ACCEPTED


def test_the_tracker_takes_a_withdrawal_only_of_what_it_holds() -> None:
    region = Region()
    anchors = frozenset({region.founder.origin})
    tracker = RollupTracker()
    fid = region.charter.id
    gone = region.outside[0].write("rollup", rollup_key(HH, "2027-Q1"), None, scope="eu")
    assert not tracker.allows(gone, anchors, fid)
    anchor = region.rollup(region.founder)
    tracker(None, anchor)
    attester = region.rollup(region.inside[0])
    assert tracker.allows(attester, anchors, fid)
    tracker(None, attester)
    assert tracker.allows(
        region.inside[0].write("rollup", attester.key, None, scope="eu"), anchors, fid
    )


def test_a_forged_rollup_in_an_attesters_name_is_rejected() -> None:
    region = Region()
    core = region.reader("eu/de/berlin/r")
    core.validate_gossip("eu", encode_batch([region.rollup(region.founder).raw]))
    mallory = identities(1, seed=666)[0]
    inside = region.inside[0]
    forged = sign_record(
        mallory.signer(),
        inside.origin,
        "rollup",
        rollup_key(HH, "2027-Q1"),
        9,
        0,
        "eu",
        region.body,
    )
    result = core.validate_gossip("eu", encode_batch([forged.raw]))
    assert result.verdict is Verdict.REJECT  # the forwarder is blamed
    assert result.rejected == {"bad-signature": 1}
    assert core.rollups is not None
    assert core.rollups.of(inside.origin) == {}


def test_an_anchors_new_versions_keep_the_listing_until_it_withdraws() -> None:
    region = Region()
    anchors = frozenset({region.founder.origin})
    fid = region.charter.id
    tracker = RollupTracker()
    v1 = region.rollup(region.founder)
    tracker(None, v1)
    v2 = region.rollup(region.founder, {**region.body, "records": 99})  # same listing
    tracker(v1, v2)
    attester = region.rollup(region.inside[0])
    assert tracker.allows(attester, anchors, fid)
    gone = region.founder.write("rollup", v2.key, None, scope="eu")
    tracker(v2, gone)
    assert not tracker.allows(attester, anchors, fid)  # nobody lists it any more
