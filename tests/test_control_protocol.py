"""The control socket under stress: bounded input, payloads, progress, many clients,
long paths, and a live daemon's socket never taken over."""

import contextlib
import functools
import hashlib
import json
import os
import random
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from node import control
from node.errors import LocalError


@contextlib.contextmanager
def serving(path, handler, **options):
    """Run `control.serve` on a trio loop in a background thread; fail if it dies."""
    box = {}
    ready = threading.Event()

    async def main():
        async with trio.open_nursery() as nursery:
            box["stop"] = nursery.cancel_scope.cancel
            box["token"] = trio.lowlevel.current_trio_token()
            await nursery.start(functools.partial(control.serve, path, handler, **options))
            ready.set()

    def run():
        try:
            trio.run(main)
        except BaseException as exc:
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        if "error" in box:
            raise box["error"]
        yield
    finally:
        if "stop" in box:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(box["stop"], trio_token=box["token"])
        thread.join(10)
    if "error" in box:
        raise AssertionError("the control server died") from box["error"]


async def echo(op, args, progress):
    if op == "echo":
        return args
    if op == "import":
        data = args.pop("payload")
        return {"n": len(data), "sha256": hashlib.sha256(data).hexdigest(), "args": args}
    if op == "object":
        return object()  # not JSON
    raise LocalError(f"unknown control operation {op!r}")


def raw(path, data, *, wait=0.0):
    """Send `data` on a fresh connection, then read every line until the server closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # the server sees the end of the request
        time.sleep(wait)
        buf = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


def request_line(body_len):
    """An echo request line of exactly `body_len` bytes (newline excluded)."""
    head, tail = b'{"op": "echo", "args": {"s": "', b'"}}'
    return head + b"x" * (body_len - len(head) - len(tail)) + tail


# --- bounded input ----------------------------------------------------------------------


def test_a_64_kib_request_line_is_accepted(tmp_path):
    path = tmp_path / "control.sock"
    with serving(path, echo):
        [reply] = raw(path, request_line(control.MAX_REQUEST) + b"\n")
    assert reply["ok"] is True
    assert len(reply["result"]["s"]) > 65000


@pytest.mark.parametrize("size", [64 * 1024 + 1, 4 * 1024 * 1024])
def test_a_longer_line_gets_an_error_and_the_daemon_keeps_serving(tmp_path, size):
    path = tmp_path / "control.sock"
    with serving(path, echo):
        [reply] = raw(path, request_line(size) + b"\n")
        assert reply["ok"] is False
        assert reply["error"]["type"] == "user"
        assert "longer than 65536 bytes" in reply["error"]["message"]
        assert control.call(path, "echo", {"still": "up"}) == {"still": "up"}


def test_deep_nesting_is_refused_before_parsing(tmp_path):
    path = tmp_path / "control.sock"

    def nested(n):
        return "[" * n + "]" * n

    with serving(path, echo):
        [reply] = raw(path, b"[" * 10_000 + b"\n")  # used to kill the daemon (RecursionError)
        assert reply["error"]["type"] == "user"
        assert "nested deeper than 32 levels" in reply["error"]["message"]
        # request {} + args {} + 30 lists = 32 levels: fine; one more is not
        ok = raw(path, b'{"op": "echo", "args": {"v": %s}}\n' % nested(30).encode())
        assert ok[0]["ok"] is True
        deep = raw(path, b'{"op": "echo", "args": {"v": %s}}\n' % nested(31).encode())
        assert "nested deeper" in deep[0]["error"]["message"]
        # brackets inside strings are text, escaped quotes do not end a string
        text = '[[[[\\"{{{{' * 100
        assert control.call(path, "echo", {"s": text}) == {"s": text}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=30,
)


def _depth(value):
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


def _commas(value):
    if isinstance(value, list | dict):
        inner = value if isinstance(value, list) else list(value.values())
        return max(len(value) - 1, 0) + sum(map(_commas, inner))
    return 0


def _containers(value):
    if isinstance(value, list):
        return 1 + sum(map(_containers, value))
    if isinstance(value, dict):
        return 1 + sum(map(_containers, value.values()))
    return 0


@given(json_values, st.booleans())
def test_shape_is_what_json_parses(value, ascii_only):
    line = json.dumps(value, ensure_ascii=ascii_only).encode()
    depth, containers = _depth(value), _containers(value)
    assert control._shape(line) == (depth, containers, _commas(value) if containers else 0)


def test_a_failure_in_one_connection_stays_there(tmp_path):
    path = tmp_path / "control.sock"

    def broken_limit(op):
        raise RuntimeError("bug in the op table")

    with serving(path, echo, max_payload=broken_limit):
        with pytest.raises(control.RemoteCallError, match="internal error") as exc:
            control.call(path, "object")  # the result cannot be encoded
        assert exc.value.kind == "internal"
        with pytest.raises(control.RemoteCallError, match="bug in the op table") as exc:
            control.call(path, "import", payload=b"x")
        assert exc.value.kind == "internal"
        assert raw(path, b"") == []  # a silent probe gets a silent close
        assert raw(path, b'["op"]\n')[0]["error"]["type"] == "user"
        assert control.call(path, "echo", {"after": 1}) == {"after": 1}


# --- payload ----------------------------------------------------------------------------


def _limits(op):
    return {"import": 8 * 1024 * 1024}.get(op, 0)


def test_a_payload_of_several_megabytes(tmp_path):
    path = tmp_path / "control.sock"
    data = random.Random(7).randbytes(5_000_000)
    with serving(path, echo, max_payload=_limits):
        got = control.call(path, "import", {"name": "pabulib"}, payload=data)
        empty = control.call(path, "import", payload=b"")
    assert got == {
        "n": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "args": {"name": "pabulib"},
    }
    assert empty["n"] == 0


def test_payloads_an_op_does_not_take_are_refused(tmp_path):
    path = tmp_path / "control.sock"
    with serving(path, echo, max_payload=lambda op: 1024 * 1024 if op == "import" else 0):
        with pytest.raises(control.RemoteCallError, match="echo takes no payload"):
            control.call(path, "echo", payload=b"x")
        # refused before it is read: the client's upload is cut off, the reply still arrives
        with pytest.raises(control.RemoteCallError, match="more than the 1048576 import takes"):
            control.call(path, "import", payload=b"x" * (8 * 1024 * 1024))
        with pytest.raises(control.RemoteCallError, match=r"args\.payload is reserved"):
            control.call(path, "import", {"payload": "AAAA"})
        assert control.call(path, "import", payload=b"ok")["n"] == 2


def test_a_short_payload_is_reported(tmp_path):
    path = tmp_path / "control.sock"
    with serving(path, echo, max_payload=_limits), socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(b'{"op": "import", "payload": 100}\n' + b"x" * 10)
        s.shutdown(socket.SHUT_WR)
        reply = json.loads(s.makefile("rb").readline())
    assert "closed after 10 of 100 bytes" in reply["error"]["message"]


# --- progress ---------------------------------------------------------------------------


async def counting(op, args, progress):
    for i in range(args["steps"]):
        if progress is not None:
            progress(i + 1, args["steps"], "votes")
        await trio.sleep(args["pause"])
    return "imported"


def test_progress_is_rate_limited_and_comes_before_the_reply(tmp_path):
    path = tmp_path / "control.sock"
    seen = []
    with serving(path, counting):
        start = time.monotonic()
        result = control.call(
            path, "import", {"steps": 150, "pause": 0.005}, on_progress=lambda *u: seen.append(u)
        )
        elapsed = time.monotonic() - start
    assert result == "imported"
    assert 3 <= len(seen) <= elapsed * 10 + 2  # ~10 a second, not 150
    assert all(total == 150 and what == "votes" for _, total, what in seen)
    dones = [done for done, _, _ in seen]
    assert dones == sorted(set(dones))


def test_timeout_is_silence_not_the_whole_call(tmp_path):
    path = tmp_path / "control.sock"
    slow = {"steps": 10, "pause": 0.15}  # 1.5 s in all, never silent for 0.5 s
    with serving(path, counting):
        assert control.call(path, "import", slow, on_progress=lambda *u: None, timeout=0.5) == (
            "imported"
        )
        with pytest.raises(LocalError, match=r"did not answer for 0\.5 s"):
            control.call(path, "import", slow, timeout=0.5)


def test_progress_never_blocks_the_handler(tmp_path):
    """Progress from a worker thread, to a client that is not reading."""
    path = tmp_path / "control.sock"
    finished = []

    async def busy(op, args, progress):
        def work():
            for i in range(100_000):
                progress(i, 100_000, "x" * 1000)

        await trio.to_thread.run_sync(work)
        await trio.sleep(0.3)  # long enough for one more line
        finished.append(time.monotonic())
        return "done"

    with serving(path, busy):
        start = time.monotonic()
        lines = raw(path, b'{"op": "import", "progress": true}\n', wait=1.0)
    assert finished
    assert finished[0] - start < 1.0  # done before the client read anything
    assert lines[-1] == {"ok": True, "result": "done"}
    assert 1 <= len(lines) - 1 <= 10
    assert all(set(line) == {"progress"} for line in lines[:-1])


# --- many clients -----------------------------------------------------------------------


async def sleepy(op, args, progress):
    await trio.sleep(0.2)
    return args["i"]


def test_forty_concurrent_clients_are_all_answered(tmp_path):
    path = tmp_path / "control.sock"
    with serving(path, sleepy), ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda i: control.call(path, "wait", {"i": i}), range(40)))
    assert answers == list(range(40))


def test_beyond_max_active_clients_are_told_busy_and_retry(tmp_path):
    path = tmp_path / "control.sock"
    with serving(path, sleepy, max_active=4), ThreadPoolExecutor(24) as pool:
        first = [pool.submit(control.call, path, "wait", {"i": i}) for i in range(4)]
        time.sleep(0.1)  # the four are being handled now
        start = time.monotonic()
        [busy] = raw(path, b'{"op": "wait", "args": {"i": 99}}\n')
        assert time.monotonic() - start < 0.15  # at once, not after a slot frees
        rest = list(pool.map(lambda i: control.call(path, "wait", {"i": i}), range(4, 24)))
        assert [f.result() for f in first] + rest == list(range(24))
    assert busy["ok"] is False
    assert busy["error"]["type"] == "busy"


def test_a_full_connection_queue_is_waited_out(tmp_path):
    """connect() fails with EAGAIN while the kernel's queue is full; call retries."""
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as filler:
        server.bind(str(path))
        server.listen(0)
        filler.connect(str(path))  # the queue holds one: now it is full

        def accept_late():
            time.sleep(0.3)
            server.accept()[0].close()  # the filler
            conn, _ = server.accept()
            with conn:
                conn.makefile("rb").readline()
                conn.sendall(b'{"ok": true, "result": "late"}\n')

        thread = threading.Thread(target=accept_late)
        thread.start()
        try:
            assert control.call(path, "status", timeout=5) == "late"
        finally:
            thread.join(5)


def test_a_daemon_that_stays_busy_is_given_up_on(tmp_path):
    path = tmp_path / "control.sock"
    stop = threading.Event()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(128)
        server.settimeout(0.05)

        def always_busy():
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    conn, _ = server.accept()
                    with conn:
                        busy = b'{"ok": false, "error": {"type": "busy", "message": "full"}}'
                        conn.sendall(busy + b"\n")

        thread = threading.Thread(target=always_busy)
        thread.start()
        try:
            start = time.monotonic()
            with pytest.raises(control.RemoteCallError, match="full") as exc:
                control.call(path, "status", timeout=1)
            assert exc.value.kind == "busy"
            assert 0.5 < time.monotonic() - start < 3
        finally:
            stop.set()
            thread.join(5)


def test_a_stale_socket_means_not_running_at_once(tmp_path):
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # a killed daemon's socket file: nobody listens
    start = time.monotonic()
    with pytest.raises(control.DaemonNotRunning, match="not running"):
        control.call(path, "status")
    assert time.monotonic() - start < 0.5


# --- paths ------------------------------------------------------------------------------


def test_a_long_data_dir_path_works(tmp_path):
    root = tmp_path / ("n" * 70) / ("m" * 70)
    root.mkdir(parents=True, mode=0o700)
    path = root / "control.sock"
    assert len(os.fsencode(path)) > 150
    with pytest.raises(control.DaemonNotRunning):
        control.call(path, "echo")
    with pytest.raises(control.DaemonNotRunning):
        control.call(tmp_path / ("x" * 160) / "control.sock", "echo")  # no such dir
    with serving(path, echo):
        assert os.listdir(root) == ["control.sock"]  # in the data dir, no temporary left
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert control.call(path, "echo", {"long": True}) == {"long": True}
        with pytest.raises(LocalError, match="another daemon is serving"):
            trio.run(control.serve, path, echo)
    assert not path.exists()


def test_a_live_socket_is_never_taken_over(tmp_path):
    path = tmp_path / "control.sock"
    with serving(path, echo):
        before = os.stat(path).st_ino
        with pytest.raises(LocalError, match=f"another daemon is serving {path}"):
            trio.run(control.serve, path, echo)
        assert os.stat(path).st_ino == before
        assert control.call(path, "echo", {"first": "still"}) == {"first": "still"}


def test_a_stale_socket_is_replaced(tmp_path):
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    with serving(path, echo):
        assert control.call(path, "echo", {"new": 1}) == {"new": 1}
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not path.exists()
