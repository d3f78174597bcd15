"""MoonHub's own Prometheus metrics, served with JupyterHub's at ``/hub/metrics``
(JupyterHub's registry is prometheus_client's default one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from moonhub_core import pods

SPAWNS = Counter("moonhub_spawns", "Servers started, by environment", ["environment", "gpu_type"])
SPAWN_FAILURES = Counter(
    "moonhub_spawn_failures",
    "Spawns refused or failed, by reason "
    "(not_entitled, over_quota, unknown_choice, unschedulable, image, timeout, error)",
    ["reason"],
)


class GpusInUse(Collector):
    """``moonhub_gpus_in_use{gpu_type}``: GPUs held by running user servers, counted at
    scrape time from the pods ``pods`` gives (so it is right after a hub restart)."""

    def __init__(self, pods: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.pods = pods

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("moonhub_gpus_in_use", "GPUs held by running user servers", labels=["gpu_type"])
        counts: dict[str, int] = {}
        for pod in self.pods():
            n = pods.gpus(pod) if pods.live(pod) else 0
            if n:
                kind = pods.labels_of(pod).get(pods.GPU_TYPE, "unknown")
                counts[kind] = counts.get(kind, 0) + n
        for kind, n in sorted(counts.items()):
            g.add_metric([kind], n)
        yield g


def _reflected_pods() -> list[dict[str, Any]]:
    """The pods of every pod reflector KubeSpawner shares in this process (one per
    namespace watched): read at scrape time, no spawner kept alive."""
    from kubespawner import KubeSpawner

    return [
        pod
        for key, reflector in list(KubeSpawner.reflectors.items())
        if key[0] == "pods" and reflector is not None
        for pod in list(reflector.pods.values())
    ]


#: registered once, when the spawner module is first imported by the hub
GPUS_IN_USE = GpusInUse(_reflected_pods)
REGISTRY.register(GPUS_IN_USE)
