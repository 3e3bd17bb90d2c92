"""`allmende`: the command line for members and operators (thin: parse, call, render)."""

from __future__ import annotations

import datetime
import json
import platform
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console, RenderableType

from cli import render
from node import model
from node.config import ENV_DATA_DIR, Config, DataDir, default_data_dir
from node.control import DaemonNotRunning, call
from node.errors import LocalError
from node.store import SCHEMA_VERSION

EXIT_USER, EXIT_NOT_RUNNING = 1, 3
# `allmende run` refusing to start where starting again cannot help (sysexits.h codes;
# deploy/allmende.service lists them in RestartPreventExitStatus=, so systemd stops
# instead of restarting in a loop): the store cannot be read; the port or data dir is
# taken; the config or data dir is wrong.
EXIT_STORE, EXIT_UNAVAILABLE, EXIT_CONFIG = 65, 69, 78
BALANCE_PAGE = 20  # scopes shown below each scope of a balance, unless --limit or --json


class UserError(click.ClickException):
    exit_code = EXIT_USER


class NotRunning(click.ClickException):
    exit_code = EXIT_NOT_RUNNING


class AllmendeGroup(click.Group):
    """Turns the library's errors into exit codes: 1 user error, 3 daemon not running."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DaemonNotRunning as exc:
            raise NotRunning(str(exc)) from None
        except LocalError as exc:
            raise UserError(str(exc)) from None


@dataclass
class Ctx:
    data_dir: Path
    console: Console = field(default_factory=Console)

    @property
    def dd(self) -> DataDir:
        return DataDir(self.data_dir)

    def call(self, op: str, **args: Any) -> Any:
        """Ask the daemon; `None` arguments are left out (the daemon's defaults apply).

        Raises:
            LocalError: no node in the data dir, or the daemon refused the request.
            DaemonNotRunning: a node exists but its daemon is not running.
        """
        try:
            return call(self.dd.socket, op, {k: v for k, v in args.items() if v is not None})
        except DaemonNotRunning:
            # Checked only on failure: the common path costs no extra file access.
            if not self.dd.initialised():
                d = self.data_dir
                raise LocalError(
                    f"no node in {d}; create one with: allmende --data-dir {d} init "
                    f"--name NAME --scope SCOPE, then start it with: "
                    f"allmende --data-dir {d} run"
                ) from None
            raise

    def show(self, renderable: RenderableType) -> None:
        self.console.print(renderable)

    def show_lines(self, lines: list[str]) -> None:
        """Print lines unwrapped and uncut (addresses to copy whole)."""
        for line in lines:
            self.console.print(line, soft_wrap=True, highlight=False, markup=False)


def _emit(ctx: Ctx, as_json: bool, data: Any, renderable: RenderableType) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        ctx.show(renderable)


def _complete_item(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    # The built-in catalog only: completion must not wait on the daemon.
    return [i for i in model.STARTER_CATALOG if i.startswith(incomplete)]


def _complete_unit(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    item = model.STARTER_CATALOG.get(ctx.params.get("item") or "")
    return [
        u.symbol
        for u in model.UNITS.values()
        if u.symbol.startswith(incomplete) and (item is None or u.dimension == item.dimension)
    ]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
pass_ctx = click.make_pass_decorator(Ctx)


@click.group(cls=AllmendeGroup)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_DATA_DIR,
    show_envvar=True,
    help="The node's data dir (default: ~/.local/share/allmende).",
)
@click.version_option(
    package_name="allmende",
    message=f"%(prog)s, version %(version)s (store format {SCHEMA_VERSION})",
)
@click.pass_context
def cli(click_ctx: click.Context, data_dir: Path | None) -> None:
    """Allmende: plan together. Post needs and capacities, read the balance of your region."""
    if click_ctx.obj is None:
        click_ctx.obj = Ctx(data_dir or default_data_dir())
    elif data_dir is not None:
        click_ctx.obj.data_dir = data_dir


@cli.command()
@click.option("--name", required=True, help="Name of the commune or cooperative.")
@click.option(
    "--kind",
    type=click.Choice(model.NODE_KINDS),
    default="commune",
    show_default=True,
    help="What the node is.",
)
@click.option(
    "--scope", required=True, help="Where it belongs, a region path like eu/de/berlin/neukoelln."
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="TCP port to listen on (default 7946).",
)
@click.option("--bootstrap", multiple=True, help="A peer to dial: /ip4/.../tcp/.../p2p/<id>.")
@click.option("--no-mdns", is_flag=True, help="Do not look for peers on the LAN.")
@click.option(
    "--invite",
    "invite_code",
    default=None,
    help="Join a federation with an invite code (from `allmende invite create`).",
)
@click.option(
    "--charter",
    "charter_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Join the federation of this charter (from `allmende federation create`).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Use this node key (a moved or restored node) instead of making a new one.",
)
@pass_ctx
def init(
    ctx: Ctx,
    name: str,
    kind: str,
    scope: str,
    port: int | None,
    bootstrap: tuple[str, ...],
    no_mdns: bool,
    invite_code: str | None,
    charter_file: Path | None,
    key_file: Path | None,
) -> None:
    """Create this node: key, config and database in the data dir.

    Without --invite or --charter the node founds a federation of its own; it can
    join another later (`allmende federation join`), before it writes anything.
    """
    from node.governance.admission import InviteCode
    from node.governance.errors import GovernanceError
    from node.net import peer_id_from_seed, split_p2p_addr

    if invite_code and charter_file:
        raise LocalError("give --invite or --charter, not both")
    for addr in bootstrap:
        split_p2p_addr(addr)
    config = Config(name=name, kind=kind, scope=scope, bootstrap=bootstrap, mdns=not no_mdns)
    if invite_code is not None:
        try:
            code = InviteCode.decode(invite_code)
        except GovernanceError as exc:
            raise LocalError(str(exc)) from None
        split_p2p_addr(code.address)
        config = replace(
            config,
            charter=code.charter.body(),
            bootstrap=(*bootstrap, code.address),
            application=(code.invite, code.secret.hex()),
        )
    elif charter_file is not None:
        config = replace(config, charter=read_charter(charter_file))
    from node.identity import read_key

    given = read_key(key_file) if key_file is not None else None
    identity = ctx.dd.init(config, listen_port=port, identity=given)
    _, config = ctx.dd.load()
    click.echo(f"Initialised {name} ({kind}) in {ctx.data_dir}")
    click.echo(f"node id:  {identity.public.hex()}")
    click.echo(f"peer id:  {peer_id_from_seed(identity.seed)}")
    click.echo(f"listen:   {', '.join(config.listen)}")
    click.echo(f"federation: {config.federation} ({(config.charter or {}).get('name')})")
    click.echo(f"Start it with: {start_command(ctx.data_dir)}")


def start_command(data_dir: Path) -> str:
    """The command that starts the node in `data_dir` (naming the dir unless it is the
    default one, so that it can be pasted as printed)."""
    if data_dir.expanduser().resolve() == default_data_dir().expanduser().resolve():
        return "allmende run"
    return f"allmende --data-dir {shlex.quote(str(data_dir))} run"


@cli.command()
@click.option("--listen", multiple=True, help="Override the listen multiaddr(s).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Listen on all interfaces at this TCP port (instead of the configured one).",
)
@click.option("--no-mdns", is_flag=True, help="Do not look for peers on the LAN.")
@click.option(
    "--sync-interval", type=float, default=None, help="Seconds between anti-entropy rounds."
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much to log.",
)
@click.option(
    "--web-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve the web app on this port (0: any free port; default: [web] port).",
)
@click.option("--no-web", is_flag=True, help="Do not serve the web app.")
@pass_ctx
def run(
    ctx: Ctx,
    listen: tuple[str, ...],
    port: int | None,
    no_mdns: bool,
    sync_interval: float | None,
    log_level: str,
    web_port: int | None,
    no_web: bool,
) -> None:
    """Run the node daemon (initialises a node on defaults on first run)."""
    from node.daemon import run_daemon, setup_logging

    if port is not None:
        if listen:
            raise UserError("give --port or --listen, not both")
        listen = (f"/ip4/0.0.0.0/tcp/{port}",)
    setup_logging(log_level)
    if not ctx.dd.initialised():
        name = (platform.node() or "allmende").split(".")[0][:60] or "allmende"
        ctx.dd.init(Config(name=name, auto=True))
        click.echo(
            f"First run: initialised node {name!r} in {ctx.data_dir} (scope "
            f"{Config.scope}, a federation of its own). To set its name and scope, stop "
            "it and run allmende init; that keeps its key while it has written nothing.",
            err=True,
        )
    try:
        run_daemon(
            ctx.data_dir,
            listen=list(listen) or None,
            mdns=False if no_mdns else None,
            sync_interval=sync_interval,
            web_port=web_port,
            web=False if no_web else None,
        )
    except LocalError as exc:
        raise cannot_start(exc) from None


class CannotStart(click.ClickException):
    """`allmende run` cannot start, and starting again would not help: the exit code
    says why (see EXIT_STORE), the message what to do. `cannot_start` picks the class."""

    exit_code = EXIT_CONFIG

    def __init__(self, exc: LocalError) -> None:
        super().__init__(f"{exc} (not started: exit {self.exit_code})")


class _StoreUnreadable(CannotStart):
    exit_code = EXIT_STORE


class _Unavailable(CannotStart):
    exit_code = EXIT_UNAVAILABLE


def cannot_start(exc: LocalError) -> CannotStart:
    from node.errors import CannotListen, DataDirBusy, StoreUnreadable

    if isinstance(exc, StoreUnreadable):
        return _StoreUnreadable(exc)
    if isinstance(exc, CannotListen | DataDirBusy):
        return _Unavailable(exc)
    return CannotStart(exc)


@cli.command()
@json_option
@pass_ctx
def status(ctx: Ctx, as_json: bool) -> None:
    """Node id, scopes, peers, record counts and sync state."""
    s = ctx.call("status")
    _emit(ctx, as_json, s, render.status(s))
    if not as_json:
        ctx.show_lines(render.addresses(s["listen"]))


@cli.group(cls=AllmendeGroup, invoke_without_command=True)
@json_option
@click.pass_context
def peers(click_ctx: click.Context, as_json: bool) -> None:
    """Connected peers with their node's name, kind and scope; this node's addresses
    (and `peers add ADDR`, `peers remove PEER`)."""
    if click_ctx.invoked_subcommand is None:
        ctx: Ctx = click_ctx.obj
        p = ctx.call("peers")
        _emit(ctx, as_json, p, render.peers(p))
        if not as_json:
            ctx.show_lines(render.addresses(p["listen"]))


@peers.command("add")
@click.argument("addr")
@click.option("--keep", is_flag=True, help="Save the peer even if it cannot be dialled now.")
@pass_ctx
def peers_add(ctx: Ctx, addr: str, keep: bool) -> None:
    """Dial a peer now and remember it if that works: ADDR is
    /ip4/.../tcp/.../p2p/<peer id> (the peer's `allmende status` lists its own)."""
    r = ctx.call("peers_add", addr=addr, keep=keep or None)
    if r["connected"]:
        click.echo(f"Connected to {r['peer_id']}; saved, redialled after restarts.")
    else:
        click.echo(
            f"Could not connect to {r['peer_id']} now; saved anyway (--keep), "
            "redialled with backoff."
        )


@peers.command("remove")
@click.argument("peer")
@pass_ctx
def peers_remove(ctx: Ctx, peer: str) -> None:
    """Forget a peer (PEER: its peer id or address) and close the connection to it."""
    r = ctx.call("peers_remove", peer=peer)
    click.echo(f"Removed {r['peer_id']} ({len(r['removed'])} saved address(es) forgotten).")


@cli.command()
@click.argument("scope", required=False)
@json_option
@pass_ctx
def nodes(ctx: Ctx, scope: str | None, as_json: bool) -> None:
    """The nodes this node knows under SCOPE (default: its region): kind, last seen,
    records held, whether they count."""
    rows = ctx.call("nodes", scope=scope)
    _emit(ctx, as_json, rows, render.nodes(rows, scope or "this node's region"))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def backup(ctx: Ctx, file: Path) -> None:
    """Copy this node's database, key and config into FILE (a new file, mode 0600),
    consistent even while the daemon runs. FILE holds the node key: keep it safe."""
    from node.backup import backup as make_backup

    info = make_backup(ctx.dd, file)
    click.echo(f"Backed up node {info.node_id[:12]}: {info.records} records to {file}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def restore(ctx: Ctx, file: Path) -> None:
    """Put a backup (from `allmende backup`) back, with the daemon stopped: into an empty
    --data-dir, or over the same node (its database is moved aside, not deleted)."""
    from node.backup import restore as put_back

    info, aside = put_back(ctx.dd, file)
    click.echo(f"Restored node {info.node_id[:12]}: {info.records} records into {ctx.data_dir}")
    if aside is not None:
        click.echo(f"The replaced database is in {aside}")
    click.echo(f"Start it with: {start_command(ctx.data_dir)}")


@cli.group(cls=AllmendeGroup)
def item() -> None:
    """The shared catalog of goods and services."""


@item.command("list")
@json_option
@pass_ctx
def item_list(ctx: Ctx, as_json: bool) -> None:
    """List catalog items (built-in and added by nodes)."""
    rows = ctx.call("items")
    _emit(ctx, as_json, rows, render.items(rows))


@item.command("add")
@click.argument("item_id")
@click.option("--name", required=True, help="Human name of the item.")
@click.option(
    "--dimension",
    type=click.Choice(list(model.DIMENSIONS)),
    required=True,
    help="What it is measured in.",
)
@pass_ctx
def item_add(ctx: Ctx, item_id: str, name: str, dimension: str) -> None:
    """Add ITEM_ID (lowercase, e.g. oat-milk) to the shared catalog."""
    ctx.show(render.written(ctx.call("item_add", id=item_id, name=name, dimension=dimension)))


def _flex_args(extra: dict[str, Any]) -> dict[str, Any]:
    """`need add`/`capacity add` options for the `post` op (empty ones left out)."""
    out = {k: v for k, v in extra.items() if k not in ("min_", "max_", "subs", "use")}
    out["min"], out["max"] = extra.get("min_"), extra.get("max_")
    for name in ("subs", "use"):
        if extra.get(name):
            out[name] = list(extra[name])
    return out


def _intent_group(kind: str) -> click.Group:
    plural = {"need": "needs", "capacity": "capacities"}[kind]

    @click.group(name=kind, cls=AllmendeGroup, help=f"This node's {plural}: add, list, withdraw.")
    def group() -> None:
        pass

    # A quantity like -5 must reach the check below, not be read as an option.
    @group.command("add", context_settings={"ignore_unknown_options": True})
    @click.argument("item", shell_complete=_complete_item)
    @click.argument("qty")
    @click.argument("unit", shell_complete=_complete_unit)
    @click.option("--period", required=True, help="2027, 2027-Q1, 2027-03 or 2027-W05.")
    @click.option("--note", default=None, help="Free text, up to 500 characters.")
    @pass_ctx
    def add(
        ctx: Ctx, /, item: str, qty: str, unit: str, period: str, note: str | None, **extra: Any
    ) -> None:
        if qty.startswith("-"):
            raise UserError(f"quantity must be positive (got {qty})")
        model.check_period(period)
        if model.period_end(period) < datetime.date.today():
            click.echo(f"Warning: period {period} lies in the past; posted all the same.", err=True)
        ctx.show(
            render.written(
                ctx.call(
                    "post",
                    kind=kind,
                    item=item,
                    qty=qty,
                    unit=unit,
                    period=period,
                    note=note,
                    **_flex_args(extra),
                )
            )
        )

    add.help = f"Post a {kind}: QTY of ITEM in UNIT (e.g. potatoes 500 kg)."
    # How far planning rounds may move it (issue 14): --min/--max, and --sub or --use.
    if kind == "need":
        add = click.option(
            "--sub",
            "subs",
            multiple=True,
            help="ITEM:RATIO: RATIO of ITEM (in its base unit) can replace one UNIT of this "
            "need where it stays short; repeat.",
        )(add)
    else:
        add = click.option(
            "--use", "use", multiple=True, help="RESOURCE:QTY:UNIT drawn per unit; repeat."
        )(add)
    add = click.option("--max", "max_", default=None, help="Rounds may raise it to this.")(add)
    add = click.option("--min", "min_", default=None, help="Rounds may lower it to this.")(add)
    if kind == "need":
        add = click.option(
            "--priority",
            type=click.Choice(model.PRIORITIES),
            default="medium",
            show_default=True,
            help="How urgent.",
        )(add)

    @group.command("list")
    @click.option("--all", "all_", is_flag=True, help="Everyone's, not just this node's.")
    @click.option("--scope", default=None, help="Only under this scope.")
    @click.option("--withdrawn", is_flag=True, help="Include withdrawn ones.")
    @click.option(
        "--item",
        default=None,
        help="Only this item, everyone's: who has (or needs) it here, and other regions' "
        "totals from their attested rollups.",
        shell_complete=_complete_item,
    )
    @json_option
    @pass_ctx
    def list_(
        ctx: Ctx, all_: bool, scope: str | None, withdrawn: bool, item: str | None, as_json: bool
    ) -> None:
        # asking for an item is asking who has (or needs) it: everyone's
        every = all_ or item is not None
        rows = ctx.call("list", kind=kind, all=every, scope=scope, withdrawn=withdrawn, item=item)
        _emit(ctx, as_json, rows, render.records(rows, kind))

    list_.help = f"List {plural} (this node's unless --all)."

    @group.command("withdraw")
    @click.argument("record_id")
    @pass_ctx
    def withdraw(ctx: Ctx, record_id: str) -> None:
        ctx.show(render.written(ctx.call("withdraw", kind=kind, key=record_id)))

    withdraw.help = f"Withdraw one of this node's {plural} by its id."
    return group


cli.add_command(_intent_group("need"))
cli.add_command(_intent_group("capacity"))


@cli.command()
@click.argument("scope", required=False)
@click.option("--period", default=None, help="Only this period.")
@click.option("--item", default=None, help="Only this item.", shell_complete=_complete_item)
@click.option(
    "--depth",
    type=click.IntRange(0, 6),
    default=0,
    show_default=True,
    help="Also show this many levels below SCOPE.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=None,
    help=f"Show at most this many scopes below each scope [default: {BALANCE_PAGE}; "
    "all with --json].",
)
@click.option(
    "--offset",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Skip this many of the scopes right below SCOPE (the next page).",
)
@json_option
@pass_ctx
def balance(
    ctx: Ctx,
    scope: str | None,
    period: str | None,
    item: str | None,
    depth: int,
    limit: int | None,
    offset: int,
    as_json: bool,
) -> None:
    """Needs against capacities per item for SCOPE (default: this node's region)."""
    if limit is None and not as_json:
        limit = BALANCE_PAGE
    result = ctx.call(
        "balance",
        scope=scope,
        period=period,
        item=item,
        depth=depth,
        limit=limit,
        offset=offset,
    )
    _emit(ctx, as_json, result, render.balance(result, period=period, item=item))


@cli.command()
@click.option("--region", default=None, help="Only this region (a three-level scope).")
@json_option
@pass_ctx
def rollups(ctx: Ctx, region: str | None, as_json: bool) -> None:
    """Other regions' attested rollups: status per region and period, who attested
    what, and who contradicts an accepted content."""
    data = ctx.call("rollups", region=region)
    _emit(ctx, as_json, data, render.rollups(data))


def main() -> None:
    cli(prog_name="allmende", auto_envvar_prefix="ALLMENDE")


__all__ = ["cli", "main"]

from cli import governance_cmd  # noqa: E402  (governance commands)

cli.add_command(governance_cmd.member)
cli.add_command(governance_cmd.proposal)
cli.add_command(governance_cmd.vote)
cli.add_command(governance_cmd.results)
cli.add_command(governance_cmd.budget)
cli.add_command(governance_cmd.assembly)

from cli import deliberate_cmd  # noqa: E402  (deliberation commands)

for _command in deliberate_cmd.COMMANDS:
    cli.add_command(_command)

from cli.simnet_cmd import simnet  # noqa: E402  (simnet commands)
from cli.trust_cmd import (  # noqa: E402  (who belongs)
    admission,
    endorse,
    federation,
    invite,
    read_charter,
)

cli.add_command(federation)
cli.add_command(invite)
cli.add_command(endorse)
cli.add_command(admission)

cli.add_command(simnet)

from cli import match_cmd  # noqa: E402  (from balance to plan)

cli.add_command(match_cmd.match)
cli.add_command(match_cmd.commitment)
cli.add_command(match_cmd.fulfil)
cli.add_command(match_cmd.confirm)
cli.add_command(match_cmd.track_record)

from cli import plan_cmd  # noqa: E402  (planning rounds and caps)

cli.add_command(plan_cmd.plan)
cli.add_command(plan_cmd.cap)

from cli.export_cmd import export  # noqa: E402  (open data)

cli.add_command(export)

from cli import web_cmd  # noqa: E402  (the web app's token and address)

cli.add_command(web_cmd.web)
