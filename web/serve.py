"""Serve the web app with Hypercorn's trio worker, inside the daemon's nursery."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.config import Sockets
from hypercorn.trio import serve as hypercorn_serve

from node.errors import LocalError
from web.app import Backend, build_app
from web.traffic import TrafficLog

log = logging.getLogger("allmende.web")
TRAFFIC_EVERY = 60.0  # seconds between samples of the gossip counters

__all__ = ["serve_web"]


class _Bound(HyperConfig):
    """Hypercorn's config with the listening socket made beforehand, so that a port
    that is taken is reported here, as one clear error, before anything runs."""

    def __init__(self, sockets: Sockets) -> None:
        super().__init__()
        self._sockets = sockets

    def create_sockets(self) -> Sockets:
        return self._sockets


def _bind(host: str, port: int) -> Sockets:
    cfg = HyperConfig()
    cfg.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    try:
        return cfg.create_sockets()
    except OSError as exc:
        raise LocalError(
            f"the web app cannot listen on {host}:{port} ({exc.strerror}); choose another "
            "[web] port in config.toml, or turn it off with [web] enabled = false"
        ) from None


async def serve_web(
    backend: Backend,
    host: str,
    port: int,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `host`:`port` and serve until cancelled; `task_status.started(url)`.

    Raises:
        LocalError: the address cannot be bound.
    """
    sockets = _bind(host, port)
    config = _Bound(sockets)
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 30.0
    loopback = ipaddress.ip_address(host).is_loopback
    traffic = TrafficLog()
    app = build_app(backend, loopback_only=loopback, traffic=traffic)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(hypercorn_serve, app, config)
        nursery.start_soon(_sample, backend, traffic)
        url = binds[0]
        task_status.started(url)


async def _sample(backend: Backend, traffic: TrafficLog) -> None:
    while True:
        traffic.sample(backend.now_ms() / 1000, *backend.traffic())
        await trio.sleep(TRAFFIC_EVERY)
