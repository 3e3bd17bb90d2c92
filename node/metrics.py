"""Prometheus metrics on 127.0.0.1, off by default (`[metrics] port` in config.toml).

Values are read from the daemon when scraped, so there is no bookkeeping on the
hot paths; the HTTP server runs in prometheus_client's own thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from node.daemon import Daemon


class DaemonCollector(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        d = self.daemon
        net = d.net.statistics()
        yield GaugeMetricFamily("allmende_peers", "Connected peers", value=net.peers)
        yield GaugeMetricFamily(
            "allmende_records", "Live records in the replica", value=len(d.state.replica)
        )
        yield GaugeMetricFamily(
            "allmende_flagged_origins",
            "Origins caught equivocating",
            value=len(d.state.replica.flagged),
        )
        rejected = CounterMetricFamily(
            "allmende_rejected_records",
            "Records and messages rejected, by reason",
            labels=["source", "reason"],
        )
        for reason, n in d.counters["gossip_rejected"].items():
            rejected.add_metric(["gossip", reason], n)
        for reason, n in d.counters["sync_rejected"].items():
            rejected.add_metric(["sync", reason], n)
        for reason, n in net.rejected.items():
            rejected.add_metric(["net", reason], n)
        yield rejected
        sync = CounterMetricFamily(
            "allmende_sync_rounds", "Anti-entropy sessions", labels=["result"]
        )
        sync.add_metric(["ok"], net.sync_ok)
        sync.add_metric(["failed"], net.sync_failed)
        yield sync
        msgs = CounterMetricFamily(
            "allmende_gossip_messages", "Gossip messages", labels=["direction"]
        )
        msgs.add_metric(["in"], net.gossip_messages_in)
        msgs.add_metric(["out"], net.gossip_messages_out)
        yield msgs
        size = CounterMetricFamily("allmende_gossip_bytes", "Gossip bytes", labels=["direction"])
        size.add_metric(["in"], net.gossip_bytes_in)
        size.add_metric(["out"], net.gossip_bytes_out)
        yield size


def start_metrics(daemon: Daemon, port: int) -> None:
    """Serve /metrics on 127.0.0.1:`port` (never on other interfaces)."""
    registry = CollectorRegistry()
    registry.register(DaemonCollector(daemon))
    start_http_server(port, addr="127.0.0.1", registry=registry)
