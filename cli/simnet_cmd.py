"""`allmende simnet`: run many nodes on one machine (thin: parse, run, render)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from simnet import scenario as sc

SCENARIO_HELP = """Run a simulated network and report convergence.

\b
Modes:
  virtual  N nodes in this process on virtual time (default; thousands of nodes).
  real     N daemons on 127.0.0.1 with real libp2p, in a few shard processes.

\b
Presets: smoke (30 nodes), partition (split at 20 s, heal at 60 s),
churn (a fifth of the nodes leave for 30 s), scale (1,000 nodes, 50,000 records),
federation (2,000 nodes in 4 countries and 80 regions, rollups checked on every node),
sybil (1,000 honest nodes and 4,000 strangers nobody admitted),
country (18,000 nodes in 400 regions of 45, 50 records each, rollups on, a staggered
start; --nodes N keeps regions of 45 and 50 records per node),
planning (rounds over 1,000 communes and cooperatives, 50 items, a CO2 cap; virtual
only; compared with an LP when scipy is installed).

\b
A --scenario FILE.toml overrides a preset (or the defaults); its keys:
  name, seed, nodes, duration
  [workload] federation countries regions cooperatives records write_window burst
             zipf periods updates withdrawals region_size records_per_node
  [network]  latency_ms latency_sigma jitter_sigma bandwidth_mbps loss duplicate
             peers cross_region start_window
  [gossip]   d d_lo d_hi d_lazy heartbeat history_length history_gossip
  [sync]     interval on_connect
  [[partition]] at heal groups
  [churn]    fraction start end downtime
  [sybil]    nodes records members invites
  [run]      trust_signatures ("on"|"off"|"auto") balance_index ("all"|"sample")
             rollups rollup_every
See the simnet.scenario module docstring for defaults and meanings.

Exits 1 if the final state is not converged or not equal on every node.
"""


@click.group(name="simnet")
def simnet() -> None:
    """Many nodes on one machine: virtual (simulated) or real (loopback daemons)."""


@simnet.command("run", help=SCENARIO_HELP)
@click.option(
    "--mode",
    type=click.Choice(["virtual", "real"]),
    default="virtual",
    show_default=True,
    help="Simulated in one process, or real daemons.",
)
@click.option(
    "--preset",
    type=click.Choice((*sc.PRESETS, "planning")),
    default=None,
    help="A named scenario (default: smoke, or the file's settings).",
)
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML scenario file.",
)
@click.option(
    "--nodes",
    type=click.IntRange(2, 20_000),
    default=None,
    help="Number of nodes (default: the scenario's; real mode: 10).",
)
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same run).")
@click.option(
    "--trust-signatures",
    type=click.Choice(["on", "off", "auto"]),
    default=None,
    help="Verify each distinct record once per run, shared by all virtual "
    "nodes (auto: on from 100 nodes). Forgeries are still rejected.",
)
@click.option(
    "--balance-index",
    type=click.Choice(["all", "sample"]),
    default=None,
    help="Keep a BalanceIndex on every virtual node, or on 3 per region.",
)
@click.option(
    "--shards",
    type=click.IntRange(1, 64),
    default=None,
    help="Real mode: OS processes to spread the daemons over (default ~nodes/5).",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the full report as JSON to this file ('-': stdout).",
)
@click.option(
    "--chart",
    "chart_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a PNG chart (needs matplotlib).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(
    mode: str,
    preset: str | None,
    scenario_file: Path | None,
    nodes: int | None,
    seed: int | None,
    trust_signatures: str | None,
    balance_index: str | None,
    shards: int | None,
    json_file: Path | None,
    chart_file: Path | None,
    quiet: bool,
) -> None:
    from simnet.chart import MISSING, chart_available, write_chart
    from simnet.report import render, write_json

    if chart_file is not None and not chart_available():
        raise click.ClickException(f"--chart: {MISSING}")
    console = Console(stderr=True)
    if preset == "planning":
        _run_planning(mode, nodes, seed, json_file, chart_file, console)
        return
    scenario = _scenario(preset, scenario_file)
    if mode == "real" and nodes is None and scenario_file is None:
        nodes = 10
    scenario = scenario.with_overrides(
        nodes=nodes, seed=seed, trust=trust_signatures, balance=balance_index
    )
    report = (
        _run_virtual(scenario, console, quiet)
        if mode == "virtual"
        else _run_real(scenario, console, quiet, shards)
    )
    console.print(render(report))
    if json_file is not None:
        if str(json_file) == "-":
            click.echo(json.dumps(report, indent=2, sort_keys=True))
        else:
            write_json(report, json_file)
    if chart_file is not None:
        console.print(write_chart(report, chart_file))
    if not report["result"]["ok"]:
        sys.exit(1)


def _scenario(preset: str | None, scenario_file: Path | None) -> sc.Scenario:
    if scenario_file is not None:
        return sc.load_toml(scenario_file)
    return sc.preset(preset or "smoke")


def _run_virtual(scenario: sc.Scenario, console: Console, quiet: bool) -> dict[str, Any]:
    from simnet.progress import live_progress
    from simnet.report import virtual_report
    from simnet.virtual import VirtualSim

    if quiet:
        return virtual_report(VirtualSim(scenario).run())
    with live_progress(console, scenario.duration) as update:
        sim = VirtualSim(scenario, progress=update).run()
    return virtual_report(sim)


def _run_real(
    scenario: sc.Scenario, console: Console, quiet: bool, shards: int | None
) -> dict[str, Any]:
    from simnet.real import run_real

    return run_real(scenario, shards=shards, console=None if quiet else console)


def _run_planning(
    mode: str,
    nodes: int | None,
    seed: int | None,
    json_file: Path | None,
    chart_file: Path | None,
    console: Console,
) -> None:
    """The planning preset (`simnet.planning`): exits 1 unless the plan converged within
    the cap, alike in every order."""
    from dataclasses import replace

    from cli.plan_cmd import write_rounds_chart
    from node.errors import LocalError
    from simnet.planning import PlanningScenario, render_planning, run_planning

    if mode != "virtual":
        raise LocalError("the planning preset runs in virtual mode only")
    s = PlanningScenario()
    s = replace(s, nodes=nodes or s.nodes, seed=s.seed if seed is None else seed)
    report = run_planning(s)
    console.print(render_planning(report))
    if json_file is not None:
        text = json.dumps(report, indent=2, sort_keys=True)
        if str(json_file) == "-":
            click.echo(text)
        else:
            json_file.write_text(text + "\n")
    if chart_file is not None:
        data = {"scope": "the planning preset", "rounds": report["history"]}
        console.print(write_rounds_chart(data, chart_file))
    if not report["ok"]:
        sys.exit(1)
