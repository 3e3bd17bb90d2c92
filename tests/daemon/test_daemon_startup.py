"""Start-up fails fast and leaves others alone: one daemon per data dir, a taken port
named, and the control API refusing bad arguments without harm."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from harness import Cluster, Node
from procs import allmende_command

from cli.main import EXIT_CONFIG, EXIT_STORE, EXIT_UNAVAILABLE
from node.control import RemoteCallError

pytestmark = pytest.mark.slow


def _run(node: Node, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *allmende_command(),
            "--data-dir",
            str(node.data_dir),
            "run",
            "--listen",
            f"/ip4/127.0.0.1/tcp/{port}",
            "--no-mdns",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_second_daemon_on_one_data_dir_exits_and_leaves_the_first_alone(nodes: Cluster) -> None:
    a = nodes.node("a").init().start()
    posted = a.post_need()
    second = _run(a, a.port + 1 if a.port < 65535 else a.port - 1)
    assert second.returncode == EXIT_UNAVAILABLE  # systemd does not restart it
    assert "another allmende daemon" in second.stderr
    assert "Traceback" not in second.stderr
    assert a.running
    assert a.socket.exists()
    assert a.holds(a.status()["node_id"], "need", posted["id"])


@pytest.mark.parametrize("holder", ["daemon", "plain socket"])
def test_a_port_in_use_stops_start_up_naming_the_port(nodes: Cluster, holder: str) -> None:
    b = nodes.node("b").init()
    if holder == "daemon":
        a = nodes.node("a").init().start()
        port = a.port
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
    try:
        out = _run(b, port)
    finally:
        if holder != "daemon":
            listener.close()
    assert out.returncode == EXIT_UNAVAILABLE, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: could not listen on")
    assert f"/tcp/{port}" in last
    assert "port is in use" in last
    assert "Traceback" not in out.stderr
    assert not b.socket.exists()
    if holder == "daemon":
        assert a.running
        assert a.status()["peers"] == 0  # b never took a's connections


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda db: db.write_bytes(b"this is not a database " * 200), "cannot open database"),
        (lambda db: _damage_pages(db), "is damaged"),
    ],
)
def test_a_damaged_store_stops_start_up_with_what_to_do(nodes: Cluster, damage, message) -> None:
    a = nodes.node("a").init().start()
    for i in range(50):
        a.post_need(qty=str(i + 1))
    a.stop()
    db = a.data_dir / "allmende.db"
    for suffix in ("-wal", "-shm"):
        (a.data_dir / f"allmende.db{suffix}").unlink(missing_ok=True)
    damage(db)
    out = _run(a, a.port)
    assert out.returncode == EXIT_STORE, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert message in last
    assert "allmende restore FILE" in last
    assert f"not started: exit {EXIT_STORE}" in last
    assert "Traceback" not in out.stderr
    assert not a.socket.exists()


def _damage_pages(db) -> None:
    """Overwrite the second half of the file (records' pages; the schema on page 1 stays
    valid, so the file opens and the damage shows when the records are read)."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    pages = len(data) // page
    for i in range(page * (pages // 2 + 1), len(data)):
        data[i] = 0x5A
    db.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("balance", {"depth": 10**18}, "must be an integer from 0 to"),
        ("balance", {"depth": 1e18}, "must be an integer"),
        ("balance", {"depth": "3"}, "must be an integer"),
        ("list", {"kind": "need", "bogus": 1}, "unknown argument(s) bogus"),
        ("post", {"kind": "need"}, "is required"),
        ("post", {"kind": "need", "item": "x" * 10_000}, "characters long; the limit is"),
        ("no-such-op", {}, "unknown control operation"),
    ],
)
def test_bad_control_arguments_are_refused_and_the_daemon_serves_on(
    nodes: Cluster, op: str, args: dict, message: str
) -> None:
    a = nodes.node("a").init().start()
    with pytest.raises(RemoteCallError) as exc:
        a.call(op, **args)
    assert exc.value.kind == "user"
    assert message in str(exc.value)
    assert a.running
    assert a.status()["records"] >= 1


def test_a_bad_config_stops_start_up_with_exit_78(nodes: Cluster) -> None:
    a = nodes.node("a").init()
    config = a.data_dir / "config.toml"
    config.write_text(config.read_text().replace("sync_interval = ", "sync_interval = -"))
    out = _run(a, a.port)
    assert out.returncode == EXIT_CONFIG, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert "sync_interval must be positive" in last
    assert f"not started: exit {EXIT_CONFIG}" in last


def test_the_unit_does_not_restart_on_the_refusals() -> None:
    """deploy/allmende.service lists exactly the exit codes of refusals a restart cannot
    fix; anything else (a crash) is restarted, at most 5 times in 5 minutes."""
    unit = (Path(__file__).parents[2] / "deploy" / "allmende.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["Restart"] == "on-failure"
    assert {int(c) for c in settings["RestartPreventExitStatus"].split()} == {
        EXIT_STORE,
        EXIT_UNAVAILABLE,
        EXIT_CONFIG,
    }
    assert (settings["StartLimitBurst"], settings["StartLimitIntervalSec"]) == ("5", "300")
    assert len({EXIT_STORE, EXIT_UNAVAILABLE, EXIT_CONFIG, 0, 1, 2, 3}) == 7
