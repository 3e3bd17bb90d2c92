"""Every shell block of the README runs as written (the walk-through has its own test,
tests/cli/test_cli_readme.py).

The commands are read from README.md, not copied here. Placeholders in capitals
(NODE_ID, CODE, PUBKEY, ...) are filled with what the earlier commands printed. The
liberties, all about the machine the tests run on: daemons listen on 127.0.0.1 only
with mDNS off, and `pip install` / `npm ci` are not run here (`.ci/run` runs them, and
a test checks it runs exactly the README's command).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import Node, invoke, running
from procs import allmende_command, wait_for

from node.config import DataDir

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
ASSEN_2024 = ROOT.parent / "shared" / "data" / "pabulib" / "Netherlands_Assen_2024.pb"
if not ASSEN_2024.exists():  # a worktree beside the main checkout
    ASSEN_2024 = Path("/work/shared/data/pabulib/Netherlands_Assen_2024.pb")


def blocks() -> list[tuple[str, list[list[str]]]]:
    """(section title, commands) of every ```sh block; a command is its words, with
    `\\` continuations joined, comments dropped and `&&` splitting commands."""
    out = []
    section = ""
    text = README.read_text()
    for m in re.finditer(r"^## ([^\n]*)$|```sh\n(.*?)```", text, re.S | re.M):
        if m.group(1) is not None:
            section = m.group(1).strip()
            continue
        commands: list[list[str]] = []
        for line in m.group(2).replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:cut])
                words = words[cut + 1 :]
        out.append((section, commands))
    return out


def section(title: str, index: int = 0) -> list[list[str]]:
    return [cmds for s, cmds in blocks() if s == title][index]


# Each block and the test that runs it; a new block fails here until it gets one.
COVERED = [
    ("Set-up", "test_setup_blocks"),
    ("Set-up", "test_setup_blocks"),
    ("Walk-through for a new member", "test_cli_readme.py"),
    ("Walk-through for a new member", "test_shell_completion_block"),
    ("Who belongs", "test_who_belongs_block"),
    ("From balance to plan", "test_cli_readme.py"),
    ("From balance to plan", "test_planning_block"),
    ("Deciding together", "test_deciding_together_block"),
    ("Simulating a network", "test_simnet_block"),
]


def test_every_block_has_a_test():
    assert [s for s, _ in blocks()] == [s for s, _ in COVERED]


def test_setup_blocks(tmp_path, monkeypatch):
    install, tests = section("Set-up"), section("Set-up", 1)
    assert install == [["pip", "install", "-e", "."], ["allmende", "run"]]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert shlex.split(ci) == [w for c in tests for w in (*c, "&&")][:-1]
    # `allmende run` on a fresh data dir makes a node on defaults (the daemon itself
    # would listen on 0.0.0.0:7946 with mDNS: not in a test).
    import node.daemon

    started = {}
    monkeypatch.setattr(node.daemon, "run_daemon", lambda d, **kw: started.update(dir=d))
    r = invoke(tmp_path / "fresh", *install[1][1:])
    assert r.exit_code == 0, r.output
    assert started["dir"] == tmp_path / "fresh"
    assert DataDir(tmp_path / "fresh").load()[1].scope == "local"
    assert "First run: initialised node" in r.stderr


def test_shell_completion_block(tmp_path):
    bash_line, *rest = section("Walk-through for a new member", 1)
    assert rest == []  # zsh and fish are comments: only bash runs here
    raw = next(ln for ln in README.read_text().splitlines() if ln.startswith(bash_line[0]))
    script = Path(allmende_command()[0])
    if not script.exists() or shutil.which("bash") is None:
        pytest.fail("needs the allmende console script and bash")
    env = {**os.environ, "PATH": f"{script.parent}:{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        ["bash", "-c", f"{raw}\ncomplete -p allmende"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "_allmende_completion" in out.stdout, out.stderr


def _fill(words: list[str], values: dict[str, str]) -> list[str]:
    return [values.get(w, w) for w in words]


def _run(node: Node, words: list[str], values: dict[str, str]) -> str:
    assert words[0] == "allmende", words
    args = _fill(words[1:], values)
    r = node.cli(*args)
    assert r.exit_code == 0, f"allmende {shlex.join(args)}: {r.output}"
    return r.stdout


def _admitted(node: Node, key: str) -> bool:
    return bool(node.call("admission", node=key)["status"] == "admitted")


@pytest.mark.slow
def test_who_belongs_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    belongs = section("Who belongs")
    a = Node(tmp_path / "a", "a", "eu/de/berlin/neukoelln")
    r = invoke(a.data_dir, *section("Walk-through for a new member")[0][1:], "--no-mdns")
    assert r.exit_code == 0, r.output
    a.peer_id = next(ln.split()[-1] for ln in r.stdout.splitlines() if ln.startswith("peer id"))
    b = Node(tmp_path / "b", "b", "eu/de/berlin/kiez")
    values: dict[str, str] = {}
    with running(a):
        # invite create (on a), then init --invite CODE (on the new node)
        values["CODE"] = _run(a, belongs[0], values).strip()
        assert belongs[1][:2] == ["allmende", "init"]
        _run(b, [*belongs[1], "--no-mdns"], values)
        with running(b):
            b_id = b.call("status")["node_id"]
            for n in (a, b):
                wait_for(lambda n=n: _admitted(n, b_id), 60, f"b admitted on {n.name}")

            # the rest of "Who belongs", on a, about b
            values["NODE_ID"] = b_id
            _run(a, belongs[2], values)  # admission
            assert "admitted" in _run(a, belongs[3], values)  # admission status NODE_ID
            # a endorses b already (its invite counts as that): withdraw, then endorse
            endorse, withdraw, suspend = belongs[4:7]
            assert withdraw == [*endorse, "--withdraw"]
            for words in (withdraw, endorse, suspend):
                _run(a, words, values)
    # Found a federation with several founders: two stopped nodes.
    c, d = (Node(tmp_path / n, n, f"eu/de/berlin/{n}") for n in ("c", "d"))
    for n in (c, d):
        assert invoke(n.data_dir, "init", "--name", n.name, "--scope", n.scope).exit_code == 0
    values["ID1"], values["ID2"] = (DataDir(n.data_dir).load()[0].public.hex() for n in (c, d))
    create, join, show = belongs[7:]
    _run(c, create, values)
    assert (tmp_path / "charter.toml").exists()
    for n in (c, d):
        _run(n, join, values)
    with running(c):
        assert "Berliner Kommunen" in _run(c, show, values)


@pytest.mark.slow
def test_planning_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    need, cap, status, rounds, review, approve, propose, plist, vote, close, show = section(
        "From balance to plan", 1
    )
    node = Node(tmp_path / "n", "n", "eu/de/berlin/n").init()
    values: dict[str, str] = {}
    with running(node):
        pubkey = _run(node, ["allmende", "member", "keygen", "--out", "alice.key"], values)
        _run(node, ["allmende", "member", "add", pubkey.strip(), "--pseudonym", "alice"], values)
        values["NEED_ID"] = _run(node, need, values).split()[2].rstrip(":")  # Saved need ID: ...
        _run(node, cap, values)
        assert "potatoes" in _run(node, status, values)
        _run(node, rounds, values)
        assert (tmp_path / "rounds.png").stat().st_size > 0
        assert values["NEED_ID"] in _run(node, review, values)
        _run(node, approve, values)
        _run(node, propose, values)
        values["PROPOSAL_ID"] = next(
            w for w in _run(node, [*plist, "--json"], values).split('"') if "co2-2027" in w
        )
        for words in (vote, close):
            _run(node, words, values)
        assert "eu/de/berlin" in _run(node, show, values)


@pytest.mark.slow
def test_deciding_together_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ASSEN_2024, tmp_path / ASSEN_2024.name)
    keygen, add, create, plist, vote, close, results, check, budget = section("Deciding together")
    node = Node(tmp_path / "n", "n", "eu/de/berlin/n").init()
    values: dict[str, str] = {}
    with running(node):
        values["PUBKEY"] = _run(node, keygen, values).strip()
        _run(node, add, values)
        created = _run(node, create, values)
        values["PROPOSAL_ID"] = created.split()[-1]
        assert values["PROPOSAL_ID"] in _run(node, plist, values)
        _run(node, vote, values)
        _run(node, close, values)
        assert "b" in _run(node, results, values)
        assert "counted: yes" in _run(node, check, values)
        assert _run(node, budget, values)


@pytest.mark.slow
def test_simnet_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = section("Simulating a network")
    assert len(commands) == 3
    for words in commands:
        assert words[0] == "allmende"
        r = subprocess.run(
            [*allmende_command(), *words[1:], "--quiet"],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            timeout=600,
            check=False,
        )
        assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert (tmp_path / "run.png").stat().st_size > 0
    assert json.loads((tmp_path / "run.json").read_text())["result"]["ok"]
