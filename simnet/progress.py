"""Live progress on the terminal: virtual time and records converged (rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def live_progress(console: Console, duration: float) -> Iterator[Callable[[float, int, int], None]]:
    """A callback `(virtual time, converged, created)` that updates a progress bar."""
    with Progress(
        TextColumn("[bold]simnet[/]"),
        BarColumn(),
        TextColumn("{task.fields[vt]:>7.1f} s virtual"),
        TextColumn("{task.fields[conv]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("run", total=duration, vt=0.0, conv="")

        def update(now: float, converged: int, created: int) -> None:
            bar.update(
                task, completed=now, vt=now, conv=f"{converged:,}/{created:,} records converged"
            )

        yield update
