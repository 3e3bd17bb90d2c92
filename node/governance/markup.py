"""A safe markdown subset for comments: plain text for the terminal, escaped HTML for
the web app.

The subset: paragraphs (blank lines), ``- `` list items, ``**strong**``, ``*emphasis*``
and ```code```. Nothing else is interpreted: no links, images, raw HTML or headings,
so a comment can neither run script nor impersonate the page. HTML output escapes
every character that means something in HTML before adding the few tags it makes.
"""

from __future__ import annotations

import re

__all__ = ["to_html", "to_text"]

_CODE = re.compile(r"`([^`\n]+)`")
_STRONG = re.compile(r"\*\*([^*\n]+)\*\*")
_EM = re.compile(r"\*([^*\n]+)\*")


def _blocks(source: str) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in source.replace("\r\n", "\n").split("\n"):
        if line.strip():
            blocks[-1].append(line.rstrip())
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}


def _escape(text: str) -> str:
    """Every character that means something in HTML, as its entity."""
    return "".join(_ESCAPES.get(c, c) for c in text)


def _inline_html(line: str) -> str:
    out = _escape(line)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _STRONG.sub(r"<strong>\1</strong>", out)
    return _EM.sub(r"<em>\1</em>", out)


def to_html(source: str) -> str:
    """The subset as HTML; everything else is text, escaped."""
    parts = []
    for block in _blocks(source):
        if all(line.startswith("- ") for line in block):
            items = "".join(f"<li>{_inline_html(line[2:])}</li>" for line in block)
            parts.append(f"<ul>{items}</ul>")
        else:
            parts.append("<p>" + "<br>".join(_inline_html(line) for line in block) + "</p>")
    return "".join(parts)


def to_text(source: str) -> str:
    """The subset as plain text: markers removed, list items as bullets."""
    lines = []
    for block in _blocks(source):
        for line in block:
            text = _EM.sub(r"\1", _STRONG.sub(r"\1", _CODE.sub(r"\1", line)))
            lines.append("• " + text[2:] if line.startswith("- ") else text)
        lines.append("")
    return "\n".join(lines).strip()
