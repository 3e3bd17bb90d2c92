"""The deliberation parts of a proposal's page: the discussion thread, the statements
with their reactions, the amendments and the opinion map.

Pure functions from what the ops return (``delib_discuss``, ``delib_opinions``) to
HTML. Comment texts pass through the safe markdown subset (`node.governance.markup`),
every other value through `e`. A hidden comment keeps its place in the thread with
who hid it and why; its text is not shown. The forms carry no key: the member's
browser signs each contribution itself (static/discuss.js) and the node verifies it
before it keeps and relays it, as it does a vote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from node.governance.markup import to_html
from web.charts import opinion_groups
from web.html import e, short

__all__ = [
    "Names",
    "amendments_section",
    "decision_review",
    "discussion_sections",
    "opinions_section",
]

Names = Mapping[str, str]  # member or node key hex -> pseudonym or node name
STATE = {"proposed": "Open", "accepted": "Accepted", "rejected": "Rejected", "promoted": "Promoted"}
MARKUP_HELP = "You may write **strong**, *emphasis*, `code` and lines starting with - as a list."


def _who(key: str, names: Names) -> str:
    name = names.get(key)
    tag = f"<code>{e(short(key, 12))}</code>"
    return f"<strong>{e(name)}</strong> {tag}" if name else tag


def _label(c: Mapping[str, Any], names: Names) -> str:
    """How a comment is named in the reply-to list."""
    first = " ".join(str(c.get("text") or "").split())
    words = first if len(first) <= 40 else first[:39] + "…"
    return f"{names.get(c['author']) or short(c['author'], 12)}: {words}"


def _comment(c: Mapping[str, Any], names: Names, *, top: bool, open_: bool) -> str:
    hidden = c.get("hidden")
    who = _who(c["author"], names)
    orphan = (
        '<p class="basis">A reply to a comment this node does not show.</p>'
        if top and c.get("reply")
        else ""
    )
    if hidden:
        body = (
            f'<p class="hidden-note"><strong>Hidden</strong> by {_who(hidden["by"], names)}: '
            f"{e(hidden['reason'])}</p>"
        )
        attrs = ' class="comment hidden-comment"'
        reply = ""
    else:
        body = f'<div class="text">{to_html(str(c["text"]))}</div>'
        attrs = f' class="comment" data-ref="{e(c["ref"])}" data-label="{e(_label(c, names))}"'
        name = names.get(c["author"]) or short(c["author"], 12)
        reply = (
            f'<button type="button" class="reply-to" data-ref="{e(c["ref"])}" '
            f'aria-label="Reply to {e(name)}">Reply</button>'
            if open_
            else ""
        )
    kids = "".join(_comment(k, names, top=False, open_=open_) for k in c.get("replies") or ())
    return (
        f"<li><article{attrs}><p class=who>{who}</p>{orphan}{body}{reply}</article>"
        + (f'<ol class="thread">{kids}</ol>' if kids else "")
        + "</li>"
    )


def _walk(thread: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for c in thread:
        out.append(c)
        out += _walk(c.get("replies") or ())
    return out


def _comment_form(d: Mapping[str, Any], names: Names) -> str:
    choices = "".join(
        f'<option value="{e(c["ref"])}">{e(_label(c, names))}</option>'
        for c in _walk(d["thread"])
        if not c.get("hidden")
    )
    return (
        f'<form id="comment-form" data-proposal="{e(d["proposal"])}">'
        '<p><label for="comment-text">Your comment</label><br>'
        '<textarea id="comment-text" rows="4" maxlength="2000" required '
        'aria-describedby="comment-help"></textarea></p>'
        f'<p id="comment-help" class="basis">{e(MARKUP_HELP)}</p>'
        '<p><label for="comment-reply">In reply to</label><br><select id="comment-reply">'
        f'<option value="">nothing (a new thread)</option>{choices}</select></p>'
        "<button type=submit>Review my comment</button></form>"
        '<p id="comment-status" role="status" aria-live="polite"></p>'
    )


def _statements(d: Mapping[str, Any], names: Names, *, open_: bool) -> str:
    if not d["statements"]:
        return "<p>No statements yet.</p>"
    items = []
    for s in d["statements"]:
        buttons = (
            "".join(
                f'<button type="button" class="react" data-statement="{e(s["ref"])}" '
                f'data-react="{r}" aria-label="{r.title()}: {e(s["text"])}">{r.title()}</button> '
                for r in ("agree", "disagree", "pass")
            )
            if open_
            else ""
        )
        items.append(
            f'<li class="statement" data-ref="{e(s["ref"])}"><p>{e(s["text"])}</p>'
            f'<p class="basis">by {_who(s["author"], names)} · <span class="tally">'
            f"{s['agree']} agree, {s['disagree']} disagree, {s['pass']} pass</span></p>"
            f"{buttons}</li>"
        )
    return f'<ul class="statements">{"".join(items)}</ul>'


def _ignored(d: Mapping[str, Any]) -> str:
    if not d.get("ignored"):
        return ""
    counts = ", ".join(f"{n} {k}" for k, n in sorted(d["ignored"].items()))
    return f'<p class="basis">Not counted (not members of the electorate): {e(counts)}.</p>'


def discussion_sections(
    d: Mapping[str, Any], names: Names, *, open_: bool, closed_why: str = ""
) -> str:
    """The thread and the statements; with forms when members may take part now."""
    thread = "".join(_comment(c, names, top=True, open_=open_) for c in d["thread"])
    comment_box = (
        _comment_form(d, names)
        if open_
        else f"<p>Comments are closed: {e(closed_why or 'not now')}.</p>"
    )
    statement_box = (
        f'<form id="statement-form" data-proposal="{e(d["proposal"])}">'
        '<p><label for="statement-text">A short statement others can agree or disagree '
        'with</label><br><input id="statement-text" maxlength="280" required></p>'
        "<button type=submit>Review my statement</button></form>"
        '<p id="statement-status" role="status" aria-live="polite"></p>'
        if open_
        else ""
    )
    return (
        '<section aria-labelledby="discussion-h"><h2 id="discussion-h">Discussion</h2>'
        '<div id="discussion" data-live>'
        + (f'<ol class="thread">{thread}</ol>' if thread else "<p>No comments yet.</p>")
        + _ignored(d)
        + f"</div>{comment_box}</section>"
        '<section aria-labelledby="statements-h"><h2 id="statements-h">Statements</h2>'
        "<p>Agree, disagree or pass on each statement; the opinion map below groups "
        "members who react alike.</p>"
        f'<div id="statements" data-live data-proposal="{e(d["proposal"])}">'
        f"{_statements(d, names, open_=open_)}</div>"
        '<p id="react-status" role="status" aria-live="polite"></p>'
        f"{statement_box}</section>"
    )


def _state(a: Mapping[str, Any]) -> str:
    """The amendment's state in words (HTML)."""
    state = a["state"]
    if state == "accepted":
        return f"Accepted into version {e(a['included_in'])}"
    if state == "rejected":
        return f"Rejected: {e(a['decision_reason'] or 'no reason given')}"
    if state == "promoted":
        link = "/proposal?id=" + quote(str(a["promoted_to"]), safe="")
        why = f" (rejected: {a['decision_reason']})" if a.get("decision_reason") else ""
        return f'Promoted to <a href="{e(link)}">its own proposal</a>{e(why)}'
    return "Open" + (" (outdated: written for an earlier version)" if a.get("outdated") else "")


def _amendment_label(a: Mapping[str, Any], names: Names) -> str:
    """How an amendment is named in the operator's list: state, author, what it changes."""
    what = []
    if a.get("text") is not None:
        words = " ".join(str(a["text"]).split())
        what.append("text: " + (words if len(words) <= 40 else words[:39] + "…"))
    if a.get("options"):
        what.append("options: " + ", ".join(str(o["id"]) for o in a["options"]))
    who = names.get(a["author"]) or short(a["author"], 12)
    return f"{STATE[a['state']]} · {who} · {'; '.join(what)}"[:120]


def _amend_form(p: Mapping[str, Any]) -> str:
    """A member's amendment, signed in the browser (static/discuss.js): the text as
    the member would have it, options to add or rename (not for a budget's projects)."""
    options = (
        '<p><label for="amend-options">Options to add or rename, one per line: id name'
        '</label><br><textarea id="amend-options" rows="3" aria-describedby="amend-help">'
        "</textarea></p>"
        '<p id="amend-help" class="basis">An existing id renames that option; a new id adds '
        "one. Leave the text as it is to change only the options.</p>"
        if "options" in p
        else ""
    )
    return (
        f'<form id="amend-form" data-proposal="{e(p["proposal"])}" '
        f'data-version="{e(p.get("version", 1))}">'
        "<h3>Propose an amendment</h3>"
        '<p><label for="amend-text">The text as you would have it</label><br>'
        f'<textarea id="amend-text" rows="5" maxlength="4000">{e(p.get("text") or "")}'
        "</textarea></p>"
        f"{options}"
        '<p><label for="amend-reason">Why (optional)</label><br>'
        '<input id="amend-reason" maxlength="500"></p>'
        "<button type=submit>Review my amendment</button></form>"
        '<p id="amend-status" role="status" aria-live="polite"></p>'
    )


def _decide_form(d: Mapping[str, Any], names: Names, csrf: str, *, amend_open: bool) -> str:
    """The author node's decisions, behind the operator's sign-in: reviewed on the next
    page (what the node will sign), then signed by the node. After the discussion only
    promoting a rejected amendment is left."""
    states = ("proposed", "rejected") if amend_open else ("rejected",)
    choices = "".join(
        f'<option value="{e(a["ref"])}">{e(_amendment_label(a, names))}</option>'
        for a in d["amendments"]
        if a["state"] in states
    )
    decide = (
        '<p><label for="decide-reason">Reason (needed to reject)</label><br>'
        '<textarea id="decide-reason" name="reason" rows="2" maxlength="500"></textarea></p>'
        if amend_open
        else ""
    )
    buttons = (
        '<button name="action" value="accept">Review: accept</button> '
        '<button name="action" value="reject">Review: reject</button> '
        if amend_open
        else ""
    )
    return (
        '<form id="decide-form" method="post" action="/operator/amendment/review">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<input type="hidden" name="proposal" value="{e(d["proposal"])}">'
        "<h3>Decide on an amendment (this node wrote the proposal)</h3>"
        '<p><label for="decide-amendment">Amendment</label><br>'
        f'<select id="decide-amendment" name="amendment" required>{choices}</select></p>'
        f"{decide}"
        '<p><label for="decide-key">Id of the new proposal (to promote a rejected one)</label>'
        '<br><input id="decide-key" name="key" maxlength="40" placeholder="park-b"></p>'
        "<p>You see what the node will sign before it signs.</p>"
        f"{buttons}"
        '<button name="action" value="promote">Review: promote</button></form>'
    )


def amendments_section(
    d: Mapping[str, Any],
    p: Mapping[str, Any],
    names: Names,
    *,
    amend_open: bool = False,
    author_here: bool = False,
    operator_csrf: str | None = None,
) -> str:
    """The amendments with their states and which version is current; the member's
    amendment form while amendments are open; the decision form when this node wrote
    the proposal (`author_here`) and its operator is signed in (`operator_csrf`)."""
    included = ", ".join(short(str(r).split(".", 1)[-1], 24) for r in p.get("amendments") or ())
    head = f"<p>Current version: <strong>{d['version']}</strong>" + (
        f" (includes {e(included)})" if included else ""
    )
    items = []
    for a in d["amendments"]:
        changes = []
        if a.get("text") is not None:
            changes.append(f"<p>New text:</p><blockquote>{e(a['text'])}</blockquote>")
        if a.get("options"):
            opts = ", ".join(f"{o['id']} = {o['name']}" for o in a["options"])
            changes.append(f"<p>Options to add or rename: {e(opts)}</p>")
        why = f'<p class="basis">Why: {e(a["reason"])}</p>' if a.get("reason") else ""
        state_cls = "state " + e(a["state"])
        items.append(
            f'<li class="amendment" data-ref="{e(a["ref"])}" data-state="{e(a["state"])}" '
            f'data-label="{e(_amendment_label(a, names))}">'
            f'<p><strong class="{state_cls}">{_state(a)}</strong></p>'
            f"<p class=basis>by {_who(a['author'], names)}, for version {a['version']}</p>"
            + "".join(changes)
            + why
            + "</li>"
        )
    body = f'<ul class="amendments">{"".join(items)}</ul>' if items else "<p>No amendments.</p>"
    forms = _amend_form(p) if amend_open else ""
    # A rejected amendment can be promoted after the discussion, too.
    decisions = amend_open or any(a["state"] == "rejected" for a in d["amendments"])
    if author_here and decisions and operator_csrf is not None:
        forms += _decide_form(d, names, operator_csrf, amend_open=amend_open)
    elif author_here and decisions:
        forms += (
            '<p class="basis">This node wrote the proposal: its operator decides on the '
            'amendments here after signing in on the <a href="/operator">Operator</a> page.</p>'
        )
    # The current version and text, for the member's form to follow (static/discuss.js).
    base = (
        f'<p hidden id="amend-base" data-version="{e(p.get("version", 1))}" '
        f'data-text="{e(p.get("text") or "")}"></p>'
    )
    return (
        '<section aria-labelledby="amendments-h"><h2 id="amendments-h">Amendments</h2>'
        f'<div id="amendments" data-live>{head}.</p>{body}{base}</div>{forms}</section>'
    )


DECIDED = {
    "accept": "Accept",
    "reject": "Reject",
    "promote": "Promote",
}


def decision_review(preview: Mapping[str, Any], form: Mapping[str, str], csrf: str) -> str:
    """What the node will sign for the operator's decision, and the button that signs it.

    The confirm form carries the reviewed version: if the proposal changes meanwhile,
    the node refuses and the operator reviews again."""
    action = form["action"]
    records = "".join(
        f"<h3>{e(r['kind'].title())} <code>{e(r['key'])}</code> in {e(r['scope'])}</h3>"
        f'<pre class="review-record">{e(json.dumps(r["body"], indent=2, sort_keys=True))}</pre>'
        for r in preview["records"]
    )
    keep = "".join(
        f'<input type="hidden" name="{k}" value="{e(form.get(k, ""))}">'
        for k in ("proposal", "amendment", "action", "reason", "key")
    )
    back = "/proposal?id=" + quote(str(preview["proposal"]), safe="")
    return (
        f"<p>Amendment <code class=ref>{e(form['amendment'])}</code> to version "
        f"{e(preview['version'])} of the proposal. This node's key will sign "
        f"{'these records' if len(preview['records']) > 1 else 'this record'}:</p>"
        f'<section id="decision-records">{records}</section>'
        '<form id="decision-confirm" method="post" action="/operator/amendment/confirm">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">{keep}'
        f'<input type="hidden" name="version" value="{e(preview["version"])}">'
        f"<button>{DECIDED[action]}: sign with this node's key</button> "
        f'<a href="{e(back)}#amendments-h">Back to the proposal</a></form>'
    )


def opinions_section(m: Mapping[str, Any] | None, error: str = "") -> str:
    """The opinion map as a chart, and the same as a table."""
    if m is None:
        inner = f'<p class="note">No opinion map: {e(error)}</p>'
    elif not m["groups"]:
        inner = "<p>No reactions yet: the map appears once members react to statements.</p>"
    else:
        texts = m.get("texts") or {}

        def said(ref: str) -> str:
            return str(texts.get(ref, ref))

        chart_rows = [
            (
                f"Group {i}",
                len(g["members"]),
                [("agree", said(s)) for s in g["agrees"]]
                + [("disagree", said(s)) for s in g["disagrees"]],
            )
            for i, g in enumerate(m["groups"], 1)
        ]
        sizes = ", ".join(str(len(g["members"])) for g in m["groups"])
        title = (
            f"Opinion map: {len(m['groups'])} groups of {sizes} members; "
            f"{len(m['bridging'])} statements with broad agreement"
        )
        chart = opinion_groups(chart_rows, [said(s) for s in m["bridging"]], title)

        def items(refs: Sequence[str]) -> str:
            return (
                "<ul>" + "".join(f"<li>{e(said(s))}</li>" for s in refs) + "</ul>" if refs else ""
            )

        rows = "".join(
            f"<tr><th scope=row>Group {i}</th><td class=num>{len(g['members'])}</td>"
            f"<td>{items(g['agrees'])}</td><td>{items(g['disagrees'])}</td></tr>"
            for i, g in enumerate(m["groups"], 1)
        )
        table = (
            '<div class="scroll"><table id="opinion-table"><caption>Opinion groups and the '
            "statements that set each apart</caption><thead><tr><th scope=col>Group</th>"
            "<th scope=col>Members</th><th scope=col>Agrees with, more than the others</th>"
            "<th scope=col>Disagrees with, more than the others</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )
        bridge = (
            f"<h3>Broad agreement across groups</h3>{items(m['bridging'])}"
            if m["bridging"]
            else "<p>No statement has broad agreement across all groups yet.</p>"
        )
        inner = (
            f"<p>{m['participants']} participant(s) reacted to {m['statements']} "
            f"statement(s).</p>{chart}{table}{bridge}"
        )
    return (
        '<section aria-labelledby="opinions-h"><h2 id="opinions-h">Opinion map</h2>'
        f'<div id="opinions" data-live>{inner}</div></section>'
    )
