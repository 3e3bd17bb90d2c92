"""The report of a run: convergence, traffic, memory, and the final equality check.

`virtual_report` turns a finished `VirtualSim` into plain JSON-ready data. Everything
under ``result`` is a pure function of the scenario and seed (the same seed gives the
same ``result``); wall-clock time and memory sit under ``machine``. `final_check`
compares every node's state digest with an oracle replica that merged every record
written, and every region's balance rows on every node that follows the region with
the oracle's; `ok` is false if anything differs (the CLI then exits non-zero).
"""

from __future__ import annotations

import json
import math
import resource
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from node.crdt.replica import Replica
from node.planning import BalanceIndex
from node.planning.rollup import scope_entries
from simnet.scenario import as_dict
from simnet.virtual import VirtualSim


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max (nearest rank) of `values`, None when empty."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "n": 0}
    v = sorted(values)

    def rank(q: float) -> float:
        return _r(v[max(0, math.ceil(q * len(v)) - 1)])

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": _r(v[-1]), "n": len(v)}


def _r(x: float) -> float:
    return round(x, 6)


def final_check(sim: VirtualSim) -> dict[str, Any]:
    """Digests and regional balances of every node against an oracle replica (which
    merges every record of the run and the federation's founding records)."""
    oracle = Replica()
    index = BalanceIndex()
    oracle.add_listener(index)
    for r in [*sim.founding, *sim.written, *sim.rollups_written]:
        oracle.insert_verified(r)
    expected: dict[tuple[str, ...], bytes] = {}
    digest_mismatch = []
    honest = sim.nodes[: sim.honest]
    for node in honest:
        want = expected.get(node.partitions)
        if want is None:
            want = expected[node.partitions] = oracle.digest(node.partitions)
        if node.digest() != want:
            digest_mismatch.append(node.spec.index)
    balance_mismatch = []
    checked = 0
    for region, followers in sorted(sim.followers.items()):
        if region.count("/") != 2:
            continue
        want_rows = index.entries(region)
        for i in followers:
            node_index = sim.nodes[i].index
            if node_index is None:
                continue
            checked += 1
            if node_index.entries(region) != want_rows:
                balance_mismatch.append(i)
    federation = federation_check(sim, index) if sim.scenario.run.rollups else None
    return {
        "ok": not digest_mismatch
        and not balance_mismatch
        and (federation is None or not federation["mismatch_count"]),
        "federation": federation,
        "nodes": len(honest),
        "digest_groups": len({n.digest() for n in honest}),
        "digest_mismatch": digest_mismatch[:20],
        "digest_mismatch_count": len(digest_mismatch),
        "balance_checked_nodes": checked,
        "balance_mismatch": balance_mismatch[:20],
        "balance_mismatch_count": len(balance_mismatch),
        "records_in_oracle": len(oracle),
    }


def federation_check(sim: VirtualSim, truth: BalanceIndex) -> dict[str, Any]:
    """Every node's balance of the root, every country and every region, from its own
    records and the rollups it accepted, against the truth from all records."""
    regions = sorted({s.region for s in sim.specs})
    countries = sorted({r.rsplit("/", 1)[0] for r in regions})
    root = regions[0].split("/")[0]
    scopes = [root, *countries, *regions]
    want = {scope: truth.entries(scope) for scope in scopes}
    mismatch: list[int] = []
    checked = 0
    for i, node in enumerate(sim.nodes[: sim.honest]):
        if node.index is None:
            continue
        checked += 1
        view = node.core.rollup_view()
        for scope in scopes:
            rows, basis = scope_entries(node.index, view, node.core.region, scope)
            if rows != want[scope] or basis["status"] in ("partial", "not-held"):
                mismatch.append(i)
                break
    honest = sim.nodes[: sim.honest]
    held = [sum(1 for _ in n.replica.entries()) for n in honest]
    held_bytes = [sum(len(r.raw) for r in n.replica.entries()) for n in honest]
    rollups = [n.core.rollups.records() for n in honest if n.core.rollups]
    rollups_held = [len(rs) for rs in rollups]
    rollup_bytes_held = [sum(len(r.raw) for r in rs) for rs in rollups]
    return {
        "checked_nodes": checked,
        "scopes_per_node": len(scopes),
        "mismatch": mismatch[:20],
        "mismatch_count": len(mismatch),
        "rollups_written": sim.rollup_stats.written,
        "rollup_bytes_written": sim.rollup_stats.bytes,
        "rollups_per_region": _r(sim.rollup_stats.written / max(1, len(regions))),
        "records_held_per_node": _r(sum(held) / max(1, len(held))),
        "rollups_held_per_node": _r(sum(rollups_held) / max(1, len(rollups_held))),
        # Wire bytes of the records a node holds (of its region and the partitions above,
        # rollups among them), the part that is rollups, and the largest node.
        "bytes_held_per_node": _r(sum(held_bytes) / max(1, len(held_bytes))),
        "bytes_held_max": max(held_bytes, default=0),
        "rollup_bytes_held_per_node": _r(sum(rollup_bytes_held) / max(1, len(rollups))),
        "rollup_bytes_written_per_region": _r(sim.rollup_stats.bytes / max(1, len(regions))),
    }


def virtual_report(sim: VirtualSim) -> dict[str, Any]:
    """Everything measured in a virtual run, as JSON-ready data."""
    s, tr, net, g = sim.scenario, sim.tracker, sim.net, sim.gstats
    tracks = tr.tracks
    latencies = [t.converged - t.created for t in tracks if t.converged is not None]
    n_records = len(tracks)
    all_converged = tr.pending == 0
    last_conv = max((t.converged for t in tracks if t.converged is not None), default=0.0)
    heals = []
    for at, heal in sim.faults.partitions:
        before = [t.converged for t in tracks if t.created < heal]
        done = all(c is not None for c in before)
        after = (max(c for c in before if c is not None) - heal) if before and done else None
        heals.append(
            {
                "at": at,
                "heal": heal,
                "converged_after_heal_s": None if after is None else _r(max(0.0, after)),
                "sync_rounds": None if after is None else _r(max(0.0, after) / s.sync.interval),
            }
        )
    region_sizes = [len(f) for p, f in sim.followers.items() if p.count("/") == 2]
    mean_region = sum(region_sizes) / max(1, len(region_sizes))
    link = net.mean_latency()
    bound = (math.log(max(2.0, mean_region), s.gossip.d) + 2) * link + s.gossip.heartbeat
    total_msgs = sum(net.messages.values())
    total_bytes = sum(net.bytes.values())
    check = final_check(sim)
    lat = percentiles(latencies)
    return {
        "mode": "virtual",
        "scenario": as_dict(s),
        "result": {
            "ok": check["ok"] and all_converged,
            "nodes": s.nodes,
            "links": net.links(),
            "regions": len(region_sizes),
            "mean_region_size": _r(mean_region),
            "records": n_records,
            "records_unconverged": tr.pending,
            "virtual_seconds": _r(sim.stopped_at),
            "last_write_s": _r(sim.last_write_time),
            "convergence_s": lat,
            # node records are written at start-up, before any gossip mesh exists
            "convergence_intents_s": percentiles(
                [
                    t.converged - t.created
                    for t in tracks
                    if t.converged is not None and t.slot[1] in ("need", "capacity")
                ]
            ),
            "global_convergence_after_last_write_s": _r(max(0.0, last_conv - sim.last_write_time))
            if all_converged
            else None,
            "partitions": heals,
            "rejoins": sim.faults.rejoins,
            "rejoin_catch_up_s": percentiles(tr.catch_up_times),
            "dissemination_bound_s": {
                "formula": "(log_D(region size) + 2) * mean link latency + heartbeat",
                "bound": _r(bound),
                "mean_link_latency_s": _r(link),
                "p99_within_bound": lat["p99"] is not None and lat["p99"] <= bound,
            },
            "traffic": {
                "messages": dict(sorted(net.messages.items())),
                "bytes": dict(sorted(net.bytes.items())),
                "dropped": dict(sorted(net.dropped.items())),
                "duplicated_in_transit": net.duplicated,
                "messages_per_record": _r(total_msgs / max(1, n_records)),
                "bytes_per_record": _r(total_bytes / max(1, n_records)),
            },
            "gossip": {
                "published": g.published,
                "first_deliveries": g.first_deliveries,
                "duplicate_deliveries": g.duplicates,
                "duplicates_per_message": _r(g.duplicates / max(1, g.published)),
                "duplicates_per_delivery": _r(g.duplicates / max(1, g.first_deliveries)),
                "rejected": g.rejected,
                "ihave": g.ihave,
                "iwant": g.iwant,
                "grafts": g.grafts,
                "prunes": g.prunes,
            },
            "sync": vars(sim.sync).copy(),
            "signatures": {
                "trust_signatures": sim.cache is not None,
                "verified": None if sim.cache is None else sim.cache.verifications,
                "cache_hits": None if sim.cache is None else sim.cache.hits,
                "rejected_records": sum(n.rejected for n in sim.nodes[: sim.honest]),
            },
            "sybil": sybil_report(sim),
            "check": check,
            "timeline": timeline(tracks, sim.stopped_at),
            "convergence_cdf": cdf(latencies),
        },
        "machine": {
            "wall_setup_s": round(sim.setup_seconds, 3),
            "wall_run_s": round(sim.run_seconds, 3),
            "events": sim.sched.events_run,
            "events_per_s": round(sim.sched.events_run / max(1e-9, sim.run_seconds)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "setup_rss_mb": round(sim.setup_rss / 2**20, 1),
        },
    }


def sybil_report(sim: VirtualSim) -> dict[str, Any] | None:
    """What the strangers tried and what of it the honest nodes hold: nothing, if
    admission works (their records held / the honest records held = extra storage)."""
    if not sim.sybil_specs:
        return None
    strangers = {n.origin for n in sim.nodes[sim.honest :]}
    held = extra = 0
    refused = 0
    for node in sim.nodes[: sim.honest]:
        for r in node.replica.entries():
            held += 1
            extra += r.origin in strangers
        refused += node.refused.get("not-admitted", 0)
    return {
        "nodes": len(sim.sybil_specs),
        "records_written": sim.sybil.written,
        "refused_at_honest_nodes": refused,
        "held_by_honest_nodes": extra,
        "extra_storage": _r(extra / max(1, held - extra)),
    }


def timeline(tracks: list[Any], end: float, points: int = 200) -> list[list[float]]:
    """[time, records created, records converged] at `points` evenly spaced times."""
    created = sorted(t.created for t in tracks)
    conv = sorted(t.converged for t in tracks if t.converged is not None)
    out = []
    ci = vi = 0
    for k in range(points + 1):
        at = end * k / points
        while ci < len(created) and created[ci] <= at:
            ci += 1
        while vi < len(conv) and conv[vi] <= at:
            vi += 1
        out.append([_r(at), ci, vi])
    return out


def cdf(values: list[float], points: int = 200) -> list[list[float]]:
    """[value, fraction of values <= it] at up to `points` quantiles."""
    v = sorted(values)
    if not v:
        return []
    idx = sorted({min(len(v) - 1, round(k * (len(v) - 1) / points)) for k in range(points + 1)})
    return [[_r(v[i]), _r((i + 1) / len(v))] for i in idx]


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def render(report: dict[str, Any]) -> RenderableType:
    """A short summary table of a report (virtual or real)."""
    r = report["result"]
    t = Table(title=f"simnet {report['mode']}: {report['scenario']['name']}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("figure")
    c = r["convergence_s"]
    t.add_row("nodes / records", f"{r['nodes']} / {r['records']}")
    if c["p50"] is not None:
        t.add_row(
            "convergence p50/p90/p99/max",
            " / ".join(f"{c[k]:.3f} s" for k in ("p50", "p90", "p99", "max")),
        )
    t.add_row("after last write", _s(r.get("global_convergence_after_last_write_s")))
    for p in r.get("partitions", []):
        t.add_row(
            f"after heal at {p['heal']:.0f} s",
            f"{_s(p['converged_after_heal_s'])} ({p['sync_rounds']} sync rounds)",
        )
    if r.get("rejoins"):
        cu = r["rejoin_catch_up_s"]
        t.add_row("rejoin catch-up p50/max", f"{_s(cu['p50'])} / {_s(cu['max'])}")
    if "dissemination_bound_s" in r:
        b = r["dissemination_bound_s"]
        t.add_row(
            "p99 vs bound",
            f"{_s(c['p99'])} vs {b['bound']:.3f} s "
            f"({'within' if b['p99_within_bound'] else 'ABOVE'})",
        )
    tr = r["traffic"]
    t.add_row(
        "messages / bytes per record",
        f"{tr['messages_per_record']:.1f} / {tr['bytes_per_record']:,.0f} B",
    )
    if "gossip" in r:
        t.add_row("duplicates per gossip message", f"{r['gossip']['duplicates_per_message']:.2f}")
    m = report["machine"]
    t.add_row("wall / peak RSS", f"{m.get('wall_run_s', 0):.1f} s / {m['peak_rss_mb']:.0f} MB")
    check = r["check"]
    verdict = "[green]EQUAL[/]" if r["ok"] else "[red]NOT CONVERGED / NOT EQUAL[/]"
    t.add_row(
        "final check",
        f"{verdict}: digests {check['digest_mismatch_count']} differ, "
        f"balances {check['balance_mismatch_count']} differ",
    )
    return Group(t)


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f} s"
