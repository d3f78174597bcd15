"""Who runs what: servers and running jobs per user with their GPUs, and per GPU type
what is used and free. Pure: built from the hub's servers and Kubernetes objects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from moonhub_core import pods as podc
from moonhub_core.capacity import gpu_capacity
from moonhub_core.catalog import GpuType


def usage(
    gpu_types: list[GpuType],
    servers: Iterable[dict[str, Any]],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    job_pods: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``gpu_types``: the catalog's; ``servers``: {user, name, environment, size, gpu_type,
    gpu_count, started} of each running server (``gpu_count``: what its pod holds);
    ``nodes`` and ``pods``: the GPU nodes and the live pods on them, as dicts; ``job_pods``:
    the notebook jobs' pods (default: those among ``pods``)."""
    users: dict[str, dict[str, Any]] = {}

    def entry(user: str) -> dict[str, Any]:
        return users.setdefault(user, {"user": user, "servers": [], "jobs": [], "gpus": 0})

    for s in servers:
        e = entry(s["user"])
        e["servers"].append(s)
        e["gpus"] += int(s.get("gpu_count") or 0)
    for p in pods if job_pods is None else job_pods:
        labels = podc.labels_of(p)
        if labels.get(podc.COMPONENT) != podc.NOTEBOOK_JOB or p.get("status", {}).get("phase") not in (
            "Pending",
            "Running",
        ):
            continue
        owner = podc.annotations_of(p).get(podc.OWNER) or labels.get(podc.OWNER, "?")
        gpus = podc.gpus(p)
        e = entry(owner)
        e["jobs"].append(
            {
                "job": labels.get(podc.JOB, ""),
                "pod": p.get("metadata", {}).get("name", ""),
                "phase": p["status"]["phase"],
                "gpu_type": labels.get(podc.GPU_TYPE, "none"),
                "gpu_count": gpus,
            }
        )
        e["gpus"] += gpus
    cap = gpu_capacity(gpu_types, nodes, pods)
    return {
        "users": sorted(users.values(), key=lambda u: (-u["gpus"], u["user"])),
        "gpu_types": [
            {
                "name": g.name,
                "display_name": g.display_name,
                **asdict(cap[g.name]),
                "used": cap[g.name].total - cap[g.name].free,
            }
            for g in gpu_types
        ],
    }
