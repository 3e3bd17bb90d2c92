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

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from node.governance.markup import to_html
from web.charts import opinion_groups
from web.html import e, short

__all__ = ["Names", "amendments_section", "discussion_sections", "opinions_section"]

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


def amendments_section(d: Mapping[str, Any], p: Mapping[str, Any], names: Names) -> str:
    """The amendments with their states, and which version is current."""
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
            f'<li class="amendment" data-ref="{e(a["ref"])}" data-state="{e(a["state"])}">'
            f'<p><strong class="{state_cls}">{_state(a)}</strong></p>'
            f"<p class=basis>by {_who(a['author'], names)}, for version {a['version']}</p>"
            + "".join(changes)
            + why
            + "</li>"
        )
    body = f'<ul class="amendments">{"".join(items)}</ul>' if items else "<p>No amendments.</p>"
    return (
        '<section aria-labelledby="amendments-h"><h2 id="amendments-h">Amendments</h2>'
        f'<div id="amendments" data-live>{head}.</p>{body}</div></section>'
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
