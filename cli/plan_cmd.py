"""`allmende plan status|rounds|revise|review|approve` and `allmende cap list|show|propose`:
planning rounds and caps on scarce resources.

Thin: parse, call the daemon's plan ops (`node.ops.plan_ops`), render. Rendering is
pure: each `render_*` returns a rich renderable; `write_rounds_chart` draws a round
history with matplotlib (optional, the ``simnet`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cli.governance_cmd import AllmendeGroup, _emit, _now_ms, json_option, parse_when, pass_ctx
from node.errors import LocalError

if TYPE_CHECKING:
    from cli.main import Ctx

MISSING_MATPLOTLIB = (
    "no chart: matplotlib is not installed (pip install matplotlib, or the allmende[simnet] extra)"
)


def _table(*headers: str) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for h in headers:
        numeric = h in ("needs", "capacities", "surplus", "index", "share", "use", "qty")
        t.add_column(h, justify="right" if numeric else "left")
    return t


def render_groups(groups: list[dict[str, Any]]) -> RenderableType:
    if not groups:
        return Text("No needs or capacities here yet.")
    t = _table("item", "period", "needs", "capacities", "surplus", "index", "state")
    for g in groups:
        state = "within" if g["within"] else ("settled" if g["settled"] else "moving")
        t.add_row(
            g["item"],
            g["period"],
            f"{g['needs']} {g['unit']}",
            f"{g['capacities']} {g['unit']}",
            g["surplus"],
            g["index"],
            state,
        )
    return t


def render_budgets(rows: list[dict[str, Any]]) -> RenderableType:
    t = _table("cap", "child", "resource", "share", "use", "state")
    for b in rows:
        t.add_row(
            b["cap"],
            b["child"] or "(no child: no share)",
            b["resource"],
            f"{b['share']} {b['unit']}",
            f"{b['use']} {b['unit']}",
            "within" if b["within_share"] else "OVER",
        )
    return t


def render_status(data: dict[str, Any]) -> RenderableType:
    head = "converged: every item fits" if data["converged"] else "not converged"
    mine = data["mine"]
    parts: list[RenderableType] = [
        Text(f"Plan of {data['scope']} (round {data['round']}): {head}", style="bold"),
        render_groups(data["groups"]),
        Text(
            f"This node: {mine['revisions']} revision(s) within range due "
            f"(`allmende plan revise`), {mine['review']} beyond range for members "
            "(`allmende plan review`)."
        ),
    ]
    if data.get("substitutions"):
        parts += [Text("Served by substitutes", style="bold")]
        parts.append(render_substitutions(data["substitutions"]))
    if data["budgets"]:
        parts += [Text("Use of capped resources against shares", style="bold")]
        parts.append(render_budgets(data["budgets"]))
    return Group(*parts)


def render_substitutions(rows: list[dict[str, Any]]) -> RenderableType:
    t = _table("need", "item", "part", "served by", "qty", "node")
    for r in rows:
        t.add_row(
            r["need"],
            r["item"],
            f"{r['part']} {r['unit']}",
            r["substitute"],
            f"{r['qty']} {r['substitute_unit']}",
            r["node"][:12],
        )
    return t


def render_rounds(data: dict[str, Any]) -> RenderableType:
    if not data["rounds"]:
        return Text("No rounds: nothing to plan here.")
    t = _table("round", "moved", "beyond", "out of tolerance", "state")
    for r in data["rounds"]:
        out = sum(1 for g in r["groups"] if not g["within"])
        t.add_row(
            str(r["round"]),
            str(r["moved"]),
            str(r["beyond"]),
            str(out),
            "converged" if r["converged"] else "",
        )
    end = "converged" if data["converged"] else "not converged"
    return Group(
        Text(f"Rounds of {data['scope']} from the declared quantities: {end}", style="bold"),
        t,
        Text(f"remaining deficit: {data['remaining_deficit']} (base units, summed)"),
    )


def render_review(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("Nothing waits for approval: every revision lies within its range.")
    t = _table("id", "kind", "item", "period", "qty", "range", "suggested", "substitutes")
    for r in rows:
        t.add_row(
            r["id"],
            r["kind"],
            r["item"],
            r["period"],
            f"{r['qty']} {r['unit']}",
            f"{r['min']}..{r['max']}",
            "withdraw" if r["withdraw"] else f"{r['suggested']} {r['unit']}",
            ", ".join(f"{p} {r['unit']} by {item}" for item, p in r.get("subbed") or ()) or "-",
        )
    return Group(t, Text("Approve one with `allmende plan approve ID`, or all with --all."))


def render_caps(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("No cap in force: a cap is a proposal passed by vote (`allmende cap propose`).")
    t = _table("id", "resource", "scope", "period", "qty", "sharing")
    for c in rows:
        t.add_row(
            c["id"],
            c["resource"],
            c["scope"],
            c["period"],
            f"{c['qty']} {c['unit']}",
            f"per resident {c['equal']} : by need {c['need']}",
        )
    return t


def render_cap(data: dict[str, Any]) -> RenderableType:
    return Group(render_caps([data]), render_budgets(data["shares"]))


def write_rounds_chart(data: dict[str, Any], path: Path) -> str:
    """Surplus per item over rounds, one line per group; returns a message."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return MISSING_MATPLOTLIB
    lines: dict[str, list[float]] = {}
    rounds = [r["round"] for r in data["rounds"]]
    for r in data["rounds"]:
        for g in r["groups"]:
            lines.setdefault(f"{g['item']} {g['period']}", []).append(float(g["surplus"]))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    # The items furthest from fitting at the start are named; the rest drawn thin.
    ranked = sorted(lines.items(), key=lambda kv: (-abs(kv[1][0]), kv[0]))
    for n, (name, ys) in enumerate(ranked):
        named = n < 12
        ax.plot(rounds[: len(ys)], ys, marker="o" if named else None,
                linewidth=1.5 if named else 0.5, label=name if named else None)  # fmt: skip
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("round")
    ax.set_xticks(rounds)
    ax.set_ylabel("surplus (capacities - needs, base unit)")
    ax.set_title(f"planning rounds of {data['scope']}")
    if lines:
        ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"


@click.group(cls=AllmendeGroup)
def plan() -> None:
    """Planning rounds: needs and capacities move within their ranges until the plan fits."""


@plan.command("status")
@click.option("--period", default=None, help="Only this period.")
@json_option
@pass_ctx
def status(ctx: Ctx, period: str | None, as_json: bool) -> None:
    """Where the plan of this node's region stands: per item the needs, capacities,
    scarcity index and tolerance; what this node would revise; use against shares."""
    data = ctx.call("plan_status", period=period)
    _emit(ctx, as_json, data, render_status(data))


@plan.command("rounds")
@click.option("--period", default=None, help="Only this period.")
@click.option(
    "--max-rounds",
    type=click.IntRange(1, 50),
    default=20,
    show_default=True,
    help="Stop after this many rounds.",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also draw the surplus per item over rounds to this PNG (needs matplotlib).",
)
@json_option
@pass_ctx
def rounds(
    ctx: Ctx, period: str | None, max_rounds: int, chart: Path | None, as_json: bool
) -> None:
    """The rounds from the records held to where they end, if every node's planner
    revises within range after each round."""
    data = ctx.call("plan_rounds", period=period, max_rounds=max_rounds)
    if chart is not None:
        message = write_rounds_chart(data, chart)
        if message == MISSING_MATPLOTLIB:
            raise LocalError(message)
        click.echo(message, err=True)
    _emit(ctx, as_json, data, render_rounds(data))


@plan.command("revise")
@json_option
@pass_ctx
def revise(ctx: Ctx, as_json: bool) -> None:
    """Run this node's planner once: sign this round's revisions of its own needs and
    capacities that stay within their declared ranges."""
    data = ctx.call("plan_revise")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif data["revised"]:
        ctx.show(Text(f"Revised {len(data['revised'])}: {', '.join(data['revised'])}"))
    else:
        end = ": converged." if data["converged"] else "."
        ctx.show(Text("Nothing to revise within range" + end))


@plan.command("review")
@json_option
@pass_ctx
def review(ctx: Ctx, as_json: bool) -> None:
    """Revisions of this node's intents beyond their declared ranges, waiting for members."""
    rows = ctx.call("plan_review")
    _emit(ctx, as_json, rows, render_review(rows))


@plan.command("approve")
@click.argument("intent_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Approve every waiting revision.")
@pass_ctx
def approve(ctx: Ctx, intent_id: str | None, all_: bool) -> None:
    """Approve the revision of INTENT_ID beyond its range (see `plan review`): it is
    signed, and its range widened to it."""
    r = ctx.call("plan_approve", id=intent_id, all=all_)
    ctx.show(Text(f"Signed {r['kind']} {r['id']}"))


@click.group(cls=AllmendeGroup)
def cap() -> None:
    """Caps on scarce resources, decided by vote and shared among a scope's children."""


@cap.command("list")
@json_option
@pass_ctx
def cap_list(ctx: Ctx, as_json: bool) -> None:
    """The caps in force: proposals carrying a cap that passed."""
    rows = ctx.call("cap_list")
    _emit(ctx, as_json, rows, render_caps(rows))


@cap.command("show")
@click.argument("cap_id")
@json_option
@pass_ctx
def cap_show(ctx: Ctx, cap_id: str, as_json: bool) -> None:
    """CAP_ID's shares and each child's use of it (from this region's records)."""
    data = ctx.call("cap_show", id=cap_id)
    _emit(ctx, as_json, data, render_cap(data))


def _child(text: str) -> tuple[str, int]:
    scope, sep, residents = text.rpartition("=")
    if not sep or not residents.isdigit():
        raise LocalError(f"--child {text!r}: write SCOPE=RESIDENTS, e.g. eu/de=83000000")
    return scope, int(residents)


@cap.command("propose")
@click.argument("proposal_id")
@click.argument("resource")
@click.argument("qty")
@click.argument("unit")
@click.option("--period", required=True, help="The period capped, e.g. 2027.")
@click.option("--title", required=True, help="What members vote on.")
@click.option("--scope", default=None, help="The scope capped (default: this node's).")
@click.option("--child", "children", multiple=True, required=True, help="SCOPE=RESIDENTS; repeat.")
@click.option("--equal", type=click.IntRange(0, 100), default=1, show_default=True,
              help="Weight of sharing per resident.")  # fmt: skip
@click.option("--need", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Weight of sharing in proportion to declared need.")  # fmt: skip
@click.option("--closes", default="7d", show_default=True,
              help="When voting closes: 2h, 7d, epoch ms or 2027-03-01T18:00.")  # fmt: skip
@pass_ctx
def cap_propose(
    ctx: Ctx,
    proposal_id: str,
    resource: str,
    qty: str,
    unit: str,
    period: str,
    title: str,
    scope: str | None,
    children: tuple[str, ...],
    equal: int,
    need: int,
    closes: str,
) -> None:
    """Propose a cap of QTY UNIT of RESOURCE: a yes/no vote of the scope's members;
    once closed with yes it is in force."""
    r = ctx.call(
        "cap_propose",
        key=proposal_id,
        title=title,
        scope=scope,
        resource=resource,
        qty=qty,
        unit=unit,
        period=period,
        children=dict(_child(c) for c in children),
        equal=equal,
        need=need,
        closes=parse_when(closes, _now_ms()),
    )
    ctx.show(Text(f"Proposed {r['proposal']}: members vote yes or no"))
