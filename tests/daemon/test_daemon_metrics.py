"""Prometheus metrics: on when `[metrics] port` is set, and only on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest
from harness import Cluster, free_port

pytestmark = pytest.mark.slow


def test_metrics_served_on_loopback(nodes: Cluster) -> None:
    a = nodes.node("a").init()
    port = free_port()
    config = a.data_dir / "config.toml"
    config.write_text(re.sub(r"(?m)^port = 0$", f"port = {port}", config.read_text()))
    a.start()
    a.post_need()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body = r.read().decode()
    assert re.search(r"(?m)^allmende_records 3\.0$", body), body  # node, charter, need
    assert "allmende_peers 0.0" in body
    # bound to 127.0.0.1 only: no listener on the other loopback addresses
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.2", port)) != 0
