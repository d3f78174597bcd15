"""Pipelines: a job of several notebook tasks that depend on each other (a DAG).

Why our own and not Argo Workflows: a task is exactly one of our notebook Jobs (the same
pod builder, entitlements, GPU queues, secrets, launch keys and outputs), and the state a
user sees (run history, re-run, back-fill, alerts) is already in the jobs service's
database. A workflow engine would add a controller, its CRDs and its own RBAC to the
cluster, and a second place where runs live, for a DAG of at most 20 tasks. See
docs/jobs.md ("Pipelines").

How a run goes:

- Its run is a Job that stays suspended (no pod): the CronJob makes one per tick, "Run now",
  re-run, back-fill and upstream triggers make one as for any job. Kubernetes' concurrency
  policy counts it while it exists; MoonHub deletes it when the run ends.
- Each pass of the sync loop (:func:`advance`) records the run's tasks (one row each, at
  first sight), reads their Jobs' states, starts the tasks whose dependencies ended as their
  ``run_if`` asks, and ends the run once every task ended.
- A task's Job is named from the run, the task and the attempt before it is made, so a start
  the service did not get to record (a restart) is found again (409), never made twice.
- :func:`repair` runs a failed run's failed tasks again, and every task after them, as a new
  attempt; what succeeded stays, with what it published.
"""

from __future__ import annotations

import datetime
import logging
import secrets as tokens
from collections.abc import Iterable
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import select
from sqlalchemy.orm import Session

from moonhub_core.errors import ChoiceError, Conflict, FieldError, Forbidden, Unavailable

from . import (
    audit,
    entitlements,
    gpu_queues,
    jobspec,
    jobstatus,
    launch,
    run_logs,
    run_resources,
    runs,
    snapshots,
    views,
)
from .context import ENDED, Caller, Context, gone_ok, names, runner_name
from .db import RunContextRow, RunRow, TaskRunRow, utc, utcnow

log = logging.getLogger("moonhub.jobs")

#: a task's states once it will not change by itself
TASK_ENDED = ("succeeded", "failed", "timed_out", "cancelled", "upstream_failed", "skipped")
#: ended without success (its dependants that need success do not run)
TASK_BAD = ("failed", "timed_out", "cancelled", "upstream_failed")
#: a started task whose Job is missing this long after it was made was deleted by someone
GONE_GRACE = datetime.timedelta(seconds=30)


def is_pipeline(run: RunRow) -> bool:
    return bool(run.tasks) or bool(run.definition.spec.get("tasks"))


def task_job_name(cronjob: str, run_id: int, task: str, attempt: int) -> str:
    """The Kubernetes Job of one attempt of one task (at most 63 characters). It ends in a
    random part: a run's id may come again after its job was deleted (SQLite reuses the
    highest id), and a Job of the old run may still be there. The name is recorded before
    the Job is made, so a start is still idempotent."""
    return f"{cronjob[:20].rstrip('-')}-{run_id}-{task}-{attempt}{tokens.token_hex(2)}"


def decide(tasks: Iterable[jobspec.Task], states: dict[str, str]) -> dict[str, str]:
    """What becomes of each pending task whose dependencies have all ended (pure): ``start``,
    ``upstream_failed`` (it needs success and a dependency failed) or ``skipped`` (its
    ``run_if`` is not met and nothing failed: e.g. a clean-up that runs only on failure)."""
    found: dict[str, str] = {}
    for t in tasks:
        if states.get(t.name) != "pending":
            continue
        ups = [states.get(d, "succeeded") for d in t.depends_on]
        if any(u not in TASK_ENDED for u in ups):
            continue
        failed = any(u in TASK_BAD for u in ups)
        if t.run_if == "all_done":
            found[t.name] = "start"
        elif t.run_if == "any_failed":
            found[t.name] = "start" if failed else "skipped"
        elif all(u == "succeeded" for u in ups):
            found[t.name] = "start"
        else:
            found[t.name] = "upstream_failed" if failed else "skipped"
    return found


def outcome(states: dict[str, str]) -> str | None:
    """The run's status once every task has ended, else None (pure). A run fails when a
    task failed (a clean-up that then ran does not change that); ``skipped`` tasks are fine."""
    if any(s not in TASK_ENDED for s in states.values()):
        return None
    if any(s in ("failed", "timed_out", "upstream_failed") for s in states.values()):
        return "failed"
    if any(s == "cancelled" for s in states.values()):
        return "cancelled"
    return "succeeded"


def to_repair(tasks: Iterable[jobspec.Task], states: dict[str, str]) -> list[str]:
    """The tasks a repair runs again (pure): those that ended badly, and every task that
    depends on one of them, directly or not, in the order given."""
    tasks = list(tasks)
    again = {t.name for t in tasks if states.get(t.name) in TASK_BAD}
    grew = True
    while grew:
        grew = False
        for t in tasks:
            if t.name not in again and any(d in again for d in t.depends_on):
                again.add(t.name)
                grew = True
    return [t.name for t in tasks if t.name in again]


def received(
    task: jobspec.Task, tasks: list[jobspec.Task], base: dict[str, Any], rows: dict[str, TaskRunRow]
) -> dict[str, Any]:
    """The parameters ``task`` is given (pure): the run's (``base``), then the values the
    tasks before it published (every task it depends on, directly or not; the nearer one's
    value wins), then the task's own."""
    deps = {t.name: t.depends_on for t in tasks}
    distance: dict[str, int] = {}
    frontier, d = list(task.depends_on), 1
    while frontier:
        nxt = []
        for name in frontier:
            if name not in distance:
                distance[name] = d
                nxt += deps.get(name, [])
        frontier, d = nxt, d + 1
    published: dict[str, Any] = {}
    for name in sorted(distance, key=lambda n: -distance[n]):  # the farthest first
        if name in rows:
            published.update(rows[name].published or {})
    return {**base, **published, **task.parameters}


def _summary(rows: list[TaskRunRow]) -> str:
    bad = [r for r in rows if r.status in ("failed", "timed_out")]
    if not bad:
        return ""
    first = bad[0]
    return (f"task {first.task} {first.status.replace('_', ' ')}" + (f": {first.reason}" if first.reason else ""))[
        :1024
    ]


async def advance(ctx: Context, jobs: dict[str, client.V1Job]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One pass over the pipeline runs that have not ended (``jobs``: the notebook Jobs the
    cluster has, by name). Returns the (job, run) views of runs that ended and whose owner
    wants to hear of it."""
    to_tell: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with ctx.db() as s:
        active = [
            r for r in s.scalars(select(RunRow).where(RunRow.status.in_(runs.ACTIVE))) if r.definition.spec.get("tasks")
        ]
        for run in active:
            try:
                await _advance_run(ctx, s, run, jobs)
            except (Unavailable, Forbidden) as e:
                log.warning("pipeline run %s waits: %s", run.job_name, e)
            except (client.ApiException, OSError) as e:  # the next pass tries again
                log.warning("pipeline run %s not advanced: %s", run.job_name, e)
                s.rollback()
                continue
            s.commit()
            if run.status in ENDED and not run.notified:
                wants = run.definition.spec.get("notify") or {}
                if run.status in ("failed", "timed_out") or (run.status == "succeeded" and wants.get("on_success")):
                    run.notified = True
                    s.commit()
                    if wants.get("emails") or wants.get("webhook"):
                        to_tell.append((views.job(run.definition), views.run(run)))
        # a run cancelled (by its owner, or replaced by the CronJob) stops its tasks
        stopping = s.scalars(
            select(TaskRunRow)
            .join(RunRow, RunRow.id == TaskRunRow.run_id)
            .where(RunRow.status.in_(ENDED), TaskRunRow.status.in_(("pending", "queued", "running")))
        )
        for t in stopping:
            if t.status != "pending":
                await runs.stop_job(ctx, t.job_name)
            t.status, t.finished = "cancelled", utcnow()
            t.reason = t.reason or "the run was cancelled"
        s.commit()
    return to_tell


async def _advance_run(ctx: Context, s: Session, run: RunRow, jobs: dict[str, client.V1Job]) -> None:
    row = run.definition
    defn = jobspec.stored(row)
    tasks = defn.task_list()
    if not run.tasks:
        _begin(s, run, tasks, jobs.get(run.job_name))
    rows = {t.task: t for t in run.tasks}
    grace = utcnow() - GONE_GRACE
    for t in rows.values():
        if t.status in ("queued", "running"):
            job = jobs.get(t.job_name)
            if job is not None:
                await jobstatus.follow(ctx, t, t.job_name, job, row)
                if t.status in ENDED:  # kept before the end is committed: a failure tries again
                    await run_logs.keep(ctx, t.job_name, runner_name(row), defn.secret_uses(), t.finished, s)
                    run_resources.later(ctx, t.job_name, t.started, t.finished)
            elif t.queued_at is None or utc(t.queued_at) < grace:
                t.status, t.finished = "failed", utcnow()
                t.reason = "its Job is gone (deleted behind MoonHub's back)"
    for name, t in rows.items():  # a task taken out of the job while the run waited for it
        if t.status == "pending" and all(x.name != name for x in tasks):
            t.status, t.finished, t.reason = "skipped", utcnow(), "no longer a task of the job"
    decided = decide([t for t in tasks if t.name in rows], {n: r.status for n, r in rows.items()})
    owner: Caller | None = None
    base = _base_parameters(run, defn)
    for name, what in decided.items():
        t = rows[name]
        if what != "start":
            t.status, t.finished = what, utcnow()
            t.reason = "a task it depends on did not succeed" if what == "upstream_failed" else "its run_if was not met"
            continue
        task = next(x for x in tasks if x.name == name)
        if owner is None:
            owner = await entitlements.runner(ctx, row)
        await _start_task(ctx, s, run, t, defn, task, owner, received(task, tasks, base, rows))
    states = {n: r.status for n, r in rows.items()}
    if run.status == "queued" and any(r.status != "pending" for r in rows.values()):
        run.status = "running"
    starts = [utc(r.started) for r in rows.values() if r.started]
    if starts and run.started is None:
        run.started = min(starts)
    ended = outcome(states)
    if ended is not None:
        run.status, run.finished = ended, utcnow()
        run.reason = _summary(list(rows.values()))
        await runs.stop_job(ctx, run.job_name)  # its suspended Job: the CronJob's policy counts it no more


def _begin(s: Session, run: RunRow, tasks: list[jobspec.Task], marker: client.V1Job | None) -> None:
    """The run's task rows (and, for a run its CronJob made, the time it stands for)."""
    for t in tasks:
        run.tasks.append(TaskRunRow(task=t.name, job_name=task_job_name(run.definition.cronjob, run.id, t.name, 1)))
    if run.context is None and s.get(RunContextRow, run.job_name) is None:
        at = launch.scheduled_time(marker) if marker is not None else utc(run.created)
        s.add(RunContextRow(job_name=run.job_name, definition_id=run.definition_id, scheduled_for=at))
    s.flush()
    s.refresh(run)


def _base_parameters(run: RunRow, defn: jobspec.Definition) -> dict[str, Any]:
    """The run's own parameters: a re-run's or back-fill's as given, else the job's."""
    c = run.context
    return dict(c.given) if c is not None and c.given is not None else dict(defn.parameters)


async def _start_task(
    ctx: Context,
    s: Session,
    run: RunRow,
    t: TaskRunRow,
    defn: jobspec.Definition,
    task: jobspec.Task,
    owner: Caller,
    params: dict[str, Any],
) -> None:
    row = run.definition
    stored = snapshots.task_file(row, run.version, task.name)
    if stored is None:
        t.status, t.finished = "failed", utcnow()
        t.reason = f"version {run.version} of the job has no notebook for task {task.name}"
        return
    trigger = run.trigger
    try:
        job = entitlements.task_job(
            ctx, defn, task, owner, run.version, names(row), stored.sha256, t.job_name, run.job_name, trigger
        )
    except ChoiceError as e:
        t.status, t.finished, t.reason = "failed", utcnow(), f"not started: {e}"[:1024]
        return
    at = run.context.scheduled_for if run.context is not None else None
    mark = s.get(RunContextRow, t.job_name)
    if mark is None:
        s.add(RunContextRow(job_name=t.job_name, definition_id=row.id, scheduled_for=at or run.created, given=params))
    try:
        await gpu_queues.ensure_for(ctx, owner, job)
        await ctx.batch.create_namespaced_job(ctx.settings.namespace, job)  # type: ignore[arg-type]
    except client.ApiException as e:
        if e.status != 409:  # 409: made by a pass that did not get to record it
            log.warning("task %s of run %s not started: %s", task.name, run.job_name, e.reason)
            return
    t.status, t.queued_at = "queued", utcnow()


async def repair(ctx: Context, caller: Caller, job_id: int, run_id: int) -> dict[str, Any]:
    """Run a pipeline run's failed tasks again, and the tasks after them; what succeeded
    stays (with what it published). The run becomes active again, under its own name."""
    with ctx.db() as s:
        run = runs.find(s, caller, job_id, run_id)
        row = run.definition
        if not run.tasks:
            raise FieldError("run", f"run {run.job_name} is not a pipeline run; re-run it instead")
        if run.status not in ENDED:
            raise Conflict("run", f"run {run.job_name} has not ended ({run.status})")
        defn = jobspec.stored(row)
        again = to_repair(defn.task_list(), {t.task: t.status for t in run.tasks})
        if not again:
            raise Conflict("run", f"run {run.job_name} has no failed task to repair")
        owner = await entitlements.acting_for(ctx, caller, row, "run")
        if row.hold is not None:
            raise Conflict("id", f"job {row.name} is suspended: {row.hold.reason}")
        at = run.context.scheduled_for if run.context else None
        try:
            job = await runs.job_for(ctx, s, row, owner, run.version, run.job_name, "repair", utc(at or run.created))
            await runs.create_job(ctx, job)
        except client.ApiException as e:
            if e.status == 409:
                raise Conflict(
                    "run", "the run's previous Job is still being removed; try again in a few seconds"
                ) from None
            raise
        for t in run.tasks:
            if t.task in again:
                with gone_ok():
                    await ctx.batch.delete_namespaced_job(
                        t.job_name, ctx.settings.namespace, propagation_policy="Background"
                    )
                ctx.outputs.remove(t.job_name)  # the failed attempt's outputs make way for the next's
                t.attempt += 1
                t.job_name = task_job_name(row.cronjob, run.id, t.task, t.attempt)
                t.status, t.reason, t.published = "pending", "", {}
                t.started = t.finished = t.queued_at = None
        run.status, run.finished, run.notified = "queued", None, False
        run.reason = f"repairing {', '.join(again)}"
        audit.record(s, caller.name, "repair", row, f"{run.job_name}: {', '.join(again)}")
        s.commit()
        s.refresh(run)
        return views.run(run)
