"""What got in a new user's way (issue 17, item 2): start command, --port, a negative
quantity, a chart without matplotlib, and what status counts."""

from __future__ import annotations

import json
import sys

import pytest
from cli_helpers import Node, invoke, running

from cli import render
from cli.main import start_command
from node.config import default_data_dir


def test_init_prints_a_start_command_naming_the_data_dir(tmp_path):
    d = tmp_path / "my node"
    r = invoke(d, "init", "--name", "N", "--scope", "eu/de/berlin/n")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == f"Start it with: allmende --data-dir '{d}' run"


def test_start_command_of_the_default_data_dir_is_short(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLMENDE_DATA_DIR", str(tmp_path / "default"))
    assert start_command(default_data_dir()) == "allmende run"
    assert start_command(tmp_path / "other") == f"allmende --data-dir {tmp_path}/other run"


@pytest.mark.parametrize("qty", ["-5", "-0.5", "-1e3"])
def test_negative_quantity_is_a_clear_user_error(tmp_path, qty):
    r = invoke(tmp_path / "n", "need", "add", "potatoes", qty, "kg", "--period", "2027-Q1")
    assert r.exit_code == 1, r.output
    assert f"quantity must be positive (got {qty})" in r.stderr
    assert "No such option" not in r.output


def test_run_refuses_port_and_listen_together(tmp_path):
    d = tmp_path / "n"
    assert invoke(d, "init", "--name", "N", "--scope", "eu/de/berlin/n").exit_code == 0
    r = invoke(d, "run", "--port", "7000", "--listen", "/ip4/127.0.0.1/tcp/7001")
    assert r.exit_code == 1
    assert "give --port or --listen, not both" in r.stderr


def test_chart_without_matplotlib_exits_1_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    r = invoke(tmp_path, "simnet", "run", "--preset", "smoke", "--chart", "x.png", "--quiet")
    assert r.exit_code == 1
    assert "allmende[simnet]" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_status_render_says_counts_not_seqs():
    s = {
        "name": "n", "kind": "commune", "scope": "eu/x", "partitions": ["eu"],
        "node_id": "a" * 64, "peer_id": "p", "listen": [], "peers": 0,
        "records": 7, "origins": 2, "own_records": 3, "writes_since_start": 1,
        "sync": {"ok": 0, "failed": 0}, "rejected": {}, "flagged_origins": [],
        "digest": "0" * 64,
        "gossip": {"messages_in": 0, "messages_out": 0, "records_accepted": 0},
    }  # fmt: skip
    out = render_text(render.status(s))
    assert "7 from 2 origins (3 of them this node's; 1 written since start)" in out


def render_text(renderable):
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=100, color_system=None).print(renderable)
    return buf.getvalue()


def test_run_port_listens_on_all_interfaces_at_that_port(tmp_path, monkeypatch):
    import node.daemon

    d = tmp_path / "n"
    assert invoke(d, "init", "--name", "N", "--scope", "eu/de/berlin/n").exit_code == 0
    seen = {}
    monkeypatch.setattr(node.daemon, "run_daemon", lambda data_dir, **kw: seen.update(kw))
    r = invoke(d, "run", "--port", "7011")
    assert r.exit_code == 0, r.output
    assert seen["listen"] == ["/ip4/0.0.0.0/tcp/7011"]


@pytest.mark.slow
def test_status_counts_after_restart(tmp_path):
    node = Node(tmp_path / "n", "n", "eu/de/berlin/n").init()
    with running(node):
        for q in ("1", "2"):
            r = node.cli("need", "add", "potatoes", q, "kg", "--period", "2027-Q1")
            assert r.exit_code == 0, r.output
        before = json.loads(node.cli("status", "--json").stdout)
    with running(node):
        after = json.loads(node.cli("status", "--json").stdout)
        shown = node.cli("status").stdout
        seqs = [r["seq"] for r in node.call("list", kind="need")]
    assert before["writes_since_start"] >= 2
    assert after["writes_since_start"] == 0
    assert after["own_records"] == before["own_records"] < 10
    assert f"({after['own_records']} of them this node's; 0 written since start)" in shown
    assert min(seqs) > 10**6  # seqs are not counts: they start from the clock floor
