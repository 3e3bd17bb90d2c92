"""The members' pages: proposals and budgets, assemblies, the member's key, and the
operator's page. Pure functions from what the control ops answer to HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from web.charts import hbars
from web.html import dl, e, short

__all__ = [
    "assemblies_page",
    "assembly_page",
    "member_page",
    "operator_page",
    "proposal_page",
    "proposals_page",
]

METHOD_HELP = {
    "approval": "Tick every option you approve of.",
    "mes": "Tick every project you support (Method of Equal Shares).",
    "greedy": "Tick every project you support (greedy by votes).",
    "score": "Give each option a score.",
    "ranked": "Rank the options: 1 is best; give two options the same number to tie them.",
}


# --- proposals ------------------------------------------------------------------------


def _plink(pid: str) -> str:
    return "/proposal?id=" + quote(pid, safe="")


def proposals_page(rows: list[dict[str, Any]], *, budgets: bool = False) -> str:
    """Proposals, open ones first; with `budgets`, only participatory budgets."""
    if budgets:
        rows = [r for r in rows if r["method"] in ("mes", "greedy")]
    if not rows:
        what = "participatory budgets" if budgets else "proposals"
        return f'<section id="proposals" data-live><p>No {what} yet.</p></section>'
    order = {"open": 0, "scheduled": 1, "closed": 2}
    rows = sorted(rows, key=lambda r: (order.get(r["phase"], 3), r["title"]))
    body = "".join(
        f'<tr><th scope=row><a href="{e(_plink(r["proposal"]))}">{e(r["title"])}</a></th>'
        f'<td>{e(r["method"])}</td><td><span class="phase {e(r["phase"])}">{e(r["phase"])}'
        f"</span></td><td class=num>{r['votes_held']}</td><td>{e(r['scope'])}</td></tr>"
        for r in rows
    )
    return (
        '<section id="proposals" data-live><div class="scroll"><table><caption>Proposals held '
        "by this node</caption><thead><tr><th scope=col>Title</th><th scope=col>Method</th>"
        "<th scope=col>Phase</th><th scope=col>Votes held</th><th scope=col>Scope</th></tr>"
        f"</thead><tbody>{body}</tbody></table></div></section>"
    )


def _entries(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(p.get("projects") or p.get("options") or [])


def _ballot_form(p: Mapping[str, Any]) -> str:
    method = p["method"]
    version = int(p.get("version", 1))
    fields = []
    for o in _entries(p):
        oid, name = e(o["id"]), e(o.get("name", o["id"]))
        cost = f" (cost {int(o['cost']):,})" if "cost" in o else ""
        if method in ("approval", "mes", "greedy"):
            fields.append(
                f'<label class="opt"><input type="checkbox" name="opt" value="{oid}"> '
                f"{name}{cost}</label>"
            )
        elif method == "score":
            lo, hi = p.get("min_score", 0), p.get("max_score", 10)
            fields.append(
                f'<label class="opt">{name} <input type="number" name="score:{oid}" '
                f'min="{lo}" max="{hi}" value="{lo}" data-option="{oid}"></label>'
            )
        else:
            fields.append(
                f'<label class="opt">{name} <input type="number" name="rank:{oid}" min="1" '
                f'max="{len(_entries(p))}" data-option="{oid}" placeholder="rank"></label>'
            )
    return (
        f'<form id="ballot" data-method="{e(method)}" data-proposal="{e(p["proposal"])}" '
        f'data-version="{version}"><fieldset><legend>Your ballot</legend>'
        f"<p>{e(METHOD_HELP.get(method, ''))} Your ballot is for version {version} of this "
        "proposal.</p>"
        + "".join(fields)
        + "</fieldset><button type=submit>Review my vote</button></form>"
        + '<p id="vote-status" role="status" aria-live="polite"></p>'
    )


# What the member's browser is about to sign, shown before it signs (member.js).
REVIEW = (
    '<section id="review" hidden aria-labelledby="review-h"><h3 id="review-h">'
    "What your browser will sign</h3><p>Your key signs exactly these fields; the node "
    "checks the signature and passes the record on. It never sees your key.</p>"
    '<pre id="review-fields"></pre><details><summary>Signed bytes (hex)</summary>'
    '<pre id="review-bytes" class="hex"></pre></details>'
    '<button id="sign-send" type="button">Sign and send</button> '
    '<button id="sign-cancel" type="button">Cancel</button></section>'
)


def _results(r: Mapping[str, Any]) -> str:
    d = r.get("detail") or {}
    head = (
        f"<p>Status: <strong>{e(r['status'])}</strong>; {r['counted']} ballot(s) counted"
        + (f", {r['missing']} missing" if r.get("missing") else "")
        + (f", {r['uncounted']} not frozen" if r.get("uncounted") else "")
        + "</p>"
    )
    if r.get("excluded"):
        head += "<p>Not counted: " + e(", ".join(f"{k} {v}" for k, v in r["excluded"].items()))
        head += "</p>"
    if r.get("problem"):
        head += f'<p class="note">{e(r["problem"])}</p>'
    for note in r.get("notes") or ():
        head += f'<p class="note">{e(note)}</p>'
    winners = set(r.get("winners") or ())
    chart = ""
    if "projects" in d:
        rows = [(p["name"] or p["id"], p["votes"], p["selected"]) for p in d["projects"]]
        chart = hbars(rows, "Votes per project; selected projects highlighted")
        head += f"<p>Spent {d['spent']:,} of {d['budget']:,}.</p>"
        table = "".join(
            f"<tr><th scope=row>{e(p['name'] or p['id'])}</th><td class=num>{p['cost']:,}</td>"
            f"<td class=num>{p['votes']}</td><td>{'selected' if p['selected'] else ''}</td>"
            f"<td class=num>{e(p.get('effective_votes', ''))}</td></tr>"
            for p in d["projects"]
        )
        chart += (
            '<div class="scroll"><table><caption>Projects</caption><thead><tr><th scope=col>'
            "Project</th><th scope=col>Cost</th><th scope=col>Votes</th><th scope=col>Result"
            "</th><th scope=col>Support</th></tr></thead><tbody>" + table + "</tbody></table></div>"
        )
    elif "options" in d:
        figure = "count" if r["method"] == "approval" else "total"
        ranking = d.get("ranking") or [o["id"] for o in d["options"]]
        names = {o["id"]: o for o in d["options"]}
        rows = [
            (names[i].get("name") or i, names[i].get(figure, len(ranking) - n), i in winners)
            for n, i in enumerate(ranking)
        ]
        title = "Ranking" if r["method"] == "ranked" else f"{figure.title()} per option"
        chart = hbars(rows, title + "; winners highlighted")
    won = ", ".join(sorted(winners)) or "none yet"
    return f"{head}<p>Winners: <strong>{e(won)}</strong></p>{chart}"


def proposal_page(
    p: Mapping[str, Any],
    results: Mapping[str, Any] | None,
    error: str,
    deliberation: str = "",
) -> str:
    """A proposal: its facts and text, the `deliberation` parts (web.delib_pages), the
    ballot while voting is open, the receipt check and the results."""
    facts = dl(
        [
            ("Method", p["method"]),
            ("Phase", p["phase"]),
            ("Version", p.get("version", 1)),
            ("Electorate", p.get("electorate", "")),
            ("Votes held", p["votes_held"]),
            ("Id", p["proposal"]),
        ]
    )
    text = "".join(f"<p>{e(par)}</p>" for par in str(p.get("text") or "").split("\n\n") if par)
    entries = "".join(
        f"<li><strong>{e(o.get('name', o['id']))}</strong> <code>{e(o['id'])}</code>"
        + (f" — cost {int(o['cost']):,}" if "cost" in o else "")
        + "</li>"
        for o in _entries(p)
    )
    if p["phase"] == "open" and "import" not in p:
        ballot = _ballot_form(p)
    elif p["phase"] == "discussion":
        ballot = "<p>The proposal is in discussion: voting opens after it.</p>"
    else:
        ballot = "<p>This proposal takes no votes now.</p>"
    res = (
        _results(results) if results is not None else f'<p class="note">No results: {e(error)}</p>'
    )
    return (
        f'<section id="facts" data-live>{facts}</section>'
        f'<section id="text" data-live><h2>Text</h2>{text or "<p>(no text)</p>"}'
        f"<ul>{entries}</ul></section>"
        f"{deliberation}"
        f"<section><h2>Vote</h2>{ballot}</section>"
        f'<section id="receipt-box" data-proposal="{e(p["proposal"])}"><h2>Was my vote '
        'counted?</h2><p id="receipt" role="status" aria-live="polite">Open this page in the '
        'browser that holds your key to see.</p><button id="receipt-check" type="button">'
        "Check again</button></section>"
        f'<section id="results" data-live><h2>Results</h2>{res}</section>' + REVIEW
    )


# --- assemblies ------------------------------------------------------------------------


def _alink(aid: str) -> str:
    return "/assembly?id=" + quote(aid, safe="")


def assemblies_page(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<section id="assemblies" data-live><p>No assemblies yet.</p></section>'
    body = "".join(
        f'<tr><th scope=row><a href="{e(_alink(r["assembly"]))}">{e(r["title"])}</a></th>'
        f"<td class=num>{r['size']}</td><td class=num>{r['volunteers']}</td>"
        f"<td>{'drawn' if r['panel'] else e(r['pool'])}</td><td>{e(r['scope'])}</td></tr>"
        for r in sorted(rows, key=lambda r: str(r["title"]))
    )
    return (
        '<section id="assemblies" data-live><div class="scroll"><table><caption>Citizens\' '
        "assemblies drawn by lot</caption><thead><tr><th scope=col>Title</th><th scope=col>"
        "Seats</th><th scope=col>Volunteers</th><th scope=col>Stage</th><th scope=col>Scope"
        f"</th></tr></thead><tbody>{body}</tbody></table></div></section>"
    )


def assembly_page(a: Mapping[str, Any], verification: Mapping[str, Any] | None) -> str:
    quotas = a.get("quotas") or {}
    facts = dl(
        [
            ("Seats", a["size"]),
            ("Scope", a["scope"]),
            ("Volunteers", a["volunteers"]),
            ("Pool", f"{a['pool']} ({a['pool_size']} frozen)"),
            ("Commits", f"{len(a['commits'])} of {len(a['committers'])}"),
            ("Reveals", f"{len(a['reveals'])} of {len(a['committers'])}"),
            ("Quotas", ", ".join(f"{k}: {v}" for k, v in sorted(quotas.items())) or "none"),
            ("Id", a["assembly"]),
        ]
    )
    panel = a.get("panel")
    members = " ".join(str(m) for m in panel or ())
    if panel:
        items = "".join(f"<li><code>{e(short(str(m), 24))}</code></li>" for m in panel)
        drawn = f"<ol>{items}</ol>"
    else:
        drawn = "<p>Not drawn yet.</p>"
    if verification is None:
        check = "<p>Nothing to verify before the draw.</p>"
    else:
        rows = "".join(
            f"<li>{'passed' if c['ok'] else '<strong class=short>failed</strong>'}: "
            f"{e(c['check'])} <span class=basis>{e(c['detail'])}</span></li>"
            for c in verification["checks"]
        )
        verdict = "verified" if verification["ok"] else "NOT verified"
        check = f"<p>This node re-derived the draw: <strong>{verdict}</strong>.</p><ul>{rows}</ul>"
    open_pool = a["pool"] == "absent"
    volunteer = (
        f'<p><button id="volunteer" type="button" data-assembly="{e(a["assembly"])}">'
        "Volunteer with my key</button></p>"
        + REVIEW
        + '<p id="volunteer-status" role="status" aria-live="polite"></p>'
        if open_pool
        else "<p>The pool is frozen: volunteering has ended.</p>"
    )
    return (
        f'<section id="assembly-facts" data-live>{facts}</section>'
        f"<section><h2>Text</h2><p>{e(a.get('text') or '(no text)')}</p>{volunteer}</section>"
        f'<section id="panel" data-live><h2>The drawn panel</h2>{drawn}'
        f'<div id="panel-keys" data-panel="{e(members)}"></div>'
        '<p id="on-panel" role="status" aria-live="polite"></p></section>'
        f'<section id="verification" data-live><h2>Verification</h2>{check}</section>'
    )


# --- member key -------------------------------------------------------------------------


def member_page() -> str:
    return (
        '<section aria-labelledby="key-h"><h2 id="key-h">Your member key</h2>'
        "<p>Your key is made and kept in this browser. The node never sees it: your "
        "browser signs your votes itself. Give the public key below to your commune's "
        "operator, who adds it with <code>allmende member add KEY --pseudonym NAME</code>.</p>"
        '<p id="key-state" role="status" aria-live="polite">Looking for a key in this '
        "browser…</p>"
        '<p><label for="pubkey">Public key</label><br><input id="pubkey" readonly size="64" '
        'class="mono"></p>'
        '<p><button id="key-create" type="button">Create a key</button> '
        '<button id="key-forget" type="button">Remove the key from this browser</button></p>'
        "</section>"
        '<section aria-labelledby="backup-h"><h2 id="backup-h">Backup</h2>'
        "<p>When a key is created, this browser offers its backup once, as a PEM file the "
        "CLI also reads (<code>allmende vote --key FILE</code>). After that the key is kept "
        "non-extractable: no script, not even this page, can read it again.</p>"
        '<p><a id="backup-link" hidden download="allmende-member-key.pem" href="#">'
        "Save the backup file</a></p>"
        '<label for="import-pem">Import a key (PEM, from a backup or '
        "<code>allmende member keygen</code>)</label>"
        '<textarea id="import-pem" rows="4" class="mono"></textarea>'
        '<p><button id="key-import" type="button">Import</button></p></section>'
    )


# --- operator ---------------------------------------------------------------------------


def operator_page(
    *,
    signed_in: bool,
    csrf: str,
    intents: list[dict[str, Any]],
    proposals: list[dict[str, Any]],
    node_id: str,
    message: str = "",
    error: str = "",
) -> str:
    flash = ""
    if message:
        flash += f'<p class="ok" role="status">{e(message)}</p>'
    if error:
        flash += f'<p class="error" role="alert">{e(error)}</p>'
    hidden = f'<input type="hidden" name="csrf" value="{e(csrf)}">'
    if not signed_in:
        return flash + (
            '<form method="post" action="/operator/login"><p>Operator actions need the '
            "token that <code>allmende web token</code> prints on the node.</p>"
            f'{hidden}<label for="token">Operator token</label> '
            '<input id="token" name="token" type="password" autocomplete="off" required> '
            "<button>Sign in</button></form>"
        )
    rows = "".join(
        f"<tr><th scope=row>{e(r['kind'])} {e(r['item'])}</th>"
        f"<td>{e(r.get('qty', ''))} {e(r.get('unit', ''))}</td>"
        f"<td>{e(r.get('period', ''))}</td><td>"
        f'<form method="post" action="/operator/withdraw">{hidden}'
        f'<input type="hidden" name="kind" value="{e(r["kind"])}">'
        f'<input type="hidden" name="key" value="{e(r["id"])}">'
        f'<button aria-label="Withdraw {e(r["kind"])} {e(r["id"])}">Withdraw</button></form>'
        "</td></tr>"
        for r in intents
        if not r.get("withdrawn")
    )
    closable = "".join(
        f"<li>{e(p['title'])} ({e(p['phase'])}) "
        f'<form class="inline" method="post" action="/operator/close">{hidden}'
        f'<input type="hidden" name="proposal" value="{e(p["proposal"])}">'
        f'<button aria-label="Close {e(p["title"])}">Close now</button></form></li>'
        for p in proposals
        if p["origin"] == node_id and p["phase"] != "closed"
    )
    return flash + (
        f'<form method="post" action="/operator/logout">{hidden}<button>Sign out</button></form>'
        '<section aria-labelledby="post-h"><h2 id="post-h">Post a need or capacity</h2>'
        f'<form method="post" action="/operator/post" class="grid">{hidden}'
        '<label>Kind <select name="kind"><option>need</option><option>capacity</option>'
        "</select></label>"
        '<label>Item <input name="item" required placeholder="wheat"></label>'
        '<label>Quantity <input name="qty" required inputmode="decimal" placeholder="100">'
        "</label>"
        '<label>Unit <input name="unit" required placeholder="kg"></label>'
        '<label>Period <input name="period" required placeholder="2027-Q1"></label>'
        '<label>Note <input name="note"></label><button>Post</button></form></section>'
        '<section aria-labelledby="own-h"><h2 id="own-h">This node\'s needs and capacities'
        "</h2>"
        + (
            '<div class="scroll"><table><thead><tr><th scope=col>What</th><th scope=col>'
            "Quantity</th><th scope=col>Period</th><th scope=col>Action</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
            if rows
            else "<p>None posted.</p>"
        )
        + "</section>"
        '<section aria-labelledby="member-h"><h2 id="member-h">Add a member</h2>'
        f'<form method="post" action="/operator/member" class="grid">{hidden}'
        '<label>Public key <input name="member" required pattern="[0-9a-fA-F]{64}" '
        'class="mono"></label><label>Pseudonym <input name="pseudonym" required></label>'
        "<button>Add member</button></form></section>"
        '<section aria-labelledby="prop-h"><h2 id="prop-h">Create a proposal</h2>'
        f'<form method="post" action="/operator/proposal" class="grid">{hidden}'
        '<label>Id <input name="key" required placeholder="park-2027"></label>'
        '<label>Title <input name="title" required></label>'
        '<label>Method <select name="method"><option>approval</option><option>score</option>'
        "<option>ranked</option></select></label>"
        '<label>Options, one per line: id name <textarea name="options" rows="4" required>'
        "</textarea></label>"
        '<label>Text <textarea name="text" rows="4"></textarea></label>'
        '<label>Open for (hours) <input name="hours" type="number" min="1" value="168">'
        "</label><button>Create</button></form></section>"
        '<section aria-labelledby="close-h"><h2 id="close-h">Close a proposal</h2>'
        + (f"<ul>{closable}</ul>" if closable else "<p>No open proposal of this node.</p>")
        + "</section>"
    )
