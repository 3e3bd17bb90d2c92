"""`allmende web`: the operator's token for the web app, and where it listens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from node.errors import LocalError

if TYPE_CHECKING:
    from cli.main import Ctx

# Not importing cli.main here (it imports this module at its bottom), as in
# cli/governance_cmd.py: errors become exit codes in the top-level group.
pass_ctx = click.pass_obj
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def web() -> None:
    """The members' web app that `allmende run` serves (127.0.0.1:7947 by default)."""


@web.command("token")
@click.option("--new", "new", is_flag=True, help="Make a new token; signs out every browser.")
@pass_ctx
def web_token(ctx: Ctx, new: bool) -> None:
    """Print the operator token that the web app's operator page asks for
    (kept in web.token in the data dir, mode 0600; made on first use)."""
    from web.security import ensure_token, new_token

    if not ctx.dd.initialised():
        raise LocalError(f"no node in {ctx.data_dir}; run: allmende init")
    path = ctx.dd.web_token
    click.echo(new_token(path) if new else ensure_token(path))


@web.command("url")
@json_option
@pass_ctx
def web_url(ctx: Ctx, as_json: bool) -> None:
    """Print the address the running daemon serves the web app on."""
    try:
        url = ctx.dd.web_url.read_text().strip()
    except FileNotFoundError:
        raise LocalError(
            "the web app is not running: start the node with allmende run (and see its log "
            "if it still is not: its port may be taken, or [web] enabled = false)"
        ) from None
    click.echo(json.dumps({"url": url}) if as_json else url)
