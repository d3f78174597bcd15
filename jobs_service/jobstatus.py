"""A run's (or a pipeline task's) state from its Kubernetes Job, and why it failed in words."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from moonhub_core import secrets as sec

from . import jobspec, metrics, secrets
from .context import Context
from .db import DefinitionRow, TaskRunRow, utcnow


async def follow(ctx: Context, row: Any, job_name: str, job: client.V1Job, definition: DefinitionRow) -> None:
    """``row`` (a run or a task run: status, reason, started, finished) from its Job's state;
    a new failure gets its reason in words when the pod says more, the job's secrets masked
    (a failing cell's message may hold a value)."""
    was = row.status
    apply_job_status(row, job)
    if row.status != was:
        metrics.ended(row.status, "task" if isinstance(row, TaskRunRow) else "run")
    if row.status != "failed" or was == "failed":
        return
    pods = await ctx.core.list_namespaced_pod(ctx.settings.namespace, label_selector=f"job-name={job_name}")
    why = failure_reason(pods.items)
    if why:
        row.reason = f"{why} ({row.reason})"[:1024]
    uses = jobspec.stored(definition).secret_uses()
    if uses:
        row.reason = sec.mask(row.reason, await secrets.values(ctx, definition.owner, uses))


def failure_reason(pods: list[Any]) -> str | None:
    """Why a run's pod failed, in words, when Kubernetes knows more than "backoff limit
    exceeded" (pure): the container was OOM-killed (with its memory limit), or the runner left
    a termination message (e.g. its kernel was killed for memory)."""
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp, reverse=True):
        for cs in pod.status.container_statuses or []:
            term = cs.state.terminated if cs.state else None
            if term is None:
                continue
            if term.reason == "OOMKilled":
                spec = next((c for c in pod.spec.containers if c.name == cs.name), None)
                limit = ((spec.resources.limits or {}) if spec and spec.resources else {}).get("memory")
                return f"out of memory (limit {_bytes_text(limit)})" if limit else "out of memory"
            if term.message:
                return str(term.message).strip()
    return None


def _bytes_text(quantity: str) -> str:
    """``4Gi`` -> ``4 GiB``; other forms as they are."""
    for suffix, unit in (("Gi", "GiB"), ("Mi", "MiB"), ("Ki", "KiB")):
        if quantity.endswith(suffix):
            return f"{quantity[: -len(suffix)]} {unit}"
    return quantity


def apply_job_status(run: Any, job: client.V1Job) -> None:
    st = job.status
    if st.start_time and not run.started:
        run.started = st.start_time
    conds = {c.type: c for c in st.conditions or [] if c.status == "True"}
    if ("Complete" in conds or st.active) and (run.reason or "").startswith(("queued:", "preempted")):
        run.reason = ""  # admitted by Kueue (and perhaps done before a sync saw it run): the wait is over
    if "Complete" in conds:
        run.status, run.finished = "succeeded", st.completion_time or conds["Complete"].last_transition_time
    elif "Failed" in conds:
        c = conds["Failed"]
        run.status = "timed_out" if c.reason == "DeadlineExceeded" else "failed"
        run.reason, run.finished = f"{c.reason}: {c.message}"[:1024], c.last_transition_time or utcnow()
    elif st.active:
        run.status = "running"
