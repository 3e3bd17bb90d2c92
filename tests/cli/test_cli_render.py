"""Rendering is pure: fixed data in, text out through a colourless 100-column console."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from rich.console import Console, RenderableType

from cli import render


def text(renderable: RenderableType, width: int = 100) -> str:
    console = Console(file=StringIO(), width=width, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert all(len(line) <= width for line in out.splitlines())
    return out


def lines(out: str) -> list[str]:
    return [line.rstrip() for line in out.splitlines()]


def row(
    scope: str,
    item: str,
    needs: str,
    capacities: str,
    balance: str,
    coverage: str | None,
    *,
    unit: str = "kg",
    period: str = "2027-Q1",
    nodes: int = 1,
) -> dict[str, Any]:
    return {
        "scope": scope,
        "item": item,
        "period": period,
        "dimension": "mass",
        "unit": unit,
        "needs": needs,
        "capacities": capacities,
        "balance": balance,
        "coverage": coverage,
        "nodes": nodes,
    }


LONG = "eu/de/berlin/friedrichshain-kreuzberg-nord"

BALANCE = {
    "scope": "eu/de",
    "levels": [
        {
            "scope": "eu/de",
            "level": 0,
            "rows": [
                row("eu/de", "childcare", "0", "120", "120", None, unit="h"),
                row("eu/de", "potatoes", "500", "200", "-300", "0.4", nodes=3),
                row("eu/de", "wheat", "10", "10", "0", "1"),
            ],
        },
        {
            "scope": "eu/de/berlin",
            "level": 1,
            "rows": [
                row("eu/de/berlin", "potatoes", "500", "0", "-500", "0", nodes=2),
            ],
        },
        {
            "scope": LONG,
            "level": 2,
            "rows": [
                row(LONG, "potatoes", "500", "0", "-500", "0"),
            ],
        },
        {"scope": "eu/de/brandenburg", "level": 1, "rows": []},
    ],
}


def test_balance_sections_are_indented_by_depth_and_never_truncate_scopes():
    out = lines(text(render.balance(BALANCE)))
    assert out[0] == "Balance of eu/de"
    assert "eu/de" in out
    assert "  eu/de/berlin" in out
    assert "    " + LONG in out  # in full, indented two levels
    assert "  eu/de/brandenburg" in out
    assert "…" not in "\n".join(out)


def test_balance_deficit_is_marked_in_words():
    out = lines(text(render.balance(BALANCE)))
    potatoes = [line for line in out if "potatoes" in line]
    assert len(potatoes) == 3
    assert all(line.endswith(render.DEFICIT) for line in potatoes)
    assert not any(render.DEFICIT in line for line in out if "childcare" in line or "wheat" in line)
    assert out[-1] == "DEFICIT: 1 item-period short in eu/de. 2 scopes below have a deficit."


def test_balance_row_layout():
    out = lines(text(render.balance(BALANCE)))
    header = next(line for line in out if line.startswith("item"))
    assert header.split() == [
        "item",
        "period",
        "needs",
        "capacities",
        "balance",
        "unit",
        "covered",
        "nodes",
    ]
    childcare = next(line for line in out if line.startswith("childcare"))
    assert childcare.split() == ["childcare", "2027-Q1", "0", "120", "+120", "h", "-", "1"]
    wheat = next(line for line in out if line.startswith("wheat"))
    assert wheat.split() == ["wheat", "2027-Q1", "10", "10", "0", "kg", "100%", "1"]
    potatoes = next(line for line in out if line.startswith("potatoes"))
    assert potatoes.split() == [
        "potatoes",
        "2027-Q1",
        "500",
        "200",
        "-300",
        "kg",
        "40%",
        "3",
        "DEFICIT",
    ]


def test_balance_quantities_are_right_aligned_and_line_up_across_sections():
    out = lines(text(render.balance(BALANCE)))
    potatoes = [line for line in out if "potatoes" in line]
    # right-aligned: every row's balance ends in the same column, whatever its indent
    ends = {line.index(" kg") for line in potatoes}
    assert len(ends) == 1
    headers = [line for line in out if line.strip().startswith("item")]
    assert len({h.index("balance") for h in headers}) == 1


def test_balance_empty_level_says_so():
    out = text(render.balance(BALANCE))
    assert "nothing here for these filters" in out


def test_balance_without_deficit():
    result = {
        "scope": "eu",
        "levels": [
            {"scope": "eu", "level": 0, "rows": [row("eu", "wheat", "10", "20", "10", "2")]}
        ],
    }
    out = lines(text(render.balance(result, period="2027-Q1", item="wheat")))
    assert out[0] == "Balance of eu (period 2027-Q1, item wheat)"
    assert out[-1] == "No deficits in eu."
    assert render.DEFICIT not in "\n".join(out[:-1])
    assert next(line for line in out if line.startswith("wheat")).split()[4] == "+10"


@pytest.mark.parametrize(
    ("period", "item", "expected"),
    [
        (None, None, "No needs or capacities under eu/de yet."),
        ("2027", None, "No needs or capacities for period 2027 under eu/de yet."),
        ("2027", "eggs", "No needs or capacities for period 2027, item eggs under eu/de yet."),
    ],
)
def test_balance_empty(period, item, expected):
    result = {"scope": "eu/de", "levels": [{"scope": "eu/de", "level": 0, "rows": []}]}
    assert text(render.balance(result, period=period, item=item)).strip() == expected


@pytest.mark.parametrize("width", [80, 100, 120])
def test_balance_fits_common_widths(width):
    out = text(render.balance(BALANCE), width=width)
    assert LONG in out
    assert "…" not in out


def test_balance_narrow_console_wraps_long_item_ids_instead_of_cutting_numbers():
    long_item = "a-very-long-item-identifier-for-something"
    result = {
        "scope": "eu",
        "levels": [
            {
                "scope": "eu",
                "level": 0,
                "rows": [row("eu", long_item, "1500000.5", "12.25", "-1499988.25", "0")],
            }
        ],
    }
    out = text(render.balance(result), width=80)
    assert "1500000.5" in out
    assert "-1499988.25" in out
    assert render.DEFICIT in out
    assert long_item not in out  # folded over lines, in the item column
    item_lines = out.splitlines()[4:8]
    assert "".join(line.split()[0] for line in item_lines) == long_item


NODE_A = "aa" * 32
NODE_B = "bb" * 32


def record(
    id_: str,
    *,
    withdrawn: bool = False,
    origin: str = NODE_A,
    name: str | None = "Kommune Neukölln",
    scope: str = "eu/de/berlin/neukoelln",
    **body: Any,
) -> dict[str, Any]:
    r = {
        "id": id_,
        "kind": "need" if id_.startswith("n") else "capacity",
        "origin": origin,
        "origin_name": name,
        "scope": scope,
        "seq": 1,
        "hlc": 1,
        "withdrawn": withdrawn,
    }
    if not withdrawn:
        r.update({"item": "potatoes", "qty": "500", "unit": "kg", "period": "2027-Q1"}, **body)
    return r


def test_records_of_this_node_with_withdrawn():
    rows = [
        record("n2", priority="high", note="canteen"),
        record("n3", priority="critical", qty="1.5", unit="t"),
        record("n4", withdrawn=True),
    ]
    out = lines(text(render.records(rows, "need")))
    assert out[0] == "Needs of Kommune Neukölln (eu/de/berlin/neukoelln)"
    assert out[1].split() == ["id", "item", "quantity", "unit", "period", "priority", "note"]
    assert out[3].split() == ["n2", "potatoes", "500", "kg", "2027-Q1", "high", "canteen"]
    assert out[4].split() == ["n3", "potatoes", "1.5", "t", "2027-Q1", "critical"]
    assert out[5].split() == ["n4", "withdrawn"]
    # quantities right-aligned
    assert out[3].index("500") + 3 == out[4].index("1.5") + 3


@pytest.mark.parametrize("width", [80, 100])
def test_records_of_several_nodes_are_grouped_under_full_scopes(width):
    rows = [
        record("c2"),
        record("c3", withdrawn=True),
        record("c7", origin=NODE_B, name=None, scope=LONG, qty="1500.25"),
    ]
    out = lines(text(render.records(rows, "capacity"), width=width))
    assert out[0] == "Capacities of 2 nodes"
    assert "priority" not in "\n".join(out)
    assert "Kommune Neukölln  eu/de/berlin/neukoelln" in out
    assert f"{NODE_B[:12]}  {LONG}" in out  # nameless origin: short id; scope in full
    c2 = next(line for line in out if line.startswith("c2"))
    c7 = next(line for line in out if line.startswith("c7"))
    assert c2.index("500") + 3 == c7.index("1500.25") + 7  # aligned across groups
    assert next(line for line in out if line.startswith("c3")).split() == ["c3", "withdrawn"]


def test_records_with_other_regions_totals_of_an_item():
    hamburg = {
        "source": "rollup",
        "kind": "capacity",
        "region": "eu/de/hamburg",
        "scope": "eu/de/hamburg",
        "item": "potatoes",
        "period": "2027-Q1",
        "qty": "750",
        "unit": "kg",
        "nodes": 3,
        "attested_by": 3,
    }
    rows = [record("c2") | {"source": "record"}, hamburg]
    out = lines(text(render.records(rows, "capacity")))
    assert out[0] == "Capacities of Kommune Neukölln (eu/de/berlin/neukoelln)"
    title = out.index("Capacities of other regions (attested rollups)")
    assert out[title + 1].split() == ["region", "period", "qty", "unit", "nodes", "attested", "by"]
    assert out[title + 3].split() == ["eu/de/hamburg", "2027-Q1", "750", "kg", "3", "3"]
    alone = lines(text(render.records([hamburg], "capacity")))
    assert alone[0] == "No capacities held here."


def test_records_empty():
    assert text(render.records([], "need")).strip() == "No needs."
    assert text(render.records([], "capacity")).strip() == "No capacities."


STATUS = {
    "node_id": NODE_A,
    "peer_id": "12D3KooW" + "x" * 44,
    "name": "Kommune Neukölln",
    "kind": "commune",
    "scope": "eu/de/berlin/neukoelln",
    "partitions": ["eu", "eu/de", "eu/de/berlin"],
    "listen": ["/ip4/127.0.0.1/tcp/7946/p2p/12D3KooW" + "x" * 44],
    "peers": 2,
    "records": 10,
    "own_records": 4,
    "origins": 3,
    "flagged_origins": [NODE_B],
    "digest": "0123456789abcdef" * 4,
    "sync": {"ok": 5, "failed": 1},
    "gossip": {
        "messages_in": 7,
        "bytes_in": 700,
        "messages_out": 3,
        "bytes_out": 300,
        "records_accepted": 6,
    },
    "rejected": {"bad-signature": 2},
    "uptime_s": 3725.5,
}


def test_status():
    out = text(render.status(STATUS))
    got = {line[:14].strip(): line[14:].strip() for line in lines(out)[1:] if line[:14].strip()}
    assert lines(out)[0] == "Kommune Neukölln (commune)"
    assert got["scope"] == "eu/de/berlin/neukoelln"
    assert got["follows"] == "eu, eu/de, eu/de/berlin"
    assert got["node id"] == NODE_A
    assert got["peers"] == "2 connected"
    assert got["records"] == "10 from 3 origins (4 of them this node's; 0 written since start)"
    assert got["sync rounds"] == "5 ok, 1 failed"
    assert got["gossip"] == "7 messages in, 3 out, 6 records accepted"
    assert got["rejected"] == "bad-signature 2"
    assert got["flagged"] == NODE_B[:12]
    assert got["state digest"] == "0123456789abcdef"
    assert got["uptime"] == "1h 2m 5s"


def test_status_at_80_columns_cuts_nothing():
    out = text(render.status(STATUS), width=80)
    assert STATUS["node_id"] in out.replace("\n" + " " * 14, "")
    assert "…" not in out


def test_addresses_one_per_line_whole():
    addrs = [STATUS["listen"][0], "/ip6/::1/tcp/7946/p2p/12D3KooW" + "x" * 44]
    assert render.addresses(addrs)[1:] == addrs
    assert render.addresses([]) == ["Listening: nowhere a peer could dial"]


def test_items():
    rows = [
        {"id": "oat-milk", "name": "Oat milk", "dimension": "volume", "unit": "l"},
        {"id": "potatoes", "name": "Potatoes", "dimension": "mass", "unit": "kg"},
    ]
    out = lines(text(render.items(rows)))
    assert out[0] == "Catalog (2 items)"
    assert out[1].split() == ["id", "name", "dimension", "unit"]
    assert out[3].split() == ["oat-milk", "Oat", "milk", "volume", "l"]
    assert text(render.items([])).strip() == "The catalog is empty."


def test_peers():
    p = {
        "connected": ["12D3KooWpeer1", "12D3KooWpeer2"],
        "listen": ["/ip4/127.0.0.1/tcp/1"],
        "bootstrap": ["/ip4/127.0.0.1/tcp/2/p2p/12D3KooWpeer1"],
    }
    out = lines(text(render.peers(p)))
    assert out[0] == "Connected peers (2)"
    assert any(line.startswith("12D3KooWpeer2") for line in out)
    assert out[-1] == "Bootstrap  /ip4/127.0.0.1/tcp/2/p2p/12D3KooWpeer1"
    named = {**p, "nodes": [{"peer_id": "12D3KooWpeer1", "name": "Kiez", "kind": "commune",
                             "scope": "eu/de/berlin/kiez"}]}  # fmt: skip
    row = next(line for line in lines(text(render.peers(named))) if "peer1" in line)
    assert row.split() == ["12D3KooWpeer1", "Kiez", "commune", "eu/de/berlin/kiez"]


def test_nodes():
    rows = [
        {"node_id": NODE_A, "name": "Kiez", "kind": "commune", "scope": "eu/de/berlin/kiez",
         "last_seen_ms": 1_800_000_000_000, "records": 12, "admitted": True, "this_node": True},
    ]  # fmt: skip
    out = lines(text(render.nodes(rows, "eu/de/berlin")))
    assert out[0] == "Nodes under eu/de/berlin (1)"
    assert out[-1].split() == [
        "Kiez", "(this", "node)", "commune", "eu/de/berlin/kiez", "2027-01-15", "08:00", "12",
        "yes", NODE_A[:12],
    ]  # fmt: skip
    assert "No node under eu/x" in text(render.nodes([], "eu/x"))


def test_peers_none():
    out = text(render.peers({"connected": [], "listen": [], "bootstrap": []}))
    assert "No peers connected. Connect one with: allmende peers add ADDR" in out
    assert "Bootstrap  none" in out


def test_written():
    assert (
        text(render.written(record("n2"))).strip()
        == "Saved need n2: 500 kg of potatoes for 2027-Q1."
    )
    assert text(render.written(record("c3", withdrawn=True))).strip() == "Withdrew capacity c3."
    item = {
        "id": "oat-milk",
        "kind": "item",
        "withdrawn": False,
        "name": "Oat milk",
        "dimension": "volume",
        "unit": "l",
    }
    assert text(render.written(item)).strip() == "Added item oat-milk (Oat milk, volume in l)."


def test_render_is_pure():
    # Same data, same text: no clock, terminal or global state involved.
    assert text(render.balance(BALANCE)) == text(render.balance(BALANCE))
    assert text(render.status(STATUS)) == text(render.status(STATUS))


def test_a_page_of_scopes_ends_in_how_many_more():
    paged = {
        "scope": "eu",
        "levels": [
            {"scope": "eu", "level": 0, "rows": [], "more": 7},
            {"scope": "eu/a", "level": 1, "rows": [], "more": 1},
            {"scope": "eu/b", "level": 1, "rows": []},
            {"scope": "eu/a/x", "level": 2, "rows": [row("eu/a/x", "wheat", "1", "2", "1", "2")]},
        ],
    }
    out = lines(text(render.balance(paged)))
    assert "  ... 7 more scopes below eu (--offset, --limit)" in out
    assert "    ... 1 more scope below eu/a (--offset, --limit)" in out
    # each after the last scope listed below it
    assert out.index("  eu/b") < out.index("  ... 7 more scopes below eu (--offset, --limit)")
    assert out.index("    eu/a/x") < out.index(
        "    ... 1 more scope below eu/a (--offset, --limit)"
    )


def test_balance_shows_committed_next_to_posted_only_once_there_is_some():
    none_yet = {
        "scope": "eu/de/berlin",
        "levels": [
            {
                "scope": "eu/de/berlin",
                "level": 0,
                "rows": [
                    row("eu/de/berlin", "potatoes", "100", "60", "-40", "0.6")
                    | {"committed_in": "0", "committed_out": "0", "committed_coverage": "0"}
                ],
            }
        ],
    }
    header = next(line for line in lines(text(render.balance(none_yet))) if "item" in line)
    assert "committed" not in header
    some = {
        "scope": "eu/de",
        "levels": [
            {
                "scope": "eu/de",
                "level": 0,
                "rows": [
                    row("eu/de", "potatoes", "100", "60", "-40", "0.6")
                    | {"committed_in": None, "committed_out": None, "committed_coverage": None}
                ],
            },
            {
                "scope": "eu/de/berlin",
                "level": 1,
                "rows": [
                    row("eu/de/berlin", "potatoes", "100", "60", "-40", "0.6")
                    | {"committed_in": "40", "committed_out": "25", "committed_coverage": "0.4"}
                ],
            },
        ],
    }
    out = lines(text(render.balance(some)))
    header = next(line for line in out if line.startswith("item"))
    assert header.split()[-2:] == ["committed", "c.covered"]
    potatoes = [line.split() for line in out if line.lstrip().startswith("potatoes")]
    # posted coverage 60 %, committed coverage 40 %; unknown above the region: "-"
    assert potatoes[0][6:10] == ["60%", "1", "-", "-"]
    assert potatoes[1][6:10] == ["60%", "1", "40", "40%"]


def test_balance_shows_each_cap_share_and_marks_one_overdrawn():
    caps = [
        {
            "resource": "co2",
            "child": "eu/de/berlin/a",
            "use": "12",
            "share": "40",
            "unit": "t",
            "within_share": True,
        },
        {
            "resource": "co2",
            "child": "eu/de/berlin/b",
            "use": "90",
            "share": "40",
            "unit": "t",
            "within_share": False,
        },
    ]
    out = lines(text(render.balance({**BALANCE, "caps": caps})))
    assert "Cap co2 in eu/de/berlin/a: uses 12 of 40 t" in out
    assert "Cap co2 in eu/de/berlin/b: uses 90 of 40 t OVER SHARE" in out
    assert not any("Cap " in ln for ln in lines(text(render.balance(BALANCE))))
