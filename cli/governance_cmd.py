"""`allmende member|proposal|vote|results|budget|assembly`: governance commands.

Thin: parse, call the daemon's ``gov_*`` ops, render. Member keys never reach the
daemon: `vote` and `assembly volunteer` sign locally with the member's key file and
hand the daemon a finished record (op ``submit``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from node import control
from node.errors import LocalError
from node.governance.member_sign import sign_member_record
from node.governance.pbimport import MAX_FILE_BYTES
from node.governance.tally import ballot_problem
from node.identity import Identity, generate, read_key, write_key

if TYPE_CHECKING:
    from cli.main import Ctx

# Not importing cli.main here keeps this module importable on its own (cli.main
# imports it at its bottom). Errors become exit codes in the top-level group.
pass_ctx = click.pass_obj
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
AllmendeGroup = click.Group


def _emit(ctx: Ctx, as_json: bool, data: Any, renderable: RenderableType) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        ctx.show(renderable)


# Matched whole, ASCII digits only: "$" would take a trailing newline, \d and int()
# would take digits of other scripts.
_REL = re.compile(r"\+?([0-9]+)([mhdw])")
_DIGITS = re.compile(r"[0-9]+")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000  # the CLI is an edge: real time enters here


def parse_when(text: str, now: int) -> int:
    """``now``, a duration from now (``30m``, ``2h``, ``7d``, ``1w``), epoch
    milliseconds, or an ISO 8601 date-time (local time unless it has an offset).

    Raises:
        LocalError: none of these.
    """
    text = text.strip()
    if text == "now":
        return now
    m = _REL.fullmatch(text)
    if m:
        return now + int(m.group(1)) * _UNIT_MS[m.group(2)]
    if _DIGITS.fullmatch(text):
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise LocalError(
            f"cannot read the time {text!r}; use now, 30m, 2h, 7d, 1w, epoch "
            "milliseconds or 2027-03-01T18:00"
        ) from None


def _decimal(fraction: str | None) -> str:
    """An exact ``"a/b"`` shown with two decimals (the JSON keeps it exact)."""
    if not fraction:
        return ""
    return f"{float(Fraction(fraction)):.2f}" if "/" in fraction else fraction


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k or not val:
            raise LocalError(f"{what} {v!r} must look like key=value")
        out[k] = val
    return out


def _load_member(path: Path) -> Identity:
    return read_key(path)


# --- rendering (pure) ----------------------------------------------------------------


def render_members(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("No members.", style="dim")
    t = Table(title="Members")
    for col in ("member key", "pseudonym", "features", "node"):
        t.add_column(col)
    for r in rows:
        feats = ", ".join(f"{k}={v}" for k, v in sorted(r["features"].items()))
        t.add_row(
            r["member"][:16] + "…", r["pseudonym"], feats, r.get("node_name") or r["node"][:12]
        )
    return t


def render_proposals(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("No proposals.", style="dim")
    t = Table(title="Proposals", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("id", no_wrap=True)  # typed into `vote`: never cut
    t.add_column("title", overflow="fold")
    for col in ("phase", "closes"):
        t.add_column(col, overflow="fold")
    t.add_column("votes", justify="right", no_wrap=True)
    for r in rows:  # the method is in `proposal show`: ids need the room at 80 columns
        votes = r["votes_held"] if r.get("frozen_votes") is None else r["frozen_votes"]
        t.add_row(r["proposal"], r["title"], r["phase"], _when(r["closes"]), str(votes))
    return t


def render_proposal(p: dict[str, Any]) -> RenderableType:
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    for label, value in (
        ("id", p["proposal"]),
        ("title", p["title"]),
        ("method", p["method"]),
        ("phase", p["phase"]),
        ("electorate", p["electorate"]),
        ("opens", _when(p["opens"])),
        ("closes", _when(p["closes"])),
        ("votes held", str(p["votes_held"])),
    ):
        t.add_row(label, value)
    if p.get("frozen_votes") is not None:
        t.add_row("votes frozen", str(p["frozen_votes"]))
    if p.get("import"):
        t.add_row("imported", f"pabulib file sha256 {p['import']} (demo voters only)")
    if p.get("budget") is not None:
        t.add_row("budget", f"{p['budget']:,}")
    entries = p.get("projects") or p.get("options") or []
    t.add_row(
        "choices",
        "\n".join(
            f"{e['id']}: {e['name']}" + (f" ({e['cost']:,})" if "cost" in e else "")
            for e in entries
        ),
    )
    return t


def render_results(r: dict[str, Any]) -> RenderableType:
    head = Text()
    head.append(f"{r['title']} ", style="bold")
    head.append(f"[{r['proposal']}] {r['method']}, {r['status']}")
    lines: list[RenderableType] = [head]
    excluded = ", ".join(f"{k} {v}" for k, v in r["excluded"].items())
    lines.append(
        Text(
            f"counted {r['counted']} ballot(s)"
            + (f"; not counted: {excluded}" if excluded else "")
            + (f"; {r['uncounted']} vote(s) held here arrived too late" if r["uncounted"] else "")
        )
    )
    if r.get("import"):
        lines.append(
            Text(
                f"imported from a pabulib file (sha256 {r['import'][:16]}…): its electorate "
                "is the file's voters with demo keys, no member of any scope"
            )
        )
    if r["problem"]:
        lines.append(Text(r["problem"], style="yellow" if r["status"] == "provisional" else "red"))
    for note in r.get("notes") or ():
        lines.append(Text(note, style="yellow"))
    d = r["detail"]
    if "projects" in d:
        lines.append(
            Text(
                f"winners: {', '.join(r['winners']) or '-'}; spent "
                f"{d['spent']:,} of {d['budget']:,}"
            )
        )
        rules = [f"free projects: {d['free_projects']}"] if "free_projects" in d else []
        if "add1" in d:
            a = d["add1"]
            rules.append(
                f"add1: {a['increments']:,} increment(s) of at most {a['limit']:,}"
                + (", stopped at the limit" if a["stopped_at_limit"] else "")
            )
        if rules:
            lines.append(Text("; ".join(rules), style="dim"))
        t = Table()
        for col, just in (
            ("project", "left"),
            ("name", "left"),
            ("cost", "right"),
            ("votes", "right"),
            ("selected", "left"),
            ("effective votes", "right"),
        ):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        order = {w: i for i, w in enumerate(r["winners"])}
        for p in sorted(d["projects"], key=lambda p: (order.get(p["id"], 10**6), -p["votes"])):
            t.add_row(
                p["id"],
                p["name"],
                f"{p['cost']:,}",
                str(p["votes"]),
                f"#{order[p['id']] + 1}" if p["selected"] else "",
                _decimal(p["effective_votes"]),
            )
        lines.append(t)
    elif "options" in d:
        lines.append(
            Text(
                f"winners: {', '.join(r['winners']) or '-'}"
                + (" (tie broken by option id)" if d.get("tie_broken") else "")
            )
        )
        t = Table()
        t.add_column("rank", justify="right")
        t.add_column("option")
        t.add_column("name")
        figure = "count" if r["method"] == "approval" else "total"
        if r["method"] != "ranked":
            t.add_column(figure, justify="right")
        names = {o["id"]: o for o in d["options"]}
        for i, oid in enumerate(d["ranking"], 1):
            o = names[oid]
            t.add_row(str(i), oid, o["name"], *([str(o[figure])] if figure in o else []))
        lines.append(t)
    return Group(*lines)


def render_vote_check(r: dict[str, Any]) -> Text:
    """`allmende vote check`: one line per question a member asks about their vote."""

    def ballot(b: Any) -> str:
        return json.dumps(b, ensure_ascii=False)

    lines = [f"proposal {r['proposal']}"]
    lines.append(f"held here: {'yes, ballot ' + ballot(r['held_ballot']) if r['held'] else 'no'}")
    if not r["closed"]:
        lines.append("frozen: not yet (the proposal is not closed)")
    elif r["frozen"]:
        lines.append(f"frozen: yes, ballot {ballot(r['frozen_ballot'])}")
        lines.append("counted: yes" if r["counted"] else f"counted: no ({r['reason']})")
    else:
        lines.append("frozen: no (the close did not freeze a vote of this key)")
    return Text("\n".join(lines))


# --- member ------------------------------------------------------------------------


@click.group(cls=AllmendeGroup)
def member() -> None:
    """Members of this commune: keys that may vote and volunteer."""


@member.command("keygen")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the new private key (mode 0600; never overwritten).",
)
def member_keygen(out: Path) -> None:
    """Create a member key pair; prints the public key to give to your commune."""
    identity = generate()
    write_key(out, identity)
    click.echo(identity.public.hex())


@member.command("pubkey")
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The member key file (from `member keygen`).",
)
def member_pubkey(key_file: Path) -> None:
    """Print the public key of a member key file (what the commune adds)."""
    click.echo(_load_member(key_file).public.hex())


@member.command("add")
@click.argument("pubkey")
@click.option("--pseudonym", required=True, help="How the member appears (not a legal name).")
@click.option(
    "--feature",
    "features",
    multiple=True,
    metavar="K=V",
    help="A coarse stratum the member consented to share (e.g. age=30-44).",
)
@pass_ctx
def member_add(ctx: Ctx, pubkey: str, pseudonym: str, features: tuple[str, ...]) -> None:
    """Admit PUBKEY as a member of this node (publishes a member record)."""
    r = ctx.call(
        "gov_member_add", member=pubkey, pseudonym=pseudonym, features=_pairs(features, "feature")
    )
    click.echo(f"Added member {r['id'][:16]}… ({pseudonym}).")


@member.command("list")
@click.option("--all", "all_", is_flag=True, help="Members of every node held here.")
@json_option
@pass_ctx
def member_list(ctx: Ctx, all_: bool, as_json: bool) -> None:
    """List this node's members."""
    rows = ctx.call("gov_member_list", all=all_)
    _emit(ctx, as_json, rows, render_members(rows))


@member.command("remove")
@click.argument("pubkey")
@pass_ctx
def member_remove(ctx: Ctx, pubkey: str) -> None:
    """Remove a member (its votes stop counting, including on closed proposals)."""
    ctx.call("gov_member_remove", member=pubkey)
    click.echo(f"Removed member {pubkey[:16]}….")


# --- proposal ------------------------------------------------------------------------


@click.group(cls=AllmendeGroup)
def proposal() -> None:
    """Proposals: create, list, show, close."""


def _option(text: str) -> dict[str, str]:
    oid, sep, name = text.partition("=")
    return {"id": oid, "name": name if sep else oid}


def _project(text: str) -> dict[str, Any]:
    parts = text.split(":", 2)
    if len(parts) < 2 or not _DIGITS.fullmatch(parts[1]):
        raise LocalError(f"project {text!r} must look like ID:COST[:NAME], e.g. p1:5000:Benches")
    return {"id": parts[0], "cost": int(parts[1]), "name": parts[2] if len(parts) > 2 else parts[0]}


@proposal.command("create")
@click.argument("key")
@click.option("--title", required=True, help="What is decided.")
@click.option("--text", default=None, help="Longer description.")
@click.option(
    "--method",
    required=True,
    type=click.Choice(["approval", "score", "ranked", "mes", "greedy"]),
    help="How ballots are counted (mes = Method of Equal Shares with add1).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="ID[=NAME]",
    help="A choice (approval, score, ranked).",
)
@click.option(
    "--project",
    "projects",
    multiple=True,
    metavar="ID:COST[:NAME]",
    help="A project (mes, greedy).",
)
@click.option("--budget", type=click.IntRange(0), default=None, help="Budget (mes, greedy).")
@click.option("--seats", type=click.IntRange(1), default=None, help="How many options win.")
@click.option("--min-score", type=int, default=None, help="Lowest score (score).")
@click.option("--max-score", type=int, default=None, help="Highest score (score).")
@click.option(
    "--electorate", default=None, help="Scope whose members vote (default: this node's scope)."
)
@click.option("--opens", default="now", show_default=True, help="When voting opens.")
@click.option(
    "--discussion",
    default=None,
    help="When discussion starts (before --opens; e.g. now with --opens 7d): comments "
    "and amendments until voting opens.",
)
@click.option(
    "--closes",
    default="7d",
    show_default=True,
    help="When voting closes: 2h, 7d, epoch ms or 2027-03-01T18:00.",
)
@json_option
@pass_ctx
def proposal_create(
    ctx: Ctx,
    key: str,
    title: str,
    text: str | None,
    method: str,
    options: tuple[str, ...],
    projects: tuple[str, ...],
    budget: int | None,
    seats: int | None,
    min_score: int | None,
    max_score: int | None,
    electorate: str | None,
    opens: str,
    discussion: str | None,
    closes: str,
    as_json: bool,
) -> None:
    """Create proposal KEY (lowercase, e.g. playground-2027)."""
    now = _now_ms()
    if method == "score" and (min_score is None or max_score is None):
        min_score, max_score = (
            0 if min_score is None else min_score,
            5 if max_score is None else max_score,
        )
    r = ctx.call(
        "gov_proposal_create",
        key=key,
        title=title,
        text=text,
        method=method,
        options=[_option(o) for o in options] or None,
        projects=[_project(p) for p in projects] or None,
        budget=budget,
        seats=seats,
        min_score=min_score,
        max_score=max_score,
        electorate=electorate,
        opens=parse_when(opens, now),
        discussion=None if discussion is None else parse_when(discussion, now),
        closes=parse_when(closes, now),
    )
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        click.echo(f"Created proposal {r['proposal']}")


@proposal.command("list")
@json_option
@pass_ctx
def proposal_list(ctx: Ctx, as_json: bool) -> None:
    """Proposals held by this node."""
    rows = ctx.call("gov_proposal_list")
    _emit(ctx, as_json, rows, render_proposals(rows))


@proposal.command("show")
@click.argument("proposal_id")
@json_option
@pass_ctx
def proposal_show(ctx: Ctx, proposal_id: str, as_json: bool) -> None:
    """One proposal: choices, window, phase."""
    p = ctx.call("gov_proposal_show", proposal=proposal_id)
    _emit(ctx, as_json, p, render_proposal(p))


@proposal.command("close")
@click.argument("proposal_id")
@click.option("--early", is_flag=True, help="Close before the closing time.")
@pass_ctx
def proposal_close(ctx: Ctx, proposal_id: str, early: bool) -> None:
    """Freeze the vote set of one of this node's proposals."""
    r = ctx.call("gov_proposal_close", proposal=proposal_id, early=early or None)
    click.echo(
        f"Closed {r['proposal']}: {r['frozen_votes']} vote(s) frozen in "
        f"{r['chunks']} chunk(s), hash {r['hash'][:16]}…"
    )


# --- vote, results -------------------------------------------------------------------


def ballot_from(method: str, choices: tuple[str, ...]) -> Any:
    """CHOICES as a ballot: ids (approval, mes, greedy), ID=SCORE (score), or groups
    best first where ``a=b`` ranks a and b equal (ranked)."""
    if method == "score":
        scores = _pairs(choices, "score")
        try:
            return {k: int(v) for k, v in scores.items()}
        except ValueError:
            raise LocalError("scores must be integers, e.g. park=4") from None
    if method == "ranked":
        return [c.split("=") for c in choices]
    return list(choices)


@click.command("vote")
@click.argument("proposal_id")
@click.argument("choices", nargs=-1)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Your member key file (from `member keygen`).",
)
@pass_ctx
@json_option
def vote(
    ctx: Ctx, proposal_id: str, choices: tuple[str, ...], key_file: Path, as_json: bool
) -> None:
    """Vote on PROPOSAL_ID, signed with your own key. CHOICES: approved ids (approval,
    mes, greedy), ID=SCORE (score), or ids best first with a=b for a tie (ranked).
    Voting again replaces your earlier vote until the close.

    `allmende vote check PROPOSAL_ID --key FILE` shows whether your vote is held,
    in the frozen set and counted, and with which ballot (--json for scripts)."""
    identity = _load_member(key_file)
    if proposal_id == "check":
        if len(choices) != 1:
            raise LocalError("usage: allmende vote check PROPOSAL_ID --key FILE")
        r = ctx.call("gov_vote_check", proposal=choices[0], member=identity.public.hex())
        _emit(ctx, as_json, r, render_vote_check(r))
        return
    info = ctx.call("gov_vote_prepare", proposal=proposal_id, member=identity.public.hex())
    ballot = ballot_from(info["body"]["method"], choices)
    problem = ballot_problem(info["body"], ballot)
    if problem is not None:  # checked before signing: nothing is sent, an earlier vote stays
        raise LocalError(f"{problem}. Nothing was sent: any earlier vote of yours stands.")
    record = sign_member_record(
        identity,
        "vote",
        info["proposal"],
        info["scope"],
        {"ballot": ballot, "version": int(info["body"].get("version", 1))},
        now_ms=max(_now_ms(), info["now"]),
        held_max_seq=info["held_max_seq"],
    )
    ctx.call("submit", record=record.raw.hex())
    click.echo(f"Voted on {info['proposal']} as {identity.public.hex()[:16]}….")


@click.command("results")
@click.argument("proposal_id")
@json_option
@pass_ctx
def results(ctx: Ctx, proposal_id: str, as_json: bool) -> None:
    """Winners, counts, budget spent and support per project."""
    r = ctx.call("gov_results", proposal=proposal_id)
    _emit(ctx, as_json, r, render_results(r))


# --- budget ---------------------------------------------------------------------------


@click.group(cls=AllmendeGroup)
def budget() -> None:
    """Participatory budgets."""


# What the daemon reports while importing, as a person reads it.
_STAGES = {
    "checking": "Checking the file",
    "signing": "Signing ballots",
    "preparing": "Freezing the ballots",
    "saving": "Saving",
    "merging": "Merging",
}
IMPORT_TIMEOUT = 120.0  # seconds of silence; the daemon reports progress far more often

OnProgress = Callable[[int, int, str], None]


@contextlib.contextmanager
def import_progress(console: Console, show: bool) -> Iterator[OnProgress]:
    """A progress callback: a rich bar on `console` if `show`, else silent."""
    if not show:
        yield lambda done, total, what: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        # One task per stage: a stage without a count (checking, saving) shows a pulse.
        stage = ["checking"]
        task = [bar.add_task(_STAGES["checking"], total=None)]

        def update(done: int, total: int, what: str) -> None:
            if what != stage[0]:
                bar.remove_task(task[0])
                stage[0], task[0] = what, bar.add_task(_STAGES.get(what, what), total=None)
            if what not in ("checking", "saving"):
                bar.update(task[0], total=total, completed=done)
            bar.refresh()  # at most ~10 updates a second come from the daemon

        yield update


def call_with_payload(
    ctx: Ctx, op: str, payload: bytes, on_progress: OnProgress, **args: Any
) -> Any:
    """`Ctx.call` for ops that take bytes and report progress.

    Raises:
        LocalError: no node in the data dir, or the daemon refused the request.
        DaemonNotRunning: a node exists but its daemon is not running.
    """
    try:
        return control.call(
            ctx.dd.socket,
            op,
            args,
            payload=payload,
            on_progress=on_progress,
            timeout=IMPORT_TIMEOUT,
        )
    except control.DaemonNotRunning:
        if not ctx.dd.initialised():
            d = ctx.data_dir
            raise LocalError(
                f"no node in {d}; create one with: allmende --data-dir {d} init "
                f"--name NAME --scope SCOPE, then start it with: allmende --data-dir {d} run"
            ) from None
        raise


@budget.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@pass_ctx
def budget_import(ctx: Ctx, file: Path, as_json: bool) -> None:
    """Import a pabulib FILE.pb as a closed proposal whose electorate is the file's
    voters (demo keys, never members: see docs/governance.md)."""
    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise LocalError(
            f"{file} is {size:,} bytes; budget import takes files up to {MAX_FILE_BYTES:,}"
        )
    data = file.read_bytes()
    show = ctx.console.is_terminal and not as_json
    with import_progress(ctx.console, show) as on_progress:
        r = call_with_payload(ctx, "gov_budget_import", data, on_progress)
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        click.echo(
            f"Imported {file.name} as {r['proposal']}: {r['projects']} projects, "
            f"{r['voters']:,} voters with demo keys (an electorate of their own), "
            f"{r['method']}, closed.\n"
            f"See: allmende results {r['proposal']}"
        )


# --- assembly ------------------------------------------------------------------------


@click.group(cls=AllmendeGroup)
def assembly() -> None:
    """Citizens' assemblies by sortition: create, volunteer, freeze, commit, reveal,
    draw, verify."""


def _quotas(values: tuple[str, ...]) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for v in values:
        m = re.fullmatch(r"([a-z0-9_-]+)=([^:]+):([0-9]+)-([0-9]+)", v)
        if m is None:
            raise LocalError(
                f"quota {v!r} must look like feature=value:min-max, e.g. age=16-29:2-4"
            )
        out.setdefault(m.group(1), {})[m.group(2)] = [int(m.group(3)), int(m.group(4))]
    return out


@assembly.command("create")
@click.argument("key")
@click.option("--title", required=True, help="What the assembly deliberates on.")
@click.option("--size", type=click.IntRange(1, 256), required=True, help="Panel size.")
@click.option(
    "--quota",
    "quotas",
    multiple=True,
    metavar="F=V:MIN-MAX",
    help="A quota on a feature value, e.g. age=16-29:2-4.",
)
@click.option(
    "--committer",
    "committers",
    multiple=True,
    required=True,
    help="Node id of a committer (at least 3).",
)
@click.option("--scope", default=None, help="Whose members may volunteer (default: ours).")
@click.option("--beacon", default=None, help="A public random value (hex) to mix in.")
@pass_ctx
def assembly_create(
    ctx: Ctx,
    key: str,
    title: str,
    size: int,
    quotas: tuple[str, ...],
    committers: tuple[str, ...],
    scope: str | None,
    beacon: str | None,
) -> None:
    """Create assembly KEY."""
    r = ctx.call(
        "gov_assembly_create",
        key=key,
        title=title,
        size=size,
        quotas=_quotas(quotas),
        committers=list(committers),
        scope=scope,
        beacon=beacon,
    )
    click.echo(f"Created assembly {r['assembly']}")


@assembly.command("volunteer")
@click.argument("assembly_id")
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Your member key file.",
)
@pass_ctx
def assembly_volunteer(ctx: Ctx, assembly_id: str, key_file: Path) -> None:
    """Volunteer for the pool of ASSEMBLY_ID, signed with your own key."""
    identity = _load_member(key_file)
    info = ctx.call("gov_assembly_prepare", assembly=assembly_id, member=identity.public.hex())
    record = sign_member_record(
        identity,
        "volunteer",
        info["assembly"],
        info["scope"],
        {"consent": True},
        now_ms=max(_now_ms(), info["now"]),
        held_max_seq=info["held_max_seq"],
    )
    ctx.call("submit", record=record.raw.hex())
    click.echo(f"Volunteered for {info['assembly']}.")


def _step(op: str, doc: str, done: str) -> click.Command:
    @click.argument("assembly_id")
    @pass_ctx
    def command(ctx: Ctx, assembly_id: str) -> None:
        ctx.call(op, assembly=assembly_id)
        click.echo(done.format(assembly_id))

    command.__doc__ = doc
    return click.command(op.removeprefix("gov_assembly_"))(command)


assembly.add_command(
    _step("gov_assembly_freeze", "Freeze the pool (organiser).", "Froze the pool of {}.")
)
assembly.add_command(
    _step("gov_assembly_commit", "Commit this node's secret (committer).", "Committed to {}.")
)
assembly.add_command(
    _step(
        "gov_assembly_seal",
        "Seal the assembly, pool and commits before any reveal (organiser).",
        "Sealed {}.",
    )
)
assembly.add_command(
    _step(
        "gov_assembly_reveal",
        "Reveal this node's secret once the seal is in (committer).",
        "Revealed for {}.",
    )
)


@assembly.command("draw")
@click.argument("assembly_id")
@json_option
@pass_ctx
def assembly_draw(ctx: Ctx, assembly_id: str, as_json: bool) -> None:
    """Derive the seed, draw the panel and publish it (organiser)."""
    r = ctx.call("gov_assembly_draw", assembly=assembly_id)
    _emit(ctx, as_json, r, render_draw(r))


@assembly.command("verify")
@click.argument("assembly_id")
@json_option
@pass_ctx
def assembly_verify(ctx: Ctx, assembly_id: str, as_json: bool) -> None:
    """Re-derive the seed, re-run the draw, check the quotas; exit 1 if anything fails."""
    r = ctx.call("gov_assembly_verify", assembly=assembly_id)
    _emit(ctx, as_json, r, render_verify(r))
    if not r["ok"]:
        raise click.exceptions.Exit(1)


@assembly.command("show")
@click.argument("assembly_id")
@json_option
@pass_ctx
def assembly_show(ctx: Ctx, assembly_id: str, as_json: bool) -> None:
    """Where an assembly stands."""
    r = ctx.call("gov_assembly_show", assembly=assembly_id)
    text = (
        f"{r['title']} [{r['assembly']}]: {r['volunteers']} volunteer(s), pool "
        f"{r['pool']} ({r['pool_size']}), commits {len(r['commits'])}/"
        f"{len(r['committers'])}, reveals {len(r['reveals'])}/{len(r['committers'])}, "
        f"panel {'drawn' if r['panel'] else 'not drawn'}"
    )
    _emit(ctx, as_json, r, Text(text))


def render_draw(r: dict[str, Any]) -> RenderableType:
    t = Table(title=f"Panel of {r['assembly']} (seed {r['seed'][:16]}…)")
    for col in ("type", "volunteers", "drawn", "selection probability"):
        t.add_column(col)
    for ty in r["types"]:
        label = ", ".join(f"{k}={v}" for k, v in ty["features"].items() if v) or "-"
        t.add_row(label, str(ty["volunteers"]), str(ty["drawn"]), _decimal(ty["probability"]))
    return Group(
        t,
        Text(
            f"minimum selection probability {_decimal(r['minimum_probability'])}"
            f" ({r['minimum_probability']}); members: " + ", ".join(m[:12] for m in r["panel"])
        ),
    )


def render_verify(r: dict[str, Any]) -> RenderableType:
    t = Table(title=f"Verification of {r['assembly']}: {'OK' if r['ok'] else 'FAILED'}")
    t.add_column("check")
    t.add_column("result")
    t.add_column("detail")
    for c in r["checks"]:
        t.add_row(c["check"], "ok" if c["ok"] else "FAIL", c["detail"])
    return t


COMMANDS = [member, proposal, vote, results, budget, assembly]
