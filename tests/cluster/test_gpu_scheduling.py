"""The real scheduler places GPU pods on simulated GPU nodes of the right product."""

from __future__ import annotations

import uuid

import pytest
from kubernetes_asyncio import client

from localcluster.nodes import FLEET
from tests.helpers import SHELL_IMAGE, pod_events, wait_for

# the GPUs of the cluster's nodes are the node lane's (hub tests hold them all): tests/lanes.py
pytestmark = pytest.mark.lane("node")

A100 = next(n for n in FLEET if n.gpu_product and "A100" in n.gpu_product)


@pytest.fixture(autouse=True)
async def _needs_gpu_nodes(core: client.CoreV1Api) -> None:
    nodes = await core.list_node(label_selector=f"nvidia.com/gpu.product={A100.gpu_product}")
    if not nodes.items:
        pytest.skip(f"no node labelled nvidia.com/gpu.product={A100.gpu_product} (the local cluster has kwok ones)")


def gpu_pod(name: str, gpus: int, product: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": product},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"},
            ],
            "containers": [
                {
                    "name": "train",
                    "image": SHELL_IMAGE,
                    "command": ["sleep", "3600"],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
    }


async def test_gpu_pod_lands_on_node_of_requested_product(core: client.CoreV1Api, namespace: str) -> None:
    name = f"gpu-{uuid.uuid4().hex[:6]}"
    await core.create_namespaced_pod(namespace, gpu_pod(name, 2, A100.gpu_product or ""))
    pod = await wait_for(
        lambda: core.read_namespaced_pod(name, namespace),
        lambda p: bool(p.spec.node_name),
        timeout=30,
        what=f"pod {name} to be scheduled",
    )
    assert pod.spec.node_name == A100.name
    node = await core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == A100.gpu_product
    assert int(node.status.allocatable["nvidia.com/gpu"]) >= 2
    # kwok plays the kubelet for simulated nodes: the pod runs there
    await wait_for(
        lambda: core.read_namespaced_pod(name, namespace),
        lambda p: p.status.phase == "Running",
        timeout=30,
        what=f"pod {name} Running on {A100.name}",
    )


async def test_pod_asking_more_gpus_than_any_node_stays_pending(core: client.CoreV1Api, namespace: str) -> None:
    most = max(n.gpus for n in FLEET)
    name = f"gpu-big-{uuid.uuid4().hex[:6]}"
    await core.create_namespaced_pod(namespace, gpu_pod(name, most + 1, A100.gpu_product or ""))
    events = await wait_for(
        lambda: pod_events(core, namespace, name),
        lambda evs: any(e.reason == "FailedScheduling" for e in evs),
        timeout=30,
        what=f"a FailedScheduling event for {name}",
    )
    message = next(e.message for e in events if e.reason == "FailedScheduling")
    assert "nvidia.com/gpu" in message
    pod = await core.read_namespaced_pod(name, namespace)
    assert pod.status.phase == "Pending" and not pod.spec.node_name


async def test_cpu_pod_never_lands_on_gpu_or_simulated_nodes(core: client.CoreV1Api, namespace: str) -> None:
    name = f"cpu-{uuid.uuid4().hex[:6]}"
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": SHELL_IMAGE, "command": ["sleep", "30"]}]},
        },
    )
    pod = await wait_for(
        lambda: core.read_namespaced_pod(name, namespace),
        lambda p: bool(p.spec.node_name),
        timeout=30,
        what=f"pod {name} to be scheduled",
    )
    node = await core.read_node(pod.spec.node_name)
    # never a GPU node (the real node's simulated GPUs do not make it one: it is the CPU node too)
    assert (node.metadata.labels or {}).get("nvidia.com/gpu.present") != "true"
    assert (
        "nvidia.com/gpu" not in (node.status.allocatable or {})
        or (node.metadata.labels or {}).get("moonhub.io/simulated-gpu") == "true"
    )
    assert "kwok.x-k8s.io/node" not in (node.metadata.annotations or {}), "simulated nodes only take tolerating pods"
