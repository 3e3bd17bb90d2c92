"""Run real `allmende` daemons as subprocesses on 127.0.0.1 for multi-process tests.

Each `Node` has its own data dir, a free TCP port (found by binding port 0), mDNS
off and its own process group, so `stop()` / `kill()` never touch anything else.
Waiting is polling over the control socket (`node.control.call`) until a condition
holds or a hard deadline passes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from federation import TestFederation
from procs import allmende_command, free_port, wait_for

from node.config import DataDir
from node.control import call

T = TypeVar("T")

SCOPE = "eu/de/berlin"


class Node:
    """One daemon: `init()` once, then `start()` / `stop()` / `kill()` as often as needed.

    Args:
        base: a temporary directory; the data dir is ``base/name``.
        name: node name (also used in its scope).
        scope: region path; by default ``eu/de/berlin/<name>``.
        sync_interval: seconds between periodic anti-entropy rounds.
        web: serve the web app (on a free port, see `web_url`); off by default, so
            that test daemons never take the default web port.
        web_port: the web app's port when `web` (0: any free port).
    """

    def __init__(
        self,
        base: Path,
        name: str,
        *,
        scope: str | None = None,
        sync_interval: float = 30.0,
        web: bool = False,
        web_port: int = 0,
    ) -> None:
        self.name = name
        self.web = web
        self.web_port = web_port
        self.data_dir = base / name
        self.scope = scope or f"{SCOPE}/{name}"
        self.sync_interval = sync_interval
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / f"{name}.log"
        self.peer_id = ""
        self.node_id = ""
        self.starts = 0

    # --- lifecycle ---------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 30.0) -> str:
        """Run one `allmende --data-dir D ...` command; return stdout (raises on failure)."""
        out = subprocess.run(
            [*allmende_command(), "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise AssertionError(
                f"allmende {' '.join(args)} exited {out.returncode}: "
                f"{out.stderr.decode(errors='replace')}"
            )
        return out.stdout.decode()

    def init(self, *bootstrap: str, founder: bool = True, extra: tuple[str, ...] = ()) -> Node:
        """`allmende init`; a founder of the test's federation unless told otherwise
        (then `extra` says how it joins: ``--invite CODE``, ``--charter FILE``, or
        nothing to found a federation of its own)."""
        args = [
            "init",
            "--name",
            self.name,
            "--kind",
            "commune",
            "--scope",
            self.scope,
            "--port",
            str(self.port),
            "--no-mdns",
        ]
        for addr in bootstrap:
            args += ["--bootstrap", addr]
        if founder:
            args += TestFederation(self.data_dir.parent / "federation").init_args()
        out = self.cli(*args, *extra)
        self.peer_id = next(
            line.split()[-1] for line in out.splitlines() if line.startswith("peer id:")
        )
        self.node_id = next(
            line.split()[-1] for line in out.splitlines() if line.startswith("node id:")
        )
        return self

    @property
    def addr(self) -> str:
        """The multiaddr peers dial: ``/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>``."""
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    @property
    def socket(self) -> Path:
        return DataDir(self.data_dir).socket

    @property
    def web_url(self) -> str:
        """The running web app's base URL (raises FileNotFoundError before it runs)."""
        return DataDir(self.data_dir).web_url.read_text().strip()

    def start(self, timeout: float = 20.0) -> Node:
        """Start the daemon and wait until its control socket answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
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
                    str(self.sync_interval),
                    *(["--web-port", str(self.web_port)] if self.web else ["--no-web"]),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # own process group: signals reach only it
            )
        finally:
            log.close()
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {proc.returncode}:\n" + self.log()[-3000:]
                )
            return bool(self.call("status"))

        wait_for(up, timeout, what=f"{self.name} control socket")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the daemon and wait for it to exit; SIGKILL after `timeout`. Returns rc."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else 0
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not stop within {timeout} s on {signal.Signals(sig).name}"
            ) from None

    def kill(self) -> None:
        """SIGKILL the daemon's process group (no clean-up runs)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- talking to it -------------------------------------------------------------

    def call(self, op: str, **args: Any) -> Any:
        return call(self.socket, op, args, timeout=10.0)

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def digest(self) -> str:
        return str(self.call("digest")["digest"])

    def post_need(
        self,
        item: str = "potatoes",
        qty: str = "10",
        unit: str = "kg",
        period: str = "2027-Q1",
        **kw: Any,
    ) -> dict[str, Any]:
        return self.call(
            "post", kind="need", item=item, qty=qty, unit=unit, period=period, priority="high", **kw
        )

    def holds(self, origin: str, kind: str, key: str) -> bool:
        """True if the node holds the record (origin hex, kind, key), live or withdrawn."""
        rows = self.call("list", kind=kind, all=True, withdrawn=True)
        return any(r["origin"] == origin and r["id"] == key for r in rows)

    def connected_to(self, other: Node) -> bool:
        return other.peer_id in self.call("peers")["connected"]

    def wait_for(
        self, predicate: Callable[[Node], T], timeout: float = 20.0, what: str = "condition"
    ) -> T:
        return wait_for(lambda: predicate(self), timeout, what=f"{self.name}: {what}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Cluster:
    """Nodes of one test; `close()` stops every one of them (SIGKILL as a last resort)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nodes: list[Node] = []

    def node(self, name: str, **kw: Any) -> Node:
        n = Node(self.base, name, **kw)
        self.nodes.append(n)
        return n

    def close(self) -> None:
        for n in self.nodes:
            try:
                n.stop(signal.SIGTERM, timeout=8.0)
            except AssertionError:
                pass  # stop() killed it
            finally:
                n.kill()

    def dump_logs(self) -> str:
        return "\n".join(f"===== {n.name}\n{n.log()[-4000:]}" for n in self.nodes)


@contextlib.contextmanager
def cluster(base: Path) -> Iterator[Cluster]:
    c = Cluster(base)
    try:
        yield c
    finally:
        c.close()
