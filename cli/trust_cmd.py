"""`allmende federation|invite|endorse|admission`: who belongs.

Thin: parse, call the daemon's trust ops (or, for what a node does before it runs,
the data dir), render.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cli.governance_cmd import _emit, json_option, pass_ctx
from node import model
from node.errors import LocalError
from node.governance.admission import Charter, Rule
from node.governance.errors import GovernanceError

if TYPE_CHECKING:
    from cli.main import Ctx


def _short(key: str | None) -> str:
    return "-" if key is None else key[:12]


# --- rendering (pure) ---------------------------------------------------------------


def render_federation(f: dict[str, Any]) -> RenderableType:
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("federation", f"{f['name']}")
    t.add_row("id", f["federation"])
    rule = f["rule"]
    t.add_row(
        "rule",
        f"a newcomer needs min({rule['cap']}, max(1, ceil(k x {rule['num']}/{rule['den']}))) "
        "endorsements of the k admitted nodes of its region",
    )
    signed = set(f["signed"])
    t.add_row(
        "founders",
        "\n".join(
            f"{k[:12]} {'signed' if k in signed else 'not signed yet'}" for k in f["founders"]
        ),
    )
    t.add_row("admitted", str(f["admitted"]))
    me = f["this_node"]
    t.add_row("this node", f"{me['node'][:12]} {me['status'].upper()}")
    return t


def render_admission(a: dict[str, Any]) -> RenderableType:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for col in ("node", "name", "scope", "status", "endorsed by", "needs", "invited by"):
        t.add_column(col, overflow="fold")
    for r in a["nodes"]:
        status = r["status"].upper() + (" (founder)" if r["founder"] else "")
        endorsers = ", ".join(
            n or _short(k) for k, n in zip(r["endorsers"], r["endorser_names"], strict=True)
        )
        t.add_row(
            _short(r["node"]),
            r["name"] or "",
            r["scope"] or "-",
            Text(status, style="green" if r["status"] == "admitted" else "yellow"),
            endorsers or "-",
            str(r["needed"]) if r["status"] != "admitted" else "",
            _short(r["invited_by"]) if r["invited_by"] else "",
        )
    title = Text(
        f"{a['name']}: {a['admitted']} admitted, "
        f"{sum(r['status'] != 'admitted' for r in a['nodes'])} pending",
        style="bold",
    )
    return Group(title, t)


def render_standing(r: dict[str, Any]) -> RenderableType:
    one = {"name": r["name"] or _short(r["node"]), "admitted": int(r["status"] == "admitted")}
    return render_admission({**one, "nodes": [r]})


# --- commands -----------------------------------------------------------------------


@click.group(name="federation")
def federation() -> None:
    """The federation this node belongs to: its charter, founders and rule."""


@federation.command(name="create")
@click.option("--name", required=True, help="The federation's name.")
@click.option(
    "--founder",
    "founders",
    multiple=True,
    required=True,
    help="A founding node's id (64 hex digits; see allmende status). Repeat for each.",
)
@click.option("--cap", type=int, default=3, show_default=True, help="Rule: at most this many.")
@click.option("--num", type=int, default=1, show_default=True, help="Rule: fraction numerator.")
@click.option("--den", type=int, default=2, show_default=True, help="Rule: fraction denominator.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the charter (a TOML file to hand to every founder).",
)
def federation_create(
    name: str, founders: tuple[str, ...], cap: int, num: int, den: int, out: Path
) -> None:
    """Write a charter founding a federation (offline; no daemon needed).

    Each founder then runs `allmende federation join FILE` before its node starts, and
    signs the charter when it does.
    """
    keys = []
    for f in founders:
        if not model.matches(model.HEX64, f.lower()):
            raise LocalError(f"founder {f!r} must be a node id: 64 hex digits (allmende status)")
        keys.append(bytes.fromhex(f))
    try:
        charter = Charter.of(name, keys, Rule(cap, num, den))
    except GovernanceError as exc:
        raise LocalError(str(exc)) from None
    if out.exists():
        raise LocalError(f"{out} exists already; choose another --out")
    out.write_text(charter_toml(charter.body()))
    click.echo(f"federation {charter.id}")
    click.echo(f"charter written to {out}; each founder runs: allmende federation join {out}")


def charter_toml(body: dict[str, Any]) -> str:
    rule = body["rule"]
    founders = ", ".join(f'"{f}"' for f in body["founders"])
    name = json.dumps(body["name"], ensure_ascii=False)
    return (
        "# An Allmende federation charter; its hash is the federation id.\n"
        f"name = {name}\n"
        f"founders = [{founders}]\n"
        f"rule = {{ cap = {rule['cap']}, num = {rule['num']}, den = {rule['den']} }}\n"
    )


def read_charter(path: Path) -> dict[str, Any]:
    """Raises LocalError: unreadable or not a charter."""
    try:
        data = tomllib.loads(path.read_text())
        rule = data.get("rule", {})
        body = {
            "name": data["name"],
            "founders": list(data["founders"]),
            "rule": {k: rule[k] for k in ("cap", "num", "den")},
        }
        model.check_charter(body)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LocalError(f"cannot read {path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise LocalError(f"{path} is not a charter: missing {exc}") from None
    except model.ValidationError as exc:
        raise LocalError(f"{path} is not a valid charter: {exc}") from None
    return body


@federation.command(name="join")
@click.argument("charter_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def federation_join(ctx: Ctx, charter_file: Path) -> None:
    """Make this node a node of the federation a charter founds (while it is stopped).

    A founder listed in the charter is admitted once it has signed it (at its next
    start); any other node needs an invite or endorsements.
    """
    body = read_charter(charter_file)
    config = ctx.dd.use_charter(body)
    fid = config.federation
    identity, _ = ctx.dd.load()
    founder = identity.public.hex() in body["founders"]
    click.echo(f"this node now belongs to federation {fid}")
    click.echo(
        "it is a founder: it signs the charter when it starts"
        if founder
        else "it is no founder: ask an admitted node for an invite or endorsements"
    )


@federation.command(name="show")
@json_option
@pass_ctx
def federation_show(ctx: Ctx, as_json: bool) -> None:
    """The charter, its founders, and whether this node is admitted."""
    f = ctx.call("federation")
    _emit(ctx, as_json, f, render_federation(f))


@click.group(name="invite")
def invite() -> None:
    """Invite a node into the federation (one-use codes; who invited whom is public)."""


@invite.command(name="create")
@click.option("--note", default=None, help="Why, or for whom (public, with the invite).")
@click.option(
    "--address",
    default=None,
    help="Where the new node reaches this one (a multiaddr; default: its listen address).",
)
@json_option
@pass_ctx
def invite_create(ctx: Ctx, note: str | None, address: str | None, as_json: bool) -> None:
    """Make a one-use invite code; the new node runs `allmende init --invite CODE`."""
    r = ctx.call("invite_create", note=note, address=address)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo("Give this code to the new node (it works once):", err=True)
    click.echo(r["code"])


@click.command()
@click.argument("node_id")
@click.option("--withdraw", is_flag=True, help="Withdraw this node's endorsement.")
@click.option("--note", default=None, help="Why (public, with the endorsement).")
@json_option
@pass_ctx
def endorse(ctx: Ctx, node_id: str, withdraw: bool, note: str | None, as_json: bool) -> None:
    """Vouch for the node NODE_ID in your region (or --withdraw it)."""
    r = ctx.call("endorse", node=node_id, withdraw=withdraw or None, note=note)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    what = "withdrew the endorsement of" if withdraw else "endorses"
    click.echo(f"this node {what} {node_id[:12]}")


@click.group(name="admission", invoke_without_command=True)
@json_option
@click.pass_context
def admission(click_ctx: click.Context, as_json: bool) -> None:
    """Who is admitted in the federation, who is pending, and who endorsed whom."""
    if click_ctx.invoked_subcommand is None:
        click_ctx.invoke(admission_list, as_json=as_json)


@admission.command(name="list")
@json_option
@pass_ctx
def admission_list(ctx: Ctx, as_json: bool) -> None:
    """Every node this node knows of, admitted first."""
    a = ctx.call("admission")
    _emit(ctx, as_json, a, render_admission(a))


@admission.command(name="status")
@click.argument("node_id")
@json_option
@pass_ctx
def admission_status(ctx: Ctx, node_id: str, as_json: bool) -> None:
    """One node's standing: admitted or pending, its endorsers, what it still needs."""
    r = ctx.call("admission", node=node_id)
    _emit(ctx, as_json, r, render_standing(r))


@admission.command(name="propose")
@click.argument("what", type=click.Choice(["suspend", "rule"]))
@click.argument("node_id", required=False)
@click.option("--cap", type=int, default=None, help="rule: at most this many endorsements.")
@click.option("--num", type=int, default=None, help="rule: fraction of the admitted, numerator.")
@click.option("--den", type=int, default=None, help="rule: fraction, denominator.")
@click.option("--closes", default="7d", show_default=True, help="When voting closes.")
@json_option
@pass_ctx
def admission_propose(
    ctx: Ctx,
    what: str,
    node_id: str | None,
    cap: int | None,
    num: int | None,
    den: int | None,
    closes: str,
    as_json: bool,
) -> None:
    """Put a decision of this node's region to its members: suspend NODE_ID, or change
    the region's rule (--cap, --num, --den). It takes effect if "yes" wins once closed."""
    from cli.governance_cmd import _now_ms, parse_when

    status = ctx.call("status")
    region = "/".join(str(status["scope"]).split("/")[:3])
    if region.count("/") != 2:
        raise LocalError(f"this node's scope {status['scope']} is no region (three levels)")
    if what == "suspend":
        if node_id is None:
            raise LocalError("say which node: allmende admission propose suspend NODE_ID")
        decision: dict[str, Any] = {"suspend": node_id.lower()}
        title = f"Suspend node {node_id[:12]} in {region}"
        key = f"suspend-{node_id[:12].lower()}"
    else:
        if None in (cap, num, den):
            raise LocalError("a rule needs --cap, --num and --den")
        decision = {"rule": {"cap": cap, "num": num, "den": den}}
        title = f"Admission rule of {region}: min({cap}, max(1, ceil(k x {num}/{den})))"
        key = f"rule-{cap}-{num}-{den}"
    now = _now_ms()
    r = ctx.call(
        "gov_proposal_create",
        key=key,
        title=title,
        method="approval",
        options=[{"id": "yes", "name": "yes"}, {"id": "no", "name": "no"}],
        seats=1,
        electorate=region,
        closes=parse_when(closes, now),
        admission=decision,
    )
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        click.echo(f"Created proposal {r['proposal']}: members vote yes or no")
