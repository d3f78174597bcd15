"""Fail a spawn early, and explain why, when waiting can not help.

Two cases end a spawn within seconds instead of at the start timeout: the scheduler keeps
reporting the pod unschedulable (for GPUs the message says how many are free), or the
image can not be pulled.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spawner import MoonSpawner

IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
#: reported while the workspace volume is still being bound: that resolves by itself
TRANSIENT = ("unbound immediate PersistentVolumeClaims", "persistentvolumeclaim", "not found")
#: how long the scheduler must keep refusing before the spawn is ended
UNSCHEDULABLE_GRACE = 5.0


def unschedulable_message(pod: dict[str, Any] | None) -> str | None:
    """The scheduler's reason when the pod is unschedulable for a lasting reason (pure)."""
    if not pod:
        return None
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            message = cond.get("message") or "unschedulable"
            if any(t in message for t in TRANSIENT):
                return None
            return str(message)
    return None


def image_problem(pod: dict[str, Any] | None) -> tuple[str, str] | None:
    """(image, message) when a container's image can not be pulled (pure)."""
    if not pod:
        return None
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_ERRORS:
            return cs.get("image", "?"), f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
    return None


class FailFast:
    def __init__(self, spawner: MoonSpawner) -> None:
        self.spawner = spawner

    async def first_failure(self) -> str:
        """Wait until the pod can not start; return the message for the user."""
        sp = self.spawner
        key = f"{sp.namespace}/{sp.pod_name}"
        since: float | None = None
        while True:
            await asyncio.sleep(1)
            pod = sp.pod_reflector.pods.get(key)
            problem = image_problem(pod)
            if problem:
                env = (sp.user_options or {}).get("environment", "?")
                return f"the image {problem[0]} of environment {env!r} can not be pulled ({problem[1]})"
            reason = unschedulable_message(pod)
            if reason is None:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= UNSCHEDULABLE_GRACE:
                return await self.explain(reason)

    async def explain(self, scheduler_says: str) -> str:
        sp = self.spawner
        opts = sp.user_options or {}
        cat = sp.catalog
        gpu = cat.gpu_type(opts.get("gpu_type") or "")
        want = int(opts.get("gpu_count") or 0)
        if gpu and want:
            cap = (await sp.gpu_capacity(cat))[gpu.name]
            return (
                f"no {gpu.display_name} node has {want} free GPUs right now: {cap.free} of {cap.total} are free, "
                f"at most {cap.largest_free} on one node. Ask for fewer or try again later. "
                f"(scheduler: {scheduler_says})"
            )
        return f"no node can take this server right now (scheduler: {scheduler_says})"
