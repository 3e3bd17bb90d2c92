"""`allmende match|commitment|fulfil|confirm|track-record`: from balance to plan.

Thin: parse, call the daemon's match ops (`node.ops.match_ops`), render. Rendering is
pure: each `render_*` returns a rich renderable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cli.governance_cmd import _emit, json_option, pass_ctx

if TYPE_CHECKING:
    from cli.main import Ctx


def _who(key: str, name: str) -> str:
    return f"{name} ({key[:8]})" if name else key[:12]


_NUMBERS = ("qty", "delivered", "confirmed")
_WHOLE = ("id", "state", "qty", "due", "delivery", "of", "date")  # never wrapped


def _table(*headers: str) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for h in headers:
        t.add_column(h, justify="right" if h in _NUMBERS else "left", no_wrap=h in _WHOLE)
    return t


def render_matches(data: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = []
    for title, key in (("Node to node", "within_region"), ("Region to region", "across_regions")):
        rows = data[key]
        if not rows:
            continue
        t = _table("item", "period", "from", "to", "qty", "met at")
        for m in rows:
            t.add_row(
                m["item"],
                m["period"],
                _who(m["provider"], m["provider_name"]),
                _who(m["receiver"], m["receiver_name"]),
                f"{m['qty']} {m['unit']}",
                m["scope"],
            )
        parts += [Text(f"{title} under {data['scope']}", style="bold"), t]
    if not parts:
        return Text(f"No matches under {data['scope']}: no deficit meets a surplus here.")
    records = data.get("track_records") or []
    if records:
        parts += [
            Text("Their track records", style="bold"),
            _track_table(records),
        ]
    return Group(*parts)


def _short(key: str) -> str:
    # an offer's or delivery's id is a free prefix, "-" and a digest: the prefix names it
    return key.split("-", 1)[0]


def render_commitments(rows: list[dict[str, Any]]) -> RenderableType:
    """Offers and commitments, then their deliveries; ids as the commands take them."""
    if not rows:
        return Text("No offers or commitments.")
    t = _table("id", "state", "from", "to", "item", "qty", "due", "delivered", "confirmed")
    deliveries = _table("delivery", "of", "qty", "date", "status")
    for c in rows:
        offer = _short(c["id"].split(".", 1)[1])
        done = [d for d in c["deliveries"] if d["status"] == "confirmed"]
        t.add_row(
            offer,
            c["state"],
            _who(c["provider"], c["provider_name"]),
            _who(c["receiver"], c["receiver_name"]),
            f"{c['item']} {c['period']}",
            f"{c['qty']} {c['unit']}",
            c["due"],
            str(len(c["deliveries"])),
            str(len(done)),
        )
        for d in c["deliveries"]:
            status = d["status"] + (f": {d['reason']}" if d["reason"] else "")
            deliveries.add_row(_short(d["id"]), offer, f"{d['qty']} {d['unit']}", d["date"], status)
    if not deliveries.rows:
        return t
    return Group(t, deliveries)


def render_track_record(data: dict[str, Any]) -> RenderableType:
    if not data["nodes"]:
        return Text("No commitments signed by both sides yet.")
    return Group(
        _track_table(data["nodes"]),
        Text(f"as of {data['today']}; share: confirmed / committed of what is due"),
    )


def _track_table(nodes: list[dict[str, Any]]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    cols = ["committed", "delivered", "confirmed", "on_time", "overdue", "disputed", "cancelled"]
    t.add_column("node")
    for col in [*cols, "share"]:
        t.add_column(col.replace("_", " "), justify="right")
    for n in nodes:
        t.add_row(
            _who(n["node"], n["name"]),
            *(str(n[c]) for c in cols),
            "-" if n["share"] is None else n["share"],
        )
    return t


def render_written(r: dict[str, Any]) -> RenderableType:
    return Text(f"Signed {r['kind']} {r['id']}")


@click.command("match")
@click.argument("scope", required=False)
@click.option("--period", default=None, help="Only this period.")
@click.option("--item", default=None, help="Only this item.")
@json_option
@pass_ctx
def match(ctx: Ctx, scope: str | None, period: str | None, item: str | None, as_json: bool) -> None:
    """Who could supply whom under SCOPE (default: this node's region): deficits matched
    with surpluses as locally as possible, the same on every node holding the same
    records."""
    data = ctx.call("match", scope=scope, period=period, item=item)
    _emit(ctx, as_json, data, render_matches(data))


@click.group(help="Offers both sides sign: propose, accept, decline, list.")
def commitment() -> None:
    pass


@commitment.command("propose")
@click.argument("node")
@click.argument("item")
@click.argument("qty")
@click.argument("unit")
@click.option("--period", required=True, help="The planning period, e.g. 2027-Q1.")
@click.option("--due", required=True, help="Due date, e.g. 2027-03-31.")
@click.option(
    "--receive",
    is_flag=True,
    help="This node would receive (default: this node provides).",
)
@click.option("--note", default=None, help="For contact: where and how to meet.")
@pass_ctx
def propose(
    ctx: Ctx,
    node: str,
    item: str,
    qty: str,
    unit: str,
    period: str,
    due: str,
    receive: bool,
    note: str | None,
) -> None:
    """Offer NODE (its name, key or key prefix) QTY UNIT of ITEM; it counts once NODE
    accepts."""
    r = ctx.call(
        "commitment_propose",
        **{"with": node},
        role="receive" if receive else "provide",
        item=item,
        qty=qty,
        unit=unit,
        period=period,
        due=due,
        note=note,
    )
    ctx.show(render_written(r))


@commitment.command("accept")
@click.argument("offer_id")
@pass_ctx
def accept(ctx: Ctx, offer_id: str) -> None:
    """Accept OFFER_ID (as `commitment list` shows it): from here it counts."""
    ctx.show(render_written(ctx.call("commitment_accept", id=offer_id)))


@commitment.command("decline")
@click.argument("offer_id")
@click.option("--reason", default=None, help="Why, for the other side.")
@pass_ctx
def decline(ctx: Ctx, offer_id: str, reason: str | None) -> None:
    """Decline OFFER_ID, or cancel a commitment you are a party to (named in the
    track record)."""
    ctx.show(render_written(ctx.call("commitment_decline", id=offer_id, reason=reason)))


@commitment.command("list")
@click.option("--all", "all_", is_flag=True, help="Everyone's, not just this node's.")
@json_option
@pass_ctx
def list_(ctx: Ctx, all_: bool, as_json: bool) -> None:
    """Offers and commitments this node is a party to (all with --all)."""
    rows = ctx.call("commitment_list", all=all_)
    _emit(ctx, as_json, rows, render_commitments(rows))


@click.command("fulfil")
@click.argument("offer_id")
@click.argument("qty")
@click.argument("unit")
@click.option("--date", default=None, help="Delivery date (default: today).")
@click.option("--note", default=None, help="Free text.")
@pass_ctx
def fulfil(
    ctx: Ctx, offer_id: str, qty: str, unit: str, date: str | None, note: str | None
) -> None:
    """Record a delivery (partial allowed) of QTY UNIT against commitment OFFER_ID."""
    r = ctx.call("fulfil", id=offer_id, qty=qty, unit=unit, date=date, note=note)
    ctx.show(render_written(r))


@click.command("confirm")
@click.argument("delivery_id")
@click.option("--dispute", default=None, metavar="REASON", help="Dispute it instead.")
@pass_ctx
def confirm(ctx: Ctx, delivery_id: str, dispute: str | None) -> None:
    """Confirm DELIVERY_ID (as `commitment list` shows it) as received, or dispute it."""
    ctx.show(render_written(ctx.call("confirm", id=delivery_id, dispute=dispute)))


@click.command("track-record")
@click.argument("node", required=False)
@json_option
@pass_ctx
def track_record(ctx: Ctx, node: str | None, as_json: bool) -> None:
    """What NODE (key prefix or name; default everyone) committed and fulfilled."""
    data = ctx.call("track_record", node=node)
    _emit(ctx, as_json, data, render_track_record(data))
