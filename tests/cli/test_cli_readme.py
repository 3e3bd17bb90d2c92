"""The README's walk-through works exactly as written, command by command.

Two liberties, both about the machine the test runs on: `allmende run &` is the
fixture's daemon listening on 127.0.0.1 only, and the neighbour in step 3 is a second
node running on 127.0.0.1 (the README's address is a documentation placeholder).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from cli_helpers import Node, invoke, running, wait_for

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"


def walkthrough() -> list[list[str]]:
    return [words for words, _ in section_commands("## Walk-through")]


def section_commands(heading: str) -> list[tuple[list[str], str]]:
    """The commands of the first sh block under `heading` (a trailing backslash joins
    lines), each with its comment."""
    text = README.read_text()
    section = text.split(heading, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "allmende", line
            comment = line.split("  # ", 1)[1] if "  # " in line else ""
            commands.append((words[1:], comment))
    return commands


def test_walkthrough_commands_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files the walk-through writes land here
    commands = walkthrough()
    assert commands[0][0] == "init"
    assert commands[1] == ["run", "&"]
    d = tmp_path / "node"
    r = invoke(d, *commands[0])
    assert r.exit_code == 0, r.output
    node = Node(d, "node", "")
    neighbour = Node(tmp_path / "neighbour", "neighbour", "eu/de/berlin/kiez").init()
    outputs = []
    posted = ""
    with running(node, neighbour):
        for args in commands[2:]:
            if args == ["need", "withdraw", "ID"]:
                args = ["need", "withdraw", posted]
            if args[:2] == ["peers", "add"]:
                assert args[2].startswith("/ip4/192.0.2.10/tcp/7946/p2p/12D3KooW")
                args = ["peers", "add", neighbour.addr]
            r = node.cli(*args)
            assert r.exit_code == 0, f"allmende {shlex.join(args)}: {r.output}"
            outputs.append((args, r.stdout))
            if args[:3] == ["need", "add", "potatoes"]:
                posted = re.match(r"Saved need (\w+):", r.stdout).group(1)
    by_command = {" ".join(a): out for a, out in outputs}
    assert by_command[
        "need add potatoes 500 kg --period 2027-Q1 --priority high --note canteen"
    ].startswith(f"Saved need {posted}:")
    assert by_command[f"need withdraw {posted}"] == f"Withdrew need {posted}.\n"
    region = by_command["balance"]
    assert region.startswith("Balance of eu/de/berlin\n")
    assert "childcare" in region
    drill = [line.rstrip() for line in by_command["balance eu/de --depth 2"].splitlines()]
    for header in ["eu/de", "  eu/de/berlin", "    eu/de/berlin/neukoelln"]:
        assert header in drill
    data = json.loads(by_command["balance --period 2027-Q1 --item potatoes --json"])
    assert data["scope"] == "eu/de/berlin"
    assert data["levels"][0]["rows"] == []  # the potatoes need was withdrawn
    assert "Kommune Neukölln (commune)" in by_command["status"]
    assert (tmp_path / "balance.csv").read_text().startswith("scope,item,period,unit,needs,")


TIMEOUT = 30.0


def test_balance_to_plan_commands_as_written(tmp_path):
    """The "From balance to plan" block on two daemons: each line on the node its
    comment names (the canteen where it says "any"), the ids it says where to read
    taken from that output."""
    commands = section_commands("## From balance to plan")
    canteen = Node(tmp_path / "canteen", "Mensa Nord", "eu/de/berlin/mensa-nord").init()
    farm = Node(tmp_path / "farm", "Hof Kranich", "eu/de/berlin/hof-kranich").init()
    nodes = {"canteen": canteen, "farm": farm, "any": canteen}
    out: list[tuple[str, str]] = []
    ids: dict[str, str] = {}

    def same() -> bool:
        return canteen.call("digest")["digest"] == farm.call("digest")["digest"]

    with running(canteen, farm):
        assert farm.cli("peers", "add", canteen.addr).exit_code == 0
        wait_for(lambda: canteen.peer_id in farm.json("peers")["connected"], TIMEOUT, "peers")
        for args, comment in commands:
            where = comment.split(":")[0].split()[0]
            node = nodes[where]
            args = [ids.get(a, a) for a in args]
            wait_for(same, TIMEOUT, "both nodes hold the same records")
            r = node.cli(*args)
            assert r.exit_code == 0, f"allmende {shlex.join(args)} on {where}: {r.output}"
            out.append((" ".join(args[:2]), r.stdout))
            if args[:2] == ["commitment", "list"]:
                # the ids as the README says to read them: first column of their rows
                rows = [line.split() for line in r.stdout.splitlines()]
                offer = next(w for w in rows if len(w) > 1 and w[1] in ("offered", "committed"))
                ids["OFFER_ID"] = offer[0]
                delivery = [w for w in rows if len(w) > 2 and w[1] == offer[0]]
                if delivery:
                    ids["DELIVERY_ID"] = delivery[0][0]
    assert set(ids) == {"OFFER_ID", "DELIVERY_ID"}
    said = dict(out)
    assert "Hof Kranich" in said["capacity list"]
    assert "Hof Kranich" in said["match --item"]
    assert "Their track records" in said["match --item"]
    potatoes = next(x for x in said["balance --item"].splitlines() if x.startswith("potatoes"))
    assert potatoes.split()[2:4] == ["80", "50"]  # posted: needs, capacities
    assert potatoes.split()[8:10] == ["50", "62%"]  # committed, committed coverage
    record = next(x for x in said["track-record Hof Kranich"].splitlines() if "Hof Kranich" in x)
    assert record.split()[2:5] == ["1", "1", "1"]  # committed, delivered, confirmed
