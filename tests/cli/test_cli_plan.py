"""`allmende plan` and `allmende cap`: the renderings (pure) of real op output, the round
chart, and clear errors."""

from __future__ import annotations

from io import StringIO

import pytest
from click.testing import CliRunner
from governance.gov_helpers import Clock, FakeDaemon
from rich.console import Console

from cli import plan_cmd
from cli.main import cli

REGION = "eu/nl/drenthe"


def text(renderable) -> str:
    out = StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


@pytest.fixture
def pair(tmp_path):
    clock = Clock()
    a = FakeDaemon(tmp_path / "a", name="a", scope=f"{REGION}/a", clock=clock)
    b = FakeDaemon(tmp_path / "b", name="b", scope=f"{REGION}/b", clock=clock)
    a.call("post", kind="need", item="potatoes", qty="100", unit="kg", period="2027",
           priority="high", min="60")  # fmt: skip
    b.call("post", kind="capacity", item="potatoes", qty="50", unit="kg", period="2027",
           max="80")  # fmt: skip
    b.call("post", kind="capacity", item="milk", qty="10", unit="l", period="2027", min="5")
    raws = [r.raw for d in (a, b) for r in d.state.replica.records()]
    a.state.ingest(raws)
    b.state.ingest(raws)
    yield a, b
    a.close()
    b.close()


def test_status_and_rounds_render(pair):
    a, _ = pair
    out = text(plan_cmd.render_status(a.call("plan_status")))
    assert f"Plan of {REGION} (round 0): not converged" in out
    assert "100 kg" in out
    assert "-50" in out  # potatoes: 50 short
    assert "1 revision(s) within range due" in out
    rounds = a.call("plan_rounds")
    out = text(plan_cmd.render_rounds(rounds))
    assert "converged" in out
    assert rounds["converged"]
    assert len(rounds["rounds"]) == 2
    first = {g["item"]: g for g in rounds["rounds"][0]["groups"]}
    assert first["milk"]["surplus"] == "10"
    # a surplus moves too: milk capacity goes down to its min, 5
    last = {g["item"]: g for g in rounds["rounds"][-1]["groups"]}
    assert last["milk"]["surplus"] == "5"
    assert last["potatoes"]["within"]


def test_review_and_caps_render_when_empty(pair):
    a, _ = pair
    assert "Nothing waits for approval" in text(plan_cmd.render_review(a.call("plan_review")))
    assert "No cap in force" in text(plan_cmd.render_caps(a.call("cap_list")))
    row = {
        "id": "n1", "kind": "need", "item": "wheat", "period": "2027", "unit": "kg",
        "qty": "90", "min": "90", "max": "100", "suggested": "70", "withdraw": False,
    }  # fmt: skip
    out = text(plan_cmd.render_review([row]))
    assert "90..100" in out
    assert "70 kg" in out


def test_the_round_chart_is_drawn(pair, tmp_path):
    a, _ = pair
    path = tmp_path / "rounds.png"
    msg = plan_cmd.write_rounds_chart(a.call("plan_rounds"), path)
    assert msg == f"chart written to {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_malformed_child_is_refused_before_any_call(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["--data-dir", str(tmp_path), "cap", "propose", "co2-27", "co2", "40", "t",
         "--period", "2027", "--title", "CO2", "--child", "eu/de"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "write SCOPE=RESIDENTS" in result.output


def test_substitutions_render_in_status_and_review(tmp_path):
    """A need 50 kg short whose range closes 10 of it: rice (1.25 kg per kg) serves
    the rest from its surplus; status lists it, review shows the need's part."""
    clock = Clock()
    a = FakeDaemon(tmp_path / "a", name="a", scope=f"{REGION}/a", clock=clock)
    try:
        a.call("post", kind="need", item="potatoes", qty="100", unit="kg", period="2027",
               priority="high", min="90", subs=["rice:1.25"])  # fmt: skip
        a.call("post", kind="capacity", item="potatoes", qty="50", unit="kg", period="2027")
        a.call("post", kind="capacity", item="rice", qty="100", unit="kg", period="2027")
        data = a.call("plan_status")
        out = text(plan_cmd.render_status(data))
        assert "Served by substitutes" in out
        assert "40 kg" in out  # the part of the potatoes need
        assert "50 kg" in out  # of rice: 40 * 1.25
        assert "2 revision(s) within range due" in out
        row = {**data["substitutions"][0]}
        review = text(plan_cmd.render_review([{
            "id": "n1", "kind": "need", "item": "potatoes", "period": "2027", "unit": "kg",
            "qty": "100", "min": "90", "max": "100", "suggested": "40", "withdraw": False,
            "subbed": [[row["substitute"], row["part"]]],
        }]))  # fmt: skip
        assert "40 kg by rice" in review
    finally:
        a.close()


def test_need_list_says_what_substitutes_serve():
    from cli import render

    base = {"origin": "aa", "origin_name": "a", "scope": "eu/a", "withdrawn": False,
            "kind": "need", "unit": "kg", "period": "2027", "priority": "high"}  # fmt: skip
    rows = [
        {**base, "id": "n1", "item": "potatoes", "qty": "40", "subbed": [["rice", "60"]]},
        {**base, "id": "n1~rice", "item": "rice", "qty": "48", "replaces": ["n1", "0.8"]},
    ]
    out = text(render.records(rows, "need"))
    assert "60 kg served by rice" in out
    assert "serves part of need n1 at 0.8 kg per unit of it" in out
