"""Five attesters per region, its roots first; the others watch (issue 12).

A region's attesters are at most five of its admitted nodes, the anchors every reader
shares (founders and nodes a founder vouches for at the root) first. Every other
admitted node watches: it signs only a content that a reader elsewhere would not accept
without it, once that held. So an honest region publishes five signatures per period,
and attesters that stay silent or sign something else cannot leave a region
unattested or alone with their content: the watchers restore the quorum.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from node.crdt.record import Record
from node.planning.pace import RollupPace
from node.planning.rollup import (
    ATTESTERS,
    RegionStatus,
    RollupView,
    attesters,
    content_digest,
    watching,
)
from simnet.federation import found
from simnet.simnode import SimNode
from simnet.workload import NodeSpec

FED = "eu"
REGION = "eu/f0/r0"
OTHER = "eu/f0/r1"
PERIOD = "2027-Q1"


def _spec(i: int, region: str) -> NodeSpec:
    seed = hashlib.blake2b(f"attest/{i}".encode(), digest_size=32).digest()
    return NodeSpec(i, f"n{i}", "commune", f"{region}/c{i}", region, seed)


def _federation(size: int = 8) -> tuple[list[SimNode], SimNode]:
    """A region of `size` admitted nodes (its first a founder, the rest endorsed by it
    inside the region) and a reader of another region, each with a need written."""
    specs = [_spec(i, REGION) for i in range(size)] + [_spec(size, OTHER)]
    charter, founding = found(specs)
    now = lambda: 1_800_000_000_000  # noqa: E731
    nodes = [
        SimNode(
            s,
            now,
            None,
            charter=charter,
            preload=[r for p in s.partitions for r in founding.get(p, ())],
        )
        for s in specs
    ]
    region = nodes[:size]
    for k, node in enumerate(region):
        body = {
            "item": "wheat",
            "unit": "kg",
            "qty": str(10 * (k + 1)),
            "period": PERIOD,
            "priority": "high",
        }
        rec = node.write("need", f"w{k}", body)
        for other in region:
            if other is not node:
                other.replica.merge_verified(rec)
    return region, nodes[size]


def _publish(node: SimNode, changes=None) -> list[Record]:
    out = []
    for key, body, scope in node.core.rollup_changes() if changes is None else changes:
        out.append(node.write("rollup", key, body, scope))
    return out


def _give(records: list[Record], nodes: list[SimNode]) -> None:
    for node in nodes:
        for r in records:
            if r.origin != node.origin:
                node.replica.merge_verified(r)


def _reader_sees(reader: SimNode, rollups: list[Record]):
    view = RollupView(rollups, reader.core.admission.anchors, reader.core.region)
    return view.pairs.get((REGION, PERIOD))


@given(
    keys=st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=30, unique=True),
    roots=st.sets(st.integers(0, 29)),
)
@settings(max_examples=200)
def test_attesters_are_five_roots_first(keys, roots):
    root_keys = frozenset(keys[i] for i in roots if i < len(keys))
    chosen = attesters(reversed(keys), root_keys)
    assert chosen == attesters(keys, root_keys)  # any order, the same set
    assert chosen <= set(keys)
    assert len(chosen) == min(ATTESTERS, len(keys))
    assert len(chosen & root_keys) == min(ATTESTERS, len(root_keys))
    others = sorted(set(keys) - root_keys)
    if len(root_keys) < ATTESTERS:  # the rest by smallest key
        assert chosen - root_keys == set(others[: ATTESTERS - len(root_keys)])


def test_only_a_founders_endorsement_at_the_root_makes_a_root():
    region, reader = _federation(8)
    adm = reader.core.admission
    assert region[0].origin in adm.roots  # the founder who signed
    # the founder's endorsements inside its region make anchors there, not roots
    assert not any(n.origin in adm.roots for n in region[1:])
    assert all(n.origin in region[3].core.admission.anchors for n in region)
    # a region beyond the founders': its first node, vouched for at the root, is a root
    specs = [_spec(100 + i, f"eu/f0/r{i}") for i in range(40)]
    charter, founding = found(specs)
    late = SimNode(specs[-1], lambda: 0, None, charter=charter, preload=founding["eu"])
    assert late.origin in late.core.admission.roots


def test_an_honest_region_is_attested_by_five_and_watched_by_the_rest():
    region, reader = _federation(8)
    chosen = [n for n in region if n.core.attests()]
    assert len(chosen) == ATTESTERS
    assert region[0] in chosen
    rollups = [r for n in chosen for r in _publish(n)]
    _give(rollups, region)
    for watcher in region:
        if watcher not in chosen:
            assert watcher.core.rollup_changes() == []  # accepted without it: quiet
    seen = _reader_sees(reader, rollups)
    assert seen.status is RegionStatus.ACCEPTED
    assert len(seen.accepted.attesters) == ATTESTERS


def test_silent_attesters_cannot_leave_a_region_unattested():
    """The four attesters besides the founder sign nothing (ground keys, or simply
    down): the founder alone is short of the quorum; the watchers step in."""
    region, reader = _federation(8)
    founder = region[0]
    rollups = _publish(founder)
    _give(rollups, region)
    assert _reader_sees(reader, rollups).status is RegionStatus.UNATTESTED
    watchers = [n for n in region if not n.core.attests()]
    assert len(watchers) == 3
    for w in watchers:
        changes = w.core.rollup_changes()
        assert [body["period"] for _, body, _ in changes] == [PERIOD]
        rollups += _publish(w, changes)
    seen = _reader_sees(reader, rollups)
    assert seen.status is RegionStatus.ACCEPTED
    assert set(seen.accepted.attesters) == {founder.origin, *(w.origin for w in watchers)}


def test_attesters_who_sign_another_content_are_outvoted_by_the_watchers():
    """Four attesters sign a content without one node's need; with the founder's honest
    signature alone, no reader counts the truth. The watchers' signatures make the
    truth accepted, and the four are named as contradicting it."""
    region, reader = _federation(8)
    founder = region[0]
    liars = [n for n in region if n.core.attests() and n is not founder]
    honest = _publish(founder)
    truth = honest[0].body
    lie = dict(truth, records=truth["records"] - 1, counted="0" * 64)
    rollups = honest + [r for n in liars for r in _publish(n, [(honest[0].key, lie, FED)])]
    _give(rollups, region)
    watchers = [n for n in region if not n.core.attests()]
    for w in watchers:
        rollups += _publish(w)
    seen = _reader_sees(reader, rollups)
    assert seen.status is RegionStatus.ACCEPTED
    assert seen.accepted.digest == content_digest(truth)
    assert set(seen.contradicting) == {n.origin for n in liars}


def test_a_watcher_that_stepped_in_stays_while_its_content_holds():
    """If each watcher stepped out once the others' signatures sufficed, all would step
    out at once and leave the content short again: a watcher keeps what it signed."""
    region, _ = _federation(8)
    rollups = _publish(region[0])
    _give(rollups, region)
    watchers = [n for n in region if not n.core.attests()]
    for w in watchers:
        rollups += _publish(w)
    _give(rollups, region)
    for w in watchers:
        assert w.core.rollup_changes() == []  # nothing to change: its rollup stays
        held = w.core.rollups.of(w.origin)
        assert [r.body is not None for r in held.values()] == [True]


def test_watching_signs_nothing_without_a_computed_content():
    assert watching({}, {}, [], frozenset()) == {}


def test_a_watchers_change_waits_for_the_hold():
    change = [("k", {"x": 1}, FED)]
    pace = RollupPace(max_wait=300)
    assert pace.step(change, 0, hold=600) == []
    assert pace.step(change, 10, hold=600) == []  # settled is not enough for a watcher
    assert pace.step(change, 590, hold=600) == []
    assert pace.step([("k", {"x": 2}, FED)], 595, hold=600) == []  # changed: the hold restarts
    assert pace.step([("k", {"x": 2}, FED)], 1190, hold=600) == []
    assert pace.step([("k", {"x": 2}, FED)], 1195, hold=600) == [("k", {"x": 2}, FED)]
    assert pace.step(change, 0, hold=0) == change
