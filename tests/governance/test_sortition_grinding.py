"""Draws that cannot be ground: once the first secret is revealed, nothing the seed or
the lottery depends on can change and still verify.

Each test plays one attack of a dishonest organiser or committer after the reveals
(change the beacon, committers, quotas or size and draw again; swap a commit+reveal
pair) and asserts that `assembly verify` fails on every node, naming why. Honest
nodes refuse the steps an attack would need from them (a second reveal, a late
commit). A member who edits their features after the freeze does not spoil a past
draw: it is re-run on the frozen pool.
"""

from __future__ import annotations

import hashlib

import pytest
from test_governance_sortition import nodes, run_draw, setup_assembly, sync  # noqa: F401

from node.errors import LocalError
from node.governance import sortition
from node.governance.errors import GovernanceError
from node.governance.freeze import freeze_hash
from node.governance.ledger import Ledger


def verify_all(ds, aid):
    return [d.call("gov_assembly_verify", assembly=aid) for d in ds]


def failed_everywhere(ds, aid, *needles):
    sync(ds)
    for v in verify_all(ds, aid):
        assert not v["ok"]
        text = " | ".join(v["failures"])
        for n in needles:
            assert n in text, text
    return text


def assembly_body(d):
    return dict(d.state.replica.get(d.state.me, "assembly", "climate").body)


def reseal_and_redraw(ds, aid):
    """The organiser's grinding step: a new seal over the changed assembly, its own
    reveal renamed, and a panel drawn from what it now holds."""
    a = ds[0]
    ledger = Ledger(a.state.replica.records())
    ab = assembly_body(a)
    sb = {
        **a.state.replica.get(a.state.me, "seal", "climate").body,
        "assembly": sortition.params_hash(ab),
        "commits": {
            c: ledger.live(bytes.fromhex(c), "commit", aid).body["hash"]
            for c in ab["committers"]
            if ledger.live(bytes.fromhex(c), "commit", aid) is not None
        },
    }
    a.state.write("seal", "climate", sb)
    mine = a.state.replica.get(a.state.me, "reveal", aid).body
    a.state.write("reveal", aid, {**mine, "seal": sortition.seal_hash(aid, sb)})
    sync(ds)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beacon", "ff" * 32),
        ("size", 2),
        ("quotas", {"age": {"young": [2, 2], "old": [1, 1]}}),
        ("title", "Climate (final)"),
    ],
)
def test_changing_the_assembly_after_the_reveals_fails_verify(nodes, field, value):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    assert all(v["ok"] for v in verify_all(nodes, aid))
    a = nodes[0]
    a.state.write("assembly", "climate", {**assembly_body(a), field: value})
    failed_everywhere(nodes, aid, "changed after the seal")
    with pytest.raises(GovernanceError, match="changed after the seal"):
        sortition.draw(Ledger(a.state.replica.records()), aid)
    # Re-sealing over the change does not help: the honest reveals name the old seal,
    # and an honest committer refuses to reveal for the new one.
    reseal_and_redraw(nodes, aid)
    failed_everywhere(nodes, aid, "reveal names another seal")
    for d in nodes[1:]:
        with pytest.raises(LocalError, match="revealed for another seal"):
            d.call("gov_assembly_reveal", assembly=aid)


def test_changing_the_committers_after_the_reveals_fails_verify(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    a = nodes[0]
    ab = assembly_body(a)
    swapped = [ab["committers"][0], ab["committers"][1], "ee" * 32]
    a.state.write("assembly", "climate", {**ab, "committers": swapped})
    failed_everywhere(nodes, aid, "changed after the seal")
    reseal_and_redraw(nodes, aid)
    text = failed_everywhere(nodes, aid)
    assert "no commit" in text or "another seal" in text


def test_a_committer_cannot_swap_its_commit_and_reveal_after_the_draw(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    c = nodes[2]
    seal = c.state.replica.get(nodes[0].state.me, "reveal", aid).body["seal"]
    other = hashlib.sha256(b"a secret chosen after seeing the others").digest()
    pool = c.state.replica.get(c.state.me, "commit", aid).body["pool"]
    c.state.write("commit", aid, {"hash": hashlib.sha256(other).hexdigest(), "pool": pool})
    c.state.write("reveal", aid, {"secret": other.hex(), "seal": seal})
    failed_everywhere(nodes, aid, "commit changed after the seal")
    with pytest.raises(GovernanceError, match="commit changed after the seal"):
        sortition.draw(Ledger(c.state.replica.records()), aid)


def test_a_commit_rewritten_after_its_reveal_is_refused(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    c = nodes[2]
    same = c.state.replica.get(c.state.me, "commit", aid).body
    c.state.write("commit", aid, dict(same))  # same content, newer than the reveal
    failed_everywhere(nodes, aid, "commit rewritten after its reveal")


def test_the_pool_cannot_change_after_the_seal(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    a = nodes[0]
    chunk = a.state.replica.get(a.state.me, "poolset", "climate/0")
    entries = chunk.body["members"][:-1]
    a.state.write("poolset", "climate/0", {"members": entries})
    a.state.write(
        "pool", "climate", {"chunks": 1, "count": len(entries), "hash": freeze_hash(entries)}
    )
    failed_everywhere(nodes, aid, "the pool changed after the seal")
    # rewriting the same pool after the seal is refused too
    a.state.write("poolset", "climate/0", {"members": chunk.body["members"]})
    a.state.write(
        "pool",
        "climate",
        {
            "chunks": 1,
            "count": len(chunk.body["members"]),
            "hash": freeze_hash(chunk.body["members"]),
        },
    )
    failed_everywhere(nodes, aid, "pool records were rewritten after the seal")


def test_an_assembly_rewritten_unchanged_after_the_seal_is_refused(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    run_draw(nodes, aid)
    a = nodes[0]
    a.state.write("assembly", "climate", assembly_body(a))
    failed_everywhere(nodes, aid, "assembly record was rewritten after the seal")


def test_a_past_draw_verifies_after_a_drawn_member_edits_features(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    drawn = run_draw(nodes, aid)
    a = nodes[0]
    drawn_member = drawn["panel"][0]
    a.call("gov_member_add", member=drawn_member, pseudonym="p-new", features={"age": "old"})
    a.call("gov_member_add", member=drawn["panel"][1], pseudonym="q", features={"age": "young"})
    sync(nodes)
    for v in verify_all(nodes, aid):
        assert v["ok"], v["failures"]
        assert v["draw"]["panel"] == drawn["panel"]
        pool_check = next(c for c in v["checks"] if c["check"] == "pool")
        assert "changed their features since the freeze" in pool_check["detail"]


def test_honest_steps_refuse_out_of_order(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    sync(nodes)
    a, b, _c = nodes
    with pytest.raises(LocalError, match="waiting for the organiser's seal"):
        b.call("gov_assembly_reveal", assembly=aid)
    with pytest.raises(LocalError, match="only the node that created"):
        b.call("gov_assembly_seal", assembly=aid)
    # a reveal written before the seal (a dishonest committer) blocks sealing
    b.state.write("reveal", aid, {"secret": "00" * 32, "seal": "00" * 32})
    sync(nodes)
    with pytest.raises(LocalError, match="revealed before the seal"):
        a.call("gov_assembly_seal", assembly=aid)
    b.state.write("reveal", aid, None)
    sync(nodes)
    a.call("gov_assembly_seal", assembly=aid)
    sync(nodes)
    with pytest.raises(LocalError, match="sealed already"):
        a.call("gov_assembly_seal", assembly=aid)
    with pytest.raises(LocalError, match="sealed already"):
        b.call("gov_assembly_commit", assembly=aid)


def test_sealing_needs_every_commit(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    c = nodes[2]
    c.state.write("commit", aid, None)
    sync(nodes)
    with pytest.raises(LocalError, match="no commit from"):
        nodes[0].call("gov_assembly_seal", assembly=aid)


def test_a_stranger_seal_is_ignored(nodes):  # noqa: F811
    aid, _ = setup_assembly(nodes)
    sync(nodes)
    b = nodes[1]
    ledger = Ledger(b.state.replica.records())
    # b (a committer, not the organiser) forges a seal under the assembly's key
    b.state.write("seal", "climate", sortition.seal_body(ledger, aid))
    sync(nodes)
    with pytest.raises(LocalError, match="waiting for the organiser's seal"):
        b.call("gov_assembly_reveal", assembly=aid)
    with pytest.raises(GovernanceError, match="not sealed"):
        sortition.draw(Ledger(b.state.replica.records()), aid)


def test_a_pool_with_false_features_is_refused_by_the_committers(nodes):  # noqa: F811
    a = nodes[0]
    aid, _ = setup_assembly(nodes)
    sync(nodes)
    chunk = a.state.replica.get(a.state.me, "poolset", "climate/0").body["members"]
    lied = [[k, {**f, "age": "young"}] for k, f in chunk]
    a.state.write("poolset", "climate/0", {"members": lied})
    a.state.write("pool", "climate", {"chunks": 1, "count": len(lied), "hash": freeze_hash(lied)})
    sync(nodes)
    with pytest.raises(LocalError, match="features in the pool differ"):
        nodes[1].call("gov_assembly_commit", assembly=aid)
