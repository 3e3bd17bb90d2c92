"""A real-mode shard: several `node.daemon.Daemon`s in one OS process and one trio loop.

Run as ``python -m simnet.shard SPEC.json``; SPEC lists data dirs with their listen
port and sync interval. Prints ``ready`` once every daemon serves its control socket,
then runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from node.config import DataDir
from node.daemon import Daemon, setup_logging


async def serve(spec: list[dict[str, Any]]) -> None:
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            for entry in spec:
                dd = DataDir(Path(entry["data_dir"]))
                identity, config = dd.load()
                daemon = Daemon(
                    dd,
                    identity,
                    config,
                    listen=[f"/ip4/127.0.0.1/tcp/{entry['port']}"],
                    mdns=False,
                    sync_interval=entry["sync_interval"],
                    web=False,  # many nodes, one process: no web app on a shared port
                )
                await nursery.start(daemon.run)
            print("ready", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main() -> None:
    setup_logging("warning")
    spec = json.loads(Path(sys.argv[1]).read_text())
    trio.run(serve, spec)


if __name__ == "__main__":
    main()
