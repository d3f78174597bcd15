"""A run's (or a pipeline task's) state from its Kubernetes Job, and why it failed in words."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from moonhub_core import secrets as sec

from . import jobspec, metrics, secrets
from .context import Context, runner_name
from .db import DefinitionRow, TaskRunRow, utcnow


async def follow(ctx: Context, row: Any, job_name: str, job: client.V1Job, definition: DefinitionRow) -> None:
    """``row`` (a run or a task run: status, reason, started, finished) from its Job's state;
    a new failure gets its reason in words when the pod says more, the job's secrets masked
    (a failing cell's message may hold a value)."""
    was = row.status
    apply_job_status(row, job)
    if row.status != was:
        metrics.ended(row.status, "task" if isinstance(row, TaskRunRow) else "run")
    if row.status == "timed_out" and was != "timed_out":
        spec = jobspec.stored(definition)
        limit = _task_timeout(spec, row) or spec.timeout_seconds
        row.reason = f"timed out: still running after its time limit of {_duration(limit)} ({row.reason})"[:1024]
        return
    if row.status != "failed" or was == "failed":
        return
    pods = await ctx.core.list_namespaced_pod(ctx.settings.namespace, label_selector=f"job-name={job_name}")
    why = failure_reason(pods.items)
    if why:
        row.reason = f"{why} ({row.reason})"[:1024]
    uses = jobspec.stored(definition).secret_uses()
    if uses:
        row.reason = sec.mask(row.reason, await secrets.values(ctx, runner_name(definition), uses))


def failure_reason(pods: list[Any]) -> str | None:
    """Why a run's pod failed, in words, when Kubernetes knows more than "backoff limit
    exceeded" (pure), from the newest pod: the container was OOM-killed (with its memory
    limit); the runner left a termination message (the failing cell and its error, a kernel
    killed for memory, a notebook that could not start); the node evicted the pod; its image
    or its settings kept the container from starting; or, failing all of those, the
    container's exit code."""
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp, reverse=True):
        status = pod.status
        if status is not None and status.reason == "Evicted":
            return f"the node evicted the run's pod: {(status.message or '').strip() or 'no reason given'}"
        for cs in (status.container_statuses if status else None) or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting is not None and waiting.reason in NOT_STARTED:
                return f"{NOT_STARTED[waiting.reason]}: {(waiting.message or waiting.reason).strip()}"
            term = cs.state.terminated if cs.state else None
            if term is None:
                continue
            if term.reason == "OOMKilled":
                spec = next((c for c in pod.spec.containers if c.name == cs.name), None)
                limit = ((spec.resources.limits or {}) if spec and spec.resources else {}).get("memory")
                return f"out of memory (limit {_bytes_text(limit)})" if limit else "out of memory"
            if term.message:
                return str(term.message).strip()
            if term.exit_code:
                killed = " (killed)" if term.exit_code in (137, 143) else ""
                return f"the notebook's container exited with code {term.exit_code}{killed}"
    return None


#: why a container never started, in words (its waiting reason)
NOT_STARTED = {
    "ErrImagePull": "the environment's image could not be pulled",
    "ImagePullBackOff": "the environment's image could not be pulled",
    "InvalidImageName": "the environment's image name is not valid",
    "CreateContainerConfigError": "the run's container could not be set up",
    "CreateContainerError": "the run's container could not be made",
}


def _task_timeout(spec: Any, row: Any) -> int | None:
    """A pipeline task's own time limit, when ``row`` is a task's run and it has one."""
    if not isinstance(row, TaskRunRow):
        return None
    task = next((t for t in spec.task_list() if t.name == row.task), None)
    return task.timeout_seconds if task is not None else None


def _duration(seconds: int) -> str:
    """``5400`` -> ``1 h 30 min``; ``90`` -> ``90 s``."""
    if seconds < 120:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours and minutes else f"{hours} h" if hours else f"{minutes} min"


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
