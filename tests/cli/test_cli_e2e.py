"""End to end: two daemons on 127.0.0.1, connected with `allmende peers add`; what one
node posts through the CLI shows up in the other's `allmende balance --json`."""

from __future__ import annotations

import json
import subprocess

import pytest
from cli_helpers import Node, allmende_command, running, wait_for

pytestmark = pytest.mark.slow

TIMEOUT = 30.0


def balance_rows(node: Node, *args: str) -> dict[tuple[str, str], dict]:
    data = node.json("balance", *args)
    return {(r["item"], r["period"]): r for r in data["levels"][0]["rows"]}


def test_need_posted_on_one_node_shows_in_the_others_balance(tmp_path):
    a = Node(tmp_path / "a", "a", "eu/de/berlin/a").init()
    b = Node(tmp_path / "b", "b", "eu/de/berlin/b").init()
    with running(a, b):
        r = b.cli("peers", "add", a.addr)
        assert r.exit_code == 0, r.output
        wait_for(lambda: a.peer_id in b.json("peers")["connected"], TIMEOUT, "b connected to a")

        # Through the real console script too, as a member would type it.
        out = subprocess.run(
            [
                *allmende_command(),
                "--data-dir",
                str(a.data_dir),
                "need",
                "add",
                "potatoes",
                "500",
                "kg",
                "--period",
                "2027-Q1",
                "--priority",
                "high",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        key = out.stdout.split()[2].rstrip(":")
        assert (
            b.cli("capacity", "add", "potatoes", "0.2", "t", "--period", "2027-Q1").exit_code == 0
        )

        def b_sees_it() -> dict | None:
            return balance_rows(b, "eu/de/berlin").get(("potatoes", "2027-Q1"))

        row = wait_for(
            lambda: (x := b_sees_it()) and x["needs"] == "500" and x,
            TIMEOUT,
            "a's need in b's balance",
        )
        assert (row["needs"], row["capacities"], row["balance"], row["nodes"]) == (
            "500",
            "200",
            "-300",
            2,
        )

        human = [
            line.rstrip() for line in b.cli("balance", "eu/de", "--depth", "2").stdout.splitlines()
        ]
        for header in ["eu/de", "  eu/de/berlin", "    eu/de/berlin/a", "    eu/de/berlin/b"]:
            assert header in human
        listed = b.json("need", "list", "--all")
        assert [(n["id"], n["origin_name"]) for n in listed] == [(key, "a")]

        # and back: a sees b's capacity; a withdrawal reaches b
        wait_for(
            lambda: balance_rows(a).get(("potatoes", "2027-Q1"), {}).get("capacities") == "200",
            TIMEOUT,
            "b's capacity in a's balance",
        )
        assert a.cli("need", "withdraw", key).exit_code == 0
        wait_for(
            lambda: balance_rows(b)[("potatoes", "2027-Q1")]["needs"] == "0",
            TIMEOUT,
            "the withdrawal in b's balance",
        )

        assert json.loads(b.cli("status", "--json").stdout)["peers"] >= 1
