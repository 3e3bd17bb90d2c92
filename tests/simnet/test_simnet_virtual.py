"""Virtual simnet: convergence, determinism, partitions, churn, forgeries."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from factories import Author

from node.core import encode_batch
from node.crdt.record import record_id
from node.identity import Identity
from simnet.report import virtual_report
from simnet.scenario import Workload, preset
from simnet.virtual import VirtualSim

ROOT = Path(__file__).resolve().parents[2]


def small(name="smoke", nodes=30, **kw):
    return preset(name).with_overrides(nodes=nodes, **kw)


def test_smoke_converges_with_equal_digests_and_balances():
    report = virtual_report(VirtualSim(small()).run())
    r = report["result"]
    assert r["ok"]
    assert r["records_unconverged"] == 0
    assert r["check"]["digest_groups"] == r["regions"]  # one state per region
    assert r["check"]["balance_checked_nodes"] == 30
    assert r["check"]["balance_mismatch_count"] == 0
    assert r["records"] == 600  # the intents (node records are preloaded: simnet.federation)
    assert r["signatures"]["trust_signatures"] is False  # small runs verify everything


def test_same_seed_same_report_even_across_processes():
    one = virtual_report(VirtualSim(small(nodes=20)).run())["result"]
    two = virtual_report(VirtualSim(small(nodes=20)).run())["result"]
    assert one == two
    code = (
        "import json; from simnet.scenario import preset; from simnet.virtual import "
        "VirtualSim; from simnet.report import virtual_report; "
        "print(json.dumps(virtual_report(VirtualSim(preset('smoke').with_overrides("
        "nodes=20)).run())['result'], sort_keys=True))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "7"},
    )
    assert json.loads(out.stdout) == json.loads(json.dumps(one, sort_keys=True))
    other = virtual_report(VirtualSim(small(nodes=20, seed=2)).run())["result"]
    assert other["convergence_s"] != one["convergence_s"]


def test_partition_heals_to_equality():
    s = preset("partition").with_overrides(nodes=40)
    s = replace(s, workload=replace(s.workload, records=400))
    r = virtual_report(VirtualSim(s).run())["result"]
    assert r["ok"]
    (p,) = r["partitions"]
    assert p["converged_after_heal_s"] is not None
    assert p["sync_rounds"] <= 3
    assert r["convergence_s"]["max"] >= 30  # records written in a split waited for the heal


def test_churned_nodes_catch_up():
    s = preset("churn").with_overrides(nodes=30)
    s = replace(s, workload=replace(s.workload, records=300))
    r = virtual_report(VirtualSim(s).run())["result"]
    assert r["ok"]
    assert r["rejoins"] == 6
    assert r["rejoin_catch_up_s"]["n"] == 6


def test_a_staggered_cold_start_converges_and_holds_writes_until_a_node_is_up():
    s = small(nodes=30)
    s = replace(s, network=replace(s.network, start_window=40.0))
    sim = VirtualSim(s).run()
    r = virtual_report(sim)["result"]
    assert r["ok"]
    assert r["records_unconverged"] == 0
    assert r["rejoins"] == 0  # starting is not a fault
    assert sim.stopped_at >= 40.0
    # A record is written by its node only once that node is up.
    node_of = {n.origin: i for i, n in enumerate(sim.nodes)}
    late = [t for t in sim.tracker.tracks if t.created < sim.started_at[node_of[t.slot[0]]]]
    assert sim.tracker.tracks
    assert not late
    assert max(sim.started_at) > 30.0
    assert sim.tracker.catch_up_times  # late starters caught up with earlier writes


@pytest.mark.parametrize("trust", ["on", "off"])
def test_forged_records_are_rejected_everywhere(trust):
    s = small(nodes=20, trust=trust)
    s = replace(s, workload=replace(s.workload, records=100))
    sim = VirtualSim(s).run()
    assert (sim.cache is not None) == (trust == "on")
    before = [n.digest() for n in sim.nodes]
    victim = sim.nodes[0]
    # a new record in the victim's name, signed by another key
    attacker = Author(Identity.from_seed(b"\x01" * 32), victim.spec.scope)
    attacker.signer = Identity.from_seed(b"\x02" * 32).signer()
    forged = attacker.need("forged", qty="999999")
    forged = forged._replace(raw=forged.raw.replace(attacker.origin, victim.origin))
    data = encode_batch([forged.raw])
    topic = victim.partitions[-1]
    for i, g in enumerate(sim.gossip):
        mid = sim.store.add(topic, data, publisher=i)
        g.on_message(mid, frm=sim.net.neighbours[i][0])
    assert [n.digest() for n in sim.nodes] == before
    assert all(n.replica.get(victim.origin, "need", "forged") is None for n in sim.nodes)
    assert all(n.rejected == 1 for n in sim.nodes)  # one bad signature each
    if sim.cache is not None:
        # decoded once, found bad once, and never trusted by any node
        assert sim.cache.signatures[record_id(forged.raw)] is False
    # a record the victim really signed, with a body no node may take (validated once
    # per run when the cache is on, refused by every node either way)
    liar = Author(Identity.from_seed(victim.spec.seed), victim.spec.scope)
    liar.seq = 10**9
    bad = liar.write("need", "bad", {"item": "potatoes", "qty": "0", "unit": "kg"})
    for i, g in enumerate(sim.gossip):
        mid = sim.store.add(topic, encode_batch([bad.raw]), publisher=i)
        g.on_message(mid, frm=sim.net.neighbours[i][0])
    assert [n.digest() for n in sim.nodes] == before
    assert all(n.rejected == 2 for n in sim.nodes)
    if sim.cache is not None:
        assert "quantity" in sim.cache.bodies[bad.rid]
    assert virtual_report(sim)["result"]["check"]["ok"]


def test_shared_verification_verifies_each_record_once():
    s = small(nodes=20, trust="on")
    s = replace(s, workload=replace(s.workload, records=200))
    sim = VirtualSim(s).run()
    r = virtual_report(sim)["result"]
    assert r["ok"]
    assert sim.cache.verifications == len(sim.written)
    assert sim.cache.hits > sim.cache.verifications


def test_balance_sample_mode_still_checks_digests_everywhere():
    s = replace(
        small(nodes=24, balance="sample"),
        workload=Workload(regions=3, records=200, write_window=10.0),
    )
    r = virtual_report(VirtualSim(s).run())["result"]
    assert r["ok"]
    assert r["check"]["balance_checked_nodes"] == 9


def test_strangers_change_nothing_honest_nodes_hold_or_count():
    """The sybil preset, small: four strangers per honest node post, apply, invite and
    vote; every honest node ends equal to the honest-only ground truth, holding nothing
    of theirs."""
    s = preset("sybil").with_overrides(nodes=24)
    s = replace(s, workload=replace(s.workload, records=480, write_window=20.0))
    report = virtual_report(VirtualSim(s).run())
    r = report["result"]
    assert r["sybil"]["nodes"] == 96
    assert r["ok"]
    assert r["check"]["digest_mismatch_count"] == 0
    assert r["check"]["balance_mismatch_count"] == 0
    assert r["sybil"]["held_by_honest_nodes"] == 0
    assert r["sybil"]["refused_at_honest_nodes"] > 0
    assert r["records"] == 480  # only the honest records are tracked


def test_every_node_sees_the_federation_through_attested_rollups():
    """The federation preset, small: every node's balance of the root, each country
    and each region equals the truth from all records, though it holds only its own
    region's records and the others' rollups."""
    s = preset("federation").with_overrides(nodes=48)
    s = replace(
        s,
        workload=replace(s.workload, countries=2, regions=6, records=480, write_window=15.0),
        run=replace(s.run, rollup_every=5.0),
    )
    r = virtual_report(VirtualSim(s).run())["result"]
    fed = r["check"]["federation"]
    assert r["ok"]
    assert fed["checked_nodes"] == 48
    assert fed["scopes_per_node"] == 1 + 2 + 6
    assert fed["mismatch_count"] == 0
    assert fed["rollups_written"] > 0
    assert fed["records_held_per_node"] < 480  # its region's records, not the federation's


def test_the_country_preset_scales_regions_and_records_with_the_nodes():
    """Regions of 45 and 50 records per node at any N; states at most the regions."""
    full = preset("country").with_overrides()
    assert (full.nodes, full.workload.regions, full.workload.countries) == (18_000, 400, 16)
    assert full.workload.records == 900_000
    s = preset("country").with_overrides(nodes=500)
    assert (s.workload.regions, s.workload.countries, s.workload.records) == (11, 11, 25_000)
    assert s.run.rollups
    assert s.network.start_window > 0
    # a fixed workload keeps its records and regions
    assert preset("scale").with_overrides(nodes=500).workload.records == 50_000


def test_scaling_keys_are_checked_and_read_from_toml(tmp_path):
    from node.errors import LocalError
    from simnet.scenario import load_toml

    f = tmp_path / "c.toml"
    f.write_text("nodes = 90\n[workload]\nregion_size = 30\nrecords_per_node = 2\n")
    s = load_toml(f).with_overrides()
    assert (s.workload.regions, s.workload.records) == (3, 180)
    f.write_text("nodes = 90\n[workload]\nregion_size = -1\n")
    with pytest.raises(LocalError, match="region_size"):
        load_toml(f)


def test_a_small_country_converges_to_the_truth_on_every_node():
    s = preset("country").with_overrides(nodes=12)
    s = replace(
        s,
        network=replace(s.network, start_window=5.0),
        workload=replace(s.workload, records_per_node=4, region_size=6, write_window=10.0),
        run=replace(s.run, rollup_every=5.0),
    ).with_overrides()
    assert (s.workload.regions, s.workload.records) == (2, 48)
    r = virtual_report(VirtualSim(s).run())["result"]
    assert r["ok"]
    assert r["check"]["federation"]["mismatch_count"] == 0
    assert r["check"]["federation"]["checked_nodes"] == 12
