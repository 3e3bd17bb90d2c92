"""A member checks their own vote (issue 17, item 4): the frozen voters in results,
`vote check`, `member pubkey`."""

from __future__ import annotations

import json

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_governance_cli import node, run  # noqa: F401  (fixture)
from test_governance_tally import ATTACKER, CLOSES, OPENS, OPTIONS, PEOPLE, Scenario

from cli.main import cli
from node.governance import tally
from node.governance.ledger import Ledger


def test_results_list_frozen_voters_with_prefix_pseudonym_and_verdict():
    s = Scenario()
    for i in range(3):
        s.add_member(i)
    s.vote(0, ["a"])
    s.vote(1, ["b"])
    s.vote(2, ["zz"])  # not an option: frozen? no, never frozen (would not count)
    s.close()
    s.vote(1, ["c"], at=CLOSES + 5)  # after the close: not the frozen one
    s.remove_member(0)  # frozen, but no longer counts
    r = s.results().as_json()
    expected = {
        PEOPLE[0].public.hex()[:16]: {"pseudonym": None, "counted": False, "reason": "ineligible"},
        PEOPLE[1].public.hex()[:16]: {"pseudonym": "p1", "counted": True, "reason": None},
    }
    assert [v["key"] for v in r["voters"]] == sorted(expected)  # by key: same everywhere
    assert {v.pop("key"): v for v in r["voters"]} == expected


def test_provisional_results_list_no_voters():
    s = Scenario()
    s.add_member(0)
    s.vote(0, ["a"])
    assert s.results(now=OPENS + 2).as_json()["voters"] == []


def test_vote_check_held_frozen_counted_and_a_later_vote():
    s = Scenario()
    s.add_member(0)
    s.add_member(1)
    s.vote(0, ["a", "b"])
    before = tally.vote_check(Ledger(s.records), s.pid, PEOPLE[0].public, OPENS + 2)
    assert (before.closed, before.held, before.frozen, before.counted) == (
        False,
        True,
        False,
        False,
    )
    s.close()
    s.vote(0, ["c"], at=CLOSES + 5)
    after = tally.vote_check(Ledger(s.records), s.pid, PEOPLE[0].public, CLOSES + 10).as_json()
    assert after["frozen"]
    assert after["counted"]
    assert after["reason"] is None
    assert after["frozen_ballot"] == ["a", "b"]  # what counts
    assert after["held_ballot"] == ["c"]  # what was sent later
    none = tally.vote_check(Ledger(s.records), s.pid, PEOPLE[1].public, CLOSES + 10)
    assert (none.closed, none.held, none.frozen, none.counted) == (True, False, False, False)


def test_vote_check_a_forged_vote_is_not_the_members():
    s = Scenario()
    s.add_member(0)
    s.vote(0, ["a"], signer=ATTACKER)  # signed by someone else: never verified in
    s.close(extra_votes=[s.records[-1].raw])
    c = tally.vote_check(Ledger(s.records), s.pid, PEOPLE[0].public, CLOSES + 10)
    assert not c.frozen
    assert not c.counted


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bs=st.lists(st.lists(st.sampled_from(OPTIONS), unique=True), min_size=1, max_size=6))
def test_frozen_voters_agree_with_vote_check_and_counts(bs):
    s = Scenario()
    for i, b in enumerate(bs):
        s.add_member(i)
        s.vote(i, b)
    s.close()
    r = s.results().as_json()
    assert sum(v["counted"] for v in r["voters"]) == r["counted"]
    by_key = {v["key"]: v for v in r["voters"]}
    for i in range(len(bs)):
        c = tally.vote_check(Ledger(s.records), s.pid, PEOPLE[i].public, CLOSES + 10)
        shown = by_key.get(PEOPLE[i].public.hex()[:16])
        assert c.frozen == (shown is not None)
        assert c.counted == bool(shown and shown["counted"])


def test_cli_member_pubkey_and_vote_check(node, tmp_path):  # noqa: F811
    key = tmp_path / "alice.key"
    pub = run("member", "keygen", "--out", str(key)).output.strip()
    assert run("member", "pubkey", "--key", str(key)).output.strip() == pub
    run("member", "add", pub, "--pseudonym", "alice")
    out = run(
        "proposal", "create", "bench", "--title", "Benches", "--method", "approval",
        "--option", "a=Oak", "--option", "b=Steel", "--closes", "2h",
    ).output  # fmt: skip
    pid = out.split()[-1]
    run("vote", pid, "a", "--key", str(key))
    text = run("vote", "check", pid, "--key", str(key)).output
    assert 'held here: yes, ballot ["a"]' in text
    assert "frozen: not yet" in text
    run("proposal", "close", pid, "--early")
    checked = json.loads(run("vote", "check", pid, "--key", str(key), "--json").output)
    assert (checked["frozen"], checked["counted"], checked["frozen_ballot"]) == (True, True, ["a"])
    voters = json.loads(run("results", pid, "--json").output)["voters"]
    assert voters == [{"key": pub[:16], "pseudonym": "alice", "counted": True, "reason": None}]
    assert "counted: yes" in run("vote", "check", pid, "--key", str(key)).output
    bad = run("vote", "check", "--key", str(key), ok=False)
    assert bad.exit_code == 1
    assert "usage: allmende vote check" in bad.output


def test_member_pubkey_of_a_missing_file_is_a_user_error(tmp_path):
    r = CliRunner().invoke(cli, ["member", "pubkey", "--key", str(tmp_path / "nope")])
    assert r.exit_code == 1
