"""Peers as an operator meets them (issue 17, item 1): `peers add` says whether the
dial worked and saves only then (or with --keep), `peers remove`, who the peers are,
`allmende nodes`."""

from __future__ import annotations

import json

import pytest
from cli_helpers import BOOTSTRAP_EXAMPLE, Node, running
from procs import wait_for

from node.config import DataDir

pytestmark = pytest.mark.slow


def bootstrap(node: Node) -> tuple[str, ...]:
    return DataDir(node.data_dir).load()[1].bootstrap


def test_peers_add_remove_show_and_nodes(tmp_path):
    a = Node(tmp_path / "a", "a", "eu/de/berlin/a").init()
    b = Node(tmp_path / "b", "b", "eu/de/berlin/b").init()
    with running(a, b):
        # unreachable: exit 1, nothing saved
        before = DataDir(a.data_dir).config.read_text()
        r = a.cli("peers", "add", BOOTSTRAP_EXAMPLE)
        assert r.exit_code == 1
        assert "could not connect" in r.stderr
        assert "--keep" in r.stderr
        assert DataDir(a.data_dir).config.read_text() == before
        # malformed: exit 1, nothing saved
        r = a.cli("peers", "add", "/ip4/127.0.0.1/tcp/9")
        assert r.exit_code == 1
        assert DataDir(a.data_dir).config.read_text() == before
        # --keep saves what cannot be dialled now
        r = a.cli("peers", "add", BOOTSTRAP_EXAMPLE, "--keep")
        assert r.exit_code == 0, r.output
        assert "saved anyway" in r.stdout
        assert BOOTSTRAP_EXAMPLE in bootstrap(a)
        # reachable: connected and saved
        r = a.cli("peers", "add", b.addr)
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith(f"Connected to {b.peer_id}")
        assert b.addr in bootstrap(a)

        def named() -> dict:
            rows = a.json("peers")["nodes"]
            return next((n for n in rows if n["peer_id"] == b.peer_id and n["name"]), {})

        shown = wait_for(named, 30, "b's node record on a")
        assert (shown["name"], shown["kind"], shown["scope"]) == ("b", "commune", "eu/de/berlin/b")
        out = a.cli("peers").stdout
        assert any(line.split()[:2] == [b.peer_id, "b"] for line in out.splitlines())
        # the node's own addresses: one per line, whole
        status = a.cli("status").stdout.splitlines()
        assert a.addr in status
        # nodes of the region: both, with kind and records
        rows = wait_for(lambda: len(a.json("nodes")) == 2 and a.json("nodes"), 30, "both nodes")
        assert [(n["name"], n["kind"], n["this_node"]) for n in rows] == [
            ("a", "commune", True),
            ("b", "commune", False),
        ]
        assert all(n["records"] >= 2 and n["last_seen_ms"] > 0 for n in rows)
        assert a.json("nodes", "eu/de/berlin/b")[0]["name"] == "b"
        assert "No node under eu/fr" in a.cli("nodes", "eu/fr").stdout
        # remove by peer id: forgotten in the config
        r = a.cli("peers", "remove", b.peer_id)
        assert r.exit_code == 0, r.output
        assert b.addr not in bootstrap(a)
        assert BOOTSTRAP_EXAMPLE in bootstrap(a)
        r = a.cli("peers", "remove", "12D3KooWNobodyNobodyNobody")
        assert r.exit_code == 1
        assert json.loads(a.cli("peers", "--json").stdout)["bootstrap"] == [BOOTSTRAP_EXAMPLE]


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("nodes", {"scope": "EU//x"}, "scope"),
        ("nodes", {"scope": 7}, "must be text"),
        ("peers_remove", {"peer": "/ip4/1.2.3.4/tcp/1"}, "/p2p/"),
        ("peers_remove", {"peer": "12D3KooWNobody"}, "neither a configured nor a connected"),
        ("peers_add", {"addr": "/ip4/127.0.0.1/tcp/9/p2p/" + "x" * 500}, "characters long"),
        ("peers_add", {"addr": "garbage"}, "peer address"),
        ("peers_add", {"addr": BOOTSTRAP_EXAMPLE, "keep": "yes"}, "true or false"),
        ("gov_vote_check", {"proposal": "nope", "member": "zz"}, "64 hex digits"),
        ("gov_vote_check", {"proposal": "nope", "member": "ab" * 32}, "nope"),
        ("nodes", {"bogus": 1}, "unknown argument"),
    ],
)
def test_new_ops_refuse_bad_arguments_and_the_node_serves_on(node, op, args, message):
    from node.errors import LocalError

    with pytest.raises(LocalError, match=message):
        node.call(op, **args)
    assert node.call("status")["name"] == "a"
    assert BOOTSTRAP_EXAMPLE not in bootstrap(node)
