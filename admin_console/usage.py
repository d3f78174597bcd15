"""Who runs what: servers and running jobs per user with their GPUs, and per GPU type
what is used and free. Pure: built from the hub's servers and Kubernetes objects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from spawner_ext.capacity import gpu_capacity, gpu_requests
from spawner_ext.catalog import Catalog

JOB_LABEL = "moonhub.io/component"
OWNER_ANNOTATION = "hub.jupyter.org/username"


def usage(
    catalog: Catalog,
    servers: Iterable[dict[str, Any]],
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    job_pods: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``servers``: {user, name, environment, size, gpu_type, gpu_count, started} of each
    running server; ``nodes`` and ``pods``: the GPU nodes and the live pods on them, as
    dicts; ``job_pods``: the notebook jobs' pods (default: those among ``pods``)."""
    users: dict[str, dict[str, Any]] = {}

    def entry(user: str) -> dict[str, Any]:
        return users.setdefault(user, {"user": user, "servers": [], "jobs": [], "gpus": 0})

    for s in servers:
        e = entry(s["user"])
        e["servers"].append(s)
        e["gpus"] += int(s.get("gpu_count") or 0)
    for p in pods if job_pods is None else job_pods:
        meta = p.get("metadata", {})
        labels = meta.get("labels") or {}
        if labels.get(JOB_LABEL) != "notebook-job" or p.get("status", {}).get("phase") not in ("Pending", "Running"):
            continue
        owner = (meta.get("annotations") or {}).get("moonhub.io/owner") or labels.get("moonhub.io/owner", "?")
        gpus = gpu_requests(p)
        e = entry(owner)
        e["jobs"].append(
            {
                "job": labels.get("moonhub.io/job", ""),
                "pod": meta.get("name", ""),
                "phase": p["status"]["phase"],
                "gpu_type": labels.get("moonhub.io/gpu-type", "none"),
                "gpu_count": gpus,
            }
        )
        e["gpus"] += gpus
    cap = gpu_capacity(catalog.gpu_types, nodes, pods)
    return {
        "users": sorted(users.values(), key=lambda u: (-u["gpus"], u["user"])),
        "gpu_types": [
            {
                "name": g.name,
                "display_name": g.display_name,
                **asdict(cap[g.name]),
                "used": cap[g.name].total - cap[g.name].free,
            }
            for g in catalog.gpu_types
        ],
    }
