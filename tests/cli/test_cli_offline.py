"""Error paths that need no running daemon: init, not initialised, not running, usage."""

from __future__ import annotations

import pytest
from cli_helpers import invoke

from node.config import DataDir

BOOTSTRAP = "/ip4/127.0.0.1/tcp/7946/p2p/12D3KooWHFYdJ3bQf1jaUQRKJ1ZQ43TPzcxG2nLxd1LV46mhtLHL"


def files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.exists() else None


def test_init_creates_key_and_config(tmp_path):
    d = tmp_path / "node"
    r = invoke(
        d,
        "init",
        "--name",
        "Kommune Neukölln",
        "--kind",
        "commune",
        "--scope",
        "eu/de/berlin/neukoelln",
        "--port",
        "17000",
        "--no-mdns",
        "--bootstrap",
        BOOTSTRAP,
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"Initialised Kommune Neukölln (commune) in {d}\n")
    assert "peer id:  12D3KooW" in r.stdout
    assert "listen:   /ip4/0.0.0.0/tcp/17000" in r.stdout
    _, config = DataDir(d).load()
    assert (config.scope, config.bootstrap, config.mdns) == (
        "eu/de/berlin/neukoelln",
        (BOOTSTRAP,),
        False,
    )


def test_init_refuses_to_overwrite_an_identity(tmp_path):
    d = tmp_path / "node"
    assert invoke(d, "init", "--name", "a", "--scope", "eu/de").exit_code == 0
    before = files(d)
    r = invoke(d, "init", "--name", "b", "--scope", "eu/fr", "--port", "9000")
    assert r.exit_code == 1
    assert "a node identity exists already" in r.stderr
    assert "refusing to overwrite" in r.stderr
    assert r.stdout == ""
    assert files(d) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bootstrap", "/ip4/127.0.0.1/tcp/7946"], "must be a multiaddr ending in /p2p/"),
        (["--bootstrap", "not-an-address"], "must be a multiaddr ending in /p2p/"),
        (["--bootstrap", BOOTSTRAP, "--bootstrap", "nope"], "peer address 'nope'"),
    ],
)
def test_init_bad_bootstrap_creates_nothing(tmp_path, args, message):
    d = tmp_path / "node"
    r = invoke(d, "init", "--name", "a", "--scope", "eu/de", *args)
    assert r.exit_code == 1, r.output
    assert message in r.stderr
    assert not d.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "a", "--scope", "EU/DE"], "scope 'EU/DE'"),
        (["--name", "a", "--scope", "eu//de"], "scope 'eu//de'"),
        (["--name", "", "--scope", "eu/de"], "name"),
    ],
)
def test_init_bad_config_creates_nothing(tmp_path, args, message):
    d = tmp_path / "node"
    r = invoke(d, "init", *args)
    assert r.exit_code == 1, r.output
    assert message in r.stderr
    assert not d.exists()


READ_AND_WRITE = [
    ["status"],
    ["status", "--json"],
    ["peers"],
    ["peers", "add", BOOTSTRAP],
    ["item", "list"],
    ["item", "add", "oat-milk", "--name", "Oat milk", "--dimension", "volume"],
    ["need", "add", "potatoes", "5", "kg", "--period", "2027"],
    ["need", "list"],
    ["need", "withdraw", "n2"],
    ["capacity", "add", "childcare", "3", "h", "--period", "2027"],
    ["capacity", "list", "--all"],
    ["capacity", "withdraw", "c2"],
    ["balance"],
    ["balance", "eu", "--depth", "2", "--json"],
]
IDS = [" ".join(a) for a in READ_AND_WRITE]


@pytest.mark.parametrize("args", READ_AND_WRITE, ids=IDS)
def test_not_initialised(tmp_path, args):
    d = tmp_path / "nothing-here"
    r = invoke(d, *args)
    assert r.exit_code == 1, r.output
    assert r.stderr == (
        f"Error: no node in {d}; create one with: allmende --data-dir {d} "
        f"init --name NAME --scope SCOPE, then start it with: "
        f"allmende --data-dir {d} run\n"
    )
    assert r.stdout == ""
    assert not d.exists()


@pytest.mark.parametrize("args", READ_AND_WRITE, ids=IDS)
def test_daemon_not_running(tmp_path, args):
    d = tmp_path / "node"
    assert invoke(d, "init", "--name", "a", "--scope", "eu/de").exit_code == 0
    before = files(d)
    r = invoke(d, *args)
    assert r.exit_code == 3, r.output
    assert r.stderr == (
        f"Error: the allmende daemon is not running for {d}; "
        f"start it with: allmende --data-dir {d} run\n"
    )
    assert r.stdout == ""
    assert files(d) == before


def test_data_dir_from_environment(tmp_path, monkeypatch):
    d = tmp_path / "from-env"
    monkeypatch.setenv("ALLMENDE_DATA_DIR", str(d))
    from click.testing import CliRunner

    from cli.main import cli

    r = CliRunner().invoke(cli, ["status"], prog_name="allmende")
    assert r.exit_code == 1
    assert f"no node in {d}" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],  # no command: click shows the help and exits 2
        ["frobnicate"],
        ["need"],
        ["need", "add", "potatoes", "5"],
        ["need", "add", "potatoes", "5", "kg"],  # --period is required
        ["need", "add", "potatoes", "5", "kg", "--period", "2027", "--priority", "urgent"],
        ["need", "add", "potatoes", "5", "kg", "extra", "--period", "2027"],
        ["capacity", "add", "childcare", "5", "h", "--period", "2027", "--priority", "high"],
        ["need", "withdraw"],
        ["need", "list", "--bogus"],
        ["item", "add", "oat-milk", "--name", "Oat milk"],
        ["item", "add", "oat-milk", "--name", "Oat milk", "--dimension", "taste"],
        ["peers", "add"],
        ["balance", "--depth", "7"],
        ["balance", "--depth", "-1"],
        ["balance", "--depth", "two"],
        ["balance", "a", "b"],
        ["init", "--scope", "eu/de"],
        ["init", "--name", "a"],
        ["init", "--name", "a", "--scope", "eu/de", "--kind", "collective"],
        ["init", "--name", "a", "--scope", "eu/de", "--port", "70000"],
        ["run", "--log-level", "loud"],
        ["run", "--sync-interval", "often"],
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    d = tmp_path / "node"
    r = invoke(d, *args)
    assert r.exit_code == 2, r.output
    assert "Usage: allmende" in r.stderr
    assert not d.exists()
