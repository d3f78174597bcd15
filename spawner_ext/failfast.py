"""Fail a spawn early, and explain why, when waiting can not help.

Three cases end a spawn within seconds instead of at the start timeout: the scheduler keeps
reporting the pod unschedulable (for GPUs the message says how many are free), the image
can not be pulled, or the kubelet refuses to start the container as configured (e.g. an
image that runs as root where the platform requires a non-root user).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from moonhub_core.capacity import GpuCapacity
from moonhub_core.catalog import GpuType
from moonhub_core.pods import container_problem, image_problem

__all__ = ["container_problem", "explain", "first_failure", "image_problem", "unschedulable_message"]

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


async def first_failure(
    pod: Callable[[], dict[str, Any] | None],
    environment: Callable[[], str],
    unschedulable: Callable[[str], Awaitable[str]],
) -> str:
    """Wait until the pod (``pod()`` reads it, e.g. from the shared reflector) can not start;
    return the message for the user. ``environment()`` names what was asked for (read when
    it is needed: the options are validated after the watch starts); ``unschedulable`` turns
    the scheduler's lasting refusal into the message (with the free GPUs, say)."""
    since: float | None = None
    while True:
        await asyncio.sleep(1)
        current = pod()
        problem = image_problem(current)
        if problem:
            return f"the image {problem[0]} of environment {environment()!r} can not be pulled ({problem[1]})"
        refused = container_problem(current)
        if refused:
            return f"the server of environment {environment()!r} ({refused[0]}) can not start: {refused[1]}"
        reason = unschedulable_message(current)
        if reason is None:
            since = None
            continue
        since = since or time.monotonic()
        if time.monotonic() - since >= UNSCHEDULABLE_GRACE:
            return await unschedulable(reason)


def explain(scheduler_says: str, gpu: GpuType | None, want: int, capacity: GpuCapacity | None) -> str:
    """The message for a pod no node can take (pure): with the free GPUs when it asked for some."""
    if gpu and want and capacity:
        return (
            f"no {gpu.display_name} node has {want} free GPUs right now: {capacity.free} of {capacity.total} "
            f"are free, at most {capacity.largest_free} on one node. Ask for fewer or try again later. "
            f"(scheduler: {scheduler_says})"
        )
    return f"no node can take this server right now (scheduler: {scheduler_says})"
