"""The `planning` preset (issue 14): the plan converges within the cap, alike in every
order; an instance whose cap no range can keep fails the run; the CLI exits 1 then."""

from __future__ import annotations

from fractions import Fraction

from click.testing import CliRunner

from cli.main import cli
from simnet.planning import PlanningScenario, build, run_planning


def test_a_small_instance_converges_within_the_cap_near_the_optimum() -> None:
    report = run_planning(PlanningScenario(nodes=150, items=20, seed=3))
    assert report["ok"]
    assert report["converged"]
    assert report["within_cap"]
    assert report["alike_in_every_order"]
    assert report["rounds"] <= 10
    assert report["lp"]["ours_of_optimum"] >= 0.95
    assert report["lp"]["ours_of_optimum"] <= 1.0001  # the LP is the optimum
    for b in report["budgets"]:
        assert b["use_kg"] <= b["share_kg"]


def test_a_cap_the_ranges_cannot_keep_fails_the_run() -> None:
    report = run_planning(PlanningScenario(nodes=150, items=20, headroom=Fraction(1, 3)))
    assert not report["within_cap"]
    assert not report["converged"]
    assert not report["ok"]


def test_the_instance_is_seeded() -> None:
    assert build(PlanningScenario(nodes=60, seed=5)) == build(PlanningScenario(nodes=60, seed=5))
    assert build(PlanningScenario(nodes=60, seed=5)) != build(PlanningScenario(nodes=60, seed=6))


def test_the_preset_runs_from_the_cli(tmp_path) -> None:
    runner = CliRunner()
    chart = tmp_path / "rounds.png"
    ok = runner.invoke(
        cli,
        [
            "simnet",
            "run",
            "--preset",
            "planning",
            "--nodes",
            "100",
            "--seed",
            "2",
            "--chart",
            str(chart),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert chart.read_bytes()[:4] == b"\x89PNG"
    # an instance no plan within the shares can serve (the LP finds none either)
    bad = runner.invoke(
        cli, ["simnet", "run", "--preset", "planning", "--nodes", "120", "--seed", "14"]
    )
    assert bad.exit_code == 1
    assert "False" in bad.output
    real = runner.invoke(cli, ["simnet", "run", "--preset", "planning", "--mode", "real"])
    assert real.exit_code == 1
    assert "virtual mode only" in real.output
