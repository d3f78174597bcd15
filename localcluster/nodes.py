"""Simulated nodes managed by kwok: CPU nodes and GPU nodes of several products (pure)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

#: where the storage provisioner runs its helper pods (localcluster/storage.py)
STORAGE_HELPER_NAMESPACE = "local-path-storage"
#: the annotation a Job pod on a simulated node may carry: how long it runs before it
#: completes (e.g. ``30s``; kwok's own key)
RUN_FOR = "pod-complete.stage.kwok.x-k8s.io/delay"
DELAY_FROM = f'.metadata.annotations["{RUN_FOR}"]'
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@dataclass(frozen=True)
class SimulatedNode:
    name: str
    cpu: str = "32"
    memory: str = "256Gi"
    gpus: int = 0
    #: the value of ``nvidia.com/gpu.product`` (as NVIDIA's GPU feature discovery names it)
    gpu_product: str | None = None
    gpu_memory_mib: int = 0
    pods: int = 110
    #: kwok's taint keeps ordinary pods off the node (the real node runs them); scale nodes
    #: have none, so servers land there as on any CPU node
    tainted: bool = True


#: the simulated fleet started with every local cluster
FLEET = (
    SimulatedNode("kwok-cpu-0"),
    SimulatedNode("kwok-cpu-1"),
    SimulatedNode("kwok-gpu-a100-0", gpus=8, gpu_product="NVIDIA-A100-SXM4-80GB", gpu_memory_mib=81920),
    SimulatedNode("kwok-gpu-v100-0", gpus=8, gpu_product="Tesla-V100-SXM2-32GB", gpu_memory_mib=32768),
    SimulatedNode("kwok-gpu-t4-0", gpus=4, gpu_product="Tesla-T4", gpu_memory_mib=15360),
)


def scale_fleet(count: int, pods: int) -> tuple[SimulatedNode, ...]:
    """The scale tier's CPU nodes (pure): untainted, ``pods`` each."""
    return tuple(
        SimulatedNode(f"kwok-scale-{i}", cpu="512", memory="4Ti", pods=pods, tainted=False) for i in range(count)
    )


def kwok_stages(default_pod_stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kwok's pod stages: its defaults (ready, complete Job pods, delete; a Job pod may say how
    long it runs, :data:`RUN_FOR`) and one of ours that completes the storage provisioner's
    helper pods on simulated nodes (pure). A workspace
    volume for a pod bound for a simulated node is a ``local`` PV on that node, made by a
    helper pod there; kwok only plays it, so it must also play it finishing."""
    complete = next(s for s in default_pod_stages if s["metadata"]["name"] == "pod-complete")
    # a Job pod on a simulated node may say how long it "runs" (benchmarks of queues need
    # work that holds its GPUs a while); without the annotation it completes at once
    timed = copy.deepcopy(complete)
    timed["spec"]["delay"] = {"durationMilliseconds": 0, "durationFrom": {"expressionFrom": DELAY_FROM}}
    stages = [timed if s is complete else s for s in default_pod_stages]
    helpers = copy.deepcopy(complete)
    helpers["metadata"]["name"] = "storage-helper-complete"
    helpers["spec"]["selector"]["matchExpressions"] = [
        e for e in helpers["spec"]["selector"]["matchExpressions"] if e["key"] != ".metadata.ownerReferences.[].kind"
    ] + [{"key": ".metadata.namespace", "operator": "In", "values": [STORAGE_HELPER_NAMESPACE]}]
    return [*stages, helpers]


def node_object(n: SimulatedNode) -> dict[str, Any]:
    """The Node manifest for ``n``.

    Simulated CPU nodes carry kwok's taint, so ordinary pods run on the real node agent;
    GPU nodes carry the usual ``nvidia.com/gpu`` taint instead (only GPU workloads, which
    tolerate it, land there) and NVIDIA's labels.
    """
    labels = {
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "moonhub.io/node-kind": "gpu" if n.gpus else "cpu",
    }
    capacity = {"cpu": n.cpu, "memory": n.memory, "pods": str(n.pods), "ephemeral-storage": "500Gi"}
    taints = [KWOK_TAINT] if n.tainted else []
    if n.gpus:
        capacity["nvidia.com/gpu"] = str(n.gpus)
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": n.gpu_product or "unknown",
            "nvidia.com/gpu.count": str(n.gpus),
            "nvidia.com/gpu.memory": str(n.gpu_memory_mib),
        }
        taints = [GPU_TAINT]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": n.name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake"},
        },
    }
