"""Bar charts as inline SVG, drawn on the server: no script, no library, no request.

Pure functions from figures (decimal strings or ints, as the ops return them) to SVG
text. Widths are computed in exact fractions and rounded once, so the same figures
always give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from html import escape

__all__ = ["hbars", "in_out_columns", "need_capacity_bar", "opinion_groups"]

WIDTH = 300  # viewBox units; the SVG scales to its box


def _frac(x: str | int | Fraction) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(str(x))


def _w(value: Fraction, top: Fraction) -> int:
    if top <= 0 or value <= 0:
        return 0
    return max(1, round(value * WIDTH / top))


def need_capacity_bar(needs: str, capacities: str, top: Fraction, label: str) -> str:
    """Two thin bars, needs above capacities, on a common scale `top`.

    The capacities bar is red when it falls short of the needs.
    """
    n, c = _frac(needs), _frac(capacities)
    short = c < n
    return (
        f'<svg class="bar" viewBox="0 0 {WIDTH} 20" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}">'
        f'<rect class="needs" x="0" y="1" height="8" width="{_w(n, top)}"/>'
        f'<rect class="{"short" if short else "caps"}" x="0" y="11" height="8" '
        f'width="{_w(c, top)}"/></svg>'
    )


def hbars(rows: Sequence[tuple[str, str | int | Fraction, bool]], title: str) -> str:
    """A labelled horizontal bar chart: one (label, value, highlighted) per row."""
    if not rows:
        return ""
    top = max((_frac(v) for _, v, _ in rows), default=Fraction(0))
    step, label_w = 22, 120
    height = step * len(rows)
    parts = [
        f'<svg class="chart" viewBox="0 0 {label_w + WIDTH + 60} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, value, hot) in enumerate(rows):
        y = i * step
        v = _frac(value)
        parts.append(
            f'<text x="0" y="{y + 15}" class="lbl">{escape(label[:18])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" height="16" width="{_w(v, top)}" '
            f'class="{"hot" if hot else "val"}"/>'
            f'<text x="{label_w + _w(v, top) + 4}" y="{y + 15}" class="num">'
            f"{escape(str(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def in_out_columns(rows: Sequence[tuple[str, int, int]], title: str) -> str:
    """Columns of bytes in (up) and out (down) per period: one (label, in, out) per row;
    every sixth label is written under its column."""
    if not rows:
        return ""
    top = max(max(i, o) for _, i, o in rows) or 1
    col, half = 12, 50
    width = col * len(rows)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {2 * half + 16}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<line x1="0" x2="{width}" y1="{half}" y2="{half}" class="axis"/>'
    ]
    for k, (label, i, o) in enumerate(rows):
        x = k * col
        hi, ho = round(Fraction(i * half, top)), round(Fraction(o * half, top))
        parts.append(
            f'<rect x="{x + 1}" y="{half - hi}" width="{col - 2}" height="{hi}" class="val">'
            f"<title>{escape(label)}: {i} bytes in</title></rect>"
            f'<rect x="{x + 1}" y="{half}" width="{col - 2}" height="{ho}" class="needs">'
            f"<title>{escape(label)}: {o} bytes out</title></rect>"
        )
        if k % 6 == 0:
            parts.append(f'<text x="{x}" y="{2 * half + 14}" class="lbl">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


SIGNS = {"agree": ("+", "val"), "disagree": ("\u2212", "short"), "bridge": ("=", "needs")}


def opinion_groups(
    groups: Sequence[tuple[str, int, Sequence[tuple[str, str]]]],
    bridging: Sequence[str],
    title: str,
) -> str:
    """The opinion map: per group a bar as long as its membership and the statements
    that set it apart (one (``agree`` | ``disagree``, text) each), then the statements
    every group agrees with. Texts are cut to one line; the page's table has them whole.
    """
    if not groups:
        return ""
    top = max(size for _, size, _ in groups) or 1
    step, label_w, cut = 20, 120, 64
    rows: list[str] = []
    y = 0

    def line(sign: str, cls: str, words: str) -> None:
        nonlocal y
        shown = words if len(words) <= cut else words[: cut - 1] + "\u2026"
        rows.append(
            f'<text x="8" y="{y + 14}" class="{cls}-sign">{sign}</text>'
            f'<text x="24" y="{y + 14}" class="lbl">{escape(shown)}</text>'
        )
        y += step

    for label, size, statements in groups:
        w = _w(Fraction(size), Fraction(top))
        rows.append(
            f'<text x="0" y="{y + 15}" class="lbl grp">{escape(label[:18])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" height="16" width="{w}" class="val"/>'
            f'<text x="{label_w + w + 4}" y="{y + 15}" class="num">{size}</text>'
        )
        y += step + 2
        for stance, words in statements:
            sign, cls = SIGNS[stance]
            line(sign, cls, words)
        y += 6
    if bridging:
        rows.append(f'<text x="0" y="{y + 15}" class="lbl grp">Broad agreement</text>')
        y += step + 2
        for words in bridging:
            line(*SIGNS["bridge"], words)
    return (
        f'<svg class="chart" viewBox="0 0 {label_w + WIDTH + 60} {y + 4}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>' + "".join(rows) + "</svg>"
    )
