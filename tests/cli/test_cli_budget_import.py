"""`allmende budget import` against real daemons: the file travels as a payload of the
control request (no 64 KiB line limit), the daemon reports progress, a multi-MB file
imports, a bad file or an oversize payload leaves the node as it was."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from cli_helpers import Node, running
from pb_gen import warsaw_like

from node import control
from node.config import DataDir
from node.governance import budget
from node.governance.pabulib import parse
from node.governance.pbimport import MAX_FILE_BYTES

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pabulib"
ASSEN_2024 = DATA / "Netherlands_Assen_2024.pb"


def raw_request(node: Node, head: dict, payload: bytes = b"") -> dict:
    """One control request written by hand; the daemon's reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(DataDir(node.data_dir).socket))
        s.sendall(json.dumps(head).encode() + b"\n" + payload)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply.splitlines()[-1])


def test_an_oversize_payload_is_refused_before_it_is_read(node):
    before = node.call("digest")
    head = {"op": "gov_budget_import", "args": {}, "payload": MAX_FILE_BYTES + 1}
    started = time.monotonic()
    reply = raw_request(node, head)  # announces 64 MiB + 1 and sends none of it
    assert time.monotonic() - started < 5
    assert reply["ok"] is False
    assert f"more than the {MAX_FILE_BYTES}" in reply["error"]["message"]
    assert node.call("digest") == before


def test_the_import_takes_no_json_data_argument(node):
    reply = raw_request(node, {"op": "gov_budget_import", "args": {"data": "TUVUQQ=="}})
    assert reply["ok"] is False
    assert "unknown argument" in reply["error"]["message"]


def test_a_truncated_payload_writes_nothing(node):
    before = node.call("digest")
    data = ASSEN_2024.read_bytes()
    head = {"op": "gov_budget_import", "args": {}, "payload": len(data)}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(DataDir(node.data_dir).socket))
        s.sendall(json.dumps(head).encode() + b"\n" + data[: len(data) // 2])
        s.shutdown(socket.SHUT_WR)  # the rest never comes
        reply = json.loads(s.makefile("rb").readline())
    assert reply["ok"] is False
    assert "closed after" in reply["error"]["message"]
    assert node.call("digest") == before


def test_import_over_the_socket_with_progress(node, tmp_path):
    before = node.call("digest")
    bad = tmp_path / "bad.pb"
    bad.write_bytes(ASSEN_2024.read_bytes().replace(b"budget;100000", b"budget;-1"))
    r = node.cli("budget", "import", str(bad))
    assert r.exit_code == 1
    assert "line 9: budget -1 is negative" in r.output
    assert node.call("digest") == before  # nothing written, not even a seq
    seen: list[tuple[int, int, str]] = []
    out = control.call(
        DataDir(node.data_dir).socket,
        "gov_budget_import",
        {},
        payload=ASSEN_2024.read_bytes(),
        on_progress=lambda *p: seen.append(p),
    )
    assert out["voters"] == 84
    # Progress lines are rate-limited (the latest wins), so a small file shows few.
    assert seen
    assert {what for _, _, what in seen} <= {"checking", "signing", "preparing", "saving"}
    res = node.json("results", out["proposal"])
    assert res["winners"] == ["3", "9", "11", "2", "13", "14", "5", "6", "12"]
    assert res["import"] == out["file_sha256"]
    again = node.cli("budget", "import", str(ASSEN_2024))
    assert again.exit_code == 1
    assert "imported already" in again.output


@pytest.mark.slow
def test_a_multi_megabyte_import_through_a_real_daemon(tmp_path):
    """Issue 9.9: several MB (100 projects, 60,000 voters) import through `allmende`."""
    data = warsaw_like(projects=100, voters=60_000)
    assert len(data) > 2_500_000
    path = tmp_path / "warszawa.pb"
    path.write_bytes(data)
    node = Node(tmp_path / "w", "w", "eu/pl/warszawa").init()
    with running(node):
        out = node.json("budget", "import", str(path))
        assert out["voters"] == out["frozen_votes"] == 60_000
        assert out["method"] == "greedy"
        # The daemon stayed responsive and holds one proposal, its close and chunks.
        assert node.call("status")
        res = node.json("results", out["proposal"])
        assert res["status"] == "final"
        assert res["counted"] == 60_000
        inst = parse(data.decode())
        expected = budget.greedy(dict(inst.costs), inst.approval_ballots, inst.budget)
        assert tuple(res["winners"]) == expected.winners
        assert res["detail"]["spent"] == expected.spent
    # Restarted, it still holds the import (saved in one durable transaction).
    with running(node):
        assert node.json("results", out["proposal"])["counted"] == 60_000
