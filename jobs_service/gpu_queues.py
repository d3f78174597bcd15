"""Job runs in Kueue's queues: every run's Job names its owner's queue (``entitlements``),
Kueue keeps it suspended until the owner's bounds (GPUs, CPU, memory, pods) and their
team's quotas allow it, then starts it (its timeout counts from there: the Job's clock starts when it is resumed).

Here: the owner's queue is written before their CronJob or Job, the catalog's queues follow
catalog edits, and a waiting run carries why it waits and its place in the queue.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy.orm import Session

from moonhub_core import admissions, pods
from moonhub_core import queue_objects as q
from moonhub_core.admissions import condition, waiting
from moonhub_core.kueue_api import admission

from . import audit
from .context import Caller, Context, runner_name
from .db import RunRow

log = logging.getLogger("moonhub.jobs")
QUEUE_LABEL = q.QUEUE_LABEL


def queued(cron_or_job: dict[str, Any]) -> bool:
    spec = cron_or_job.get("spec") or {}
    meta = (spec.get("jobTemplate") or {}).get("metadata") or cron_or_job.get("metadata") or {}
    return q.QUEUE_LABEL in (meta.get("labels") or {})


async def ensure_for(ctx: Context, owner: Caller, cron_or_job: dict[str, Any]) -> None:
    """The owner's queue (with their groups now) before a queued CronJob or Job is written
    (a pipeline's own Job is not queued: it never has a pod)."""
    if queued(cron_or_job):
        await ctx.queues.ensure_user(
            ctx.catalog.get(), owner.name, owner.groups, owner.hub_admin, ctx.settings.namespace
        )


async def follow_catalog(ctx: Context) -> None:
    """Rewrite the queues when the catalog changed (or the nodes: every call re-reads their
    GPU counts, and unchanged objects are not written)."""
    cat = ctx.catalog.get()
    n = await ctx.queues.reconcile(cat)
    if cat is not ctx.queues_from:
        log.info("GPU queues follow the catalog: shared objects and %d users' queues written", n)
        ctx.queues_from = cat


async def note_waiting(ctx: Context, s: Session, runs: list[tuple[RunRow, client.V1Job]]) -> None:
    """For runs whose Job Kueue holds suspended: why they wait and their place, as the run's
    reason ("queued: ..."); a run that was running and is suspended again was preempted."""
    held = [(r, j) for r, j in runs if j.spec.suspend and r.status in ("queued", "running")]
    if not held:
        return
    workloads = await ctx.queues.objects("Workload", ctx.settings.namespace)
    by_owner = {w["metadata"].get("labels", {}).get("kueue.x-k8s.io/job-uid"): w for w in workloads}
    pending = [w for w in workloads if waiting(w)]
    for run, job in held:
        wl = by_owner.get(job.metadata.uid)
        if wl is None:
            continue
        if run.status == "running":
            # Kueue took its GPUs back for the team that owns them: the Job is suspended
            # (its pod stopped) and runs again from the start when it is admitted again
            evicted = condition(wl, "Evicted") or {}
            why = evicted.get("message") or "its GPUs were taken back by the team that owns them"
            run.status = "queued"
            run.reason = f"preempted, waits to run again: {why}"[:1024]
            log.info("run %s was preempted: %s", run.job_name, why)
            audit.record(s, "moonhub", "preempt", run.definition, f"{run.job_name}: {why}")
            text = (
                f"Run {run.job_name} of your job {run.definition.name} was stopped because it ran on borrowed "
                f"GPUs and their owners needed them ({why}). It waits in the queue and runs again from the "
                "start when GPUs are free."
            )
            await audit.tell_owner(ctx, run.definition, "a run was preempted and will run again", text)
            continue
        queue = (wl.get("spec") or {}).get("queueName")
        state = admission(wl, [w for w in pending if (w.get("spec") or {}).get("queueName") == queue])
        if state.admitted:
            continue
        wants = pods.gpus(ctx.api.sanitize_for_serialization(job.spec.template))  # the one GPU count
        blocked = admissions.blocked_by(state.message)
        if not blocked and not wants:
            continue  # a CPU run Kueue has not looked at yet: it is admitted in a moment
        blocked = blocked or [q.BUDGET_RESOURCE]
        standing = await ctx.queues.standing(runner_name(run.definition), ctx.settings.namespace, blocked)
        if q.BUDGET_RESOURCE in blocked:
            what = f"{wants} GPU{'s' if wants != 1 else ''}"
        else:
            what = "its owner's other work to end"
        run.reason = f"queued: waiting for {what}, place {state.position} in the queue: {standing}"[:1024]
