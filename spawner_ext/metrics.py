"""MoonHub's own Prometheus metrics, served with JupyterHub's at ``/hub/metrics``
(JupyterHub's registry is prometheus_client's default one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .workload import LABEL_PREFIX

SPAWNS = Counter("moonhub_spawns", "Servers started, by environment", ["environment", "gpu_type"])
SPAWN_FAILURES = Counter(
    "moonhub_spawn_failures",
    "Spawns refused or failed, by reason "
    "(not_entitled, over_quota, unknown_choice, unschedulable, image, timeout, error)",
    ["reason"],
)


class GpusInUse(Collector):
    """``moonhub_gpus_in_use{gpu_type}``: GPUs held by running user servers, counted from
    the spawner's pod reflector at scrape time (so it is right after a hub restart)."""

    def __init__(self, pods: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.pods = pods

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("moonhub_gpus_in_use", "GPUs held by running user servers", labels=["gpu_type"])
        counts: dict[str, int] = {}
        for pod in self.pods():
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            labels = pod.get("metadata", {}).get("labels") or {}
            n = int(labels.get(f"{LABEL_PREFIX}gpu-count", "0") or 0)
            if n:
                kind = labels.get(f"{LABEL_PREFIX}gpu-type", "unknown")
                counts[kind] = counts.get(kind, 0) + n
        for kind, n in sorted(counts.items()):
            g.add_metric([kind], n)
        yield g


_registered: list[GpusInUse] = []


def watch_gpus(pods: Callable[[], Iterable[dict[str, Any]]]) -> None:
    """Register the GPU gauge once per process."""
    if not _registered:
        collector = GpusInUse(pods)
        REGISTRY.register(collector)
        _registered.append(collector)
