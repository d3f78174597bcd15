"""A server in its queue (every server is: GPUs, CPU, memory and pods are bounded per user
and team): refused at once with the numbers and the bound that refuses it when Kueue can
not admit it, or, when the user chose to wait, its place in the queue shown on the spawn
page.

Kueue decides (the user's maximum and the team's quota, atomically); this module only reads
the pod's Workload back and words the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

from moonhub_core import admissions
from moonhub_core import queue_objects as q
from moonhub_core.admissions import QUOTA_RESERVED, admitted, condition, waiting
from moonhub_core.kueue_api import Queues, admission

from .workload_watch import owned_by

#: the spawn option (form checkbox or REST field) that asks to wait for GPUs
OPTION = "wait_for_gpus"
#: how a refusal for GPUs begins (the spawner answers it with 403)
REFUSED = "not enough GPUs for this server now"
#: how a refusal for CPU, memory or pods begins (403 too)
OVER_LIMITS = "this server would pass your limits"
REFUSALS = (REFUSED, OVER_LIMITS)
#: how long a queue Kueue calls inactive is waited for before the spawn ends
BROKEN_GRACE = 15.0
#: how often the spawn's progress stream looks for a new queue message (in memory)
POLL = 1.0
#: the longest wait for a change before a waiting spawn looks again anyway (a safety net:
#: a change wakes it at once)
RECHECK = 30.0


#: the scheduling gate Kueue's webhook puts on a pod it manages, until it admits it
KUEUE_GATE = "kueue.x-k8s.io/admission"


def gated(pod: dict[str, Any]) -> bool:
    return any(g.get("name") == KUEUE_GATE for g in (pod.get("spec") or {}).get("schedulingGates") or [])


def wants_to_wait(value: Any) -> bool:
    if isinstance(value, list):  # HTML forms give lists
        value = value[0] if value else None
    return value is True or str(value).lower() in ("1", "true", "on", "yes")


async def first_failure(*watchers: Awaitable[str]) -> str:
    """The first message any watcher returns (the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in watchers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for t in tasks:
            t.cancel()


class WorkloadView(Protocol):
    """The namespace's Workloads as a watch keeps them (``workload_watch``)."""

    @property
    def workloads(self) -> Iterable[dict[str, Any]]: ...

    async def next_change(self, timeout: float) -> bool: ...


async def _peers(queues: Queues, workloads: Iterable[dict[str, Any]], uq: q.UserQueue) -> list[dict[str, Any]]:
    """The pending Workloads this one competes with: its team's (or its own queue's)."""
    local = {uq.local_queue["metadata"]["name"]}
    if uq.team:
        team_slug = uq.cluster_queue["metadata"]["labels"][q.TEAM_LABEL]
        for cq in await queues.objects("ClusterQueue", selector=f"{q.TEAM_LABEL}={team_slug}"):
            user = (cq["metadata"].get("annotations") or {}).get(q.USER_ANNOTATION)
            if user:
                local.add(q.user_local_queue(user, queues.prefix))
    return [w for w in workloads if (w.get("spec") or {}).get("queueName") in local and waiting(w)]


async def refusal(
    queues: Queues,
    namespace: str,
    pod: Callable[[], dict[str, Any] | None],
    uq: q.UserQueue,
    wait: bool,
    on_queued: Callable[[str], None],
    watch: Callable[[], Awaitable[WorkloadView]],
    pod_changed: Callable[[float], Awaitable[bool]],
) -> str:
    """Returns the refusal once Kueue says the server does not fit and the user did not
    choose to wait; otherwise reports the queue position and never returns (the spawn goes
    on when Kueue admits the pod, or ends at the start timeout).

    Nothing is read from the API server on a clock: until the pod is made and gated this
    waits on the pod reflector (``pod_changed``); then on the namespace's Workloads, which
    ``watch`` gives (started on first use), looking again whenever one changes (the
    server's own, or one it queues behind), or after :data:`RECHECK` seconds at most."""
    user = (uq.cluster_queue["metadata"].get("annotations") or {}).get(q.USER_ANNOTATION, "")
    shown = ""
    broken_since: float | None = None
    view: WorkloadView | None = None
    while True:
        current = pod()
        uid = ((current or {}).get("metadata") or {}).get("uid")
        if not uid:
            await pod_changed(RECHECK)
            continue
        if not gated(current or {}):
            # admitted (Kueue took its gate away), or no Kueue manages it: nothing to watch
            await asyncio.Event().wait()
        if view is None:
            view = await watch()
        wl = owned_by(view.workloads, uid)
        if wl is not None and admitted(wl):
            await asyncio.Event().wait()
        c = condition(wl, QUOTA_RESERVED) if wl is not None else None
        if not c or c.get("status") != "False":
            await view.next_change(RECHECK)  # Kueue has not made or looked at it yet
            continue
        kueue_says = str(c.get("message") or "")
        if "inactive" in kueue_says:
            # the queue itself can not admit anything (a flavor or cohort it names is missing):
            # not the user's quota; the catalog's reconcile usually mends it within seconds
            broken_since = broken_since or time.monotonic()
            waited = time.monotonic() - broken_since
            if waited >= BROKEN_GRACE:
                return f"the GPU queue is not usable now; tell an admin (Kueue: {kueue_says})"
            await view.next_change(min(RECHECK, BROKEN_GRACE - waited))
            continue
        broken_since = None
        blocked = admissions.blocked_by(kueue_says) or list(admissions.BOUND_KEYS)
        why = await queues.standing(user, namespace, blocked)
        gpus = q.BUDGET_RESOURCE in blocked
        if not wait:
            if gpus:
                return (
                    f"{REFUSED}: {why}. Stop another server, wait for a job run "
                    f"to end, or start with 'wait for GPUs' to queue (Kueue: {kueue_says})"
                )
            return f"{OVER_LIMITS}: {why}. Stop another server or wait for a job run to end (Kueue: {kueue_says})"
        state = admission(wl or {}, await _peers(queues, view.workloads, uq))
        text = f"waiting for {'GPUs' if gpus else 'your other work to end'}, place {state.position} in the queue: {why}"
        if text != shown:
            shown = text
            on_queued(text)
        await view.next_change(RECHECK)


async def with_queue_messages(
    events: AsyncIterator[dict[str, Any]], current: Callable[[], str]
) -> AsyncIterator[dict[str, Any]]:
    """KubeSpawner's progress events, with the queue message whenever it changes."""
    inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for e in events:
                await inbox.put(e)
        finally:
            await inbox.put(None)

    task = asyncio.ensure_future(pump())
    shown, last_progress = "", 0
    try:
        while True:
            # not asyncio.wait_for: on Python 3.11 it returns the item instead of raising when
            # it is cancelled just as the item arrives; JupyterHub cancels this generator's step
            # when the spawn ends, and the stream's end arriving then made the step end with
            # StopAsyncIteration, which broke the user's progress stream (a RuntimeError in
            # JupyterHub's iterate_until) at the moment the server was ready
            try:
                async with asyncio.timeout(POLL):
                    event = await inbox.get()
            except TimeoutError:
                event = {}
            if event is None:
                return
            if event:
                last_progress = int(event.get("progress") or last_progress)
                yield event
            text = current()
            if text and text != shown:
                shown = text
                yield {"progress": last_progress, "message": text}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
