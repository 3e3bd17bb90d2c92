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
from cli_helpers import Node, invoke, running

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"


def walkthrough() -> list[list[str]]:
    text = README.read_text()
    section = text.split("## Walk-through", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "allmende", line
            commands.append(words[1:])
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
