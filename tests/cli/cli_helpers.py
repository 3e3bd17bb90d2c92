"""Helpers for CLI tests: an in-process `CliRunner` and real daemons as subprocesses.

A daemon is `allmende --data-dir D run --listen /ip4/127.0.0.1/tcp/<free port>
--no-mdns` in its own process group; we poll its control socket until it answers and
SIGTERM (then SIGKILL) the group in teardown, so nothing outlives the test session.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result
from federation import TestFederation
from procs import allmende_command, free_port, stop_group, wait_for
from rich.console import Console

from cli.main import Ctx, cli
from node.config import DataDir
from node.control import call

T = TypeVar("T")

START_TIMEOUT = 20.0


def invoke(data_dir: Path, *args: str) -> Result:
    """Run `allmende --data-dir D ARGS` in-process; a fixed-width, colourless console."""
    ctx = Ctx(data_dir, console=Console(width=100, color_system=None))
    return CliRunner().invoke(
        cli,
        ["--data-dir", str(data_dir), *args],
        obj=ctx,
        prog_name="allmende",
        catch_exceptions=False,
    )


@dataclass
class Node:
    """One initialised data dir and, once `start`ed, its daemon subprocess."""

    data_dir: Path
    name: str
    scope: str
    port: int = field(default_factory=free_port)
    peer_id: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def init(self) -> Node:
        """`allmende init` as a founder of the test's federation."""
        r = invoke(
            self.data_dir,
            "init",
            "--name",
            self.name,
            "--scope",
            self.scope,
            "--port",
            str(self.port),
            "--no-mdns",
            *TestFederation(self.data_dir.parent / "federation").init_args(),
        )
        assert r.exit_code == 0, r.output
        self.peer_id = next(
            line.split()[-1] for line in r.stdout.splitlines() if line.startswith("peer id:")
        )
        return self

    @property
    def addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def start(self) -> Node:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *allmende_command(),
                    "--data-dir",
                    str(self.data_dir),
                    "run",
                    "--listen",
                    f"/ip4/127.0.0.1/tcp/{self.port}",
                    "--no-mdns",
                    "--sync-interval",
                    "1",
                    "--log-level",
                    "warning",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # own process group: teardown signals only it
            )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {proc.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            return bool(self.call("status"))

        wait_for(up, START_TIMEOUT, what=f"{self.name} control socket")
        return self

    def stop(self) -> None:
        stop_group(self.proc)

    def call(self, op: str, **args: Any) -> Any:
        return call(DataDir(self.data_dir).socket, op, args, timeout=10.0)

    def cli(self, *args: str) -> Result:
        return invoke(self.data_dir, *args)

    def json(self, *args: str) -> Any:
        r = self.cli(*args, "--json")
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a write could change: digest, record count, all records, config."""
        d = self.call("digest")
        rows = [self.call("list", kind=k, all=True, withdrawn=True) for k in ("need", "capacity")]
        return (
            d["digest"],
            d["records"],
            rows,
            self.call("items"),
            DataDir(self.data_dir).config.read_text(),
        )


@contextlib.contextmanager
def running(*nodes: Node) -> Iterator[tuple[Node, ...]]:
    """Start the nodes; stop every one on the way out (logs on failure)."""
    try:
        for n in nodes:
            n.start()
        yield nodes
    except BaseException:
        for n in nodes:
            if n.log_path.exists():
                sys.stderr.write(
                    f"===== {n.name}\n" + n.log_path.read_text(errors="replace")[-3000:]
                )
        raise
    finally:
        for n in nodes:
            n.stop()


# A well-formed peer address nobody listens at (port 9 is "discard"; nothing runs there).
BOOTSTRAP_EXAMPLE = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWHFYdJ3bQf1jaUQRKJ1ZQ43TPzcxG2nLxd1LV46mhtLHL"
