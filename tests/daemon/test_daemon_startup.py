"""Start-up fails fast and leaves others alone: one daemon per data dir, a taken port
named, and the control API refusing bad arguments without harm."""

from __future__ import annotations

import socket
import subprocess

import pytest
from harness import Cluster, Node
from procs import allmende_command

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
    assert second.returncode == 1
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
    assert out.returncode == 1, out.stderr[-2000:]
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
