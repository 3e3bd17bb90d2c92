"""`allmende export`: balances, intents and results as open data (CSV, JSON, JSON-LD)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli import export as ex
from node.errors import LocalError

if TYPE_CHECKING:
    from cli.main import Ctx

# Not importing cli.main here (it imports this module at its bottom); errors become exit
# codes in the top-level group.
pass_ctx = click.pass_obj

FORMATS = ["csv", "json", "jsonld"]

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="csv",
    show_default=True,
    help="csv for spreadsheets, json, or jsonld (ValueFlows) for other planning tools.",
)
out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: standard output).",
)


@click.group()
def export() -> None:
    """Export open data: balance, intents (with commitments) or results."""


def _write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    tmp = out.with_name(out.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LocalError(f"cannot write {out}: {exc}") from None


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@export.command("balance")
@click.argument("scope", required=False)
@click.option("--period", default=None, help="Only this period.")
@click.option("--item", default=None, help="Only this item.")
@click.option("--depth", type=click.IntRange(0, 6), default=0, show_default=True,
              help="Also this many levels below SCOPE.")  # fmt: skip
@format_option
@out_option
@pass_ctx
def export_balance(
    ctx: Ctx,
    scope: str | None,
    period: str | None,
    item: str | None,
    depth: int,
    fmt: str,
    out: Path | None,
) -> None:
    """The balance of SCOPE (default: this node's region), one row per scope, item and
    period."""
    b = ctx.call("balance", scope=scope, period=period, item=item, depth=depth)
    if fmt == "csv":
        text = ex.to_csv(ex.balance_rows(b), ex.BALANCE_COLUMNS)
    elif fmt == "json":
        text = _json(ex.balance_rows(b))
    else:
        text = _json(ex.balance_jsonld(b, ctx.call("items")))
    _write(text, out)


@export.command("intents")
@click.option("--scope", default=None, help="Only under this scope.")
@click.option("--mine", is_flag=True, help="Only this node's (default: everyone's held here).")
@format_option
@out_option
@pass_ctx
def export_intents(ctx: Ctx, scope: str | None, mine: bool, fmt: str, out: Path | None) -> None:
    """Needs and capacities (jsonld: also commitments and their deliveries)."""
    records = [
        r
        for kind in ("need", "capacity")
        for r in ctx.call("list", kind=kind, all=not mine, scope=scope)
    ]
    if fmt == "csv":
        text = ex.to_csv(ex.intent_rows(records), ex.INTENT_COLUMNS)
    elif fmt == "json":
        text = _json(ex.intent_rows(records))
    else:
        commitments = ctx.call("commitment_list", all=not mine)
        text = _json(ex.intents_jsonld(records, commitments, ctx.call("items")))
    _write(text, out)


@export.command("results")
@click.argument("proposal_id")
@format_option
@out_option
@pass_ctx
def export_results(ctx: Ctx, proposal_id: str, fmt: str, out: Path | None) -> None:
    """A proposal's results, one row per option or project."""
    r = ctx.call("gov_results", proposal=proposal_id)
    if fmt == "csv":
        text = ex.to_csv(ex.result_rows(r), ex.RESULT_COLUMNS)
    elif fmt == "json":
        text = _json(r)
    else:
        text = _json(ex.results_jsonld(r))
    _write(text, out)
