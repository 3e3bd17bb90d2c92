"""What every page shares: escaping, the page around a body, small building blocks.

Every value from a record passes through `e` (``html.escape``) before it reaches a
page.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

__all__ = ["NAV", "dl", "e", "error_page", "layout", "short", "table"]

NAV = (
    ("/", "Node"),
    ("/balance", "Balance"),
    ("/plan", "Plan"),
    ("/proposals", "Proposals"),
    ("/budgets", "Budgets"),
    ("/assemblies", "Assemblies"),
    ("/member", "My key"),
    ("/operator", "Operator"),
)


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def layout(title: str, body: str, *, csrf: str, here: str, scripts: Iterable[str] = ()) -> str:
    """The page around `body`: navigation, the CSRF value, the scripts."""
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if href == here else ""}>{name}</a>'
        for href, name in NAV
    )
    tags = "".join(f'<script src="/static/{s}" defer></script>' for s in ("app.js", *scripts))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf" content="{e(csrf)}"><title>{e(title)} · Allmende</title>'
        f'<link rel="stylesheet" href="/static/style.css">{tags}</head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><span class="brand">Allmende</span><nav aria-label="Main">{nav}</nav>'
        '<span id="live" class="live" role="status" aria-live="polite"></span></header>'
        f'<main id="main"><h1>{e(title)}</h1>{body}</main></body></html>'
    )


def dl(pairs: Iterable[tuple[str, Any]]) -> str:
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in pairs) + "</dl>"


def short(hex_key: str, n: int = 16) -> str:
    return hex_key[:n] + "…" if len(hex_key) > n else hex_key


def table(caption: str, heads: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table in a horizontally scrolling box (cells are HTML already)."""
    head = "".join(f"<th scope=col>{e(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table><caption>{e(caption)}</caption><thead><tr>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def error_page(message: str) -> str:
    return f'<p class="error" role="alert">{e(message)}</p>'
