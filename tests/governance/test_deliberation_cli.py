"""The deliberation CLI, in-process against a node's ops (no sockets)."""

from __future__ import annotations

import json

import click
import pytest
from test_governance_cli import node, run  # noqa: F401

from cli import deliberate_cmd
from cli.main import cli
from node.errors import LocalError


@pytest.fixture
def dnode(node, monkeypatch):  # noqa: F811
    monkeypatch.setattr(deliberate_cmd, "_now_ms", lambda: node.clock.t)
    return node


def keys(tmp_path, *names):
    out = {}
    for n in names:
        path = tmp_path / f"{n}.key"
        pub = run("member", "keygen", "--out", str(path)).output.strip()
        out[n] = (path, pub)
    return out


def test_discuss_amend_react_and_map(dnode, tmp_path):
    ks = keys(tmp_path, "alice", "bob", "eve")
    for n in ("alice", "bob"):
        run("member", "add", ks[n][1], "--pseudonym", n)
    out = run(
        "proposal",
        "create",
        "park",
        "--title",
        "Park",
        "--method",
        "approval",
        "--option",
        "a=A",
        "--option",
        "b=B",
        "--discussion",
        "now",
        "--opens",
        "1h",
        "--closes",
        "2h",
        "--json",
    ).output
    pid = json.loads(out)["proposal"]
    alice, bob = str(ks["alice"][0]), str(ks["bob"][0])
    c1 = run("comment", pid, "**Trees**, please", "--key", alice).output.split()[-1]
    run("comment", pid, "Why?", "--reply", c1, "--key", bob)
    s1 = run("statement", "add", pid, "Shade matters", "--key", alice).output.split()[-1]
    run("statement", "react", pid, s1, "agree", "--key", alice)
    run("statement", "react", pid, s1, "disagree", "--key", bob)
    run("statement", "react", pid, s1, "agree", "--key", bob)  # replaces Bob's reaction
    a1 = run("amend", pid, "--option", "c=C", "--reason", "more", "--key", bob).output.split()[-1]
    # a stranger is told why, and nothing is sent
    bad = run("comment", pid, "hello", "--key", str(ks["eve"][0]), ok=False)
    assert bad.exit_code == 1
    assert "not a member" in bad.output
    run("amendment", "accept", a1)
    d = json.loads(run("discuss", pid, "--json").output)
    assert d["version"] == 2
    assert [c["ref"] for c in d["thread"]] == [c1]
    assert len(d["thread"][0]["replies"]) == 1
    assert d["statements"][0]["agree"] == 2
    assert d["amendments"][0]["state"] == "accepted"
    shown = run("discuss", pid).output
    assert "Trees, please" in shown  # markup rendered as plain text
    assert "accepted (v2)" in shown
    run("moderate", "hide", c1, "--reason", "off topic")
    shown = run("discuss", pid).output
    assert "hidden by" in shown
    assert "off topic" in shown
    assert "Trees, please" not in shown
    m = json.loads(run("opinions", pid, "--json").output)
    assert m["participants"] == 2
    assert run("opinions", pid).output.strip()
    # amendments end when voting opens
    dnode.clock.t += 3_600_000
    late = run("amend", pid, "--text", "x", "--key", alice, ok=False)
    assert late.exit_code == 1
    assert "amendments were due" in late.output


def test_every_new_command_has_help():
    for name in ("discuss", "comment", "statement", "amend", "amendment", "opinions", "moderate"):
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        assert command.help


def _held(dnode, kind, key):
    r = dnode.state.replica.get(dnode.state.me, kind, key)
    return r.scope, dict(r.body)


def test_preview_is_exactly_what_the_node_then_signs(dnode, tmp_path):
    """The web app shows the operator `delib_amendment_preview` before the node signs:
    what it shows must be what accept, reject and promote then write."""
    ks = keys(tmp_path, "alice")
    run("member", "add", ks["alice"][1], "--pseudonym", "alice")
    made = run(
        *("proposal", "create", "pond", "--title", "Pond", "--method", "approval"),
        *("--option", "a=A", "--discussion", "now", "--opens", "1h", "--closes", "2h"),
        "--json",
    ).output
    pid = json.loads(made)["proposal"]
    alice = str(ks["alice"][0])
    a1 = run("amend", pid, "--text", "Ducks", "--key", alice).output.split()[-1]
    a2 = run("amend", pid, "--option", "b=B", "--key", alice).output.split()[-1]

    def preview(**args):
        out = dnode.call("delib_amendment_preview", **args)
        return [(r["kind"], r["key"], r["scope"], r["body"]) for r in out["records"]], out

    shown, out = preview(amendment=a1, action="accept")
    assert (out["proposal"], out["version"]) == (pid, 1)
    assert [k for k, *_ in shown] == ["proposal", "decision"]
    assert "version" not in dnode.call("gov_proposal_show", proposal=pid)  # nothing written
    dnode.call("delib_amendment_decide", amendment=a1, accept=True, version=1)
    assert [(k, key, *_held(dnode, k, key)) for k, key, *_ in shown] == shown
    # A reviewed version that is no longer current is refused, by preview and decide alike.
    for op, extra in (
        ("delib_amendment_preview", {"action": "reject"}),
        ("delib_amendment_decide", {}),
    ):
        with pytest.raises(LocalError, match="changed since you reviewed"):
            dnode.call(op, amendment=a2, reason="no", version=1, **extra)
    shown, _ = preview(amendment=a2, action="reject", reason="one option is enough")
    dnode.call("delib_amendment_decide", amendment=a2, accept=False, reason="one option is enough")
    assert [(k, key, *_held(dnode, k, key)) for k, key, *_ in shown] == shown
    shown, _ = preview(amendment=a2, action="promote", key="pond-b")
    [(kind, key, _, b)] = shown
    assert (kind, key, b["from"], b["version"]) == ("proposal", "pond-b", a2, 1)
    dnode.call("delib_amendment_promote", amendment=a2, key="pond-b")
    assert [(k, key, *_held(dnode, k, key)) for k, key, *_ in shown] == shown
    with pytest.raises(LocalError, match="accept, reject or promote"):
        dnode.call("delib_amendment_preview", amendment=a2, action="delete")
