"""Runs: start one now, list them, cancel one, read its log."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moonhub_core.errors import ChoiceError, Conflict, NotFound

from . import audit, entitlements, gpu_queues, manifests, validation, views
from .context import ENDED, Caller, Context, gone_ok, names, new_run, own
from .db import DefinitionRow, RunRow, utcnow
from .limits import check_count


async def run_now(ctx: Context, caller: Caller, job_id: int) -> dict[str, Any]:
    """Start a run of the current version, built from the definition as its owner may
    run it today (not from the stored CronJob: groups and the catalog may have changed)."""
    with ctx.db() as s:
        row = own(s, caller, job_id)
        owner = await entitlements.acting_for(ctx, caller, row, "run")
        if row.hold is not None:
            raise Conflict("id", f"job {row.name} is suspended: {row.hold.reason}")
        active = s.scalar(
            select(func.count())
            .select_from(RunRow)
            .join(DefinitionRow)
            .where(DefinitionRow.owner == row.owner, RunRow.status.in_(("queued", "running")))
        )
        check_count("id", "runs queued or running", active or 0, ctx.limits.active_runs_per_user)
        try:
            cron = entitlements.cronjob(ctx, validation.Definition(**row.spec), owner, row.version, names(row))
        except ChoiceError as e:
            await audit.hold(ctx, s, row, str(e))
            s.commit()
            raise
        name = f"{row.cronjob[:45]}-m{secrets.token_hex(2)}"
        job = manifests.manual_job(cron, name)
        await gpu_queues.ensure_for(ctx, owner, job)  # a GPU run waits in its owner's queue
        await ctx.batch.create_namespaced_job(ctx.namespace, job)  # type: ignore[arg-type]
        run = new_run(row, name, "manual")
        s.add(run)
        audit.record(s, caller.name, "run", row, name)
        s.commit()
        return views.run(run)


def find(s: Session, caller: Caller, job_id: int, run_id: int) -> RunRow:
    own(s, caller, job_id)
    run = s.get(RunRow, run_id)
    if run is None or run.definition_id != job_id:
        raise NotFound("run", f"no run {run_id} of job {job_id}")
    return run


def listed(ctx: Context, caller: Caller, job_id: int) -> list[dict[str, Any]]:
    with ctx.db() as s:
        row = own(s, caller, job_id)
        return [views.run(r) for r in sorted(row.runs, key=lambda r: r.id, reverse=True)]


async def stop_job(ctx: Context, name: str) -> None:
    with gone_ok():
        await ctx.batch.delete_namespaced_job(name, ctx.namespace, propagation_policy="Background")


async def cancel(ctx: Context, caller: Caller, job_id: int, run_id: int) -> dict[str, Any]:
    with ctx.db() as s:
        run = find(s, caller, job_id, run_id)
        if run.status in ENDED:
            raise Conflict("run", f"run {run_id} already ended ({run.status})")
        await stop_job(ctx, run.job_name)
        run.status, run.reason, run.finished = "cancelled", f"cancelled by {caller.name}", utcnow()
        audit.record(s, caller.name, "cancel", run.definition, run.job_name)
        s.commit()
        if run.definition.owner != caller.name:
            text = f"{caller.name} cancelled run {run.job_name} of your job {run.definition.name}.\n"
            await audit.tell_owner(ctx, run.definition, f"run cancelled by {caller.name}", text)
        return views.run(run)


async def _pods(ctx: Context, job_name: str) -> list[Any]:
    return list((await ctx.core.list_namespaced_pod(ctx.namespace, label_selector=f"job-name={job_name}")).items)


async def log(ctx: Context, caller: Caller, job_id: int, run_id: int) -> dict[str, Any] | None:
    """The run's latest pod, the first ``limits.log_bytes`` of its log and the progress
    recorded for the run, or None without a pod."""
    with ctx.db() as s:
        run = find(s, caller, job_id, run_id)
        progress = views.progress(run)
    pods = await _pods(ctx, run.job_name)
    if not pods:
        return None
    pod = max(pods, key=lambda p: p.metadata.creation_timestamp)
    cap = ctx.limits.log_bytes
    resp: Any = await ctx.core.read_namespaced_pod_log(
        pod.metadata.name, ctx.namespace, limit_bytes=cap + 1, _preload_content=False
    )
    data = await resp.content.read(cap + 1)
    resp.release()
    text = data[:cap].decode("utf-8", "replace")
    return {"pod": pod.metadata.name, "log": text, "truncated": len(data) > cap, "progress": progress}
