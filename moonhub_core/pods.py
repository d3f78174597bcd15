"""The contract of MoonHub's pods: the labels and annotations every MoonHub workload carries,
the GPU resource and node label, and how many GPUs a pod holds. Pure.

Everything that reads pods back (the spawner's quota check, the GPU gauge, the admin
console, the GPU reclaim service, the jobs service) reads them through these names, and
counts GPUs with :func:`gpus`: from the pod's resource requests, which is what the
scheduler counts. Labels say what a pod was made *as* (environment, size, GPU type) for
people, selectors and metrics; they are never used to count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

#: the extended resource NVIDIA's device plugin offers
GPU_RESOURCE = "nvidia.com/gpu"
#: a label every GPU node carries (NVIDIA GPU feature discovery); CPU pods avoid such nodes
GPU_NODE_LABEL = "nvidia.com/gpu.present"
GPU_NODE_SELECTOR = f"{GPU_NODE_LABEL}=true"

#: the prefix of every MoonHub label and annotation
PREFIX = "moonhub.io/"
ENVIRONMENT = f"{PREFIX}environment"
SIZE = f"{PREFIX}size"
GPU_TYPE = f"{PREFIX}gpu-type"
#: the GPUs a pod was made with, for selectors and people (counting uses :func:`gpus`)
GPU_COUNT = f"{PREFIX}gpu-count"
#: ``notebook-job`` on every object of a scheduled notebook
COMPONENT = f"{PREFIX}component"
NOTEBOOK_JOB = "notebook-job"
#: the job definition's name, its owner (as a slug in labels, in full in annotations),
#: the snapshot version a run mounts, and what started a run
JOB = f"{PREFIX}job"
OWNER = f"{PREFIX}owner"
VERSION = f"{PREFIX}version"
TRIGGER = f"{PREFIX}trigger"
#: the hub user a server pod belongs to (set by KubeSpawner)
HUB_USER = "hub.jupyter.org/username"
HUB_SERVER = "hub.jupyter.org/servername"
#: the hub a server pod was made by (:func:`hub_id`): it removes its own orphaned pods only
HUB = f"{PREFIX}hub"

ENDED_PHASES = ("Succeeded", "Failed")


def hub_id(public_url: str) -> str:
    """A hub's id in pod labels, from its public URL: the same across restarts, different
    for another hub."""
    return hashlib.sha256(public_url.rstrip("/").encode()).hexdigest()[:12]


def gpus(pod: Mapping[str, Any]) -> int:
    """The GPUs a pod (an API dict, camelCase) holds: the sum of its containers' requests
    (limits where a container gives no request, as Kubernetes defaults them)."""
    n = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        n += int((res.get("requests") or res.get("limits") or {}).get(GPU_RESOURCE, 0) or 0)
    return n


def live(pod: Mapping[str, Any]) -> bool:
    """Not ended: it holds (or will hold) what it requests."""
    return (pod.get("status") or {}).get("phase") not in ENDED_PHASES


def labels_of(pod: Mapping[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("labels") or {})


def annotations_of(pod: Mapping[str, Any]) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("annotations") or {})


def choice_labels(environment: str, size: str, gpu_type: str | None, gpu_count: int) -> dict[str, str]:
    """The labels of a server or job pod made from these choices."""
    return {
        ENVIRONMENT: environment,
        SIZE: size,
        GPU_TYPE: gpu_type or "none",
        GPU_COUNT: str(gpu_count),
    }


# ---- the kubelet refusing a container: waiting does not help -----------------------------
#: the image can not be pulled
IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
#: the kubelet will not start the container as the pod asks; retrying does not help
CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError")


def _waiting(pod: dict[str, Any] | None, reasons: tuple[str, ...]) -> tuple[str, str, str] | None:
    """(image, reason, message) of the first container waiting for one of ``reasons`` (pure)."""
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in reasons:
            return cs.get("image", "?"), waiting["reason"], waiting.get("message", "")
    return None


def image_problem(pod: dict[str, Any] | None) -> tuple[str, str] | None:
    """(image, message) when a container's image can not be pulled (pure)."""
    found = _waiting(pod, IMAGE_ERRORS)
    return (found[0], f"{found[1]}: {found[2]}".strip(": ")) if found else None


def container_problem(pod: dict[str, Any] | None) -> tuple[str, str] | None:
    """(image, explanation) when the kubelet refuses to start a container (pure)."""
    found = _waiting(pod, CONFIG_ERRORS)
    if not found:
        return None
    image, reason, message = found
    if "runAsNonRoot" in message:
        return image, (
            "the image runs as root and MoonHub starts servers only as a non-root user; "
            f"the image needs a numeric non-root USER (kubelet: {message})"
        )
    return image, f"{reason}: {message}".strip(": ")
