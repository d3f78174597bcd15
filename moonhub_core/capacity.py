"""Free GPUs per GPU type, from node allocatable minus the requests of live pods. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import pods as podc
from .catalog import GpuType
from .pods import GPU_RESOURCE


@dataclass(frozen=True)
class GpuCapacity:
    total: int
    free: int
    #: the most GPUs free on any one node (what a single pod can get)
    largest_free: int


def _usable(node: Mapping[str, Any]) -> bool:
    if node["spec"].get("unschedulable"):
        return False
    conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
    return conds.get("Ready") == "True"


def gpu_capacity(
    gpu_types: Iterable[GpuType], nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> dict[str, GpuCapacity]:
    """``nodes`` and ``pods`` as API dicts (camelCase); ``pods`` are the non-terminal ones."""
    used: dict[str, int] = {}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node and podc.live(pod):
            used[node] = used.get(node, 0) + podc.gpus(pod)
    out = {}
    for gt in gpu_types:
        total = free = largest = 0
        for node in nodes:
            labels = node["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in gt.node_selector.items()) or not _usable(node):
                continue
            have = int((node["status"].get("allocatable") or {}).get(GPU_RESOURCE, 0) or 0)
            left = max(0, have - used.get(node["metadata"]["name"], 0))
            total, free, largest = total + have, free + left, max(largest, left)
        out[gt.name] = GpuCapacity(total, free, largest)
    return out
