"""The control socket: owner-only, structured replies, never taken down by a request."""

import os
import socket
import stat

import pytest
import trio

from node import control
from node.config import Config, DataDir
from node.errors import LocalError


async def _handler(op, args, progress):
    if op == "echo":
        return args
    if op == "refuse":
        raise LocalError("you cannot do that; try echo")
    if op == "bug":
        raise ZeroDivisionError("oops")
    raise LocalError(f"unknown control operation {op!r}")


def _with_server(tmp_path, client):
    path = tmp_path / "control.sock"
    result = {}

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve, path, _handler)
            result["mode"] = stat.S_IMODE(os.stat(path).st_mode)
            result["value"] = await trio.to_thread.run_sync(client, path)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert not path.exists()  # removed on the way out
    return result


def test_owner_only_and_round_trip(tmp_path):
    r = _with_server(tmp_path, lambda p: control.call(p, "echo", {"x": [1, "ü"]}))
    assert r["mode"] == 0o600
    assert r["value"] == {"x": [1, "ü"]}


def test_user_errors_come_back_structured(tmp_path):
    def client(p):
        with pytest.raises(control.RemoteCallError, match="you cannot do that") as exc:
            control.call(p, "refuse")
        assert exc.value.kind == "user"
        with pytest.raises(control.RemoteCallError, match="internal error") as exc:
            control.call(p, "bug")
        assert exc.value.kind == "internal"
        return control.call(p, "echo", {"still": "up"})  # the server survived both

    assert _with_server(tmp_path, client)["value"] == {"still": "up"}


def test_garbage_request_gets_an_error_reply(tmp_path):
    def client(p):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(p))
            s.sendall(b"this is not json\n")
            reply = s.makefile().readline()
        return reply, control.call(p, "echo", {"ok": 1})

    reply, after = _with_server(tmp_path, client)["value"]
    assert '"ok": false' in reply
    assert "bad control request" in reply
    assert after == {"ok": 1}


def test_daemon_not_running(tmp_path):
    with pytest.raises(control.DaemonNotRunning, match="start it with: allmende --data-dir"):
        control.call(tmp_path / "control.sock", "status")


def test_data_dir_is_private(tmp_path):
    dd = DataDir(tmp_path / "node")
    dd.init(Config(name="K", scope="eu/de/x"))
    assert stat.S_IMODE(os.stat(dd.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(dd.key).st_mode) == 0o600
    with pytest.raises(LocalError, match="refusing to overwrite"):
        dd.init(Config(name="K", scope="eu/de/x"))


def test_slow_reply_does_not_block_other_requests(tmp_path):
    """A request that waits (on a worker thread, say) does not hold up quick ones."""
    import threading
    import time

    release = threading.Event()

    async def handler(op, args, progress):
        if op == "slow":
            await trio.to_thread.run_sync(lambda: release.wait(10))
            return "slow done"
        return "quick"

    path = tmp_path / "control.sock"
    answers = []

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve, path, handler)

            def client():
                slow = threading.Thread(target=lambda: answers.append(control.call(path, "slow")))
                slow.start()
                time.sleep(0.2)
                answers.append(control.call(path, "quick", timeout=2))  # while slow waits
                release.set()
                slow.join(5)

            await trio.to_thread.run_sync(client)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert answers == ["quick", "slow done"]
