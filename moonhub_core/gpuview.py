"""One read-only view of the cluster's GPUs: the GPU nodes and what the pods on them ask
for, shared by every spawn form and the admin console of a hub.

Free GPUs can only be counted from every pod that holds one, whatever its namespace, so the
hub may list pods cluster-wide; it reads as little as the count allows: only pods on GPU
nodes (one field-selected list per GPU node), keeps only their GPU requests, and reads at
most every ``ttl`` seconds however many users open the spawn form (one read at a time).
The reads are served from the API server's watch cache (``resourceVersion=0``, indexed by
node name), never from etcd: at thousands of pods a quorum read of every pod per GPU node
was the cost, and a form may be a few seconds behind the cluster anyway.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kubernetes_asyncio import client

from .pods import GPU_NODE_SELECTOR, GPU_RESOURCE

LIVE = "status.phase!=Succeeded,status.phase!=Failed"


def _slim_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """What capacity counting needs of a pod: its node, phase and GPU requests."""
    containers = []
    for c in pod["spec"].get("containers") or []:
        res = c.get("resources") or {}
        keep = {k: {GPU_RESOURCE: v[GPU_RESOURCE]} for k, v in res.items() if isinstance(v, dict) and GPU_RESOURCE in v}
        containers.append({"resources": keep})
    return {
        "metadata": {"name": pod["metadata"].get("name", "")},
        "spec": {"nodeName": pod["spec"].get("nodeName"), "containers": containers},
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }


class GpuView:
    def __init__(self, core: client.CoreV1Api, ttl: float = 10.0) -> None:
        self.core, self.ttl = core, ttl
        self._lock = asyncio.Lock()
        self._read_at = -1e18
        self._nodes: list[dict[str, Any]] = []
        self._pods: list[dict[str, Any]] = []

    async def read(self, fresh: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The GPU nodes and the live pods on them (API dicts, pods reduced), at most
        ``ttl`` seconds old; ``fresh``: read now (a refusal is explained from what holds the
        GPUs now, not from a form's view of up to ``ttl`` seconds ago)."""
        if not fresh and time.monotonic() - self._read_at < self.ttl:
            return self._nodes, self._pods
        asked = time.monotonic()
        async with self._lock:
            if self._read_at >= asked or (not fresh and time.monotonic() - self._read_at < self.ttl):
                return self._nodes, self._pods
            ser = self.core.api_client.sanitize_for_serialization  # type: ignore[attr-defined]
            listed = await self.core.list_node(label_selector=GPU_NODE_SELECTOR, resource_version="0")
            nodes = [ser(n) for n in listed.items]
            pods: list[dict[str, Any]] = []
            for node in nodes:
                on_node = await self.core.list_pod_for_all_namespaces(
                    field_selector=f"spec.nodeName={node['metadata']['name']},{LIVE}", resource_version="0"
                )
                pods += [_slim_pod(ser(p)) for p in on_node.items]
            self._nodes, self._pods, self._read_at = nodes, pods, time.monotonic()
            return nodes, pods


_shared: GpuView | None = None


def shared(core: client.CoreV1Api) -> GpuView:
    """The hub's one view (made on first use)."""
    global _shared
    if _shared is None or _shared.core is not core:
        _shared = GpuView(core)
    return _shared
