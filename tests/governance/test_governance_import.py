"""`budget import`: a pabulib file becomes a closed proposal with its own electorate
(the frozen demo ballots), whose results equal the official Assen outcome; a bad file
writes nothing; demo keys never vote in live proposals and members never vote in
imports."""

from __future__ import annotations

import hashlib

import pytest
from gov_helpers import FakeDaemon, member, vote
from test_governance_official import DATA, OFFICIAL

from node.crdt.record import decode_record
from node.errors import LocalError
from node.governance import pbimport
from node.governance.errors import GovernanceError, PabulibError
from node.governance.pbimport import check_import, demo_identity, plan_import

HOUR = 3_600_000
ASSEN_2024 = OFFICIAL[0][0]


@pytest.fixture
def node(tmp_path):
    d = FakeDaemon(tmp_path / "n")
    yield d
    d.close()


def assen(name: str = ASSEN_2024) -> bytes:
    return (DATA / name).read_bytes()


def state_of(d: FakeDaemon) -> tuple[object, ...]:
    """Everything an import could change: replica, store, seq and clock."""
    return (
        d.state.replica.digest(),
        len(d.state.replica),
        d.store.count(),
        d.state.core.seq,
        d.state.store.get_meta("seq"),
    )


@pytest.mark.parametrize(("name", "order", "spent"), OFFICIAL)
def test_import_reproduces_official_winners(node, name, order, spent):
    data = assen(name)
    out = node.call("gov_budget_import", payload=data)
    instance = check_import(data, scope="eu/x").instance
    assert out["voters"] == out["frozen_votes"] == len(instance.votes)
    assert out["file_sha256"] == hashlib.sha256(data).hexdigest()
    # One proposal, its close chunks and the close head: no member or vote records.
    assert out["records"] == out["chunks"] + 2
    res = node.call("gov_results", proposal=out["proposal"])
    assert res["status"] == "final"
    assert res["counted"] == out["voters"]
    assert tuple(res["winners"]) == order
    assert res["detail"]["spent"] == spent
    assert res["import"] == out["file_sha256"]
    assert res["detail"]["free_projects"] == "supported-first"
    assert res["detail"]["add1"]["stopped_at_limit"] is False
    for p in res["detail"]["projects"]:
        assert p["votes"] == int(instance.projects[p["id"]].fields["votes"])
        assert p["selected"] == bool(instance.projects[p["id"]].selected)
    with pytest.raises(LocalError, match="imported already"):
        node.call("gov_budget_import", payload=data)


def test_import_writes_no_members_and_reports_progress(node):
    out = node.call("gov_budget_import", payload=assen())
    assert node.call("gov_member_list", all=True) == []
    assert not list(node.state.replica.records("vote"))
    steps = [what for _, _, what in node.progress]
    assert steps[0] == "checking"
    assert "signing" in steps
    assert steps[-1] == "saving"
    done, total, _ = [p for p in node.progress if p[2] == "signing"][-1]
    assert done == total == out["voters"]
    shown = node.call("gov_proposal_show", proposal=out["proposal"])
    assert shown["phase"] == "closed"
    assert shown["frozen_votes"] == out["voters"]


def test_demo_keys_are_deterministic_and_are_the_signers():
    data = assen()
    checked = check_import(data, scope="eu/x")
    plan = plan_import(data, origin=b"\1" * 32, scope="eu/x", opens=1_700_000_000_000)
    digest = hashlib.sha256(data).digest()
    signers = [decode_record(v).origin for v in plan.votes]
    assert signers == [demo_identity(digest, v.voter_id).public for v in checked.instance.votes]
    assert len(set(signers)) == len(signers)
    assert plan.close["count"] == len(plan.votes) == sum(len(c["votes"]) for c in plan.closesets)


def test_a_demo_key_never_votes_in_a_live_proposal(node):
    """Anyone holding the public file derives the demo keys: they count nowhere else."""
    data = assen()
    node.call("gov_budget_import", payload=data)
    alice = member(1)
    node.call("gov_member_add", member=alice.public.hex(), pseudonym="alice")
    pid = node.call(
        "gov_proposal_create",
        key="park",
        title="Which park?",
        method="approval",
        options=[{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        closes=node.clock.t + HOUR,
    )["proposal"]
    node.clock.t += 1000
    voter = check_import(data, scope="eu/x").instance.votes[0].voter_id
    demo = demo_identity(hashlib.sha256(data).digest(), voter)
    with pytest.raises(LocalError, match="not a member"):
        node.call("gov_vote_prepare", proposal=pid, member=demo.public.hex())
    node.submit(vote(node, alice, pid, ["a"]))
    # A well-signed vote, but of nobody an admitted node vouches for: refused at the
    # edge (admission), and it would not count if a replica held it.
    refused = node.state.ingest([vote(node, demo, pid, ["b"]).raw])
    assert refused.rejected == {"not-admitted": 1}
    res = node.call("gov_results", proposal=pid)
    assert res["counted"] == 1
    assert res["winners"] == ["a"]
    node.clock.t += HOUR
    assert node.call("gov_proposal_close", proposal=pid)["frozen_votes"] == 1
    res = node.call("gov_results", proposal=pid)
    assert (res["status"], res["counted"], res["winners"]) == ("final", 1, ["a"])


def test_a_member_never_votes_in_an_imported_proposal(tmp_path, node):
    out = node.call("gov_budget_import", payload=assen())
    pid = out["proposal"]
    before = node.call("gov_results", proposal=pid)
    alice = member(1)
    node.call("gov_member_add", member=alice.public.hex(), pseudonym="alice")
    with pytest.raises(LocalError, match="closed"):
        node.call("gov_vote_prepare", proposal=pid, member=alice.public.hex())
    # A member signs a ballot back-dated into the import's one-millisecond window.
    opens = node.call("gov_proposal_show", proposal=pid)["opens"]
    ballot = vote(node, alice, pid, ["1", "8", "10"], at=opens)
    node.submit(ballot)
    after = node.call("gov_results", proposal=pid)
    assert after["winners"] == before["winners"]
    assert after["counted"] == before["counted"] == out["voters"]
    assert after["uncounted"] == 1
    # A replica that holds the proposal and that vote but not the close yet counts
    # nobody: the electorate of an import is its frozen set and nothing else.
    other = FakeDaemon(tmp_path / "o", name="other", clock=node.clock)
    try:
        proposal = [r for r in node.state.replica.records("proposal")]
        trust = ("node", "charter", "member")
        other.state.ingest([r.raw for r in node.state.replica.records() if r.kind in trust])
        other.state.ingest([proposal[0].raw, ballot.raw])
        res = other.call("gov_results", proposal=pid)
        assert res["counted"] == 0
        assert res["excluded"] == {"not-an-import-voter": 1}
        assert res["winners"] == []
        assert "no winner" in " ".join(res["notes"])
    finally:
        other.close()


def test_a_replica_of_an_import_gets_the_same_results(tmp_path, node):
    out = node.call("gov_budget_import", payload=assen())
    other = FakeDaemon(tmp_path / "o", name="other", clock=node.clock)
    try:
        result = other.state.ingest([r.raw for r in node.state.replica.records()])
        assert not result.rejected
        mine = node.call("gov_results", proposal=out["proposal"])
        theirs = other.call("gov_results", proposal=out["proposal"])
        assert theirs == mine
    finally:
        other.close()


def test_a_stranger_cannot_add_ballots_to_an_import(tmp_path, node):
    """Another node's closeset chunk under the import's key is not part of its close."""
    out = node.call("gov_budget_import", payload=assen())
    stranger = FakeDaemon(tmp_path / "s", name="stranger", clock=node.clock)
    try:
        stranger.state.ingest([r.raw for r in node.state.replica.records()])
        key = out["proposal"].split(".")[1]
        alice = member(1)
        ballot = vote(stranger, alice, out["proposal"], ["1"], at=node.clock.t)
        forged = stranger.state.prepare("closeset", f"{key}/0", {"votes": [ballot.raw]})
        stranger.state.save_and_commit(forged)
        node.state.ingest([r.raw for r in forged.records])
        res = node.call("gov_results", proposal=out["proposal"])
        assert res["counted"] == out["voters"]
        assert res["status"] == "final"
    finally:
        stranger.close()


BAD_FILES = {
    "negative budget": (
        "budget;100000",
        "budget;-5",
        PabulibError,
        "line 9: budget -5 is negative",
    ),
    "budget over 10^15": (
        "budget;100000",
        "budget;" + "9" * 16,
        PabulibError,
        "line 9: budget 9+ is more than 10",
    ),
    "cost over 10^15": ("3;7200;", "3;" + "9" * 16 + ";", PabulibError, "line 19"),
    "bad project id": (
        "num_projects;14\n",
        "",
        PabulibError,
        "line 32: option id 'bad id!'",
        ("Gedichtenroute;0\n", "Gedichtenroute;0\nbad id!;1;0;x;0\n"),
    ),
    "cost with a plus": ("3;7200;", "3;+7200;", PabulibError, r"line 19: cost '\+7200' is not"),
    "not approval": ("vote_type;approval", "vote_type;ordinal", GovernanceError, "ordinal"),
    "unknown project": ("v01;1,2,6,9,13", "v01;1,2,6,9,99", PabulibError, "line 35"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_rejected_file_writes_nothing(node, case):
    old, new, error, message, *more = BAD_FILES[case]
    text = assen().decode()
    for a, b in more:
        assert a in text
        text = text.replace(a, b, 1)
    assert old in text
    before = state_of(node)
    with pytest.raises(error, match=message):
        node.call("gov_budget_import", payload=text.replace(old, new, 1).encode())
    assert state_of(node) == before
    assert node.call("gov_proposal_list") == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "no file"),
        (b"\xff\xfe" + b"META" * 10, "not UTF-8"),
        (b"\x00" * 1000, "text before the META section"),
        (b"META\nkey;value\nbudget;5\nPROJECTS\nproject_id;cost\nVOTES\nvoter_id;vote\n", "no"),
    ],
    ids=["empty", "not-utf8", "binary", "no-projects"],
)
def test_malformed_payloads_write_nothing(node, payload, message):
    before = state_of(node)
    with pytest.raises(LocalError, match=message):
        node.call("gov_budget_import", payload=payload)
    assert state_of(node) == before


def test_a_failed_save_leaves_nothing_behind(node, monkeypatch):
    before = state_of(node)[:3]

    def broken(*args, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(node.store, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        node.call("gov_budget_import", payload=assen())
    monkeypatch.undo()
    assert state_of(node)[:3] == before
    assert node.call("gov_proposal_list") == []


def test_the_old_base64_argument_is_refused(node):
    with pytest.raises(LocalError, match="unknown argument"):
        node.call("gov_budget_import", data="TUVUQQ==")


def test_oversize_and_too_many_voters_are_refused_before_parsing(monkeypatch):
    with pytest.raises(GovernanceError, match="at most"):
        check_import(b"x" * (pbimport.MAX_FILE_BYTES + 1), scope="eu/x")
    monkeypatch.setattr(pbimport, "MAX_VOTERS", 10)
    with pytest.raises(GovernanceError, match="84 voters; at most 10"):
        check_import(assen(), scope="eu/x")


def test_names_with_separators_import_cleanly(node):
    text = assen().decode().replace("PopUp Podium", '"PopUp\u2028Po\x0cdi\x85um"', 1)
    out = node.call("gov_budget_import", payload=text.encode())
    shown = node.call("gov_proposal_show", proposal=out["proposal"])
    names = {p["id"]: p["name"] for p in shown["projects"]}
    assert names["3"] == "PopUp Po di um"


def test_frozen_ballots_are_signed_by_demo_keys_and_verify(node):
    out = node.call("gov_budget_import", payload=assen())
    key = out["proposal"].split(".")[1]
    chunk = node.state.replica.get(node.state.me, "closeset", f"{key}/0")
    assert chunk is not None
    assert chunk.body is not None
    first = decode_record(chunk.body["votes"][0])
    assert first.kind == "vote"
    assert first.key == out["proposal"]
    assert node.state.replica.get(first.origin, "member", first.origin.hex()) is None
