"""Helpers for tests and benchmarks that run daemons as processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from node.errors import LocalError

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def allmende_command() -> list[str]:
    """The `allmende` console script of this interpreter, else the same via `-c`."""
    script = Path(sys.executable).parent / "allmende"
    if script.exists():
        return [str(script)]
    found = shutil.which("allmende")
    if found:
        return [found]
    return [sys.executable, "-c", "from cli.main import main; main()"]


def wait_for(
    predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition", *, step: float = 0.1
) -> T:
    """Poll `predicate` until it returns something truthy; return that.

    Exceptions from the predicate count as "not yet" (a daemon still starting).

    Raises:
        TimeoutError: not true within `timeout` seconds (with the last error, if any).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (LocalError, OSError, KeyError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what} not reached within {timeout} s"
                + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(step)


def stop_group(
    proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, grace: float = 10.0
) -> None:
    """Stop a process started with ``start_new_session=True`` and its children:
    `sig` to the group, then SIGKILL if it has not exited within `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)
