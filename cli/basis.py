"""What a balance's figures rest on, in words: the same words in `allmende balance`
and on the web app's balance page. Plain text, no rich: the daemon serves the web app
and does not import the command line's renderers."""

from __future__ import annotations

import datetime
from typing import Any


def basis_text(basis: dict[str, Any] | None) -> str:
    """What a scope's figures rest on, in words: complete, attested by k of n,
    partial (regions missing), or not held here."""
    if not basis:
        return ""
    status = basis.get("status")
    if status == "not-held":
        return f"not held here: only {basis['region']} as a whole, from its rollups"
    attested = basis.get("attested") or {}
    missing = basis.get("missing") or {}
    if status == "complete":
        return ""  # within this node's own region: its records, complete
    if status == "own-region-only":
        return "this node's region only: no rollups of other regions here yet"
    parts = []
    if basis.get("own_region"):
        parts.append("own region complete")
    if attested:
        counts = sorted({f"{a['by']} of {a['of']}" for a in attested.values()})
        parts.append(f"{len(attested)} region(s) attested by {', '.join(counts)}")
    if missing:
        why = ", ".join(f"{r} {w}" for r, w in sorted(missing.items()))
        parts.append(f"partial: {len(missing)} region(s) missing ({why})")
    stale = basis.get("stale") or {}
    if stale:
        since = min(stale.values())
        when = datetime.datetime.fromtimestamp(since / 1000, tz=datetime.UTC)
        parts.append(f"{len(stale)} region(s) stale since {when:%Y-%m-%d %H:%M} UTC")
    return "; ".join(parts)


__all__ = ["basis_text"]
