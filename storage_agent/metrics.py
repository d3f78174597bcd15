"""The storage agent's Prometheus metrics (docs/observability.md): each workspace's use
against its folder's Gluster quota, as of the agent's last pass.

- ``moonhub_workspace_used_bytes{namespace, claim}``
- ``moonhub_workspace_limit_bytes{namespace, claim}``

A claim whose volume is gone drops out at the next pass (the figures are the last pass's,
not kept series). Served on the address ``--metrics-address`` gives (the pod's own address
in the chart: with the host's network, never on all of the node's interfaces).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .plan import Usage


class Workspaces(Collector):
    def __init__(self) -> None:
        #: replaced as a whole by each pass (a scrape never sees half of one)
        self.usage: Sequence[Usage] = ()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["namespace", "claim"]
        used = GaugeMetricFamily(
            "moonhub_workspace_used_bytes", "Bytes a workspace uses (Gluster's quota)", labels=labels
        )
        limit = GaugeMetricFamily("moonhub_workspace_limit_bytes", "A workspace's quota in bytes", labels=labels)
        for u in self.usage:
            used.add_metric([u.namespace, u.claim], u.used)
            limit.add_metric([u.namespace, u.claim], u.limit)
        yield used
        yield limit


WORKSPACES = Workspaces()
REGISTRY.register(WORKSPACES)


def serve(host: str, port: int) -> None:
    """prometheus_client's HTTP server in a thread of its own, on ``host:port`` only."""
    start_http_server(port, addr=host)
