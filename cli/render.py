"""Pure rendering: plain data in, rich renderables out (printed by an injected Console).

Every function takes the JSON the daemon answers (the same data `--json` prints) and
returns a renderable; nothing here reads the clock, the terminal or the network, so
tests render into `Console(file=StringIO(), width=100, color_system=None)`.

Layout rules, so output reads well at 80-100 columns and without colour:
- scopes and ids are never cut off (`overflow="fold"` wraps them instead);
- quantities are right-aligned numbers with the unit in a column of its own;
- a deficit is red *and* says ``DEFICIT`` in words, so it survives `NO_COLOR`, pipes
  and screen readers;
- the balance drill-down is one section per scope, its header indented by depth,
  rather than one wide table whose scope column would have to be truncated.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from cli.basis import basis_text

DEFICIT = "DEFICIT"
INDENT = 2  # columns per drill-down level
MIN_ITEM_WIDTH = 8  # on a narrow console, item ids wrap down to this width

_PLURAL = {"need": "needs", "capacity": "capacities"}


def _table() -> Table:
    # One table style for the whole CLI: a rule under the header, no outer frame
    # (frames cost 4 columns and make copy-paste noisy).
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)


def _titled(title: str, table: Table) -> Group:
    # A title line of its own: rich would wrap a table title to the table's width.
    return Group(Text(title, style="bold"), table)


def _empty(message: str) -> Text:
    return Text(message, style="dim")


def _sign(value: str) -> int:
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError):
        return 0
    return (d > 0) - (d < 0)


# --- status and peers ------------------------------------------------------------


def status(s: dict[str, Any]) -> RenderableType:
    """`allmende status`: who this node is, whom it talks to, what it holds."""
    t = Table(
        title=f"{s['name']} ({s['kind']})",
        title_justify="left",
        title_style="bold",
        show_header=False,
        box=None,
        pad_edge=False,
    )
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(s["rejected"].items())) or "none"
    gossip = s["gossip"]
    rows = [
        ("scope", s["scope"]),
        ("follows", ", ".join(s["partitions"])),
        ("node id", s["node_id"]),
        ("peer id", s["peer_id"]),
        ("peers", f"{s['peers']} connected"),
        (
            "records",
            f"{s['records']} from {s['origins']} "
            f"{'origin' if s['origins'] == 1 else 'origins'} "
            f"({s['own_records']} of them this node's; "
            f"{s.get('writes_since_start', 0)} written since start)",
        ),
        ("sync rounds", f"{s['sync']['ok']} ok, {s['sync']['failed']} failed"),
        (
            "gossip",
            f"{gossip['messages_in']} messages in, {gossip['messages_out']} out, "
            f"{gossip.get('records_accepted', 0)} records accepted",
        ),
        ("rejected", rejected),
        ("flagged", ", ".join(o[:12] for o in s["flagged_origins"]) or "none"),
        ("state digest", s["digest"][:16]),
    ]
    if "uptime_s" in s:
        rows.append(("uptime", _duration(float(s["uptime_s"]))))
    for label, value in rows:
        t.add_row(
            label, Text(value, style="red") if label == "flagged" and value != "none" else value
        )
    return t


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d}d"] if d else []
    if d or h:
        parts.append(f"{h}h")
    if d or h or m:
        parts.append(f"{m}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def peers(p: dict[str, Any]) -> RenderableType:
    """`allmende peers`: connected peers (with their nodes' name, kind and scope, once
    their node records are here) and configured bootstrap peers. The node's own
    addresses are `addresses` (printed unwrapped, for copying)."""
    parts: list[RenderableType] = []
    nodes = p.get("nodes") or [{"peer_id": c} for c in p["connected"]]
    if nodes:
        t = _table()
        t.add_column("peer id", overflow="fold")
        t.add_column("name", overflow="fold")
        t.add_column("kind")
        t.add_column("scope", overflow="fold")
        for n in nodes:
            t.add_row(n["peer_id"], n.get("name") or "?", n.get("kind") or "", n.get("scope") or "")
        parts.append(_titled(f"Connected peers ({len(nodes)})", t))
    else:
        parts.append(_empty("No peers connected. Connect one with: allmende peers add ADDR"))
    parts.append(_labelled("Bootstrap", p["bootstrap"] or ["none"]))
    return Group(*parts)


def addresses(addrs: list[str]) -> list[str]:
    """This node's dialable addresses, one per line, to print without wrapping (a
    peer id cut in two cannot be copied)."""
    if not addrs:
        return ["Listening: nowhere a peer could dial"]
    return ["Listening (give a peer one of these for `allmende peers add`):", *addrs]


def nodes(rows: list[dict[str, Any]], scope: str) -> RenderableType:
    """`allmende nodes`: the nodes this node knows under a scope."""
    if not rows:
        return _empty(f"No node under {scope} is known here.")
    t = _table()
    t.add_column("name", overflow="fold")
    t.add_column("kind")
    t.add_column("scope", overflow="fold")
    t.add_column("last seen (UTC)")
    t.add_column("records", justify="right")
    t.add_column("counts")
    t.add_column("node id", overflow="fold")
    for n in rows:
        seen = datetime.datetime.fromtimestamp(n["last_seen_ms"] / 1000, datetime.UTC)
        t.add_row(
            (n["name"] or "?") + (" (this node)" if n.get("this_node") else ""),
            n["kind"] or "",
            n["scope"] or "",
            seen.strftime("%Y-%m-%d %H:%M"),
            str(n["records"]),
            "yes" if n["admitted"] else "no",
            n["node_id"][:12],
        )
    return _titled(f"Nodes under {scope} ({len(rows)})", t)


def _labelled(label: str, lines: Iterable[str]) -> Table:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    t.add_row(label, "\n".join(lines))
    return t


# --- catalog and records -----------------------------------------------------------


def items(rows: list[dict[str, Any]]) -> RenderableType:
    """`allmende item list`: the catalog."""
    if not rows:
        return _empty("The catalog is empty.")
    t = _table()
    t.add_column("id", overflow="fold")
    t.add_column("name")
    t.add_column("dimension")
    t.add_column("unit")
    for i in rows:
        t.add_row(i["id"], i["name"], i["dimension"], i["unit"])
    return _titled(f"Catalog ({len(rows)} items)", t)


def records(rows: list[dict[str, Any]], kind: str) -> RenderableType:
    """`allmende need list` / `capacity list`; withdrawn records are dimmed.

    Rows are grouped by node and scope, each group under a header line, so that long
    scopes are printed in full once instead of squeezed into a column on every row.
    """
    plural = _PLURAL.get(kind, kind + "s")
    regions = [r for r in rows if r.get("source") == "rollup"]
    rows = [r for r in rows if r.get("source") != "rollup"]
    if regions:
        held = _records(rows, plural, kind) if rows else _empty(f"No {plural} held here.")
        return Group(held, Text(""), _region_totals(regions, plural))
    if not rows:
        return _empty(f"No {plural}.")
    return _records(rows, plural, kind)


def _region_totals(rows: list[dict[str, Any]], plural: str) -> RenderableType:
    """Other regions' totals of one item, from their accepted rollups."""
    t = _table()
    for col in ("region", "period", "qty", "unit", "nodes", "attested by"):
        t.add_column(col, justify="right" if col in ("qty", "nodes", "attested by") else "left")
    for r in rows:
        t.add_row(
            r["region"], r["period"], r["qty"], r["unit"], str(r["nodes"]), str(r["attested_by"])
        )
    return _titled(f"{plural.capitalize()} of other regions (attested rollups)", t)


def _records(rows: list[dict[str, Any]], plural: str, kind: str) -> RenderableType:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:  # the daemon's order: this node first, then by scope
        groups.setdefault((r["origin"], r["scope"]), []).append(r)
    origins = {origin for origin, _ in groups}
    if len(groups) == 1:
        return _titled(
            f"{plural.capitalize()} of {_who(rows[0])} ({rows[0]['scope']})",
            _records_table(rows, kind, rows),
        )
    title = (
        f"{plural.capitalize()} of {_who(rows[0])}"
        if len(origins) == 1
        else f"{plural.capitalize()} of {len(origins)} nodes"
    )
    parts: list[RenderableType] = [Text(title, style="bold")]
    for (_, scope), group in groups.items():
        header = Text(_who(group[0]), style="bold cyan")
        header.append(f"  {scope}", style="cyan")
        parts.extend([Text(""), header, _records_table(group, kind, rows)])
    return Group(*parts)


def _intent_note(r: dict[str, Any]) -> str:
    """A need's note, and what substitutes serve of it (issue 14)."""
    notes = [str(r.get("note") or "")]
    if isinstance(r.get("replaces"), list) and len(r["replaces"]) == 2:
        need, ratio = r["replaces"]
        notes.append(f"serves part of need {need} at {ratio} {r['unit']} per unit of it")
    for item, part in r.get("subbed") or ():
        notes.append(f"{part} {r['unit']} served by {item}")
    return "; ".join(n for n in notes if n)


def _records_table(group: list[dict[str, Any]], kind: str, every: list[dict[str, Any]]) -> Table:
    # Minimum widths from all rows, so that columns line up from one group to the next.
    live = [r for r in every if not r["withdrawn"]]

    def width(header: str, key: str) -> int:
        return max(len(header), *(len(str(r.get(key) or "")) for r in live), 0)

    t = _table()
    t.add_column("id", no_wrap=True, min_width=max(len(r["id"]) for r in every))
    t.add_column("item", overflow="fold", min_width=max(len("withdrawn"), width("item", "item")))
    t.add_column("quantity", justify="right", no_wrap=True, min_width=width("quantity", "qty"))
    t.add_column("unit", no_wrap=True, min_width=width("unit", "unit"))
    t.add_column("period", no_wrap=True, min_width=width("period", "period"))
    if kind == "need":
        t.add_column("priority", no_wrap=True, min_width=width("priority", "priority"))
    t.add_column("note", overflow="fold", min_width=min(40, width("note", "note")))
    for r in group:
        if r["withdrawn"]:
            cells: list[RenderableType] = [r["id"], Text("withdrawn", style="italic"), "", "", ""]
            if kind == "need":
                cells.append("")
            cells.append("")
        else:
            cells = [r["id"], r["item"], str(r["qty"]), r["unit"], r["period"]]
            if kind == "need":
                priority = r.get("priority") or ""
                cells.append(
                    Text(
                        priority,
                        style="bold red"
                        if priority == "critical"
                        else "bold"
                        if priority == "high"
                        else "",
                    )
                )
            cells.append(_intent_note(r))
        t.add_row(*cells, style="dim" if r["withdrawn"] else None)
    return t


def _who(r: dict[str, Any]) -> str:
    return str(r.get("origin_name") or r["origin"][:12])


def written(r: dict[str, Any]) -> RenderableType:
    """What a write command saved."""
    if r["withdrawn"]:
        return Text(f"Withdrew {r['kind']} {r['id']}.")
    if r["kind"] == "item":
        return Text(f"Added item {r['id']} ({r['name']}, {r['dimension']} in {r['unit']}).")
    return Text(
        f"Saved {r['kind']} {r['id']}: {r['qty']} {r['unit']} of {r['item']} for {r['period']}."
    )


# --- balance -----------------------------------------------------------------------


def balance(
    result: dict[str, Any], *, period: str | None = None, item: str | None = None
) -> RenderableType:
    """`allmende balance`: one section per scope, indented by its drill-down level.

    Args:
        result: the daemon's answer, ``{"scope": ..., "levels": [{"scope", "level",
            "rows"}, ...]}`` in drill-down order (a scope, then the scopes below it).
        period, item: the filters asked for, shown in the heading.

    Returns:
        A heading, one section per scope (header + table) and a summary line that
        counts deficits in words.
    """
    levels = result["levels"]
    scope = result["scope"]
    filters = ", ".join(f for f in (period and f"period {period}", item and f"item {item}") if f)
    left = result.get("left_out") or {}
    note = Text()
    if left.get("records"):
        note.append(
            f"Left out: {left['records']} need(s) and capacities of {left['nodes']} node(s) "
            "not admitted in the federation (see allmende admission).",
            style="yellow",
        )
    if not any(level["rows"] for level in levels):
        what = "needs or capacities" + (f" for {filters}" if filters else "")
        empty = _empty(f"No {what} under {scope} yet.")
        return Group(empty, note) if note else empty
    top = [r for r in levels[0]["rows"] if _sign(r["balance"]) < 0]
    below = {lv["scope"] for lv in levels[1:] for r in lv["rows"] if _sign(r["balance"]) < 0}
    summary = Text()
    if top:
        summary.append(
            f"{DEFICIT}: {len(top)} item-period{'s' if len(top) != 1 else ''} short in {scope}.",
            style="bold red",
        )
    elif _whole(levels[0].get("basis")):
        summary.append(f"No deficits in {scope}.", style="green")
    else:
        why = basis_text(levels[0].get("basis"))
        summary.append(f"No deficits in what this node counts of {scope} ({why}).", style="yellow")
    if below:
        summary.append(
            f" {len(below)} scope{'s' if len(below) != 1 else ''} below "
            f"{'has' if len(below) == 1 else 'have'} a deficit.",
            style="red",
        )
    heading = Text(f"Balance of {scope}" + (f" ({filters})" if filters else ""), style="bold")
    caps = [_cap_line(c) for c in result.get("caps") or []]
    return Group(heading, _DrillDown(levels), Text(""), summary, *caps, *([note] if note else []))


def _cap_line(c: dict[str, Any]) -> Text:
    """One share of a cap: its use against the share, red when over it."""
    line = Text(f"Cap {c['resource']} in {c['child']}: uses {c['use']} of {c['share']} {c['unit']}")
    if not c["within_share"]:
        line.append(" OVER SHARE", style="bold red")
    return line


_NUMERIC = ("needs", "capacities", "balance")
_FIXED = {"covered": len("covered"), "nodes": len("nodes")}


def _committed(row: dict[str, Any]) -> bool:
    """Whether a balance row has any committed quantity (to or by its scope)."""
    return any(row.get(k) not in (None, "0") for k in ("committed_in", "committed_out"))


class _DrillDown:
    """The sections of a balance, laid out for the width they are printed at.

    Every section's table ends at the same column so that numbers line up down the
    page: the item column of a deeper (more indented) section is narrower by its
    indent. Only the item column gives way when the console is narrow.
    """

    def __init__(self, levels: list[dict[str, Any]]) -> None:
        self.levels = levels
        rows = [(lv["level"], r) for lv in levels for r in lv["rows"]]
        self.marker = any(_sign(r["balance"]) < 0 for _, r in rows)
        self.widths = {
            "item": max(len("item"), *(len(r["item"]) + INDENT * lvl for lvl, r in rows)),
            "period": max(len("period"), *(len(r["period"]) for _, r in rows)),
            "unit": max(len("unit"), *(len(r["unit"]) for _, r in rows)),
        }
        for col in _NUMERIC:
            self.widths[col] = max(
                len(col), *(len(_signed(r[col]) if col == "balance" else r[col]) for _, r in rows)
            )
        # Committed quantities (both sides signed) show next to the posted ones once
        # there are any: what was promised to the receivers of the scope.
        self.committed = any(_committed(r) for _, r in rows)
        if self.committed:
            self.widths["committed"] = max(
                len("committed"), *(len(r.get("committed_in") or "-") for _, r in rows)
            )
            self.widths["c.covered"] = len("c.covered")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        others = [w for k, w in self.widths.items() if k != "item"] + list(_FIXED.values())
        if self.marker:
            others.append(len(DEFICIT))
        rest = sum(others) + len(others)  # one space before each column but the first
        deepest = max(lv["level"] for lv in self.levels)
        item_total = max(
            MIN_ITEM_WIDTH + INDENT * deepest, min(self.widths["item"], options.max_width - rest)
        )
        # A page of a long list of scopes ends in a line saying how many more there
        # are: after the last scope listed below its parent (or the parent itself).
        last_below = {}
        for i, level in enumerate(self.levels):
            last_below[level["scope"]] = i
            if level["level"] > 0:
                last_below[level["scope"].rsplit("/", 1)[0]] = i
        more_after: dict[int, list[dict[str, Any]]] = {}
        for level in self.levels:
            if level.get("more"):
                more_after.setdefault(last_below[level["scope"]], []).append(level)
        for i, level in enumerate(self.levels):
            indent = INDENT * level["level"]
            yield Padding(self._section(level, item_total - indent), (1, 0, 0, indent))
            for parent in more_after.get(i, []):
                n = parent["more"]
                yield Padding(
                    Text(
                        f"... {n} more scope{'s' if n != 1 else ''} below {parent['scope']} "
                        "(--offset, --limit)",
                        style="dim",
                        overflow="fold",
                    ),
                    (1, 0, 0, INDENT * (parent["level"] + 1)),
                )

    def _section(self, level: dict[str, Any], item_width: int) -> RenderableType:
        header: RenderableType = Text(level["scope"], style="bold cyan", overflow="fold")
        rests = basis_text(level.get("basis"))
        if rests:
            style = "dim" if _whole(level.get("basis")) else "yellow"
            header = Group(header, Text(rests, style=style, overflow="fold"))
        if not level["rows"]:
            return Group(header, _empty("nothing here for these filters"))
        t = Table(
            box=None,
            pad_edge=False,
            show_edge=False,
            padding=(0, 1),
            collapse_padding=True,
            header_style="bold underline",
        )
        t.add_column("item", overflow="fold", width=item_width)
        t.add_column("period", no_wrap=True, min_width=self.widths["period"])
        for col in _NUMERIC:
            t.add_column(col, justify="right", no_wrap=True, min_width=self.widths[col])
        t.add_column("unit", no_wrap=True, min_width=self.widths["unit"])
        for col in _FIXED:
            t.add_column(col, justify="right", no_wrap=True)
        if self.committed:
            for col in ("committed", "c.covered"):
                t.add_column(col, justify="right", no_wrap=True, min_width=self.widths[col])
        if self.marker:
            t.add_column("", no_wrap=True)
        for r in level["rows"]:
            sign = _sign(r["balance"])
            style = "bold red" if sign < 0 else "green" if sign > 0 else ""
            coverage = "-" if r["coverage"] is None else f"{Decimal(r['coverage']):.0%}"
            cells: list[RenderableType] = [
                r["item"],
                r["period"],
                r["needs"],
                r["capacities"],
                Text(_signed(r["balance"]), style=style),
                r["unit"],
                Text(coverage, style=style),
                str(r["nodes"]),
            ]
            if self.committed:
                c_cov = r.get("committed_coverage")
                cells += [
                    r.get("committed_in") or "-",
                    "-" if c_cov is None else f"{Decimal(c_cov):.0%}",
                ]
            if self.marker:
                cells.append(Text(DEFICIT, style="bold red") if sign < 0 else "")
            t.add_row(*cells)
        return Group(header, t)


def rollups(data: dict[str, Any]) -> RenderableType:
    """`allmende rollups`: one row per region and period."""
    if not data["rollups"]:
        return _empty("No rollups of other regions here yet.")
    t = _table()
    for col in ("region", "period", "status", "attested by", "records", "contradicted by"):
        t.add_column(col, overflow="fold")
    for rp in data["rollups"]:
        best = rp["contents"][0]
        who = [n or a[:12] for a, n in zip(best["attesters"], best["attester_names"], strict=True)]
        status = rp["status"]
        style = "green" if status == "attested" else "yellow" if status == "unattested" else "red"
        t.add_row(
            rp["region"],
            rp["period"],
            Text(status.upper() if status == "split" else status, style=style),
            f"{len(who)} of quorum {best['quorum']}: " + ", ".join(who),
            str(best["records"]),
            ", ".join(a[:12] for a in rp["contradicting"]) or "-",
        )
    return _titled(f"Rollups of the regions beside {data['own_region']}", t)


def _whole(basis: dict[str, Any] | None) -> bool:
    return basis is None or basis.get("status") in ("complete", "attested")


def _signed(value: str) -> str:
    return ("+" if _sign(value) > 0 else "") + value


__all__ = ["DEFICIT", "balance", "items", "peers", "records", "rollups", "status", "written"]
