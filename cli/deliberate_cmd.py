"""`allmende discuss|comment|statement|amend|amendment|opinions|moderate`: deliberation.

A member's contributions (comment, statement, reaction, amendment) are signed locally
with the member's key file, like a vote; the node only relays them. The node's own
steps (decide on or promote an amendment, hide a comment) are ops of the daemon.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cli.governance_cmd import _emit, _load_member, _now_ms, json_option, pass_ctx
from node.governance.markup import to_text
from node.governance.member_sign import sign_member_record

if TYPE_CHECKING:
    from cli.main import Ctx

_KEY = click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Your member key file (signs the record).",
)


def _sign(ctx: Ctx, key_file: Path, proposal: str, kind: str, make: Any) -> str:
    """Sign and submit one member record; returns its ref."""
    identity = _load_member(key_file)
    info = ctx.call("delib_prepare", proposal=proposal, member=identity.public.hex(), kind=kind)
    key, b = make(info)
    record = sign_member_record(
        identity,
        kind,
        key,
        info["scope"],
        b,
        now_ms=max(_now_ms(), info["now"]),
        held_max_seq=info["held_max_seq"],
    )
    ctx.call("submit", record=record.raw.hex())
    return f"{identity.public.hex()}.{key}"


def _new_key(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"  # the CLI is an edge: randomness enters here


@click.command("comment")
@click.argument("proposal_id")
@click.argument("text")
@click.option("--reply", default=None, help="Ref of the comment this answers.")
@_KEY
@pass_ctx
def comment(ctx: Ctx, proposal_id: str, text: str, reply: str | None, key_file: Path) -> None:
    """Comment on PROPOSAL_ID (a small markdown subset: **strong**, *em*, `code`, - lists)."""

    def make(info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        b = {"proposal": info["proposal"], "text": text}
        if reply:
            b["reply"] = reply
        return _new_key("c"), b

    click.echo(f"Commented: {_sign(ctx, key_file, proposal_id, 'comment', make)}")


@click.group("statement")
def statement() -> None:
    """Short statements members agree or disagree with (the opinion map)."""


@statement.command("add")
@click.argument("proposal_id")
@click.argument("text")
@_KEY
@pass_ctx
def statement_add(ctx: Ctx, proposal_id: str, text: str, key_file: Path) -> None:
    """Add a short statement (at most 280 characters) to PROPOSAL_ID."""
    ref = _sign(
        ctx,
        key_file,
        proposal_id,
        "statement",
        lambda info: (_new_key("s"), {"proposal": info["proposal"], "text": text}),
    )
    click.echo(f"Added statement {ref}")


@statement.command("react")
@click.argument("proposal_id")
@click.argument("statement_ref")
@click.argument("reaction", type=click.Choice(["agree", "disagree", "pass"]))
@_KEY
@pass_ctx
def statement_react(
    ctx: Ctx, proposal_id: str, statement_ref: str, reaction: str, key_file: Path
) -> None:
    """React to STATEMENT_REF; reacting again replaces your reaction."""

    def make(info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        author, _, skey = statement_ref.partition(".")
        # one slot per statement: the key names it, so a new reaction replaces the old
        key = f"r-{author[:10]}-{skey}"[:64]
        return key, {"proposal": info["proposal"], "statement": statement_ref, "react": reaction}

    _sign(ctx, key_file, proposal_id, "reaction", make)
    click.echo(f"Reacted {reaction} to {statement_ref[:16]}….")


@click.command("amend")
@click.argument("proposal_id")
@click.option("--text", default=None, help="The proposal's text as you would have it.")
@click.option("--option", "options", multiple=True, help="An option to add or rename: ID=NAME.")
@click.option("--reason", default=None, help="Why.")
@_KEY
@pass_ctx
def amend(
    ctx: Ctx,
    proposal_id: str,
    text: str | None,
    options: tuple[str, ...],
    reason: str | None,
    key_file: Path,
) -> None:
    """Propose an amendment to PROPOSAL_ID during its discussion."""
    if text is None and not options:
        raise click.UsageError("give --text or at least one --option")

    def make(info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        b: dict[str, Any] = {"proposal": info["proposal"], "version": info["version"]}
        if text is not None:
            b["text"] = text
        if options:
            pairs = [o.partition("=") for o in options]
            if any(not sep or not name for _, sep, name in pairs):
                raise click.UsageError("--option takes ID=NAME")
            b["options"] = [{"id": i, "name": n} for i, _, n in pairs]
        if reason:
            b["reason"] = reason
        return _new_key("a"), b

    click.echo(f"Proposed amendment {_sign(ctx, key_file, proposal_id, 'amendment', make)}")


@click.group("amendment")
def amendment() -> None:
    """Decide on amendments (the proposal's node)."""


@amendment.command("accept")
@click.argument("amendment_ref")
@pass_ctx
def amendment_accept(ctx: Ctx, amendment_ref: str) -> None:
    """Accept AMENDMENT_REF: the proposal's next version includes it."""
    ctx.call("delib_amendment_decide", amendment=amendment_ref, accept=True)
    click.echo(f"Accepted {amendment_ref}; the proposal has a new version.")


@amendment.command("reject")
@click.argument("amendment_ref")
@click.option("--reason", required=True, help="Why (shown to everyone).")
@pass_ctx
def amendment_reject(ctx: Ctx, amendment_ref: str, reason: str) -> None:
    """Reject AMENDMENT_REF with a reason."""
    ctx.call("delib_amendment_decide", amendment=amendment_ref, accept=False, reason=reason)
    click.echo(f"Rejected {amendment_ref}.")


@amendment.command("promote")
@click.argument("amendment_ref")
@click.argument("key")
@pass_ctx
def amendment_promote(ctx: Ctx, amendment_ref: str, key: str) -> None:
    """Make rejected AMENDMENT_REF a proposal of its own, with id KEY."""
    r = ctx.call("delib_amendment_promote", amendment=amendment_ref, key=key)
    click.echo(f"Created proposal {r['proposal']} from {amendment_ref}.")


@click.group("moderate")
def moderate() -> None:
    """Moderation without silent deletion (a commune node, for its own members)."""


@moderate.command("hide")
@click.argument("comment_ref")
@click.option("--reason", required=True, help="Why (shown with the hidden comment).")
@pass_ctx
def moderate_hide(ctx: Ctx, comment_ref: str, reason: str) -> None:
    """Hide COMMENT_REF; it stays in the thread as hidden, with this node and the reason."""
    ctx.call("delib_hide", comment=comment_ref, reason=reason)
    click.echo(f"Hid {comment_ref[:16]}….")


@click.command("discuss")
@click.argument("proposal_id")
@json_option
@pass_ctx
def discuss(ctx: Ctx, proposal_id: str, as_json: bool) -> None:
    """The thread, statements and amendments of PROPOSAL_ID."""
    r = ctx.call("delib_discuss", proposal=proposal_id)
    _emit(ctx, as_json, r, render_discussion(r))


@click.command("opinions")
@click.argument("proposal_id")
@json_option
@pass_ctx
def opinions(ctx: Ctx, proposal_id: str, as_json: bool) -> None:
    """Opinion groups of PROPOSAL_ID and the statements that bridge them."""
    r = ctx.call("delib_opinions", proposal=proposal_id)
    _emit(ctx, as_json, r, render_opinions(r))


# --- rendering (pure) -----------------------------------------------------------------


def _add_comment(tree: Tree, c: dict[str, Any]) -> None:
    who = c["author"][:12]
    if c["hidden"]:
        label = Text(
            f"{who}: [hidden by {c['hidden']['by'][:12]}: {c['hidden']['reason']}]", style="dim"
        )
    else:
        label = Text(f"{who}: {to_text(c['text'])}")
    node = tree.add(label)
    for child in c["replies"]:
        _add_comment(node, child)


def render_discussion(r: dict[str, Any]) -> RenderableType:
    tree = Tree(f"Discussion of {r['proposal']} (version {r['version']})")
    for c in r["thread"]:
        _add_comment(tree, c)
    if not r["thread"]:
        tree.add(Text("No comments yet.", style="dim"))
    parts: list[RenderableType] = [tree]
    if r["statements"]:
        t = Table(title="Statements")
        for col in ("ref", "statement", "agree", "disagree", "pass"):
            t.add_column(col)
        for s in r["statements"]:
            t.add_row(
                s["ref"][:12] + "…", s["text"], str(s["agree"]), str(s["disagree"]), str(s["pass"])
            )
        parts.append(t)
    if r["amendments"]:
        t = Table(title="Amendments")
        for col in ("ref", "for version", "state", "why"):
            t.add_column(col)
        for a in r["amendments"]:
            state = a["state"] + (f" (v{a['included_in']})" if a["included_in"] else "")
            state += f" → {a['promoted_to']}" if a["promoted_to"] else ""
            state += " (outdated)" if a["outdated"] else ""
            t.add_row(a["ref"][:12] + "…", str(a["version"]), state, a["decision_reason"] or "")
        parts.append(t)
    if r["ignored"]:
        parts.append(
            Text(
                "Not counted (not members of the electorate): "
                + ", ".join(f"{n} {k}" for k, n in r["ignored"].items()),
                style="dim",
            )
        )
    return Group(*parts)


def render_opinions(r: dict[str, Any]) -> RenderableType:
    texts = r.get("texts", {})
    if not r["groups"]:
        return Text("No reactions yet.", style="dim")
    parts: list[RenderableType] = [
        Text(f"{r['participants']} participants, {r['statements']} statements")
    ]
    for i, g in enumerate(r["groups"], 1):
        t = Table(title=f"Group {i}: {len(g['members'])} members")
        t.add_column("sets it apart")
        t.add_column("statement")
        for s in g["agrees"]:
            t.add_row("agrees", texts.get(s, s))
        for s in g["disagrees"]:
            t.add_row("disagrees", texts.get(s, s))
        parts.append(t)
    t = Table(title="Broad agreement across groups")
    t.add_column("statement")
    for s in r["bridging"]:
        t.add_row(texts.get(s, s))
    parts.append(t)
    return Group(*parts)


COMMANDS = [discuss, comment, statement, amend, amendment, opinions, moderate]
