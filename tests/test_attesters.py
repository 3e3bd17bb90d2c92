"""Five attesters per region, its roots first; the others watch (issue 12).

A region's attesters are its roots (the anchors every reader shares: founders and nodes
a founder vouches for at the root) and five other admitted nodes, the smallest keys.
Every other admitted node watches: it signs only a content that a reader elsewhere
would not accept without it, once it found the period wanting for the hold. So an
honest region publishes a few signatures per period, and attesters that stay silent,
sign something else or sign where readers cannot see it cannot leave a region
unattested or alone with their content: the watchers restore the quorum.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import Source
from node.crdt.record import Record
from node.planning.pace import WATCH_GRACE, WATCH_HOLD, RollupPace
from node.planning.rollup import (
    ATTESTERS,
    RegionStatus,
    RollupView,
    attesters,
    compute_rollups,
    content_digest,
    rollup_key,
    watching,
)
from simnet.federation import found
from simnet.simnode import SimNode
from simnet.workload import NodeSpec

FED = "eu"
STEPS = int((WATCH_HOLD + WATCH_GRACE) / 10)  # ticks of 10 s until a watcher steps in
REGION = "eu/f0/r0"
OTHER = "eu/f0/r1"
PERIOD = "2027-Q1"


def _spec(i: int, region: str) -> NodeSpec:
    seed = hashlib.blake2b(f"attest/{i}".encode(), digest_size=32).digest()
    return NodeSpec(i, f"n{i}", "commune", f"{region}/c{i}", region, seed)


def _federation(size: int = 9, extra: int = 0, mates: int = 0) -> tuple[list[SimNode], SimNode]:
    """A region of `size` admitted nodes (its first a founder, the rest endorsed by it
    inside the region) and a reader of another region, each with a need written;
    `extra` regions of one node each after them (each a founder), then `mates` nodes
    of the reader's region (endorsed by the reader inside it)."""
    specs = [_spec(i, REGION) for i in range(size)] + [_spec(size, OTHER)]
    specs += [_spec(size + 1 + k, f"eu/f0/r{2 + k}") for k in range(extra)]
    specs += [_spec(size + 1 + extra + k, OTHER) for k in range(mates)]
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
    return region, nodes[size], nodes[size + 1 :]


def _need(node: SimNode, key: str, qty: int, scope: str | None = None) -> Record:
    body = {"item": "wheat", "unit": "kg", "qty": str(qty), "period": PERIOD, "priority": "high"}
    return node.write("need", key, body, scope)


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
    view = RollupView(rollups, reader.core.admission.roots, reader.core.region)
    return view.pairs.get((REGION, PERIOD))


class _Loop:
    """The daemon's attester loop (`Daemon._attester`, `NodeCore.rollups_due`) for
    every node of the region, every 10 s; every record reaches the region and the
    reader at once. `silent` nodes sign nothing; `act` may change what a node signs."""

    def __init__(self, region: list[SimNode], reader: SimNode, silent=()) -> None:
        self.region, self.reader, self.silent = region, reader, set(silent)
        self.paces = {n.origin: RollupPace() for n in region}
        self.seen = {n.origin: -1 for n in region}
        self.rollups: dict[tuple[bytes, str], Record] = {}  # what the reader holds
        self.now = 0.0

    def deliver(self, records: list[Record]) -> None:
        _give(records, [*self.region, self.reader])
        for r in records:
            if r.kind == "rollup":
                self.rollups[(r.origin, r.key)] = r

    def tick(self) -> list[Record]:
        out = []
        for n in self.region:
            if n.origin in self.silent:
                continue
            changed = n.replica.version != self.seen[n.origin]
            self.seen[n.origin] = n.replica.version
            due = n.core.rollups_due(self.paces[n.origin], self.now, changed=changed)
            for key, body, scope in self.act(n, due):
                out.append(n.write("rollup", key, body, scope))
        self.deliver(out)
        self.now += 10
        return out

    def act(self, node: SimNode, due: list) -> list:
        return due

    def first(self) -> list[Record]:
        """Ticks until someone signs; what was signed."""
        for _ in range(5):
            if out := self.tick():
                return out
        raise AssertionError("nobody signed")

    def seen_by_reader(self):
        return _reader_sees(self.reader, list(self.rollups.values()))

    def status(self) -> RegionStatus:
        seen = self.seen_by_reader()
        return RegionStatus.UNATTESTED if seen is None else seen.status


@given(
    keys=st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=30, unique=True),
    roots=st.sets(st.integers(0, 29)),
)
@settings(max_examples=200)
def test_attesters_are_the_roots_and_five_others(keys, roots):
    root_keys = frozenset(keys[i] for i in roots if i < len(keys))
    chosen = attesters(reversed(keys), root_keys)
    assert chosen == attesters(keys, root_keys)  # any order, the same set
    assert root_keys <= chosen <= set(keys)
    others = sorted(set(keys) - root_keys)
    assert chosen - root_keys == set(others[:ATTESTERS])  # the smallest keys


def test_only_a_founders_endorsement_at_the_root_makes_a_root():
    region, reader, _ = _federation()
    adm = reader.core.admission
    assert region[0].origin in adm.roots  # the founder who signed
    # the founder's endorsements inside its region make no roots
    assert not any(n.origin in adm.roots for n in region[1:])
    assert all(n.core.admission.roots == adm.roots for n in region)
    # a region beyond the founders': its first node, vouched for at the root, is a root
    specs = [_spec(100 + i, f"eu/f0/r{i}") for i in range(40)]
    charter, founding = found(specs)
    late = SimNode(specs[-1], lambda: 0, None, charter=charter, preload=founding["eu"])
    assert late.origin in late.core.admission.roots


def test_an_honest_region_is_attested_by_six_and_watched_by_the_rest():
    region, reader, _ = _federation()
    loop = _Loop(region, reader)
    for _ in range(100):  # 1,000 s
        loop.tick()
    chosen = {n.origin for n in region if n.core.attests()}
    assert len(chosen) == 1 + ATTESTERS  # the founder and five others
    assert {r.origin for r in loop.rollups.values()} == chosen  # watchers signed nothing
    seen = loop.seen_by_reader()
    assert seen.status is RegionStatus.ACCEPTED
    assert set(seen.accepted.attesters) == chosen


def _truth_body(region: list[SimNode]) -> dict:
    admitted = [n.origin for n in region]
    intents = [r for r in region[0].replica.entries([REGION]) if r.kind == "need"]
    return compute_rollups(intents, REGION, admitted)[PERIOD]


def _truth(region: list[SimNode]) -> str:
    return content_digest(_truth_body(region))


def test_silent_attesters_cannot_leave_a_region_unattested_even_while_it_changes():
    """The five attesters besides the founder sign nothing (ground keys, or nodes that
    went down and stay admitted), and the region keeps changing: the founder alone is
    short of the quorum; the watchers step in after the hold, with what they compute
    then, and keep up with the changes at an attester's pace."""
    region, reader, _ = _federation()
    founder = region[0]
    silent = [n for n in region if n.core.attests() and n is not founder]
    watchers = [n for n in region if not n.core.attests()]
    assert len(silent) == ATTESTERS
    assert len(watchers) == 3
    loop = _Loop(region, reader, silent=[n.origin for n in silent])
    status = []
    for t in range(180):  # 30 min; a need changes every 5 min
        if t % 30 == 15:
            loop.deliver([_need(region[1], "w1", 100 + t)])
        loop.tick()
        status.append(loop.status())
    assert status[STEPS - 5] is RegionStatus.UNATTESTED  # the hold
    assert status[-1] is RegionStatus.ACCEPTED
    assert status[-100:].count(RegionStatus.ACCEPTED) >= 95  # kept up with the changes
    seen = loop.seen_by_reader()
    assert set(seen.accepted.attesters) == {founder.origin, *(w.origin for w in watchers)}
    assert seen.accepted.digest == _truth(region)


def test_attesters_who_sign_another_content_are_outvoted_by_the_watchers():
    """Five attesters sign a content without one record; with the founder's honest
    signature alone, no reader counts the truth. After the hold the watchers'
    signatures make the truth accepted, and the five are named as contradicting it."""
    region, reader, _ = _federation()
    founder = region[0]
    liars = [n for n in region if n.core.attests() and n is not founder]
    loop = _Loop(region, reader, silent=[n.origin for n in liars])
    honest = loop.first()  # the founder
    truth = honest[0].body
    lie = dict(truth, records=truth["records"] - 1, counted="0" * 64)
    loop.deliver([n.write("rollup", honest[0].key, lie, FED) for n in liars])
    for _ in range(STEPS + 2):
        loop.tick()
    seen = loop.seen_by_reader()
    assert seen.status is RegionStatus.ACCEPTED
    assert seen.accepted.digest == content_digest(truth)
    assert set(seen.contradicting) == {n.origin for n in liars}


def test_signatures_readers_cannot_see_do_not_quiet_the_watchers():
    """Attesters that sign the truth in the region's own partition (which readers
    elsewhere do not follow) look like a quorum inside the region only: watchers do
    not count them, and step in."""
    region, reader, _ = _federation()
    founder = region[0]
    hiders = [n for n in region if n.core.attests() and n is not founder]
    loop = _Loop(region, reader, silent=[n.origin for n in hiders])
    honest = loop.first()
    loop.deliver([n.write("rollup", honest[0].key, honest[0].body, REGION) for n in hiders])
    watchers = [n for n in region if not n.core.attests()]
    assert all(w.core.rollup_changes() for w in watchers)  # wanting, as readers see it
    loop.rollups = {k: r for k, r in loop.rollups.items() if "/" not in r.scope}
    for _ in range(STEPS + 2):
        loop.tick()
    assert loop.seen_by_reader().status is RegionStatus.ACCEPTED


def test_roots_made_by_another_founder_take_no_seat_of_the_others():
    """A founder of another region endorses nodes of this region at the root: they
    become roots and attest, but the five other seats stay with the smallest keys, so
    a content they sign against the region's is a split view, never accepted alone."""
    region, reader, others = _federation(9, extra=1)
    stranger_founder = others[0]
    before = {n.origin for n in region if n.core.attests()}
    made = [n for n in region if n.origin not in before][:3]
    endorsements = [stranger_founder.write("endorse", n.origin.hex(), {}, FED) for n in made]
    _give(endorsements, [*region, reader])
    assert all(n.origin in reader.core.admission.roots for n in made)
    after = {n.origin for n in region if n.core.attests()}
    assert after == before | {n.origin for n in made}
    loop = _Loop(region, reader, silent=[n.origin for n in made])
    honest = loop.first()
    truth = honest[0].body
    lie = dict(truth, records=truth["records"] + 1, counted="1" * 64)
    loop.deliver([n.write("rollup", honest[0].key, lie, FED) for n in made])
    loop.tick()
    assert loop.seen_by_reader().status is RegionStatus.SPLIT


def test_the_region_computation_follows_a_record_that_moved_away():
    """A need of the region replaced by a newer one at the federation's root (without a
    withdrawal in the region) leaves the region's records as they were, but the need
    no longer counts there: what the node signs follows, cached or not."""
    region, _, _ = _federation()
    cache: dict = {}
    core = region[0].core
    core._rollup_cache = cache
    first = core.rollup_changes()
    moved = _need(region[1], "w1", 5000, scope=FED)
    _give([moved], [region[0]])  # only the new version: the old stays in the region
    again = core.rollup_changes()
    admitted = [n.origin for n in region]
    get = region[0].replica.get
    intents = [
        r
        for r in region[0].replica.entries([REGION])
        if r.kind == "need" and get(r.origin, r.kind, r.key) is r
    ]
    assert again[0][1] == compute_rollups(intents, REGION, admitted)[PERIOD]
    assert again[0][1]["records"] == first[0][1]["records"] - 1


def test_a_shared_computation_is_the_one_each_core_makes():
    region, _, _ = _federation()
    shared: dict = {}
    for n in region:
        n.core._rollup_cache = shared
    attesting = [n for n in region if n.core.attests()]
    computed = [n.core.rollup_changes() for n in attesting]
    assert len(shared) == 1
    alone = attesting[1].core
    alone._rollup_cache, alone._rollups_of = None, None
    assert alone.rollup_changes() == computed[1]
    # fewer admitted nodes (one suspended, say): another computation, not the kept one
    admitted = [n.origin for n in region]
    assert region[2].core._region_rollups(admitted)[PERIOD]["nodes"] == len(region)
    assert region[2].core._region_rollups(admitted[:2])[PERIOD]["nodes"] == 2
    assert region[3].core._region_rollups(admitted[:2])[PERIOD]["nodes"] == 2


def test_watching_signs_nothing_without_a_computed_content():
    assert watching({}, {}, [], frozenset()) == {}


def test_a_watchers_step_in_waits_for_the_hold_however_its_content_changes():
    a = ("k", {"x": 1}, FED)
    b = ("k", {"x": 2}, FED)
    pace = RollupPace(max_wait=300)
    assert pace.step([a], 0, hold=600, grace=0) == []
    assert pace.step([a], 10, hold=600, grace=0) == []  # settled is not enough for a watcher
    assert pace.step([b], 590, hold=600, grace=0) == []  # changed: still wanting since 0
    assert pace.unpublished == [b]
    assert pace.step([b], 600, hold=600, grace=0) == [b]  # the latest, after the hold
    assert pace.step([a], 700, hold=600, signing=frozenset({"k"}), grace=0) == []  # now it signs:
    assert pace.step([a], 710, hold=600, signing=frozenset({"k"}), grace=0) == [a]  # settled
    assert RollupPace().step([a], 0, hold=0, grace=0) == [a]


def test_a_short_break_does_not_reset_a_watchers_wait():
    """Wanting 400 s, then 100 s not (an attester signed just in time, then fell
    silent): the bucket keeps 375 s, and 225 s more of wanting are enough."""
    a = ("k", {"x": 1}, FED)
    pace = RollupPace()
    assert pace.step([a], 0, hold=600, grace=0) == []
    assert pace.step([a], 400, hold=600, grace=0) == []
    assert pace.step([], 410, hold=600, grace=0) == []  # accepted now
    assert pace.step([], 500, hold=600, grace=0) == []
    assert pace.unpublished == []  # nothing to sign while not wanting
    assert pace.step([a], 510, hold=600, grace=0) == []  # 410 - 25 = 385 s
    assert pace.step([a], 720, hold=600, grace=0) == []  # 595 s
    assert pace.step([a], 730, hold=600, grace=0) == [a]
    # a long break empties it: then the whole hold again
    pace = RollupPace()
    pace.step([a], 0, hold=600, grace=0)
    pace.step([a], 100, hold=600, grace=0)
    pace.step([], 110, hold=600, grace=0)
    assert pace.step([a], 1000, hold=600, grace=0) == []
    assert pace.step([a], 1590, hold=600, grace=0) == []
    assert pace.step([a], 1600, hold=600, grace=0) == [a]


def test_spells_of_wanting_shorter_than_the_grace_add_nothing():
    """Attesters sign each change some seconds after it: a watcher finds the period
    wanting for that long after every change. Spells within the grace never add up to
    a step-in, however long the region keeps changing; longer ones do."""
    a = ("k", {"x": 1}, FED)
    for grace, steps_in in ((60, False), (0, True)):
        pace = RollupPace()
        out = []
        for t in range(0, 7200, 10):  # two hours: 50 s wanting, then 10 s not
            out += pace.step([a] if t % 60 < 50 else [], t, hold=600, grace=grace)
        assert bool(out) is steps_in


def test_a_watcher_that_becomes_an_attester_forgets_its_wait():
    a = ("k", {"x": 1}, FED)
    b = ("k", {"x": 2}, FED)
    pace = RollupPace()
    assert pace.step([a], 0, hold=600) == []
    assert pace.step([b], 10) == []  # an attester now
    assert pace.unpublished == [b]  # not the watcher's old change too
    assert pace.step(pace.unpublished, 20) == [b]  # settled, once


def test_attesters_who_sign_just_in_time_cannot_keep_the_watchers_out():
    """The five attesters besides the founder sign the truth only 590 s after each
    change (just before a watcher would step in), then nothing at the next change;
    the region changes every 600 s. Readers still see the current content accepted
    most of the time: the watchers' wait is not reset by the short breaks."""
    region, reader, _ = _federation()
    founder = region[0]
    late = {n.origin for n in region if n.core.attests() and n is not founder}

    class Late(_Loop):
        changed_at = 0.0

        def act(self, node, due):
            if node.origin not in late:
                return due
            if self.now - self.changed_at != 590:
                return []
            return [c for c in node.core.rollup_changes() if c[1] is not None]

    loop = Late(region, reader)
    current = []
    for t in range(360):  # an hour
        if t % 60 == 0:
            loop.changed_at = loop.now
            loop.deliver([_need(region[1], "w1", 100 + t)])
        loop.tick()
        seen = loop.seen_by_reader()
        ok = seen is not None and seen.accepted is not None
        current.append(ok and seen.accepted.digest == _truth(region))
    assert sum(current[120:]) >= 0.8 * len(current[120:])


def test_a_made_up_content_cannot_stand_alone_when_the_attesters_fall_silent():
    """A founder of another region makes up the region's rollup (listing itself as its
    only node: the open hole of anchors trusted for any region): a split view. Were a
    split not wanting, the attesters besides the founder could keep it a split while it
    suits them and then withdraw, leaving the made-up content alone for a whole hold.
    A split is wanting: the watchers step in while it lasts, and when the attesters
    withdraw the region's content keeps its quorum."""
    region, reader, others = _federation(extra=1)
    founder, rogue = region[0], others[0]
    loop = _Loop(region, reader)
    for _ in range(5):
        loop.tick()
    honest = [r for r in loop.rollups.values() if r.body is not None]
    lie = dict(honest[0].body, records=1, counted="2" * 64, admitted=[rogue.origin.hex()])
    loop.deliver([rogue.write("rollup", honest[0].key, lie, FED)])
    assert loop.status() is RegionStatus.SPLIT
    for _ in range(STEPS + 2):
        loop.tick()
    quitters = [n for n in region if n.core.attests() and n is not founder]
    loop.silent = {n.origin for n in quitters}
    loop.deliver([n.write("rollup", honest[0].key, None, FED) for n in quitters])
    loop.rollups = {k: r for k, r in loop.rollups.items() if r.body is not None}
    assert loop.status() is RegionStatus.SPLIT  # shown, never summed, never the lie alone
    assert founder.core.attests()


def test_the_simnet_holds_its_watchers_back():
    """The simnet's attester loop runs `rollups_due` with the scenario's hold: with the
    default, an honest run signs only the attesters' rollups; with no hold, watchers
    step in while the attesters' rollups are still on their way."""
    from dataclasses import replace

    from simnet.scenario import preset
    from simnet.virtual import VirtualSim

    s = preset("federation").with_overrides(nodes=48)
    s = replace(
        s,
        workload=replace(s.workload, countries=2, regions=3, records=240, write_window=15.0),
        run=replace(s.run, rollup_every=5.0),
    )
    held = VirtualSim(s).run()
    eager = VirtualSim(replace(s, run=replace(s.run, watch_hold=0.0))).run()
    signers = {r.origin for r in held.rollups_written}
    attesting = {n.origin for n in held.nodes[: held.honest] if n.core.attests()}
    assert signers <= attesting
    assert {r.origin for r in eager.rollups_written} - attesting


def test_a_node_of_the_readers_own_region_cannot_make_up_another_regions_rollup():
    """A node admitted in the reader's region, not a root, signs a rollup of another
    region listing itself as that region's only node. The reader stores it (the node
    is admitted where the reader is), but only a root makes a content count: with the
    region silent the period stays unattested, and once the region's attesters sign,
    their content is accepted, not a split view. A reader of a third region, holding
    the same honest rollups, sees exactly the same."""
    region, reader, others = _federation(extra=1, mates=1)
    third, mate = others
    adm = reader.core.admission
    assert adm.is_admitted(mate.origin)
    assert mate.origin not in adm.roots
    key, body = rollup_key(REGION, PERIOD), _truth_body(region)
    lie = dict(body, records=1, counted="2" * 64, admitted=[mate.origin.hex()])
    fake = mate.write("rollup", key, lie, FED)
    for node in (reader, third):
        node.core.ingest([fake.raw], Source.GOSSIP, partition=FED)
    held = reader.replica.get(mate.origin, "rollup", key)
    assert held is not None
    assert held.rid == fake.rid
    assert third.replica.get(mate.origin, "rollup", key) is None  # refused by a stranger
    seen = reader.core.rollup_view().pairs[(REGION, PERIOD)]
    assert seen.status is RegionStatus.UNATTESTED
    loop = _Loop(region, reader)
    _give(loop.first(), [third])
    for node in (reader, third):
        seen = node.core.rollup_view().pairs[(REGION, PERIOD)]
        assert seen.status is RegionStatus.ACCEPTED
        assert seen.accepted.digest == _truth(region)
    assert reader.core.rollup_view().pairs[(REGION, PERIOD)].contradicting == (mate.origin,)


@given(liars=st.integers(1, 3), listed=st.integers(1, 3))
@settings(max_examples=12, deadline=None)
def test_readers_of_different_regions_see_the_same_rollups_alike(liars, listed):
    """The view is a function of the rollups held and the roots, which every replica
    shares: two readers in different regions holding the same rollups, some of them
    made up by nodes admitted in one reader's region, see the same statuses and the
    same accepted contents."""
    region, reader, others = _federation(size=4, extra=1, mates=liars)
    third, mates = others[0], others[1:]
    _Loop(region, reader).first()
    key, body = rollup_key(REGION, PERIOD), _truth_body(region)
    names = [m.origin.hex() for m in mates][:listed]
    lie = dict(body, records=1, counted="3" * 64, admitted=names)
    made_up = [m.write("rollup", key, lie, FED) for m in mates]
    held = [*reader.core.rollups.records(), *made_up]
    _give(held, [third])
    _give(made_up, [reader])
    views = [n.core.rollup_view().pairs for n in (reader, third)]
    assert {(p, rp.status) for p, rp in views[0].items()} == {
        (p, rp.status) for p, rp in views[1].items()
    }
    assert {p: rp.accepted for p, rp in views[0].items()} == {
        p: rp.accepted for p, rp in views[1].items()
    }
    assert views[0][(REGION, PERIOD)].accepted.digest == _truth(region)
