"""A PNG picture of a run: convergence-time CDF and records created/converged over time.

matplotlib is optional (the ``simnet`` extra); without it `write_chart` draws nothing
and says how to get it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MISSING = (
    "no chart: matplotlib is not installed (pip install matplotlib, or the allmende[simnet] extra)"
)


def chart_available() -> bool:
    """Whether matplotlib can be imported (asked before a run, so a missing extra
    fails fast instead of after minutes of simulation)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_chart(report: dict[str, Any], path: Path) -> str:
    """Draw the chart to `path`; returns a message for the user."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return MISSING
    r = report["result"]
    fig, (cdf, over) = plt.subplots(1, 2, figsize=(11, 4))
    points = r.get("convergence_cdf") or []
    if points:
        cdf.plot([max(p[0], 1e-3) for p in points], [p[1] for p in points])
        cdf.set_xscale("log")
    cdf.set_xlabel("time from creation until every live node holds it (s)")
    cdf.set_ylabel("fraction of records")
    cdf.set_title("convergence CDF")
    cdf.grid(True, alpha=0.3)
    times = [p[0] for p in r["timeline"]]
    over.plot(times, [p[1] for p in r["timeline"]], label="created")
    over.plot(times, [p[2] for p in r["timeline"]], label="converged")
    for p in r.get("partitions", []):
        over.axvspan(p["at"], p["heal"], color="red", alpha=0.1, label="partition")
    over.set_xlabel("time (s)")
    over.set_ylabel("records")
    over.set_title("convergence over time")
    over.legend()
    over.grid(True, alpha=0.3)
    fig.suptitle(
        f"simnet {report['mode']} {report['scenario']['name']}: "
        f"{r['nodes']} nodes, {r['records']} records"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"
