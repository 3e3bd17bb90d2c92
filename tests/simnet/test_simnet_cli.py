"""`allmende simnet`: help documents the scenario keys; exit code follows the check."""

import json

import pytest
from click.testing import CliRunner

from cli.main import cli
from node.errors import LocalError
from simnet.scenario import load_toml


def test_help_lists_presets_and_toml_keys():
    out = CliRunner().invoke(cli, ["simnet", "run", "--help"]).output
    for word in [
        "smoke",
        "partition",
        "churn",
        "scale",
        "country",
        "records_per_node",
        "[workload]",
        "[[partition]]",
        "trust_signatures",
        "--json",
        "--chart",
        "--mode",
    ]:
        assert word in out


def test_run_from_toml_writes_json(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        'name = "tiny"\nnodes = 12\nseed = 3\n[workload]\nregions = 2\n'
        "records = 60\nwrite_window = 5.0\n[[partition]]\nat = 2.0\nheal = 6.0\n"
    )
    res = CliRunner().invoke(
        cli, ["simnet", "run", "--scenario", str(f), "--quiet", "--json", str(tmp_path / "r.json")]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["scenario"]["name"] == "tiny"
    assert report["result"]["ok"]
    assert report["result"]["partitions"][0]["heal"] == 6.0


def test_unknown_toml_key_is_a_clear_error(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[network]\nlatency = 3\n")
    with pytest.raises(LocalError, match=r"unknown key.*latency"):
        load_toml(f)


def test_chart_is_a_png(tmp_path):
    """`--chart` draws the convergence CDF and timeline (matplotlib is in the test extra)."""
    from click.testing import CliRunner

    from cli.main import cli

    chart = tmp_path / "run.png"
    result = CliRunner().invoke(
        cli,
        ["simnet", "run", "--preset", "smoke", "--nodes", "12", "--quiet", "--chart", str(chart)],
    )
    assert result.exit_code == 0, result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 10_000
