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


OPERATING = __import__("pathlib").Path(__file__).parents[2] / "docs" / "operating.md"


def documented_metrics() -> dict[str, set[str]]:
    """Metric name -> label names, as docs/operating.md's Metrics section lists them."""
    text = OPERATING.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"`(allmende_\w+)(?:\{([\w,]+)\})?`", text)
    assert len(found) >= 7, found
    return {name: set(labels.split(",")) if labels else set() for name, labels in found}


def exported(body: str) -> tuple[dict[str, set[str]], dict[str, str]]:
    """(sample name -> label names, family name -> type) of a Prometheus text body."""
    samples: dict[str, set[str]] = {}
    types = dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", body))
    for name, labels in re.findall(r"(?m)^(allmende_\w+)(?:\{([^}]*)\})? ", body):
        samples.setdefault(name, set()).update(re.findall(r"(\w+)=", labels))
    return samples, types


def test_every_documented_metric_is_exported(nodes: Cluster) -> None:
    a = nodes.node("a").init()
    port = free_port()
    config = a.data_dir / "config.toml"
    config.write_text(re.sub(r"(?m)^port = 0$", f"port = {port}", config.read_text()))
    a.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        samples, types = exported(r.read().decode())
    for name, labels in documented_metrics().items():
        # a counter with no samples yet shows only in its TYPE line
        assert name in samples or name in types, (
            f"{name} is documented in docs/operating.md but not exported"
        )
        if name in samples:
            assert samples[name] == labels, (name, samples[name])
