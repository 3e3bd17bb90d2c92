"""Commands against one real daemon (a subprocess on 127.0.0.1, shared by this module).

Every refused write must leave the node exactly as it was: the replica digest,
record count, every need and capacity (withdrawn too), the catalog and the config.
"""

from __future__ import annotations

import json

import pytest
from cli_helpers import BOOTSTRAP_EXAMPLE

pytestmark = pytest.mark.slow


def test_post_list_withdraw(node):
    r = node.cli(
        "need",
        "add",
        "potatoes",
        "500",
        "kg",
        "--period",
        "2027-Q1",
        "--priority",
        "high",
        "--note",
        "canteen",
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("Saved need n")
    key = r.stdout.split()[2].rstrip(":")
    mine = node.json("need", "list")
    assert [
        (n["id"], n["item"], n["qty"], n["unit"], n["priority"], n["note"])
        for n in mine
        if n["id"] == key
    ] == [(key, "potatoes", "500", "kg", "high", "canteen")]
    listed = node.cli("need", "list")
    assert f"\n{key} " in listed.stdout
    assert "canteen" in listed.stdout

    r = node.cli("need", "withdraw", key)
    assert (r.exit_code, r.stdout) == (0, f"Withdrew need {key}.\n")
    assert key not in [n["id"] for n in node.json("need", "list")]
    withdrawn = [n for n in node.json("need", "list", "--withdrawn") if n["id"] == key]
    assert withdrawn[0]["withdrawn"] is True
    assert "withdrawn" in node.cli("need", "list", "--withdrawn").stdout

    r = node.cli("need", "withdraw", key)
    assert r.exit_code == 1
    assert r.stderr == f"Error: need {key} is withdrawn already\n"


def test_capacity_and_balance_with_deficit(node):
    assert node.cli("capacity", "add", "bread", "20", "kg", "--period", "2027-03").exit_code == 0
    assert node.cli("need", "add", "bread", "50", "kg", "--period", "2027-03").exit_code == 0
    assert (
        node.cli("capacity", "add", "childcare", "1", "day", "--period", "2027-03").exit_code == 0
    )
    data = node.json("balance", "--period", "2027-03")
    assert data["scope"] == "eu/de/berlin"
    rows = {r["item"]: r for r in data["levels"][0]["rows"]}
    assert (rows["bread"]["needs"], rows["bread"]["capacities"], rows["bread"]["balance"]) == (
        "50",
        "20",
        "-30",
    )
    assert rows["childcare"]["balance"] == "8"  # a working day, in hours

    out = node.cli("balance", "eu", "--depth", "3", "--period", "2027-03").stdout
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[0] == "Balance of eu (period 2027-03)"
    for header in ["eu", "  eu/de", "    eu/de/berlin", "      eu/de/berlin/a"]:
        assert header in lines
    bread = [line for line in lines if line.strip().startswith("bread")]
    assert len(bread) == 4
    assert all(line.rstrip().endswith("DEFICIT") for line in bread)
    assert lines[-1].startswith("DEFICIT: 1 item-period short in eu.")


def test_a_past_period_is_posted_with_a_warning(node):
    r = node.cli("capacity", "add", "bread", "1", "kg", "--period", "2020-Q1")
    assert r.exit_code == 0, r.output
    assert "Warning: period 2020-Q1 lies in the past" in r.stderr
    r = node.cli("capacity", "add", "bread", "1", "kg", "--period", "2999-Q1")
    assert r.exit_code == 0
    assert "Warning" not in r.stderr


def test_item_add_and_use(node):
    r = node.cli("item", "add", "oat-milk", "--name", "Oat milk", "--dimension", "volume")
    assert (r.exit_code, r.stdout) == (0, "Added item oat-milk (Oat milk, volume in l).\n")
    assert {"id": "oat-milk", "name": "Oat milk", "dimension": "volume", "unit": "l"} in node.json(
        "item", "list"
    )
    assert "oat-milk" in node.cli("item", "list").stdout
    r = node.cli("capacity", "add", "oat-milk", "300", "ml", "--period", "2027")
    assert r.exit_code == 0, r.output


BAD_WRITES = [
    (
        ["need", "add", "potatoes", "5", "furlongs", "--period", "2027"],
        "unknown unit 'furlongs'; known units: g, kg",
    ),
    (
        ["need", "add", "potatoes", "5", "h", "--period", "2027"],
        "unit h measures labour, but potatoes is measured in mass (kg)",
    ),
    (
        ["capacity", "add", "childcare", "5", "kg", "--period", "2027"],
        "unit kg measures mass, but childcare is measured in labour (h)",
    ),
    (
        ["need", "add", "potatoes", "5", "kg", "--period", "2027-Q5"],
        "period '2027-Q5' is malformed; use 2027, 2027-Q1, 2027-03 or 2027-W05",
    ),
    (
        ["need", "add", "potatoes", "5", "kg", "--period", "next year"],
        "period 'next year' is malformed",
    ),
    (
        ["need", "add", "potatoes", "abc", "kg", "--period", "2027"],
        "quantity 'abc' is not a number; write it like 12.5",
    ),
    (
        ["need", "add", "potatoes", "5,5", "kg", "--period", "2027"],
        "quantity '5,5' is not a number",
    ),
    (
        ["need", "add", "potatoes", "0", "kg", "--period", "2027"],
        "quantity '0' must be greater than zero",
    ),
    (
        ["need", "add", "potatoes", "0.0000001", "kg", "--period", "2027"],
        "quantity '0.0000001' has more than 6 decimal places",
    ),
    (
        ["need", "add", "potatoes", "1e16", "kg", "--period", "2027"],
        "quantity '1e16' is larger than",
    ),
    (
        ["need", "add", "unobtainium", "5", "kg", "--period", "2027"],
        "unknown item 'unobtainium'; see `allmende item list`",
    ),
    (["capacity", "add", "Potatoes", "5", "kg", "--period", "2027"], "unknown item 'Potatoes'"),
    (
        ["need", "add", "potatoes", "5", "kg", "--period", "2027", "--note", "x" * 501],
        "note is 501 characters long; the limit is 500",
    ),
    (["need", "withdraw", "n999"], "this node has no need with id 'n999'"),
    (["capacity", "withdraw", "n1"], "this node has no capacity with id 'n1'"),
    (
        ["item", "add", "potatoes", "--name", "Potatoes", "--dimension", "mass"],
        "potatoes is in the catalog already",
    ),
    (
        ["item", "add", "Oat_Milk", "--name", "Oat milk", "--dimension", "volume"],
        "item id 'Oat_Milk' must be 1-64 lowercase letters",
    ),
    (["peers", "add", "/ip4/127.0.0.1/tcp/1"], "must be a multiaddr ending in /p2p/"),
    (["peers", "add", "garbage"], "peer address 'garbage'"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_WRITES, ids=[" ".join(a)[:60] for a, _ in BAD_WRITES]
)
def test_refused_write_changes_nothing(node, args, message):
    before = node.snapshot()
    r = node.cli(*args)
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("Error: ")
    assert message in r.stderr
    assert r.stdout == ""
    assert node.snapshot() == before


def test_peers_add_self_is_refused(node):
    before = node.snapshot()
    r = node.cli("peers", "add", node.addr)
    assert r.exit_code == 1
    assert r.stderr == "Error: that address is this node itself\n"
    assert node.snapshot() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["balance", "eu//de"], "scope 'eu//de'"),
        (["balance", "EU"], "scope 'EU'"),
        (["balance", "--period", "2027-13"], "period '2027-13' is malformed"),
    ],
)
def test_bad_read_is_a_user_error(node, args, message):
    r = node.cli(*args)
    assert r.exit_code == 1, r.output
    assert message in r.stderr


READS = [
    ["status"],
    ["peers"],
    ["item", "list"],
    ["need", "list"],
    ["need", "list", "--all", "--withdrawn"],
    ["capacity", "list"],
    ["capacity", "list", "--all", "--scope", "eu/de"],
    ["balance"],
    ["balance", "eu", "--depth", "3"],
    ["balance", "--period", "2027", "--item", "eggs"],
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_every_read_command_prints_json(node, args):
    r = node.cli(*args, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert isinstance(data, dict | list)
    human = node.cli(*args)
    assert human.exit_code == 0, human.output
    assert human.stdout.strip()
    with pytest.raises(json.JSONDecodeError):
        json.loads(human.stdout)


def test_status_shows_this_node(node):
    s = node.json("status")
    assert (s["name"], s["scope"], s["peer_id"]) == ("a", "eu/de/berlin/a", node.peer_id)
    out = node.cli("status").stdout
    assert out.splitlines()[0].rstrip() == "a (commune)"
    assert s["node_id"] in out
    assert "eu, eu/de, eu/de/berlin" in out


def test_peers_without_peers(node):
    p = node.json("peers")
    assert p["connected"] == []
    assert any(a.startswith("/ip4/127.0.0.1/tcp/") for a in p["listen"])
    assert "No peers connected" in node.cli("peers").stdout


def test_peers_add_keep_remembers_the_address(node):
    r = node.cli("peers", "add", BOOTSTRAP_EXAMPLE, "--keep")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"Could not connect to {BOOTSTRAP_EXAMPLE.rsplit('/', 1)[1]} now")
    assert BOOTSTRAP_EXAMPLE in node.json("peers")["bootstrap"]
    # dialling a port nobody listens on fails quietly; the daemon keeps answering
    assert node.json("status")["name"] == "a"
