"""The node's pages: the node itself, the balance, the plan. Pure functions from what
the control ops answer to HTML (`web.html` for what they share).

Parts that change when records arrive carry ``data-live`` and an id: `app.js`
refetches the page on a server-sent event and swaps exactly those parts, so a
half-filled form is never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any
from urllib.parse import urlencode

from cli.basis import basis_text  # the same words as `allmende balance`
from web.charts import hbars, in_out_columns, need_capacity_bar
from web.html import dl, e, short, table

__all__ = ["balance_page", "node_page", "plan_page"]


# --- node ---------------------------------------------------------------------------


def node_page(
    status: Mapping[str, Any],
    peers: Mapping[str, Any],
    history: Mapping[str, Any],
    traffic: list[tuple[int, int, int]],
) -> str:
    """The node: identity, counters, records per day and kind, gossip per hour
    (`traffic`: (hour since the epoch, bytes in, bytes out)), peers."""
    ident = dl(
        [
            ("Name", status["name"]),
            ("Kind", status["kind"]),
            ("Scope", status["scope"]),
            ("Federation", f"{status['federation_name']} ({short(status['federation'])})"),
            ("Admitted", "yes" if status["admitted"] else "not yet"),
            ("Node id", status["node_id"]),
            ("Peer id", status["peer_id"]),
        ]
    )
    g = status["gossip"]
    counts = dl(
        [
            ("Records held", status["records"]),
            ("Own records", status["own_records"]),
            ("Origins", status["origins"]),
            ("Peers connected", status["peers"]),
            ("Syncs ok / failed", f"{status['sync']['ok']} / {status['sync']['failed']}"),
            ("Gossip in", f"{g['messages_in']} messages, {g['bytes_in']} bytes"),
            ("Gossip out", f"{g['messages_out']} messages, {g['bytes_out']} bytes"),
            ("Uptime", f"{status['uptime_s']} s"),
            ("State digest", short(status["digest"], 24)),
        ]
    )
    rejected = status.get("rejected") or {}
    chart = hbars(
        [(k, v, True) for k, v in sorted(rejected.items(), key=lambda kv: -kv[1])],
        "Records refused, by reason",
    )
    days = hbars(
        [(d["day"][5:], d["records"], False) for d in history["days"]],
        "Records held, by the day their authors wrote them (last 14 days)",
    )
    kinds = hbars(
        [(k, n, False) for k, n in sorted(history["kinds"].items(), key=lambda kv: -kv[1])],
        "Records held, by kind",
    )
    gossip = in_out_columns(
        [(f"{h % 24:02d}h", i, o) for h, i, o in traffic],
        "Gossip bytes per hour, last 48 hours (UTC): in above the line, out below",
    )
    plist = "".join(f"<li><code>{e(p)}</code></li>" for p in peers.get("connected", []))
    return (
        f"<section><h2>Identity</h2>{ident}</section>"
        f'<section id="node-counts" data-live><h2>Records and sync</h2>{counts}'
        + (f"<h3>Refused records</h3>{chart}" if chart else "")
        + '</section><section id="node-history" data-live><h2>Records over the last days</h2>'
        + days
        + f"<h2>Records by kind</h2>{kinds}"
        + "<h2>Gossip traffic</h2><p class=basis>Per hour since this daemon started (kept "
        + f"in memory, a week at most).</p>{gossip}"
        + '</section><section id="node-peers" data-live><h2>Peers</h2>'
        + (f"<ul class=keys>{plist}</ul>" if plist else "<p>No peer connected.</p>")
        + "</section>"
    )


# --- balance ------------------------------------------------------------------------


def _sign(x: str) -> int:
    v = Fraction(x)
    return (v > 0) - (v < 0)


def _deficits_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Most short first (relative to what is needed), then by item and period.
    def key(r: dict[str, Any]) -> tuple[Fraction, str, str]:
        need = Fraction(r["needs"])
        bal = Fraction(r["balance"])
        return (bal / need if need else bal, r["item"], r["period"])

    return sorted(rows, key=key)


def _basis(basis: Mapping[str, Any] | None) -> str:
    text = basis_text(dict(basis)) if basis else ""
    status = (basis or {}).get("status", "")
    label = text or "complete"
    return f'<p class="basis" data-status="{e(status)}">Rests on: {e(label)}</p>'


def _basis_words(level: Mapping[str, Any]) -> str:
    basis = level.get("basis")
    return basis_text(dict(basis)) if basis else ""


def _balancetable(rows: list[dict[str, Any]], scope: str) -> str:
    if not rows:
        return "<p>No needs or capacities here yet.</p>"
    top = max(max(Fraction(r["needs"]), Fraction(r["capacities"])) for r in rows)
    body = []
    for r in _deficits_first(rows):
        short = _sign(r["balance"]) < 0
        label = f"{r['item']}: needs {r['needs']}, capacities {r['capacities']} {r['unit']}"
        cov = "-" if r["coverage"] is None else f"{round(Fraction(r['coverage']) * 100)}%"
        body.append(
            f'<tr class="{"deficit" if short else "ok"}"><th scope="row">{e(r["item"])}'
            f"{' <span class=tag>short</span>' if short else ''}</th>"
            f"<td>{e(r['period'])}</td><td class=num>{e(r['needs'])}</td>"
            f"<td class=num>{e(r['capacities'])}</td><td class=num>{e(r['balance'])}</td>"
            f"<td>{e(r['unit'])}</td><td class=num>{cov}</td>"
            f"<td class=chart>{need_capacity_bar(r['needs'], r['capacities'], top, label)}"
            "</td></tr>"
        )
    return (
        '<div class="scroll"><table class="balance"><caption>Balance of '
        f"{e(scope)}, deficits first (bars: needs above, capacities below)</caption>"
        "<thead><tr><th scope=col>Item</th><th scope=col>Period</th><th scope=col>Needs</th>"
        "<th scope=col>Capacities</th><th scope=col>Balance</th><th scope=col>Unit</th>"
        "<th scope=col>Covered</th><th scope=col>Chart</th></tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def balance_page(result: Mapping[str, Any], query: Mapping[str, str]) -> str:
    levels = result["levels"]
    scope = result["scope"]
    top = levels[0] if levels else {"rows": [], "basis": None}
    keep = {k: v for k, v in query.items() if k in ("period", "item") and v}
    parts = [
        '<form class="filters" method="get" action="/balance">'
        f'<label>Scope <input name="scope" value="{e(scope)}" autocomplete="off"></label>'
        f'<label>Period <input name="period" value="{e(query.get("period", ""))}" '
        'placeholder="2027-Q1"></label>'
        f'<label>Item <input name="item" value="{e(query.get("item", ""))}"></label>'
        "<button>Show</button></form>",
        _crumbs(scope, keep),
        f'<section id="balance-top" data-live>{_basis(top.get("basis"))}'
        f"{_balancetable(top['rows'], scope)}</section>",
    ]
    below = []
    for lv in levels[1:]:
        deficits = sum(1 for r in lv["rows"] if _sign(r["balance"]) < 0)
        href = "/balance?" + urlencode({"scope": lv["scope"], **keep})
        below.append((deficits, lv["scope"], href, len(lv["rows"]), _basis_words(lv)))
    below.sort(key=lambda b: (-b[0], b[1]))
    items = "".join(
        f'<li><a href="{e(href)}">{e(s)}</a> — {n} item-period{"s" if n != 1 else ""}'
        + (f', <strong class="short">{d} short</strong>' if d else ", none short")
        + (f' <span class="basis">({e(basis)})</span>' if basis else "")
        + "</li>"
        for d, s, href, n, basis in below
    )
    more = top.get("more", 0)
    left = result.get("left_out") or {}
    parts.append(
        '<section id="balance-below" data-live><h2>Scopes below</h2>'
        + (f"<ul>{items}</ul>" if items else "<p>No scope below holds needs or capacities.</p>")
        + (f"<p>{more} more scope(s) not listed.</p>" if more else "")
        + (
            f"<p class=note>Left out: {left['records']} record(s) of {left['nodes']} node(s) "
            "not admitted in the federation.</p>"
            if left.get("records")
            else ""
        )
        + "</section>"
    )
    return "".join(parts)


def _crumbs(scope: str, keep: Mapping[str, str]) -> str:
    parts = scope.split("/")
    links = []
    for i in range(len(parts)):
        s = "/".join(parts[: i + 1])
        links.append(f'<a href="/balance?{e(urlencode({"scope": s, **keep}))}">{e(parts[i])}</a>')
    return f'<nav class="crumbs" aria-label="Scope">{" / ".join(links)}</nav>'


# --- plan: matches, commitments, track records --------------------------------------------


def _who(key: str, name: str | None) -> str:
    return e(name or short(key, 12))


def plan_page(
    matches: Mapping[str, Any], commitments: list[dict[str, Any]], track: Mapping[str, Any]
) -> str:
    """Where deficits meet surpluses, what nodes promised each other, and how they kept it."""
    parts = []
    for title, key in (("Node to node", "within_region"), ("Region to region", "across_regions")):
        rows = matches.get(key) or []
        if rows:
            parts.append(
                table(
                    f"{title} under {matches['scope']}",
                    ("Item", "Period", "From", "To", "Quantity", "Met at"),
                    (
                        (
                            e(m["item"]),
                            e(m["period"]),
                            _who(m["provider"], m.get("provider_name")),
                            _who(m["receiver"], m.get("receiver_name")),
                            f"{e(m['qty'])} {e(m['unit'])}",
                            e(m["scope"]),
                        )
                        for m in rows
                    ),
                )
            )
    match_html = "".join(parts) or (
        f"<p>No matches under {e(matches.get('scope', ''))}: no deficit meets a surplus.</p>"
    )
    commit_html = (
        table(
            "Offers and commitments",
            ("State", "From", "To", "What", "Quantity", "Due", "Deliveries", "Confirmed"),
            (
                (
                    e(c["state"]),
                    _who(c["provider"], c.get("provider_name")),
                    _who(c["receiver"], c.get("receiver_name")),
                    f"{e(c['item'])} {e(c['period'])}",
                    f"{e(c['qty'])} {e(c['unit'])}",
                    e(c["due"]),
                    str(len(c["deliveries"])),
                    str(sum(1 for d in c["deliveries"] if d["status"] == "confirmed")),
                )
                for c in commitments
            ),
        )
        if commitments
        else "<p>No offers or commitments.</p>"
    )
    cols = ("committed", "delivered", "confirmed", "on_time", "overdue", "disputed")
    nodes = track.get("nodes") or []
    track_html = (
        table(
            f"Track records as of {track.get('today', '')} (share: confirmed of what is due)",
            ("Node", *(c.replace("_", " ") for c in cols), "Share"),
            (
                (
                    _who(n["node"], n.get("name")),
                    *(e(n[c]) for c in cols),
                    "-" if n["share"] is None else e(n["share"]),
                )
                for n in nodes
            ),
        )
        if nodes
        else "<p>No commitments signed by both sides yet.</p>"
    )
    return (
        '<form class="filters" method="get" action="/plan">'
        f'<label>Scope <input name="scope" value="{e(matches.get("scope", ""))}"></label>'
        "<button>Show</button></form>"
        f'<section id="plan-matches" data-live><h2>Matches</h2>{match_html}</section>'
        f'<section id="plan-commitments" data-live><h2>Commitments</h2>{commit_html}</section>'
        f'<section id="plan-track" data-live><h2>Track records</h2>{track_html}</section>'
    )
