"""The local control API: JSON lines over a Unix socket in the data dir, mode 0600.

One request per connection: ``{"op": ..., "args": {...}}`` -> ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": {"type": "user"|"internal", "message": ...}}``. Only the
socket's owner can connect (file mode 0600 in a 0700 directory).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from node.errors import AllmendeError, LocalError

log = logging.getLogger("allmende.control")

MAX_REQUEST = 64 * 1024
MAX_RESPONSE = 64 * 1024 * 1024

Handler = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class InThread:
    """A reply too slow to compute on the event loop (a budget tally, say).

    `fn` runs in a worker thread while the node keeps serving the network; it must
    only read what it was given (an immutable snapshot), never live state.
    """

    fn: Callable[[], Any]


class DaemonNotRunning(LocalError):
    """No daemon answers on the control socket."""


class RemoteCallError(LocalError):
    """The daemon refused a request; `message` is for the user."""

    def __init__(self, message: str, kind: str = "user") -> None:
        super().__init__(message)
        self.kind = kind


async def serve(
    path: Path,
    handler: Handler,
    *,
    # trio-typing's stale stubs (a py-libp2p dependency) lack TaskStatus
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,  # type: ignore[name-defined]
) -> None:
    """Serve the control socket until cancelled."""
    _remove(path)  # a stale socket from a killed daemon
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    task_status.started()
    try:
        await trio.serve_listeners(lambda s: _serve_one(s, handler), [listener])
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
        _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _serve_one(stream: trio.SocketStream, handler: Handler) -> None:
    async with stream:
        try:
            with trio.fail_after(10):
                data = await _read_line(stream, MAX_REQUEST)
            request = json.loads(data)
            op, args = request["op"], request.get("args") or {}
            if not isinstance(op, str) or not isinstance(args, dict):
                raise ValueError("op must be a string, args a map")
        except (ValueError, KeyError, TypeError, trio.TooSlowError) as exc:
            reply: dict[str, Any] = {
                "ok": False,
                "error": {"type": "user", "message": f"bad control request: {exc}"},
            }
        else:
            try:
                result = handler(op, args)
                if isinstance(result, InThread):
                    result = await trio.to_thread.run_sync(result.fn)
                reply = {"ok": True, "result": result}
            except AllmendeError as exc:
                reply = {"ok": False, "error": {"type": "user", "message": str(exc)}}
            except Exception as exc:  # a bug must not take the daemon down
                log.exception("event=control.error op=%s", op)
                reply = {
                    "ok": False,
                    "error": {"type": "internal", "message": f"internal error: {exc!r}"},
                }
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(json.dumps(reply).encode() + b"\n")


async def _read_line(stream: trio.SocketStream, limit: int) -> bytes:
    buf = bytearray()
    while b"\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise ValueError("request too large")
    return bytes(buf).split(b"\n", 1)[0]


def call(path: Path, op: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """Ask the daemon (blocking; for the CLI).

    Raises:
        DaemonNotRunning: nobody listens on the socket.
        RemoteCallError: the daemon refused the request.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(
                f"the allmende daemon is not running for {path.parent}; "
                f"start it with: allmende --data-dir {path.parent} run"
            ) from None
        except PermissionError:
            raise LocalError(f"no permission to use {path}; run as the node's owner") from None
        s.sendall(json.dumps({"op": op, "args": args or {}}).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_RESPONSE:
                raise LocalError("daemon reply too large")
    except TimeoutError:
        raise LocalError(f"the daemon did not answer within {timeout:.0f} s") from None
    finally:
        s.close()
    if not buf:
        raise LocalError("the daemon closed the connection without answering")
    reply = json.loads(buf)
    if not reply.get("ok"):
        err = reply.get("error") or {}
        raise RemoteCallError(str(err.get("message")), str(err.get("type", "user")))
    return reply["result"]
