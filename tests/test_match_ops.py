"""The issue's scenario through the control ops on three nodes of one region (no
network: records are handed over): A needs 100 kg, B has 60 kg, C has 80 kg; every
node shows the same matches; B commits, A accepts, B delivers 50, A confirms; every
node shows it in B's track record."""

from __future__ import annotations

import pytest
from governance.gov_helpers import Clock, FakeDaemon

from node.errors import LocalError

REGION = "eu/nl/drenthe"


@pytest.fixture
def nodes(tmp_path):
    clock = Clock(1_800_000_000_000)  # 2027-01-15
    ds = [FakeDaemon(tmp_path / n, name=n, scope=f"{REGION}/{n}", clock=clock) for n in "abc"]
    yield ds
    for d in ds:
        d.close()


def sync(ds):
    for x in ds:
        for y in ds:
            if x is not y:
                x.state.ingest([r.raw for r in y.state.replica.records()])


def hexof(d):
    return d.state.me.hex()


def test_match_commit_deliver_confirm_and_track_record(nodes):
    a, b, c = nodes
    a.call("post", kind="need", item="potatoes", qty="100", unit="kg", period="2027-Q1")
    b.call("post", kind="capacity", item="potatoes", qty="60", unit="kg", period="2027-Q1")
    c.call("post", kind="capacity", item="potatoes", qty="80", unit="kg", period="2027-Q1")
    sync(nodes)
    shown = [d.call("match", scope=REGION) for d in nodes]
    assert shown[0] == shown[1] == shown[2]
    split = {m["provider"]: m["qty"] for m in shown[0]["within_region"]}
    # 100 drawn 60:80 from B and C, largest remainder in ticks
    assert split == {hexof(b): "42.857143", hexof(c): "57.142857"}
    assert all(m["receiver"] == hexof(a) for m in shown[0]["within_region"])
    # every proposed counterpart with its track record (none has one yet)
    assert [t["node"] for t in shown[0]["track_records"]] == sorted(map(hexof, nodes))
    assert all(t["committed"] == 0 and t["share"] is None for t in shown[0]["track_records"])
    who = a.call("capacities", scope=REGION, item="potatoes")
    assert {r["node"] for r in who} == {hexof(b), hexof(c)}

    offer = b.call(
        "commitment_propose",
        **{"with": hexof(a)},
        item="potatoes",
        qty="50",
        unit="kg",
        period="2027-Q1",
        due="2027-03-31",
        note="collect at the farm gate",
    )
    ref = f"{hexof(b)}.{offer['id']}"
    with pytest.raises(LocalError, match="not committed"):
        b.call("fulfil", id=ref, qty="50", unit="kg")
    sync(nodes)
    with pytest.raises(LocalError, match="counterpart"):
        c.call("commitment_accept", id=ref)
    a.call("commitment_accept", id=ref)
    sync(nodes)
    delivery = b.call("fulfil", id=ref, qty="50", unit="kg", date="2027-02-10")
    sync(nodes)
    a.call("confirm", id=f"{hexof(b)}.{delivery['id']}")
    sync(nodes)
    for d in nodes:
        (tb,) = d.call("track_record", node=hexof(b))["nodes"]
        assert (tb["committed"], tb["delivered"], tb["confirmed"], tb["on_time"]) == (1, 1, 1, 1)
        (cm,) = d.call("commitment_list", all=True)
        assert cm["state"] == "committed"
        assert cm["deliveries"][0]["status"] == "confirmed"
        records = {t["node"]: t for t in d.call("match", scope=REGION)["track_records"]}
        assert (records[hexof(b)]["committed"], records[hexof(b)]["confirmed"]) == (1, 1)
        assert records[hexof(a)]["received"] == 1
    rows = a.call("committed", scope=REGION, item="potatoes")
    assert rows[0]["committed_in"] == "50"
    assert rows[0]["committed_coverage"] == "0.5"


def _row(d, scope=REGION):
    (level,) = d.call("balance", scope=scope, item="potatoes")["levels"]
    (row,) = level["rows"]
    return row


def test_balance_shows_committed_next_to_posted_once_both_signed(nodes):
    a, b, c = nodes
    a.call("post", kind="need", item="potatoes", qty="100", unit="kg", period="2027-Q1")
    b.call("post", kind="capacity", item="potatoes", qty="60", unit="kg", period="2027-Q1")
    sync(nodes)
    terms = {"item": "potatoes", "qty": "40", "unit": "kg", "period": "2027-Q1"}
    offer = b.call("commitment_propose", **{"with": hexof(a)}, **terms, due="2027-03-31")
    ref = f"{hexof(b)}.{offer['id']}"
    sync(nodes)
    # the offer alone, signed by one side, is no commitment
    for d in nodes:
        row = _row(d)
        assert (row["needs"], row["capacities"], row["coverage"]) == ("100", "60", "0.6")
        assert (row["committed_in"], row["committed_out"]) == ("0", "0")
        assert row["committed_coverage"] == "0"
    a.call("commitment_accept", id=ref)
    sync(nodes)
    for d in nodes:
        row = _row(d)
        assert (row["committed_in"], row["committed_out"]) == ("40", "40")
        assert row["committed_coverage"] == "0.4"
    # below the region: A's commune receives, B's provides
    assert _row(a, f"{REGION}/a")["committed_in"] == "40"
    assert _row(a, f"{REGION}/a")["committed_out"] == "0"
    assert _row(a, f"{REGION}/b")["committed_out"] == "40"
    assert _row(a, f"{REGION}/b")["committed_coverage"] is None  # B needs nothing
    # the same figures from the `committed` op
    (same,) = a.call("committed", scope=REGION, item="potatoes")
    assert same == _row(a)
    # a cancel takes it out again
    b.call("commitment_decline", id=ref, reason="harvest failed")
    sync(nodes)
    assert _row(c)["committed_in"] == "0"


def test_balance_above_the_region_has_no_committed_figures(nodes):
    a, *_ = nodes
    a.call("post", kind="need", item="potatoes", qty="100", unit="kg", period="2027-Q1")
    levels = a.call("balance", scope="eu/nl", depth=1, item="potatoes")["levels"]
    by_scope = {lv["scope"]: lv for lv in levels}
    # not every commitment under eu/nl is held here: null, not a partial sum
    for row in by_scope["eu/nl"]["rows"]:
        assert row["committed_in"] is None
        assert row["committed_coverage"] is None
    (own,) = by_scope[REGION]["rows"]
    assert own["committed_in"] == "0"


def test_who_has_what_lists_held_records_and_other_regions_rollups(nodes, monkeypatch):
    from factories import Author, identities

    from node.planning.rollup import RollupView, compute_rollups, rollup_key

    a, b, c = nodes
    b.call("post", kind="capacity", item="potatoes", qty="60", unit="kg", period="2027-Q1")
    c.call("post", kind="capacity", item="milk", qty="9", unit="l", period="2027-Q1")
    a.call("post", kind="need", item="potatoes", qty="10", unit="kg", period="2027-Q1")
    sync(nodes)
    hh = "eu/de/hamburg"
    them = [Author(p, scope=f"{hh}/n{k}") for k, p in enumerate(identities(3, seed=31))]
    recs = [x.capacity(f"c{k}", qty="250", period="2027-Q1") for k, x in enumerate(them)]
    recs.append(them[0].need("n0", qty="5", period="2027-Q1"))
    bodies = compute_rollups(recs, hh, [x.origin for x in them])
    signed = [
        x.write("rollup", rollup_key(hh, p), body, scope="eu")
        for x in them
        for p, body in bodies.items()
    ]
    view = RollupView(signed, frozenset({them[0].origin}), REGION)
    monkeypatch.setattr(a.state.core, "rollup_view", lambda: view)

    # as `capacity list --item potatoes` asks: everyone's
    rows = a.call("list", kind="capacity", all=True, scope=None, withdrawn=False, item="potatoes")
    held = [r for r in rows if r["source"] == "record"]
    assert [(r["origin"], r["qty"], r["unit"]) for r in held] == [(hexof(b), "60", "kg")]
    (hamburg,) = [r for r in rows if r["source"] == "rollup"]
    assert (hamburg["region"], hamburg["qty"], hamburg["unit"]) == (hh, "750", "kg")
    assert (hamburg["nodes"], hamburg["attested_by"]) == (3, 3)
    # needs alike; a scope inside this region leaves the other regions out
    needs = a.call("list", kind="need", all=True, scope="eu", withdrawn=False, item="potatoes")
    assert [(r["source"], r["qty"]) for r in needs] == [("record", "10"), ("rollup", "5")]
    only_here = a.call(
        "list", kind="capacity", all=True, scope=REGION, withdrawn=False, item="potatoes"
    )
    assert [r["source"] for r in only_here] == ["record"]
    # without an item: this node's own records, as before
    assert a.call("list", kind="capacity", all=False, scope=None, withdrawn=False, item=None) == []


def test_a_node_cannot_withdraw_what_its_track_record_rests_on(nodes):
    a, b, _ = nodes
    sync(nodes)  # the node records
    offer = b.call(
        "commitment_propose",
        **{"with": hexof(a)},
        item="potatoes",
        qty="50",
        unit="kg",
        period="2027-Q1",
        due="2027-01-31",
    )
    sync(nodes)
    a.call("commitment_accept", id=f"{hexof(b)}.{offer['id']}")
    sync(nodes)
    with pytest.raises(LocalError, match="committed already"):
        a.call("commitment_accept", id=f"{hexof(b)}.{offer['id']}")
    held = len(b.state.replica)
    with pytest.raises(LocalError, match="cannot be withdrawn"):
        b.call("withdraw", kind="offer", key=offer["id"])
    with pytest.raises(LocalError, match="cannot be withdrawn"):
        a.call("withdraw", kind="accept", key=f"{hexof(b)[:16]}.{offer['id']}")
    assert len(b.state.replica) == held  # nothing written
    a.clock.t += 30 * 86_400_000  # past due, nothing delivered
    for d in nodes:
        (tb,) = d.call("track_record", node=hexof(b))["nodes"]
        assert (tb["committed"], tb["overdue"]) == (1, 1)


def test_nodes_offers_and_deliveries_go_by_the_names_and_short_ids_shown(nodes):
    a, b, c = nodes
    sync(nodes)
    terms = {"item": "potatoes", "qty": "5", "unit": "kg", "period": "2027-Q1", "due": "2027-03-31"}
    first = b.call("commitment_propose", **{"with": "a"}, **terms)  # a node by its name
    second = b.call("commitment_propose", **{"with": hexof(a)[:10]}, **terms)  # a key prefix
    with pytest.raises(LocalError, match="unknown here"):
        b.call("commitment_propose", **{"with": "nobody"}, **terms)
    with pytest.raises(LocalError, match="unknown here"):
        b.call("commitment_propose", **{"with": hexof(a)[:6]}, **terms)  # too short a prefix
    assert first["id"] != second["id"]  # the same terms twice: two offers
    sync(nodes)
    short = first["id"].split("-")[0]
    a.call("commitment_accept", id=short)
    with pytest.raises(LocalError, match="no offer 'zzz' here"):
        a.call("commitment_accept", id="zzz")
    sync(nodes)
    states = {cm["id"].split(".")[1]: cm["state"] for cm in a.call("commitment_list", all=False)}
    assert states == {first["id"]: "committed", second["id"]: "offered"}
    delivery = b.call("fulfil", id=short, qty="5", unit="kg", date="2027-02-01")
    sync(nodes)
    with pytest.raises(LocalError, match="only the receiver"):
        c.call("confirm", id=delivery["id"].split("-")[0])
    a.call("confirm", id=delivery["id"].split("-")[0], dispute="rotten")
    sync(nodes)
    (cm,) = [x for x in c.call("commitment_list", all=True) if x["state"] == "committed"]
    assert [(d["status"], d["reason"]) for d in cm["deliveries"]] == [("disputed", "rotten")]
