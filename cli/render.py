"""Pure rendering: plain data in, rich renderables out (printed by an injected Console)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def status(s: dict[str, Any]) -> RenderableType:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(s["rejected"].items())) or "none"
    for label, value in [
        ("node", f"{s['name']} ({s['kind']})"),
        ("node id", s["node_id"]),
        ("peer id", s["peer_id"]),
        ("scope", s["scope"]),
        ("follows", ", ".join(s["partitions"])),
        ("listening", "\n".join(s["listen"]) or "-"),
        ("peers", str(s["peers"])),
        ("records", f"{s['records']} from {s['origins']} origins ({s['own_records']} written here)"),
        ("sync rounds", f"{s['sync']['ok']} ok, {s['sync']['failed']} failed"),
        ("gossip", f"{s['gossip']['messages_in']} in, {s['gossip']['messages_out']} out"),
        ("rejected", rejected),
        ("flagged", ", ".join(o[:12] for o in s["flagged_origins"]) or "none"),
        ("state digest", s["digest"][:16]),
    ]:
        t.add_row(label, value)
    return t


def records(rows: list[dict[str, Any]], kind: str) -> RenderableType:
    plural = {"need": "needs", "capacity": "capacities"}.get(kind, kind + "s")
    if not rows:
        return Text(f"No {plural}.", style="dim")
    t = Table(title=plural.capitalize())
    t.add_column("id")
    t.add_column("item")
    t.add_column("quantity", justify="right")
    t.add_column("period")
    if kind == "need":
        t.add_column("priority")
    t.add_column("scope")
    t.add_column("by")
    t.add_column("note")
    for r in rows:
        if r["withdrawn"]:
            cells = [r["id"], "(withdrawn)", "", "", *([""] if kind == "need" else [])]
        else:
            cells = [r["id"], r["item"], f"{r['qty']} {r['unit']}", r["period"],
                     *([r.get("priority", "")] if kind == "need" else [])]
        t.add_row(*cells, r["scope"], r.get("origin_name") or r["origin"][:12],
                  r.get("note") or "")
    return t


def items(rows: list[dict[str, Any]]) -> RenderableType:
    t = Table(title="Catalog")
    for col in ("id", "name", "dimension", "unit"):
        t.add_column(col)
    for i in rows:
        t.add_row(i["id"], i["name"], i["dimension"], i["unit"])
    return t


def balance(result: dict[str, Any]) -> RenderableType:
    levels = result["levels"]
    if not any(level["rows"] for level in levels):
        return Text(f"No needs or capacities under {result['scope']} yet.", style="dim")
    t = Table(title=f"Balance of {result['scope']}")
    t.add_column("scope")
    t.add_column("item")
    t.add_column("period")
    t.add_column("needs", justify="right")
    t.add_column("capacities", justify="right")
    t.add_column("balance", justify="right")
    t.add_column("coverage", justify="right")
    t.add_column("nodes", justify="right")
    for level in levels:
        for r in level["rows"]:
            deficit = float(r["balance"]) < 0
            style = "bold red" if deficit else None
            coverage = "-" if r["coverage"] is None else f"{float(r['coverage']):.0%}"
            mark = " DEFICIT" if deficit else ""
            t.add_row(
                "  " * level["level"] + level["scope"],
                r["item"],
                r["period"],
                f"{r['needs']} {r['unit']}",
                f"{r['capacities']} {r['unit']}",
                Text(f"{r['balance']} {r['unit']}{mark}", style=style or ""),
                Text(coverage, style=style or ""),
                str(r["nodes"]),
            )
    return t


def peers(p: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = []
    t = Table(title=f"Connected peers ({len(p['connected'])})")
    t.add_column("peer id")
    for peer in p["connected"]:
        t.add_row(peer)
    parts.append(t)
    if p["bootstrap"]:
        parts.append(Text("Bootstrap: " + ", ".join(p["bootstrap"])))
    parts.append(Text("Listening: " + ", ".join(p["listen"])))
    return Group(*parts)


def written(r: dict[str, Any]) -> RenderableType:
    if r["withdrawn"]:
        return Text(f"Withdrew {r['kind']} {r['id']}.")
    if r["kind"] == "item":
        return Text(f"Added item {r['id']} ({r['name']}, {r['dimension']} in {r['unit']}).")
    return Text(f"Saved {r['kind']} {r['id']}: {r['qty']} {r['unit']} of {r['item']} "
                f"for {r['period']}.")
