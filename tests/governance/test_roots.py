"""The roots: the nodes every replica trusts alike for another region's rollups.

A rollup counts only with a root among its signers, so the roots must be the same on
every replica whatever its region: the founders who signed and the nodes as many
founders as the charter's rule asks vouch for at the federation's root. A region's own
decisions (a suspension) and endorsements, which only that region holds, change no
root; a founder's endorsement at the root is stored everywhere, even in the region that
suspended it.
"""

from __future__ import annotations

import hashlib

from gov_helpers import Clock, FakeDaemon, member, vote

from node.core import Pending
from node.planning.rollup import rollup_key

R1, R2, R3, R5 = "eu/nl/drenthe", "eu/de/berlin", "eu/fr/paris", "eu/es/madrid"
PERIOD = "2027-Q1"
HOUR = 3_600_000


def _sync(nodes: list[FakeDaemon]) -> None:
    """Every node gets what its partitions hold, through the edge (`ingest`)."""
    for _ in range(2):
        for src in nodes:
            for dst in nodes:
                if src is not dst:
                    want = set(dst.state.core.partitions)
                    parts = [p for p in src.state.core.partitions if p in want]
                    dst.state.ingest([r.raw for r in src.state.replica.entries(parts)])


def _made_up(d: FakeDaemon, region: str) -> bytes:
    """A rollup of `region` signed by `d`, listing `d` as the region's only node."""
    body = {
        "region": region,
        "period": PERIOD,
        "items": [["wheat", "mass", "1000000", "0", 1]],
        "nodes": 1,
        "records": 1,
        "counted": "0" * 64,
        "admitted": [d.state.me.hex()],
    }
    pending = d.state.prepare("rollup", rollup_key(region, PERIOD), body, "eu")
    return d.state.save_and_commit(pending).raw


def test_a_node_one_founder_vouches_for_is_no_root_where_the_rule_asks_two(tmp_path):
    """Four founders signed: a new region's first node needs two of them. With one
    founder's endorsement at the root it is pending and no root anywhere (its made-up
    rollup counts nowhere); with a second it is admitted and a root everywhere."""
    clock = Clock()
    seed = hashlib.sha256(b"y").digest()
    a = FakeDaemon(tmp_path / "a", name="a", clock=clock, scope=R1 + "/a")
    b = FakeDaemon(tmp_path / "b", name="b", clock=clock, scope=R1 + "/b")
    c = FakeDaemon(tmp_path / "c", name="c", clock=clock, scope=R3 + "/c")
    o = FakeDaemon(tmp_path / "o", name="o", clock=clock, scope=R2 + "/o")
    y = FakeDaemon(tmp_path / "y", name="y", clock=clock, scope=R5 + "/y", seed=seed)
    nodes = [a, b, c, o, y]
    try:
        _sync(nodes)
        who = y.state.me
        a.call("endorse", node=who.hex())
        _sync(nodes)
        assert not y.state.core.admission.is_admitted(who)
        assert all(who not in n.state.core.admission.roots for n in nodes)
        assert not o.state.ingest([_made_up(y, R3)]).stored  # a stranger's rollup
        assert (R3, PERIOD) not in o.state.core.rollup_view().pairs
        b.call("endorse", node=who.hex())
        _sync(nodes)
        assert y.state.core.admission.is_admitted(who)  # where its node record is held
        assert all(who in n.state.core.admission.roots for n in nodes)
    finally:
        for n in nodes:
            n.close()


def test_a_suspension_by_its_region_leaves_the_roots_alike_everywhere(tmp_path):
    """Founders a and b of R1 signed (so one founder's word admits a new region's first
    node) and c of R3 reads. R1 suspends b by vote: b is suspended on R1's replicas
    only, but the roots stay the same on every replica, so b's rollup of R2 reads the
    same in R1 and in R3; and b's endorsement at the root, stored on every replica
    (R1's too), makes the same root everywhere."""
    clock = Clock()
    a = FakeDaemon(tmp_path / "a", name="a", clock=clock, scope=R1 + "/a")
    b = FakeDaemon(tmp_path / "b", name="b", clock=clock, scope=R1 + "/b")
    seed = hashlib.sha256(b"reader").digest()
    c = FakeDaemon(tmp_path / "c", name="c", clock=clock, scope=R3 + "/c", seed=seed)
    nodes = [a, b, c]
    try:
        _sync(nodes)
        them = b.state.me
        pid = a.call(
            "gov_proposal_create",
            key="d1",
            title="suspend b",
            method="approval",
            options=[{"id": "yes", "name": "yes"}, {"id": "no", "name": "no"}],
            seats=1,
            electorate=R1,
            closes=clock.t + HOUR,
            admission={"suspend": them.hex()},
        )["proposal"]
        clock.t += 1000
        for k in range(3):
            m = member(100 + k)
            a.call("gov_member_add", member=m.public.hex(), pseudonym=f"m{k}")
            a.submit(vote(a, m, pid, ["yes"], scope=R1 + "/a"))
        clock.t += HOUR
        a.call("gov_proposal_close", proposal=pid)
        _sync(nodes)
        assert them in a.state.core.admission.suspended  # the decision took, in R1
        assert them not in c.state.core.admission.suspended  # R3 does not hold it
        roots = a.state.core.admission.roots
        assert them in roots
        assert all(n.state.core.admission.roots == roots for n in nodes)
        fake = _made_up(b, R2)
        for n in (a, c):
            n.state.ingest([fake])
        views = [n.state.core.rollup_view().pairs[(R2, PERIOD)] for n in (a, c)]
        assert views[0].status is views[1].status
        assert views[0].contents == views[1].contents
        # b vouches at the root for a key of its making: R1 stores it like the others
        clock.t += 1000
        ghost = member(999).public
        (rec,) = b.state.save_and_commit_all([b.state.prepare("endorse", ghost.hex(), {}, "eu")])
        for n in (a, c):
            assert n.state.ingest([rec.raw]).stored
        assert all(ghost in n.state.core.admission.roots for n in (a, c))
    finally:
        for n in nodes:
            n.close()


def test_a_charter_signed_inside_a_region_counts_nowhere(tmp_path):
    """A founder's signature counts only at the federation's root, which every replica
    follows: one in its region's partition is refused at the edge, so the founders
    who signed, and with them the roots, are the same on every replica."""
    clock = Clock()
    a = FakeDaemon(tmp_path / "a", name="a", clock=clock, scope=R1 + "/a")
    b = FakeDaemon(tmp_path / "b", name="b", clock=clock, scope=R1 + "/b")
    c = FakeDaemon(tmp_path / "c", name="c", clock=clock, scope=R3 + "/c")
    nodes = [a, b, c]
    try:
        _sync(nodes)
        charter = b.state.charter
        clock.t += 1000
        withdrawn = b.state.core._sign("charter", charter.id, None, "eu")
        moved = b.state.core._sign("charter", charter.id, charter.body(), R1 + "/b")
        got = a.state.ingest([withdrawn.raw, moved.raw])
        assert got.stored == [withdrawn]
        _sync(nodes)
        roots = c.state.core.admission.roots
        assert b.state.me not in roots
        assert all(n.state.core.admission.roots == roots for n in nodes)
    finally:
        for n in nodes:
            n.close()


def test_a_root_endorsement_outdated_inside_a_region_still_makes_the_same_roots(tmp_path):
    """A founder's endorsement at the root, then a newer record of the same slot in its
    region with no withdrawal at the root: the region's replicas hold both (the
    regional one wins the slot), the others the root's alone. The roots are made of
    what the root holds, so they are the same on every replica, whatever order the
    records came in, and after a restart."""
    clock = Clock()
    a = FakeDaemon(tmp_path / "a", name="a", clock=clock, scope=R1 + "/a")
    c = FakeDaemon(tmp_path / "c", name="c", clock=clock, scope=R3 + "/c")
    y = FakeDaemon(tmp_path / "y", name="y", clock=clock, scope=R5 + "/y", seed=b"y" * 32)
    nodes = [a, c, y]
    try:
        _sync(nodes)
        who = y.state.me
        a.call("endorse", node=who.hex())
        (at_root,) = [r for r in a.state.replica.entries(["eu"]) if r.kind == "endorse"]
        clock.t += 1000
        moved = a.state.core._sign("endorse", who.hex(), {}, R1 + "/a")
        a.state.save_and_commit(Pending([moved], {"seq": moved.seq, "hlc": moved.hlc}))
        _sync(nodes)
        assert who in c.state.core.admission.roots
        charters = [r.raw for r in a.state.replica.records("charter")]
        for name, order in (("r1", [at_root, moved]), ("r2", [moved, at_root])):
            seed = hashlib.sha256(name.encode()).digest()
            r = FakeDaemon(
                tmp_path / name, name=name, clock=clock, scope=R1 + "/" + name, seed=seed
            )
            r.state.ingest(charters)
            for rec in order:
                r.state.ingest([rec.raw])
            assert r.state.core.admission.roots == c.state.core.admission.roots
            r.close()
            r = FakeDaemon(
                tmp_path / name, name=name, clock=clock, scope=R1 + "/" + name, seed=seed
            )
            assert r.state.core.admission.roots == c.state.core.admission.roots
            r.close()
        assert a.state.core.admission.roots == c.state.core.admission.roots
    finally:
        for n in nodes:
            n.close()


def test_a_founder_that_did_not_sign_writes_nothing_at_the_root(tmp_path):
    """A founder vouched for at the root is a root, but until its signature of the
    charter is held it is a stranger: its endorsements at the root are refused."""
    clock = Clock()
    a = FakeDaemon(tmp_path / "a", name="a", clock=clock, scope=R1 + "/a")
    c = FakeDaemon(tmp_path / "c", name="c", clock=clock, scope=R3 + "/c")
    s = FakeDaemon(tmp_path / "s", name="stranger", clock=clock, scope=R5 + "/s")
    try:
        _sync([a, c])  # s's signature reaches neither
        a.call("endorse", node=s.state.me.hex())
        _sync([a, c])
        assert s.state.me in c.state.core.admission.roots
        pending = s.state.prepare("endorse", member(7).public.hex(), {}, "eu")
        rec = s.state.save_and_commit(pending)
        assert not c.state.ingest([rec.raw]).stored
    finally:
        for n in (a, c, s):
            n.close()
