"""The governance CLI, driven in-process: Ctx.call dispatches to the ops of a node
without sockets."""

from __future__ import annotations

import io
import json
import re
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from gov_helpers import FakeDaemon
from rich.console import Console
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

    def call_with_payload(ctx, op, payload, on_progress, **args):
        return d.call(op, payload=payload, on_progress=on_progress, **args)

    monkeypatch.setattr(Ctx, "call", call)
    monkeypatch.setattr(governance_cmd, "call_with_payload", call_with_payload)
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
    assert "free projects: supported-first" in run("results", out["proposal"]).output
    bad = tmp_path / "bad.pb"
    bad.write_text("META\nkey;value\nbudget;x\nPROJECTS\nproject_id;cost\nVOTES\nvoter_id;vote\n")
    result = run("budget", "import", str(bad), ok=False)
    assert result.exit_code == 1
    assert "line 3" in result.output
    again = run("budget", "import", str(DATA / name), ok=False)
    assert again.exit_code == 1
    assert "imported already" in again.output


def test_budget_import_json_prints_only_json(node):
    result = run("budget", "import", str(DATA / OFFICIAL[1][0]), "--json")
    out = json.loads(result.stdout)  # no progress text around it
    assert out["voters"] == out["frozen_votes"] == 332
    assert node.progress  # the daemon did report progress; nothing was drawn


def test_oversize_file_is_refused_before_reading(node, tmp_path, monkeypatch):
    big = tmp_path / "big.pb"
    big.write_bytes(b"x" * 2048)
    monkeypatch.setattr(governance_cmd, "MAX_FILE_BYTES", 1024)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read the file"))
    result = run("budget", "import", str(big), ok=False)
    assert result.exit_code == 1
    assert "2,048 bytes" in result.output
    assert "up to 1,024" in result.output
    assert not node.progress


def test_import_progress_bar_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with governance_cmd.import_progress(console, True) as update:
        update(0, 10, "checking")
        update(5, 10, "signing")
        update(10, 10, "signing")
        update(0, 3, "saving")
    text = out.getvalue()
    assert "Signing ballots" in text
    assert "10/10" in text
    silent = io.StringIO()
    with governance_cmd.import_progress(Console(file=silent), False) as update:
        update(5, 10, "signing")
    assert silent.getvalue() == ""


@pytest.fixture
def proposals(node, tmp_path):
    """A member key and three open proposals (approval, score 0..5, ranked)."""
    key = tmp_path / "m.key"
    pub = run("member", "keygen", "--out", str(key)).output.strip()
    run("member", "add", pub, "--pseudonym", "m")
    pids = {}
    for method, extra in (("approval", ()), ("score", ("--max-score", "5")), ("ranked", ())):
        out = run(
            "proposal",
            "create",
            method,
            "--title",
            method,
            "--method",
            method,
            "--option",
            "a",
            "--option",
            "b",
            *extra,
        ).output
        pids[method] = out.split()[-1]
    return key, pids


@pytest.mark.parametrize(
    ("method", "good", "bad", "message"),
    [
        ("approval", ["a"], ["zz"], "unknown option 'zz': the choices are a, b"),
        ("approval", ["a"], [], "the ballot is empty"),
        ("approval", ["a"], ["a", "a"], "'a' is named twice"),
        ("score", ["a=5"], ["a=6"], r"score 6 for 'a' is outside 0..5"),
        ("score", ["a=5"], ["a=-1"], r"score -1 for 'a' is outside 0..5"),
        ("score", ["a=5"], ["c=1"], "unknown option 'c'"),
        ("ranked", ["b", "a"], ["b", "b"], "'b' is named twice"),
        ("ranked", ["b", "a"], ["x=a"], "unknown option 'x'"),
    ],
)
def test_bad_ballots_are_refused_before_signing(node, proposals, method, good, bad, message):
    key, pids = proposals
    pid = pids[method]
    run("vote", pid, *good, "--key", str(key))
    before = json.loads(run("results", pid, "--json").output)
    held = node.state.replica.digest()
    result = run("vote", pid, *bad, "--key", str(key), ok=False)
    assert result.exit_code == 1
    assert message.replace("\\", "") in result.output or re.search(message, result.output)
    assert "Nothing was sent" in result.output
    assert node.state.replica.digest() == held  # nothing signed or stored
    assert json.loads(run("results", pid, "--json").output) == before
    assert before["counted"] == 1


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
    # click's list_commands / get_command: they import the lazily loaded commands
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
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
        cmd = cmd.get_command(click.Context(cmd), part)
    assert cmd.help
    assert run(*path, "--help").output


def test_results_render_says_import_notes_and_conventions():
    r = {
        "proposal": "0123456789abcdef.pb-0123",
        "title": "Assen",
        "method": "mes",
        "phase": "closed",
        "status": "final",
        "counted": 0,
        "missing": 0,
        "excluded": {"not-an-import-voter": 1},
        "uncounted": 1,
        "winners": [],
        "detail": {
            "free_projects": "supported-first",
            "add1": {"increments": 10_000, "limit": 10_000, "stopped_at_limit": True},
            "budget": 10,
            "spent": 0,
            "voter_budget": None,
            "projects": [
                {
                    "id": "a",
                    "name": "A",
                    "cost": 0,
                    "votes": 0,
                    "selected": False,
                    "effective_votes": None,
                }
            ],
        },
        "problem": "",
        "notes": ["no vote was counted, so there is no winner"],
        "import": "ab" * 32,
    }
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(governance_cmd.render_results(r))
    text = out.getvalue()
    assert "imported from a pabulib file" in text
    assert "no vote was counted, so there is no winner" in text
    assert "free projects: supported-first" in text
    assert "stopped at the limit" in text
    assert "winners: -" in text
