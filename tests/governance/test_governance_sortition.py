"""Sortition: maximin-fair panel distribution (cross-checked by brute force), the
commit-reveal seed, and `assembly verify` catching tampering."""

from __future__ import annotations

import hashlib
import itertools
from fractions import Fraction

import pytest
import scipy.optimize as scipy_optimize  # test-only (the [test] extra)
from gov_helpers import SCOPE, FakeDaemon, member
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import LocalError
from node.governance import sortition
from node.governance.errors import GovernanceError
from node.governance.ledger import Ledger
from node.governance.member_sign import sign_member_record
from node.governance.simplex import maximize

# --- the lottery against brute force -------------------------------------------------


def brute_force_maximin(pool, size, quotas):
    """Enumerate every feasible panel of people; solve the maximin LP with scipy."""
    panels = [
        set(p)
        for p in itertools.combinations(range(len(pool)), size)
        if not sortition.meets_quotas([pool[i] for i in p], size, quotas)
    ]
    if not panels:
        return None
    k = len(panels)
    # Only volunteers some feasible panel includes: the quotas exclude the others,
    # whatever the lottery (as sortition-algorithms does).
    selectable = sorted(set().union(*panels))
    # variables: q_1..q_k, z; maximise z: minimise -z
    c = [0.0] * k + [-1.0]
    a_ub = [[-1.0 if i in p else 0.0 for p in panels] + [1.0] for i in selectable]
    res = scipy_optimize.linprog(
        c,
        A_ub=a_ub,
        b_ub=[0.0] * len(selectable),
        A_eq=[[1.0] * k + [0.0]],
        b_eq=[1.0],
        bounds=[(0, None)] * (k + 1),
        method="highs",
    )
    assert res.status == 0
    return -res.fun


values = st.sampled_from(["a", "b", "c"])


@settings(max_examples=40, deadline=None)
@given(
    pool=st.lists(
        st.fixed_dictionaries({"x": values, "y": st.sampled_from(["p", "q"])}),
        min_size=3,
        max_size=9,
    ),
    size=st.integers(1, 4),
    data=st.data(),
)
def test_maximin_matches_brute_force(pool, size, data):
    quotas = {
        "x": {
            v: sorted(data.draw(st.lists(st.integers(0, size), min_size=2, max_size=2)))
            for v in "ab"
        },
        "y": {"p": sorted(data.draw(st.lists(st.integers(0, size), min_size=2, max_size=2)))},
    }
    want = brute_force_maximin(pool, size, quotas)
    if want is None:
        with pytest.raises(GovernanceError, match="no panel meets the quotas"):
            sortition.distribution(pool, size, quotas)
        return
    dist = sortition.distribution(pool, size, quotas)
    assert abs(float(dist.minimum) - want) < 1e-7
    assert sum(p for _, p in dist.compositions) == 1
    # Every composition in the support meets the quotas and has the panel size.
    for comp, _ in dist.compositions:
        people = [
            dict(zip(dist.features, t, strict=True))
            for t, k in zip(dist.types, comp, strict=True)
            for _ in range(k)
        ]
        assert not sortition.meets_quotas(people, size, quotas)
    # the maximin value is the least probability among volunteers that can be drawn
    assert min(p for p in dist.probability if p > 0) == dist.minimum
    # Expected panel size equals the sum of selection probabilities.
    assert sum(p * n for p, n in zip(dist.probability, dist.sizes, strict=True)) == size


def test_drawn_panels_meet_quotas_and_frequencies_approach_probabilities():
    pool = [
        {"age": a, "sex": s}
        for a, s, n in [("young", "f", 3), ("young", "m", 5), ("old", "f", 6), ("old", "m", 2)]
        for _ in range(n)
    ]
    quotas = {"age": {"young": [3, 3], "old": [3, 3]}, "sex": {"f": [3, 3], "m": [3, 3]}}
    dist = sortition.distribution(pool, 6, quotas)
    assert dist.minimum == Fraction(1, 3)
    keys = {bytes([i]) * 32: p for i, p in enumerate(pool)}
    hits = dict.fromkeys(keys, 0)
    runs = 600
    for r in range(runs):
        _, panel = sortition.pick_panel(
            dist, keys, hashlib.sha256(bytes([r % 256, r // 256])).digest()
        )
        assert not sortition.meets_quotas([keys[m] for m in panel], 6, quotas)
        for m in panel:
            hits[m] += 1
    for m, p in keys.items():
        t = dist.types.index(sortition.type_of(p, dist.features))
        assert abs(hits[m] / runs - float(dist.probability[t])) < 0.1


def test_infeasible_quotas_say_why():
    pool = [{"age": "old"}] * 5
    with pytest.raises(GovernanceError, match="age=young needs at least 1, the pool has 0"):
        sortition.distribution(pool, 2, {"age": {"young": [1, 2]}})
    with pytest.raises(GovernanceError, match="3 volunteers for a panel of 4"):
        sortition.distribution(pool[:3], 4, {})


def test_simplex_duals():
    f = Fraction
    sol = maximize([f(3), f(5)], [[f(1), f(0)], [f(0), f(2)], [f(3), f(2)]], [f(4), f(12), f(18)])
    assert (sol.value, sol.x, sol.duals) == (36, (2, 6), (0, f(3, 2), 1))


# --- records: three nodes, commit-reveal, verify ---------------------------------------

QUOTAS = {"age": {"young": [1, 2], "old": [1, 2]}}


@pytest.fixture
def nodes(tmp_path):
    organiser = FakeDaemon(tmp_path / "a", name="a")
    others = [FakeDaemon(tmp_path / n, name=n, clock=organiser.clock) for n in ("b", "c")]
    ds = [organiser, *others]
    yield ds
    for d in ds:
        d.close()


def sync(ds):
    raws = [r.raw for d in ds for r in d.state.replica.records()]
    for d in ds:
        d.state.ingest(raws)


def setup_assembly(ds, n_volunteers=8):
    a = ds[0]
    people = [member(100 + i) for i in range(n_volunteers)]
    for i, p in enumerate(people):
        a.call(
            "gov_member_add",
            member=p.public.hex(),
            pseudonym=f"p{i}",
            features={"age": "young" if i % 2 else "old", "area": "north"},
        )
    aid = a.call(
        "gov_assembly_create",
        key="climate",
        title="Climate",
        size=3,
        quotas=QUOTAS,
        committers=[d.state.me.hex() for d in ds],
    )["assembly"]
    for p in people:
        info = a.call("gov_assembly_prepare", assembly=aid, member=p.public.hex())
        a.submit(
            sign_member_record(
                p,
                "volunteer",
                aid,
                SCOPE,
                {"consent": True},
                now_ms=a.clock.t,
                held_max_seq=info["held_max_seq"],
            )
        )
    a.call("gov_assembly_freeze", assembly=aid)
    sync(ds)
    for d in ds:
        d.call("gov_assembly_commit", assembly=aid)
    return aid, people


def run_draw(ds, aid):
    sync(ds)
    ds[0].call("gov_assembly_seal", assembly=aid)
    sync(ds)
    for d in ds:
        d.call("gov_assembly_reveal", assembly=aid)
    sync(ds)
    drawn = ds[0].call("gov_assembly_draw", assembly=aid)
    sync(ds)
    return drawn


def test_draw_and_verify_everywhere(nodes):
    aid, _ = setup_assembly(nodes)
    with pytest.raises(LocalError, match="waiting for the commits"):
        nodes[0].call("gov_assembly_reveal", assembly=aid)  # b and c not synced yet
    drawn = run_draw(nodes, aid)
    assert len(drawn["panel"]) == 3
    assert drawn["minimum_probability"] == "3/8"
    for d in nodes:
        v = d.call("gov_assembly_verify", assembly=aid)
        assert v["ok"], v["failures"]
        assert v["draw"]["panel"] == drawn["panel"]
    with pytest.raises(LocalError, match="frozen"):
        nodes[0].call("gov_assembly_prepare", assembly=aid, member=member(100).public.hex())


def test_missing_reveal_blocks_the_draw(nodes):
    aid, _ = setup_assembly(nodes)
    sync(nodes)
    nodes[0].call("gov_assembly_seal", assembly=aid)
    sync(nodes)
    nodes[0].call("gov_assembly_reveal", assembly=aid)
    nodes[1].call("gov_assembly_reveal", assembly=aid)
    sync(nodes)
    with pytest.raises(LocalError, match="no reveal"):
        nodes[0].call("gov_assembly_draw", assembly=aid)


def failures(d, aid):
    v = d.call("gov_assembly_verify", assembly=aid)
    assert not v["ok"]
    return " | ".join(v["failures"])


def test_verify_detects_a_tampered_panel(nodes):
    aid, people = setup_assembly(nodes)
    drawn = run_draw(nodes, aid)
    a = nodes[0]
    outsider = next(p.public.hex() for p in people if p.public.hex() not in drawn["panel"])
    a.state.write(
        "panel", "climate", {"members": [*drawn["panel"][:2], outsider], "seed": drawn["seed"]}
    )
    assert "published but not drawn" in failures(a, aid)


def test_verify_detects_changed_quotas(nodes):
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    a = nodes[0]
    current = a.state.replica.get(a.state.me, "assembly", "climate").body
    a.state.write("assembly", "climate", {**current, "quotas": {"age": {"young": [3, 3]}}})
    assert "quotas" in failures(a, aid)


def test_verify_detects_a_tampered_pool(nodes):
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    a = nodes[0]
    chunk = a.state.replica.get(a.state.me, "poolset", "climate/0")
    a.state.write("poolset", "climate/0", {"members": chunk.body["members"][:-1]})
    assert "pool" in failures(a, aid)
    # a pool re-frozen consistently with a non-volunteer is caught too
    entries = [*chunk.body["members"][:-1], [member(999).public, {"age": "old"}]]
    from node.governance.freeze import freeze_hash

    a.state.write("poolset", "climate/0", {"members": entries})
    a.state.write(
        "pool", "climate", {"chunks": 1, "count": len(entries), "hash": freeze_hash(entries)}
    )
    text = failures(a, aid)
    assert "did not volunteer" in text
    assert "committed to another pool" in text


def test_verify_detects_a_changed_commit_or_reveal(nodes):
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    b = nodes[1]
    seal = b.state.replica.get(b.state.me, "reveal", aid).body["seal"]
    b.state.write("reveal", aid, {"secret": "00" * 32, "seal": seal})
    assert "reveal does not match its commit" in failures(b, aid)
    c = nodes[2]
    c.state.write(
        "commit",
        aid,
        {"hash": "11" * 32, "pool": c.state.replica.get(c.state.me, "commit", aid).body["pool"]},
    )
    assert "commit changed after the seal" in failures(c, aid)


def test_a_beacon_changes_the_seed():
    s1 = sortition.derive_seed("x.y", "00" * 32, [("aa" * 32, "01" * 32)], None)
    s2 = sortition.derive_seed("x.y", "00" * 32, [("aa" * 32, "01" * 32)], "ff")
    assert s1 != s2


def test_ledger_view_is_order_free(nodes):
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    records = list(nodes[0].state.replica.records())
    a = sortition.verify(Ledger(records), aid).as_json()
    b = sortition.verify(Ledger(reversed(records)), aid).as_json()
    assert a == b
    assert a["ok"]
