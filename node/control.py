"""The local control API: JSON lines over a Unix socket in the data dir, mode 0600.

One request per connection. The client sends one line, then `payload` raw bytes if the
line names a count::

    {"op": ..., "args": {...}, "payload": N, "progress": true}\\n  <N bytes>

The daemon answers with zero or more progress lines (only if asked for) and one reply::

    {"progress": {"done": d, "total": t, "what": w}}\\n
    {"ok": true, "result": ...}\\n
    {"ok": false, "error": {"type": "user"|"internal"|"busy", "message": ...}}\\n

Only the socket's owner can connect (file mode 0600 in a 0700 directory). Every input is
bounded (see the limits below), and whatever goes wrong with one connection stays with
that connection: the daemon keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import trio

from node.errors import AllmendeError, LocalError

log = logging.getLogger("allmende.control")

# --- limits ---------------------------------------------------------------------------
MAX_REQUEST = 64 * 1024  # bytes in the request line, newline excluded
MAX_DEPTH = 32  # JSON nesting in the request line; checked before parsing
# Arrays and objects in the request line, checked before parsing: each costs ~60-200
# bytes once parsed, so 64 KiB of "[]," would build ~3 MB. The largest real request (a
# proposal with 200 options) has about 200.
MAX_CONTAINERS = 4096
MAX_ENTRIES = 4096  # values in arrays and objects (counted by their commas), likewise
MAX_RESPONSE = 64 * 1024 * 1024  # bytes in one reply line, read by `call`
MAX_ACTIVE = 64  # requests handled at once; more are told "busy"
BACKLOG = 128  # connections queued by the kernel before connect fails with EAGAIN
REQUEST_TIMEOUT = 10.0  # seconds for a client to deliver its request line
IO_TIMEOUT = 30.0  # seconds of silence while reading a payload or writing to a client
PROGRESS_INTERVAL = 0.1  # seconds between progress lines (about 10 a second)
RETRY_FOR = 5.0  # seconds `call` keeps retrying a busy daemon

# A sockaddr_un holds 108 bytes; Python accepts 107 plus the terminating NUL everywhere.
_SUN_PATH_MAX = 107
_CHUNK = 1 << 20
_READ_CHUNK = 64 * 1024  # what the server asks the socket for at a time (payloads)
_LINE_CHUNK = 8 * 1024  # likewise for the request line: each ask allocates its size
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")

Progress = Callable[[int, int, str], None]  # (done, total, what); sync, never blocks
# (op, args, progress) -> result; progress is None unless the client asked for it.
Handler = Callable[[str, dict[str, Any], Progress | None], Awaitable[Any]]
MaxPayload = Callable[[str], int]  # op -> the most payload bytes it takes; 0 = none


@dataclass(frozen=True)
class JsonText:
    """A result already printed as JSON text (what `json.dumps` of the value prints):
    the reply line carries it as is. A view of thousands of rows prints them straight
    from its figures, which costs a fraction of building them as objects for
    `json.dumps`. Callers in the daemon's process read it with `plain`."""

    text: str


def plain(result: Any) -> Any:
    """`result` as a client of the socket reads it (a `JsonText` parsed)."""
    return json.loads(result.text) if isinstance(result, JsonText) else result


class DaemonNotRunning(LocalError):
    """No daemon answers on the control socket."""


class RemoteCallError(LocalError):
    """The daemon refused a request; `message` is for the user."""

    def __init__(self, message: str, kind: str = "user") -> None:
        super().__init__(message)
        self.kind = kind


def _no_payload(op: str) -> int:
    return 0


# --- server ---------------------------------------------------------------------------


async def serve(
    path: Path,
    handler: Handler,
    *,
    max_payload: MaxPayload = _no_payload,
    max_active: int = MAX_ACTIVE,
    # trio-typing's stale stubs (a py-libp2p dependency) lack TaskStatus
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,  # type: ignore[name-defined]
) -> None:
    """Serve the control socket at `path` until cancelled; remove it on the way out.

    Args:
        path: the socket file, inside the (0700) data dir; any length.
        handler: answers one request; raises `AllmendeError` for a refusal whose
            message is for a person; any other exception is reported as internal.
        max_payload: per op, the most payload bytes it accepts (0: it takes none).
        max_active: requests handled at once; beyond that clients get "busy".

    Raises:
        LocalError: another daemon answers on `path` (its socket is left alone).
    """
    _refuse_if_served(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        ours = await _publish(sock, path)
    except BaseException:
        sock.close()
        raise
    listener = trio.SocketListener(sock)
    gate = _Gate(max_active)

    async def one(stream: trio.SocketStream) -> None:
        await _serve_one(stream, handler, max_payload, gate)

    task_status.started()
    try:
        await trio.serve_listeners(one, [listener])
    finally:
        # Unlink first: a client arriving now is told "not running" (no file), not
        # left in a queue that is about to close.
        _remove_if_ours(path, ours)
        with trio.CancelScope(shield=True):
            await listener.aclose()


def _refuse_if_served(path: Path) -> None:
    # Only a refused connect proves the file is stale (a killed daemon's): a daemon that
    # accepts, or whose queue is full (EAGAIN), is alive and keeps its socket.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)  # AF_UNIX connects never wait "in progress"
        try:
            _connect(probe, path)
        except (FileNotFoundError, ConnectionRefusedError):
            return
        except BlockingIOError:
            pass
        except PermissionError:
            raise LocalError(f"no permission to use {path}; run as the node's owner") from None
    raise LocalError(
        f"another daemon is serving {path}; stop it first, or give this node its own --data-dir"
    )


async def _publish(sock: trio.socket.SocketType, path: Path) -> tuple[int, int]:
    # Bound under a temporary name, made 0600, listening, and only then renamed into
    # place: nobody ever connects to a socket with the wrong mode, and control.sock never
    # exists while refusing connections because its daemon is still starting. So a
    # refused connect always means a stale file, which `call` relies on to say "not
    # running" at once; the rename also replaces a stale file atomically.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    with _unix_address(tmp) as address:
        old = os.umask(0o177)
        try:
            await sock.bind(address)
        finally:
            os.umask(old)
    try:
        os.chmod(tmp, 0o600)
        sock.listen(BACKLOG)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _remove_if_ours(path: Path, ours: tuple[int, int]) -> None:
    # A daemon that stops must not unlink the socket of one that replaced it.
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == ours:
            path.unlink()


@dataclass
class _Gate:
    """How many requests are being handled, and how many may be."""

    limit: int
    active: int = 0
    busy: int = 0  # connections told to retry


@dataclass(frozen=True)
class _Request:
    op: str
    args: dict[str, Any]
    progress: bool


class _BadRequest(Exception):
    """The client broke the protocol; the message says how."""


async def _serve_one(
    stream: trio.SocketStream, handler: Handler, max_payload: MaxPayload, gate: _Gate
) -> None:
    try:
        async with stream:
            if gate.active >= gate.limit:
                # Answered before reading the request: refusing must cost nearly nothing.
                gate.busy += 1
                log.debug("event=control.busy active=%d", gate.active)
                message = f"the daemon is handling {gate.limit} requests already; try again"
                await _send_line(stream, _encode(_error("busy", message)))
                return
            gate.active += 1
            try:
                await _answer(stream, handler, max_payload)
            finally:
                gate.active -= 1
    except Exception:
        # Whatever one connection does must not reach serve_listeners' nursery: that
        # would stop the control socket, and with it the daemon.
        log.exception("event=control.connection_failed")


async def _answer(stream: trio.SocketStream, handler: Handler, max_payload: MaxPayload) -> None:
    try:
        request = await _read_request(_Reader(stream), max_payload)
    except _BadRequest as exc:
        await _send_line(stream, _encode(_error("user", f"bad control request: {exc}")))
        return
    except Exception as exc:  # max_payload is the daemon's code: a bug there is internal
        log.exception("event=control.error stage=request")
        await _send_line(stream, _encode(_error("internal", f"internal error: {exc!r}")))
        return
    if request is None:
        return  # closed without a word: a liveness probe (see _refuse_if_served)
    if not request.progress:
        await _send_line(stream, await _run(handler, request, None))
        return
    progress = _ProgressLines(stream, trio.lowlevel.current_trio_token())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress.run)
        try:
            reply = await _run(handler, request, progress)
        finally:
            progress.close()
    # The nursery waited for a progress line in flight: the reply cannot cut into it.
    if not progress.broken:
        await _send_line(stream, reply)


async def _read_request(reader: _Reader, max_payload: MaxPayload) -> _Request | None:
    try:
        with trio.fail_after(REQUEST_TIMEOUT):
            line = await reader.line(MAX_REQUEST)
    except trio.TooSlowError:
        raise _BadRequest(f"no complete request line within {REQUEST_TIMEOUT:g} s") from None
    if line is None:
        return None
    # json.loads recurses once per level: a few KB of "[[[[" would exhaust the stack.
    depth, containers, entries = _shape(line)
    if depth > MAX_DEPTH:
        raise _BadRequest(f"the request is nested deeper than {MAX_DEPTH} levels")
    if containers > MAX_CONTAINERS:
        raise _BadRequest(
            f"the request holds {containers} lists and maps; at most {MAX_CONTAINERS} "
            "(send data as a payload)"
        )
    if entries > MAX_ENTRIES:
        raise _BadRequest(
            f"the request holds more than {MAX_ENTRIES} values; send data as a payload"
        )
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None
    if not isinstance(request, dict):
        raise _BadRequest("a request is a JSON object")
    op, args = request.get("op"), request.get("args")
    args = {} if args is None else args
    if not isinstance(op, str) or not isinstance(args, dict):
        raise _BadRequest("op must be a string, args a map")
    progress = request.get("progress", False)
    if not isinstance(progress, bool):
        raise _BadRequest("progress must be true or false")
    if "payload" in args:
        raise _BadRequest("args.payload is reserved: send bytes as the request's payload")
    size = request.get("payload")
    if size is not None:
        if type(size) is not int or size < 0:
            raise _BadRequest("payload must be a byte count")
        limit = max_payload(op)
        if limit <= 0:
            raise _BadRequest(f"{op} takes no payload")
        if size > limit:
            raise _BadRequest(f"a payload of {size} bytes is more than the {limit} {op} takes")
        args = {**args, "payload": await reader.exactly(size)}
    return _Request(op, args, progress)


def _shape(line: bytes) -> tuple[int, int, int]:
    """How deeply `line` nests, how many arrays and objects it holds and how many commas
    separate values in them, as JSON would parse it; linear, never recursive.

    Escapes go first (an escaped quote does not end a string, an escaped backslash
    does not escape the quote after it); then every other piece between quotes is
    outside a string, and only there do brackets count.
    """
    bare = line.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(bare.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    opened = brackets.count(b"[") + brackets.count(b"{")
    if opened == 0:
        return 0, 0, 0
    depth = max(accumulate((1 if b in b"[{" else -1 for b in brackets), initial=0))
    return depth, opened, outside.count(b",")


async def _run(handler: Handler, request: _Request, progress: Progress | None) -> bytes:
    try:
        return reply_line(await handler(request.op, request.args, progress))
    except AllmendeError as exc:
        return _encode(_error("user", str(exc)))
    except Exception as exc:  # a bug (or a result that is not JSON) must not end the daemon
        log.exception("event=control.error op=%s", request.op)
        return _encode(_error("internal", f"internal error: {exc!r}"))


def reply_line(result: Any) -> bytes:
    """The reply line of a result: ``{"ok": true, "result": ...}`` and a newline."""
    if isinstance(result, JsonText):  # as `_encode` would print its value
        return b'{"ok": true, "result": ' + result.text.encode() + b"}\n"
    return _encode({"ok": True, "result": result})


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": kind, "message": message}}


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def _send_line(stream: trio.SocketStream, line: bytes) -> bool:
    """Send one line; False if the client is gone or stopped reading."""
    try:
        with trio.fail_after(IO_TIMEOUT):
            await stream.send_all(line)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
        return False
    return True


class _Reader:
    """Buffered reads from one connection: a line, then exactly N payload bytes."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buf = bytearray()

    async def _more(self, want: int) -> bool:
        try:
            chunk = await self._stream.receive_some(max(want, 1))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _BadRequest("the connection broke") from None
        self._buf += chunk
        return bool(chunk)

    async def line(self, limit: int) -> bytes | None:
        """The next line (without its newline); None if the peer closed without one."""
        scanned = 0
        while (end := self._buf.find(b"\n", scanned)) < 0:
            if len(self._buf) > limit:
                end = len(self._buf)
                break
            scanned = len(self._buf)
            if not await self._more(min(limit + 1 - len(self._buf), _LINE_CHUNK)):
                if not self._buf:
                    return None
                end = len(self._buf)  # like a newline: clients that just close still work
                break
        if end > limit:
            raise _BadRequest(
                f"the request line is longer than {limit} bytes; send data as a payload"
            )
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return line

    async def exactly(self, n: int) -> bytes:
        """The next `n` bytes; the client may pause up to IO_TIMEOUT between chunks."""
        while len(self._buf) < n:
            try:
                with trio.fail_after(IO_TIMEOUT):
                    more = await self._more(min(n - len(self._buf), _READ_CHUNK))
            except trio.TooSlowError:
                raise _BadRequest(
                    f"the payload stalled after {len(self._buf)} of {n} bytes"
                ) from None
            if not more:
                raise _BadRequest(f"the connection closed after {len(self._buf)} of {n} bytes")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data


class _ProgressLines:
    """The `progress` callable a handler gets: the latest update wins.

    Calling it only records the values (from the event loop or a worker thread), so it
    never blocks the handler. One task writes at most one line per PROGRESS_INTERVAL;
    updates that arrive meanwhile, or while a slow client is not reading, are dropped
    except the last.
    """

    def __init__(self, stream: trio.SocketStream, token: trio.lowlevel.TrioToken) -> None:
        self._stream = stream
        self._token = token
        self._latest: tuple[int, int, str] | None = None
        self._wake = trio.Event()
        self._wake_pending = False
        self._stop = trio.Event()
        self.broken = False  # the client is gone: no reply either

    def __call__(self, done: int, total: int, what: str) -> None:
        # A fresh tuple each time: the writer compares by identity, never clears it.
        self._latest = (int(done), int(total), str(what))
        if not self._wake_pending:
            # run_sync_soon is thread-safe; the flag keeps a tight loop of updates from
            # queueing a callback each.
            self._wake_pending = True
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._set_wake)

    def _set_wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Stop after the line in flight (event loop only)."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        sent: tuple[int, int, str] | None = None
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            self._wake_pending = False
            latest = self._latest
            if self._stop.is_set():
                return
            if latest is None or latest is sent:
                continue
            done, total, what = latest
            line = json.dumps({"progress": {"done": done, "total": total, "what": what}})
            if not await _send_line(self._stream, line.encode() + b"\n"):
                self.broken = True
                return
            sent = latest
            with trio.move_on_after(PROGRESS_INTERVAL):
                await self._stop.wait()


# --- client ---------------------------------------------------------------------------


class _Retry(Exception):
    """The daemon is there but cannot take the request now."""


def call(
    path: Path,
    op: str,
    args: dict[str, Any] | None = None,
    *,
    payload: bytes | None = None,
    on_progress: Progress | None = None,
    timeout: float = 30.0,
) -> Any:
    """Ask the daemon (blocking; for the CLI).

    A busy daemon (all request slots taken, or its connection queue full) is asked again
    with a short backoff for up to RETRY_FOR seconds.

    Args:
        path: the control socket (any length).
        op, args: the operation and its JSON arguments.
        payload: raw bytes for ops that take them (a pabulib file, say).
        on_progress: called with (done, total, what) as the daemon reports progress.
        timeout: seconds of silence from the daemon before giving up; a long call
            that reports progress does not time out.

    Returns:
        The op's result (JSON).

    Raises:
        DaemonNotRunning: nobody listens on the socket.
        RemoteCallError: the daemon refused the request (`kind` "user" or
            "internal"), or stayed busy ("busy").
        LocalError: the daemon went silent, closed or answered nonsense.
    """
    request: dict[str, Any] = {"op": op, "args": args or {}}
    if payload is not None:
        request["payload"] = len(payload)
    if on_progress is not None:
        request["progress"] = True
    head = json.dumps(request).encode() + b"\n"
    give_up = time.monotonic() + min(RETRY_FOR, timeout)
    pause = 0.01
    while True:
        try:
            reply = _exchange(path, head, payload, on_progress, timeout)
            break
        except _Retry as exc:
            if time.monotonic() + pause > give_up:
                raise RemoteCallError(f"{exc}; gave up after retrying", "busy") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.25)
    if not reply.get("ok"):
        err = reply.get("error") or {}
        raise RemoteCallError(str(err.get("message")), str(err.get("type", "user")))
    return reply.get("result")


def _exchange(
    path: Path,
    head: bytes,
    payload: bytes | None,
    on_progress: Progress | None,
    timeout: float,
) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            _connect(s, path)
        except (FileNotFoundError, ConnectionRefusedError):
            # Refused means a stale file: serve publishes its socket only once it
            # listens, so a running daemon never refuses. No point in waiting.
            raise DaemonNotRunning(
                f"the allmende daemon is not running for {path.parent}; "
                f"start it with: allmende --data-dir {path.parent} run"
            ) from None
        except BlockingIOError:
            raise _Retry("the daemon's connection queue is full") from None
        except PermissionError:
            raise LocalError(f"no permission to use {path}; run as the node's owner") from None
        try:
            _send(s, head)
            if payload:
                _send(s, payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered before reading it all (busy, or a refusal): read why
        except TimeoutError:
            raise LocalError(f"the daemon stopped reading for {timeout:g} s") from None
        return _read_reply(s, on_progress, timeout)


def _send(s: socket.socket, data: bytes) -> None:
    # send, not sendall: the socket timeout then bounds each pause, not the whole upload.
    view = memoryview(data)
    while view:
        view = view[s.send(view[:_CHUNK], _NOSIGNAL) :]


def _read_reply(s: socket.socket, on_progress: Progress | None, timeout: float) -> dict[str, Any]:
    buf = bytearray()
    scanned = 0
    while True:
        end = buf.find(b"\n", scanned)
        if end < 0:
            if len(buf) > MAX_RESPONSE:
                raise LocalError("daemon reply too large")
            scanned = len(buf)
            try:
                chunk = s.recv(_CHUNK)
            except TimeoutError:
                raise LocalError(f"the daemon did not answer for {timeout:g} s") from None
            except ConnectionResetError:
                chunk = b""
            buf += chunk
            if chunk:
                continue
            if not buf:
                raise LocalError("the daemon closed the connection without answering")
            end = len(buf)  # a last line without its newline
        message = _decode(bytes(buf[:end]))
        del buf[: end + 1]
        scanned = 0
        if "ok" in message:
            error = message.get("error") or {}
            if not message["ok"] and error.get("type") == "busy":
                raise _Retry(str(error.get("message")))
            return message
        update = message.get("progress")
        if on_progress is not None and isinstance(update, dict):
            on_progress(int(update["done"]), int(update["total"]), str(update["what"]))


def _decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise LocalError(f"the daemon sent a bad reply: {line[:80]!r}")
    return message


# --- addresses ------------------------------------------------------------------------


def _connect(s: socket.socket, path: Path) -> None:
    with _unix_address(path) as address:
        s.connect(address)


@contextlib.contextmanager
def _unix_address(path: Path) -> Iterator[str]:
    """A name for `path` short enough for bind/connect, valid inside the block.

    Raises:
        FileNotFoundError: the directory of a long path does not exist.
        LocalError: the path is too long and this system has no /proc.
    """
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    # Too long for sockaddr_un: name the directory by an open descriptor of it. The
    # socket file itself stays in the data dir, guarded by its mode and the dir's.
    if not os.path.isdir("/proc/self/fd"):
        raise LocalError(f"{path} is too long for a Unix socket here; use a shorter --data-dir")
    fd = os.open(path.parent, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        short = f"/proc/self/fd/{fd}/{path.name}"
        if len(os.fsencode(short)) > _SUN_PATH_MAX:
            raise LocalError(f"the socket name {path.name!r} is too long")
        yield short
    finally:
        os.close(fd)
