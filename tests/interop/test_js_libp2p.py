"""Interop: a stock js-libp2p peer (jsinterop/listen.mjs) joins a scope topic of a real daemon.

The daemon runs as a subprocess on 127.0.0.1; the js peer dials it over TCP + Noise +
yamux, subscribes to the topic of ``eu/de/berlin`` in the daemon's federation
(``allmende/3/<federation id[:16]>/eu/de/berlin``) with @chainsafe/libp2p-gossipsub and
prints every record of every batch it receives as a JSON line.  Needs Node.js and
``npm ci --prefix jsinterop``; without them the tests fail (they do not skip).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import free_port, stop_group

from node.control import call
from node.errors import LocalError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "jsinterop"
SCRIPT = JS_DIR / "listen.mjs"
PARTITION = "eu/de/berlin"
SCOPE = "eu/de/berlin/x"
NEED = {
    "kind": "need",
    "item": "potatoes",
    "qty": "5",
    "unit": "kg",
    "period": "2027-Q1",
    "priority": "high",
}


def _node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js (`node`) is not on PATH: install Node.js >= 20 and npm, then run "
            "`npm ci --prefix jsinterop`",
            pytrace=False,
        )
    if not (JS_DIR / "node_modules" / "libp2p").is_dir():
        pytest.fail(
            f"{JS_DIR / 'node_modules'} is missing: run `npm ci --prefix jsinterop`", pytrace=False
        )
    return node


def _allmende() -> list[str]:
    script = Path(sys.executable).parent / "allmende"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cli.main import main; main()"]


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (LocalError, OSError, KeyError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(
        f"{what} not reached within {timeout} s" + (f" (last error: {last})" if last else "")
    )


class Daemon:
    def __init__(self, base: Path) -> None:
        self.dir = base / "d"
        self.log = base / "daemon.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def sock(self) -> Path:
        return self.dir / "control.sock"

    def start(self) -> None:
        init = subprocess.run(
            [
                *_allmende(),
                "--data-dir",
                str(self.dir),
                "init",
                "--name",
                "X",
                "--kind",
                "commune",
                "--scope",
                SCOPE,
                "--port",
                str(self.port),
                "--no-mdns",
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert init.returncode == 0, init.stderr.decode(errors="replace")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *_allmende(),
                    "--data-dir",
                    str(self.dir),
                    "run",
                    "--listen",
                    f"/ip4/127.0.0.1/tcp/{self.port}",
                    "--no-mdns",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {proc.returncode}:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            return self.sock.exists() and bool(self.call("status"))

        _wait(up, 20, "daemon control socket")

    def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        return call(self.sock, op, args, timeout=10.0)

    def stop(self) -> None:
        stop_group(self.proc)


class JsPeer:
    """`node jsinterop/listen.mjs ...` with its stdout lines parsed into a queue."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [_node_binary(), str(SCRIPT), *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"js peer: {what} not seen within {timeout} s; "
                    f"lines: {self.seen}; stderr: {self.stderr()}"
                )
            try:
                item = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(
                        f"js peer exited with {self.proc.returncode} before "
                        f"{what}; lines: {self.seen}; "
                        f"stderr: {self.stderr()}"
                    ) from None
                continue
            self.seen.append(item)
            if match(item):
                return item

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    _node_binary()  # fail fast, before starting anything
    d = Daemon(tmp_path_factory.mktemp("jsinterop"))
    try:
        d.start()
        yield d
    finally:
        d.stop()


@contextlib.contextmanager
def js_peer(*args: str) -> Iterator[JsPeer]:
    peer = JsPeer(*args)
    try:
        yield peer
    finally:
        peer.stop()


def _listen_addr(d: Daemon) -> str:
    addrs: list[str] = d.call("status")["listen"]
    return next(a for a in addrs if a.startswith("/ip4/127.0.0.1/"))


def _topic(d: Daemon) -> str:
    fed = d.call("status")["federation"]
    return f"allmende/3/{fed[:16]}/{PARTITION}"


def _trust(daemon: Daemon, peer: JsPeer) -> None:
    """The daemon keeps strangers out of its meshes; an operator's own peer (`peers add`)
    is trusted like a bootstrap peer."""
    up = peer.expect(lambda m: m.get("event") == "up", 20, "up")
    addr = next(a for a in up["addrs"] if a.startswith("/ip4/127.0.0.1/"))
    if "/p2p/" not in addr:
        addr += "/p2p/" + up["peer"]
    daemon.call("peers_add", {"addr": addr})


def test_js_libp2p_peer_receives_a_posted_need(daemon: Daemon) -> None:
    with js_peer(_listen_addr(daemon), _topic(daemon), "40") as peer:
        _trust(daemon, peer)
        ready = peer.expect(lambda m: m.get("event") == "ready", 20, "ready (mesh with daemon)")
        assert ready["encryption"] == "/noise"
        assert ready["multiplexer"] == "/yamux/1.0.0"
        assert ready["protocol"] in ("/meshsub/1.2.0", "/meshsub/1.1.0")
        time.sleep(1.0)  # the daemon handles the GRAFT; its heartbeat is 1 s
        posted = daemon.call("post", NEED)
        got = peer.expect(lambda m: m.get("key") == posted["id"], 15, f"record {posted['id']}")
    assert got["kind"] == "need"
    assert got["scope"] == SCOPE
    assert got["origin"] == posted["origin"]
    assert int(got["seq"]) == posted["seq"]  # uint64 seqs arrive as BigInt strings
    assert got["body"]["item"] == "potatoes"
    assert got["body"]["qty"] == "5"


def test_daemon_accepts_a_record_signed_and_published_by_js(daemon: Daemon) -> None:
    with js_peer(
        _listen_addr(daemon), _topic(daemon), "40", "--publish", "eu/de/berlin/js"
    ) as peer:
        _trust(daemon, peer)
        ready = peer.expect(lambda m: m.get("event") == "ready", 20, "ready")
        pub = peer.expect(lambda m: m.get("event") == "published", 20, "published")
        assert pub["recipients"], "the js peer published to nobody"
        # A stranger's records are refused until the federation admits its key: the
        # daemon (its region's one admitted node) vouches for it.
        daemon.call("endorse", {"node": ready["origin"]})

        def held() -> dict[str, Any] | None:
            rows = daemon.call("list", {"kind": "need", "all": True})
            return next(
                (r for r in rows if r["origin"] == pub["origin"] and r["id"] == pub["key"]), None
            )

        row = _wait(held, 15, "the js record in the daemon")
    assert row["scope"] == "eu/de/berlin/js"
    assert row["item"] == "potatoes"
    assert daemon.call("status")["rejected"].get("bad-signature", 0) == 0
