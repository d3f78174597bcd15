"""Following runs: every notebook Job the cluster has is recorded with its state
(Kubernetes is the truth), running runs get their progress recorded, owners are told about
runs that ended (or run too long), and back-filled runs start as their policy allows."""

from __future__ import annotations

import datetime
import functools
import logging
import re
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import select
from sqlalchemy.orm import Session

from moonhub_core import pods as podc
from moonhub_core.errors import FieldError

from . import (
    audit,
    entitlements,
    gpu_queues,
    jobspec,
    jobstatus,
    notify,
    outbox,
    pipelines,
    run_logs,
    run_resources,
    runs,
    snapshots,
    teams,
    upstream,
    views,
)
from .context import ENDED, Context, new_run, runner_name
from .db import DefinitionRow, ProgressRow, RunContextRow, RunRow, in_chunks, utc, utcnow

log = logging.getLogger("moonhub.jobs")

#: seconds between two reads of one running run's progress (the end of its pod's log)
PROGRESS_EVERY = 5.0
#: lines of the log's end read for it
PROGRESS_TAIL = 200
#: a run whose Job is gone this long after it was recorded was replaced or deleted
GONE_GRACE = datetime.timedelta(seconds=30)
#: the states of a run whose Job the loop follows
LIVE = ("queued", "running")
#: Jobs marked as recorded in one pass, at most, each once its log is kept (the first pass
#: after an upgrade finds every Job of the history unmarked; the next passes mark the rest)
MARKS_PER_PASS = 100


#: on a notebook Job whose run is recorded as ended: the sync loop lists only Jobs without
#: it, so a pass costs what is going on, not every Job the CronJobs' history keeps (at
#: 10,000 hourly jobs, tens of thousands)
RECORDED = "moonhub.io/run-recorded"


#: what an owner is told: the job and run as the API shows them, and the event ("": ended)
Notice = tuple[dict[str, Any], dict[str, Any], str]


async def sync_runs(ctx: Context) -> list[Notice]:
    """Record every notebook Job and its state, record the progress of running runs; what
    owners are to be told of runs that ended (or run too long), for :func:`tell_all` once
    the writer lock is let go (a slow mail server must not hold up every change)."""
    jobs = await ctx.batch.list_namespaced_job(
        ctx.settings.namespace, label_selector=f"{podc.COMPONENT}={podc.NOTEBOOK_JOB},!{RECORDED}"
    )
    to_tell: list[tuple[dict[str, Any], dict[str, Any]]] = []
    ended: list[str] = []
    #: the owner and secret uses of each run that ended (its kept log is masked with them)
    ended_by: dict[str, tuple[str, Any, datetime.datetime | None]] = {}
    spans: dict[str, tuple[datetime.datetime | None, datetime.datetime | None]] = {}
    with ctx.db() as s:
        listed = [j.metadata.name for j in jobs.items]
        known = {r.job_name: r for r in _runs_of(s, listed)}
        owners = {_cronjob_of(j) for j in jobs.items if j.metadata.name not in known} - {None}
        by_cron = {d.cronjob: d for d in s.scalars(select(DefinitionRow).where(DefinitionRow.cronjob.in_(owners)))}
        seen: set[str] = set()
        followed: list[tuple[RunRow, client.V1Job]] = []
        for job in jobs.items:
            run = known.get(job.metadata.name) or await _adopt(ctx, s, job, by_cron)
            if run is None:
                continue
            if pipelines.is_pipeline(run):  # its state is its tasks' (below)
                seen.add(run.job_name)
                continue
            await _follow(ctx, run, job)
            followed.append((run, job))
            s.flush()
            seen.add(run.job_name)
            if run.status in ENDED:
                ended.append(run.job_name)
                uses = jobspec.stored(run.definition).secret_uses()
                ended_by[run.job_name] = (runner_name(run.definition), uses, run.finished)
                spans[run.job_name] = (run.started, run.finished)
            wants = run.definition.spec.get("notify") or {}
            ended_badly = run.status in ("failed", "timed_out")
            if not run.notified and (ended_badly or (run.status == "succeeded" and wants.get("on_success"))):
                run.notified = True
                if wants.get("emails") or wants.get("webhook") or run.definition.team:
                    to_tell.append((views.job(run.definition), views.run(run)))
        # a run whose Job vanished before it ended was replaced ("replace the previous run")
        # or deleted behind our back
        grace = utcnow() - GONE_GRACE
        for name, run in known.items():
            if name not in seen and run.status in ("queued", "running") and utc(run.created) < grace:
                run.status, run.finished = "cancelled", utcnow()
                run.reason = _gone_reason(run)
        await gpu_queues.note_waiting(ctx, s, followed)
        running = [r for r in known.values() if r.status == "running"]
        await record_progress(ctx, running)
        overdue = _overdue(s, running, utcnow())
        s.commit()
        late = [(views.job(r.definition), views.run(r)) for r in overdue]
    # marked only once the end is committed and its log kept: a pass that fails before
    # lists them again
    for name in ended[:MARKS_PER_PASS]:
        try:
            await run_logs.keep(ctx, name, *ended_by[name])
        except (client.ApiException, OSError) as e:
            log.warning("run %s: log not kept yet (%s); the next pass tries again", name, e)
            continue
        # what it used, from Prometheus, beside tracking (a run whose figures Prometheus
        # did not give keeps none)
        run_resources.later(ctx, name, *spans[name])
        await _mark_recorded(ctx, name)
    to_tell += await pipelines.advance(ctx, {j.metadata.name: j for j in jobs.items})
    await runs.start_waiting(ctx)
    await upstream.start_downstream(ctx)
    return [(j, r, "") for j, r in to_tell] + [(j, r, notify.OVERDUE) for j, r in late]


async def tell_all(ctx: Context, notices: list[Notice]) -> None:
    """Put the notices in the outbox (``outbox``): sent beside tracking, never awaited by it."""
    for job, run, event in notices:
        wants, owner = job.get("notify") or {}, job["owner"]
        about = f"job {job['name']}: the {event or 'run.' + str(run.get('status'))} notice of run {run.get('name')}"
        if wants.get("emails") or job.get("team"):  # a team job's alerts go to the team too
            await ctx.outbox.put(owner, f"{about} by e-mail", functools.partial(_email, ctx, job, run, event))
        if wants.get("webhook"):
            if not ctx.settings.webhooks.take(owner):
                outbox.DROPPED.labels("webhooks per hour").inc()
                log.warning("%s by webhook not sent: over %d per hour", about, ctx.settings.webhooks.per_hour)
                continue
            await ctx.outbox.put(owner, f"{about} by webhook", functools.partial(_webhook, ctx, job, run, event))


async def _email(ctx: Context, job: dict[str, Any], run: dict[str, Any], event: str) -> None:
    """The notice to the job's addresses and, for a team's job, to the team's (``teams``)."""
    to = list((job.get("notify") or {}).get("emails") or [])
    team: list[str] = []
    if job.get("team"):
        try:
            team = teams.alert_addresses(await teams.group(ctx, job["team"]))
        except FieldError as e:  # the hub could not say, or the team is gone: the job's own still go
            log.warning("job %s: team %s's alert addresses not read: %s", job["name"], job["team"], e.message)
    if not to and not team:
        return
    recipients = to + [a for a in team if a not in to]
    await notify.email(ctx.settings.smtp, job, run, recipients, ctx.settings.emails, event, trusted=team)


async def _webhook(ctx: Context, job: dict[str, Any], run: dict[str, Any], event: str) -> None:
    wants = job["notify"]
    await notify.webhook(wants["webhook"], job, run, ctx.settings.webhooks, event, wants.get("webhook_format", "plain"))


def _gone_reason(run: RunRow) -> str:
    """Why a run whose Job is gone before it ended was stopped. Only the CronJob replaces
    its own Jobs; the Job of a run asked for by hand may never have been made (its create
    timed out and did not reach Kubernetes)."""
    if run.trigger in ("manual", "rerun"):
        if run.started is None:
            return "not started: its Job was never seen (Kubernetes did not confirm it, or it was deleted)"
        return "its Job is gone: deleted before it ended"
    return "its Job is gone: replaced by a newer run, or deleted"


def _overdue(s: Session, running: list[RunRow], now: datetime.datetime) -> list[RunRow]:
    """Running runs past their job's ``notify.overdue_after_seconds`` whose owner was not
    told yet (marked told here: once per run, across restarts)."""
    found = []
    for run in running:
        limit = (run.definition.spec.get("notify") or {}).get("overdue_after_seconds") or 0
        if not limit or run.started is None or (now - utc(run.started)).total_seconds() < limit:
            continue
        mark = run.context or s.get(RunContextRow, run.job_name)
        if mark is None:
            mark = RunContextRow(job_name=run.job_name, definition_id=run.definition_id)
            s.add(mark)
        if not mark.overdue_told:
            mark.overdue_told = True
            found.append(run)
    return found


def _runs_of(s: Session, listed: list[str]) -> list[RunRow]:
    """The runs the loop follows: those going on, and those of the Jobs listed."""
    found = {r.id: r for r in s.scalars(select(RunRow).where(RunRow.status.in_(LIVE)))}
    for chunk in in_chunks(listed):
        found.update((r.id, r) for r in s.scalars(select(RunRow).where(RunRow.job_name.in_(chunk))))
    return list(found.values())


async def _mark_recorded(ctx: Context, name: str) -> None:
    try:
        await ctx.batch.patch_namespaced_job(
            name, ctx.settings.namespace, {"metadata": {"labels": {RECORDED: "ended"}}}
        )
    except client.ApiException as e:
        if e.status != 404:  # gone (its history limit, its TTL): nothing to mark
            log.warning("run %s: Job not marked as recorded (%s); the next pass tries again", name, e.reason)


def _cronjob_of(job: client.V1Job) -> str | None:
    return next((o.name for o in job.metadata.owner_references or [] if o.kind == "CronJob"), None)


async def _adopt(ctx: Context, s: Session, job: client.V1Job, by_cron: dict[str, DefinitionRow]) -> RunRow | None:
    """A run for a Job a CronJob started (None: not one of ours). A run its owner may no
    longer start is stopped and recorded as not started, and the job is held."""
    defn = by_cron.get(_cronjob_of(job) or "")
    if defn is None:
        return None
    run = new_run(defn, job.metadata.name, "schedule")
    # a run its schedule starts counts against the owner's runs queued or running too: a
    # `* * * * *` job whose runs wait in the queue must not pile up Jobs (etcd) without end
    busy = runs.active_count(s, defn.owner)
    cap = ctx.settings.limits.active_runs_per_user
    s.add(run)
    s.flush()  # a persistent row: its definition loads when asked for (a pending one answers None)
    if busy >= cap:
        await runs.stop_job(ctx, run.job_name)
        run.status, run.finished = "cancelled", utcnow()
        run.reason = (
            f"not started: {defn.owner} has {busy} runs queued or running; the limit is {cap} "
            "(jobs.limits.active_runs_per_user)"
        )
        log.info("scheduled run %s of %s not started: %s", run.job_name, defn.owner, run.reason)
        return run
    refused = await entitlements.refusal(ctx, defn)
    if refused:  # started by the CronJob before a reconcile suspended it
        await runs.stop_job(ctx, run.job_name)
        run.status, run.finished = "cancelled", utcnow()
        run.reason = f"not started: {refused}"[:1024]
        await audit.hold(ctx, s, defn, refused)
    elif ctx.hub is not None and job.spec.suspend:
        await _owner_queue(ctx, defn, job)
    return run


async def _owner_queue(ctx: Context, defn: DefinitionRow, job: client.V1Job) -> None:
    """A scheduled GPU run waits in its owner's (or team's) queue as their groups are now
    (best effort: the next reconcile writes it when the hub can not be asked)."""
    if gpu_queues.QUEUE_LABEL not in (job.metadata.labels or {}):
        return
    owner = defn.owner
    try:
        who = await entitlements.runner(ctx, defn)
        cat = ctx.catalog.get()
        await ctx.queues.ensure_user(cat, who.name, who.groups, who.hub_admin, ctx.settings.namespace)
    except Exception as e:  # the run waits in the queue as it was
        log.warning("queue of %s not refreshed for %s: %s", owner, job.metadata.name, e)


async def _follow(ctx: Context, run: RunRow, job: client.V1Job) -> None:
    """The run's state from its Job's; a failure gets its reason in words when the pod says more."""
    if run.status == "cancelled":
        return
    await jobstatus.follow(ctx, run, run.job_name, job, run.definition)
    if run.status == "succeeded" and run.progress is not None:
        run.progress.cell = run.progress.of  # every cell ran, whenever the log was last read


async def record_progress(ctx: Context, running: list[RunRow]) -> None:
    """Read the end of each running run's pod log (at most every ``PROGRESS_EVERY``
    seconds per run) and record the cell papermill executes."""
    now = utcnow()
    due = [
        r for r in running if r.progress is None or (now - utc(r.progress.read_at)).total_seconds() >= PROGRESS_EVERY
    ]
    if not due:
        return
    listed = await ctx.core.list_namespaced_pod(
        ctx.settings.namespace,
        label_selector=f"{podc.COMPONENT}={podc.NOTEBOOK_JOB}",
        field_selector="status.phase=Running",
    )
    newest: dict[str, Any] = {}
    for pod in listed.items:
        job = (pod.metadata.labels or {}).get("job-name", "")
        if job not in newest or pod.metadata.creation_timestamp > newest[job].metadata.creation_timestamp:
            newest[job] = pod
    for run in due:
        found = newest.get(run.job_name)
        if found is None:
            continue
        try:
            text = await ctx.core.read_namespaced_pod_log(
                found.metadata.name, ctx.settings.namespace, tail_lines=PROGRESS_TAIL
            )
        except client.ApiException as e:
            log.debug("run %s: progress not read: %s", run.job_name, e.reason)
            continue
        if run.progress is None:
            run.progress = ProgressRow(cell=0, of=total_cells(run))
        run.progress.read_at = now
        cell = last_cell(str(text))
        if cell is not None:
            # a retried pod starts again at cell 1: the newest pod's count is the truth
            run.progress.cell = cell
            run.progress.of = max(run.progress.of, cell)


def total_cells(run: RunRow) -> int:
    """The cells papermill executes for ``run``: its version's, and one more when it injects
    the parameters (it does when there are any)."""
    given = run.context.parameters if run.context and run.context.parameters is not None else None
    params = given if given is not None else run.definition.spec.get("parameters")
    return snapshots.cells_of(run.definition, run.version) + (1 if params else 0)


def last_cell(log_text: str) -> int | None:
    """The last cell papermill reported executing ("Executing Cell i-----"), or None (pure)."""
    found = re.findall(r"Executing Cell (\d+)-", log_text)
    return int(found[-1]) if found else None
