"""`budget import`: a pabulib file becomes members, signed votes and a close whose
results equal the official Assen outcome."""

from __future__ import annotations

import base64

import pytest
from gov_helpers import FakeDaemon
from test_governance_official import DATA, OFFICIAL

from node.errors import LocalError
from node.governance.errors import PabulibError
from node.governance.pbimport import plan_import


@pytest.mark.parametrize(("name", "order", "spent"), OFFICIAL)
def test_import_reproduces_official_winners(tmp_path, name, order, spent):
    d = FakeDaemon(tmp_path / "n")
    try:
        data = (DATA / name).read_bytes()
        out = d.call("gov_budget_import", data=base64.b64encode(data).decode())
        assert out["votes"] == out["frozen_votes"] == out["members"]
        res = d.call("gov_results", proposal=out["proposal"])
        assert res["status"] == "final"
        assert res["counted"] == out["votes"]
        assert tuple(res["winners"]) == order
        assert res["detail"]["spent"] == spent
        instance = plan_import(data).instance
        for p in res["detail"]["projects"]:
            assert p["votes"] == int(instance.projects[p["id"]].fields["votes"])
            assert p["selected"] == bool(instance.projects[p["id"]].selected)
        with pytest.raises(LocalError, match="imported already"):
            d.call("gov_budget_import", data=base64.b64encode(data).decode())
    finally:
        d.close()


def test_import_keys_are_deterministic():
    data = (DATA / OFFICIAL[0][0]).read_bytes()
    a, b = plan_import(data), plan_import(data)
    assert [m[0].public for m in a.members] == [m[0].public for m in b.members]
    assert len({m[0].public for m in a.members}) == len(a.members)


def test_malformed_file_names_the_line():
    text = (DATA / OFFICIAL[0][0]).read_text().replace("3;7200;", "3;seven;", 1)
    with pytest.raises(PabulibError, match=r"line \d+"):
        plan_import(text.encode())
