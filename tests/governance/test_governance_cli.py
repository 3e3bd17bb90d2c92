"""The governance CLI, driven in-process: Ctx.call dispatches to the ops of a node
without sockets."""

from __future__ import annotations

import json
import stat

import click
import pytest
from click.testing import CliRunner
from gov_helpers import FakeDaemon
from test_governance_official import DATA, OFFICIAL

from cli import governance_cmd
from cli.main import Ctx, cli
from node.errors import LocalError


@pytest.fixture
def node(tmp_path, monkeypatch):
    d = FakeDaemon(tmp_path / "node")

    def call(self, op, **args):
        args = {k: v for k, v in args.items() if v is not None}
        if op == "submit":
            from node.crdt.record import decode_record

            result = d.state.ingest([bytes.fromhex(args["record"])])
            if result.rejected:
                raise LocalError(f"record rejected: {result.rejected[0]}")
            return {"ok": True, "record": decode_record(bytes.fromhex(args["record"])).key}
        return d.call(op, **args)

    monkeypatch.setattr(Ctx, "call", call)
    monkeypatch.setattr(governance_cmd, "_now_ms", lambda: d.clock.t)
    yield d
    d.close()


def run(*args, ok=True):
    result = CliRunner().invoke(cli, ["--data-dir", "/nonexistent", *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_member_vote_results(node, tmp_path):
    key = tmp_path / "alice.key"
    pub = run("member", "keygen", "--out", str(key)).output.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    run("member", "add", pub, "--pseudonym", "alice", "--feature", "age=30-44")
    rows = json.loads(run("member", "list", "--json").output)
    assert rows[0]["features"] == {"age": "30-44"}
    out = run(
        "proposal",
        "create",
        "bench",
        "--title",
        "Benches",
        "--method",
        "score",
        "--option",
        "a=Oak",
        "--option",
        "b=Steel",
        "--closes",
        "2h",
    ).output
    pid = out.split()[-1]
    run("vote", pid, "a=5", "b=2", "--key", str(key))
    res = json.loads(run("results", pid, "--json").output)
    assert res["winners"] == ["a"]
    assert res["status"] == "provisional"
    assert "Oak" in run("proposal", "show", pid).output
    node.clock.t += 3 * 3_600_000
    assert run("vote", pid, "a=1", "--key", str(key), ok=False).exit_code == 1
    run("proposal", "close", pid)
    text = run("results", pid).output
    assert "final" in text
    assert "Oak" in text


def test_budget_import_and_errors(node, tmp_path):
    name, order, spent = OFFICIAL[0]
    out = json.loads(run("budget", "import", str(DATA / name), "--json").output)
    res = json.loads(run("results", out["proposal"], "--json").output)
    assert tuple(res["winners"]) == order
    assert res["detail"]["spent"] == spent
    assert "#1" in run("results", out["proposal"]).output
    bad = tmp_path / "bad.pb"
    bad.write_text("META\nkey;value\nbudget;x\nPROJECTS\nproject_id;cost\nVOTES\nvoter_id;vote\n")
    result = run("budget", "import", str(bad), ok=False)
    assert result.exit_code == 1
    assert "line 3" in result.output


def test_ranked_ballot_syntax():
    assert governance_cmd.ballot_from("ranked", ("b", "a=c")) == [["b"], ["a", "c"]]
    assert governance_cmd.ballot_from("approval", ("a", "b")) == ["a", "b"]
    with pytest.raises(LocalError):
        governance_cmd.ballot_from("score", ("a=x",))


def test_parse_when():
    assert governance_cmd.parse_when("2h", 1000) == 1000 + 7_200_000
    assert governance_cmd.parse_when("now", 5) == 5
    assert governance_cmd.parse_when("1700000000000", 0) == 1_700_000_000_000
    with pytest.raises(LocalError, match="cannot read"):
        governance_cmd.parse_when("soonish", 0)


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize(
    "path",
    [
        p
        for p, _ in _commands(cli)
        if p[0] in ("member", "proposal", "vote", "results", "budget", "assembly")
    ],
    ids=" ".join,
)
def test_every_command_has_help(path):
    cmd = cli
    for part in path:
        cmd = cmd.commands[part]
    assert cmd.help
    assert run(*path, "--help").output
