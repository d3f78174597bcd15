"""A one-A100 Job for the queue benchmarks: the pause image on kwok's A100 node, restricted
like every MoonHub pod (pure)."""

from __future__ import annotations

from typing import Any

from moonhub_core.security import container_security_context, pod_security_context


def a100_job(
    name: str, labels: dict[str, str], pod_labels: dict[str, str], pod_annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    container = {
        "name": "c",
        "image": "127.0.0.1:5000/moonhub/pause:3.10",
        "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "100m", "memory": "64Mi"}},
        "securityContext": container_security_context(),
    }
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 30,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "securityContext": pod_security_context(),
                    "containers": [container],
                },
            },
        },
    }
