"""Runs: start one now, re-run one, back-fill a date range, list them, cancel one, read its
log."""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets as tokens
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moonhub_core import admissions
from moonhub_core import secrets as sec
from moonhub_core.errors import ChoiceError, Conflict, FieldError, Forbidden, NotFound, Unavailable

from . import (
    audit,
    entitlements,
    gpu_queues,
    jobspec,
    manifests,
    run_logs,
    runcontext,
    secrets,
    shares,
    snapshots,
    teams,
    validation,
    views,
)
from .context import ENDED, Caller, Context, gone_ok, names, new_run, own, runner_name
from .db import DefinitionRow, RunContextRow, RunRow, utc, utcnow
from .limits import LimitReached, check_count

logger = logging.getLogger("moonhub.jobs")


#: the statuses of runs that hold a place ("run now" and re-runs count them against the limit)
ACTIVE = ("queued", "running")


def active_count(s: Session, owner: str) -> int:
    """``owner``'s runs queued or running (every kind)."""
    return _active(s, owner)


def _active(s: Session, owner: str) -> int:
    q = (
        select(func.count())
        .select_from(RunRow)
        .join(DefinitionRow)
        .where(DefinitionRow.owner == owner, RunRow.status.in_(ACTIVE))
    )
    return int(s.scalar(q) or 0)


async def job_for(
    ctx: Context,
    s: Session,
    row: DefinitionRow,
    owner: Caller,
    version: int,
    name: str,
    trigger: str,
    scheduled: datetime.datetime,
) -> dict[str, Any]:
    """The Job of one run of ``row`` (notebook ``version``), built from the definition as
    its owner may run it today (not from the stored CronJob: groups and the catalog may
    have changed). A job its owner may no longer run is held, and the refusal raised."""
    sha = snapshots.sha_of(row, version) or ""
    if not snapshots.kept(row, version):
        raise Conflict(
            "version", f"version {version} of job {row.name} is no longer kept (jobs.limits.versions_per_job)"
        )
    try:
        defn = jobspec.stored(row)
        cron = entitlements.cronjob(ctx, defn, owner, version, names(row), sha)
        await secrets.check(ctx, owner, defn.secret_uses())
    except ChoiceError as e:
        await audit.hold(ctx, s, row, str(e))
        s.commit()
        raise
    job = manifests.manual_job(cron, name, trigger, scheduled.isoformat())
    await gpu_queues.ensure_for(ctx, owner, job)  # the run waits in its owner's queue
    return job


async def check_bounds(ctx: Context, owner: Caller, job: dict[str, Any]) -> None:
    """A run a person asks for now is refused (403, naming the bound) when its owner or their
    team holds too much CPU, memory or pods to start it; a scheduled run waits in the queue
    instead (Kueue admits it when the owner's other work ends)."""
    spec = job["spec"]
    request = admissions.pod_request(spec["template"]["spec"], int(spec.get("parallelism") or 1))
    over = await ctx.queues.over_bounds(owner.name, ctx.settings.namespace, request)
    if over:
        raise LimitReached("id", f"the run would pass a limit now: {over}; stop a server or wait for a run to end")


async def create_job(ctx: Context, job: dict[str, Any]) -> None:
    """Create a run's Job (:func:`job_for`). Runs the service starts itself (a back-filled
    tick, a run after another) have names the next pass makes again: it takes a 409 for
    "made", so a create that timed out is simply tried again."""
    await ctx.batch.create_namespaced_job(ctx.settings.namespace, job)  # type: ignore[arg-type]


async def start_recorded(ctx: Context, s: Session, job: dict[str, Any], made: list[Any]) -> None:
    """Create ``job`` for a run whose rows (``made``: the run, its context, its audit line)
    are committed already, so that a Job always has its run: when Kubernetes refuses the Job,
    or the request never left (no connection), the rows go again and the error is raised;
    when the request was sent and no answer came, the Job may or may not have been made, and
    the run stays queued: the sync loop follows the Job once it shows, or records the run as
    never started when none does (``sync.GONE_GRACE``)."""
    try:
        await create_job(ctx, job)
    except (client.ApiException, aiohttp.ClientConnectorError):
        # refused (a 409 too: the name is new, so that Job is another run's), or never sent
        # (no connection to the API server): there is no Job, so there is no run
        for row in made:
            s.delete(row)
        s.commit()
        raise
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as e:  # sent; the answer lost
        logger.warning(
            "run %s: Kubernetes did not confirm its Job (%s); the sync loop follows it or records it as not started",
            job["metadata"]["name"],
            str(e) or type(e).__name__,
        )


def _name(row: DefinitionRow, kind: str) -> str:
    return f"{row.cronjob[:45]}-{kind}{tokens.token_hex(2)}"


async def run_now(ctx: Context, caller: Caller, job_id: int) -> dict[str, Any]:
    """Start a run of the current version; it stands for the moment it was asked for."""
    with ctx.db() as s:
        row = own(s, caller, job_id)
        owner = await entitlements.acting_for(ctx, caller, row, "run")
        if row.hold is not None:
            raise Conflict("id", f"job {row.name} is suspended: {row.hold.reason}")
        check_count("id", "runs queued or running", _active(s, row.owner), ctx.settings.limits.active_runs_per_user)
        name, now = _name(row, "m"), utcnow()
        job = await job_for(ctx, s, row, owner, row.version, name, "manual", now)
        await check_bounds(ctx, owner, job)
        run = new_run(row, name, "manual")
        mark = RunContextRow(job_name=name, definition_id=row.id, scheduled_for=now)
        s.add_all([run, mark])
        line = audit.record(s, caller.name, "run", row, name)
        s.commit()
        await start_recorded(ctx, s, job, [run, mark, line])
        return views.run(run)


RERUN_FIELDS = {"parameters"}


async def rerun(ctx: Context, caller: Caller, job_id: int, run_id: int, body: Any) -> dict[str, Any]:
    """Run an ended run again as it was: its notebook version, its parameters as it received
    them (``parameters`` in the body change some), and the time it stood for. The new run
    says which run it repeats."""
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object")
    for key in body:
        if key not in RERUN_FIELDS:
            raise FieldError(key, f"unknown field (accepted: {', '.join(sorted(RERUN_FIELDS))})")
    changes = validation.check_parameters(body.get("parameters"))
    with ctx.db() as s:
        old = find(s, caller, job_id, run_id)
        row = old.definition
        if old.status not in ENDED:
            raise Conflict("run", f"run {old.job_name} has not ended ({old.status}); cancel it or wait for it")
        owner = await entitlements.acting_for(ctx, caller, row, "run")
        if row.hold is not None:
            raise Conflict("id", f"job {row.name} is suspended: {row.hold.reason}")
        check_count("id", "runs queued or running", _active(s, row.owner), ctx.settings.limits.active_runs_per_user)
        was = old.context
        if was is not None and was.parameters is not None:
            base = dict(was.parameters)
        elif was is not None and was.given is not None:
            base = dict(was.given)
        else:
            base = dict(row.spec.get("parameters") or {})
        scheduled = utc((was.scheduled_for if was else None) or old.started or old.created)
        name = _name(row, "r")
        job = await job_for(ctx, s, row, owner, old.version, name, "rerun", scheduled)
        await check_bounds(ctx, owner, job)
        run = new_run(row, name, "rerun", old.version)
        given = {**base, **changes}
        mark = RunContextRow(job_name=name, definition_id=row.id, scheduled_for=scheduled, given=given, rerun_of=old.id)
        s.add_all([run, mark])
        detail = f"{name} re-runs {old.job_name}" + (f" with {', '.join(sorted(changes))} changed" if changes else "")
        line = audit.record(s, caller.name, "rerun", row, detail)
        s.commit()
        await start_recorded(ctx, s, job, [run, mark, line])
        s.refresh(run)
        return views.run(run)


BACKFILL_FIELDS = {"from", "to"}


def _covered(row: DefinitionRow) -> set[datetime.datetime]:
    """The ticks ``row``'s runs already stand for: those recorded, and scheduled runs'
    (Kubernetes names a CronJob's Job after its tick, in minutes since 1970)."""
    found = {utc(c.scheduled_for) for c in row.contexts if c.scheduled_for}
    for r in row.runs:
        suffix = r.job_name.rsplit("-", 1)[-1]
        if r.trigger == "schedule" and r.job_name.startswith(row.cronjob) and suffix.isdigit():
            found.add(datetime.datetime.fromtimestamp(int(suffix) * 60, datetime.UTC))
    return found


async def backfill(ctx: Context, caller: Caller, job_id: int, body: Any) -> dict[str, Any]:
    """Runs for the schedule's ticks from ``from`` to ``to`` (days in the job's time zone,
    both included, none in the future), each standing for its tick. Ticks that already have
    a run are skipped. They wait and start as the job's concurrency policy allows: one at a
    time for ``skip`` and ``replace``, as many as the owner's limit for ``allow``."""
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object with from and to")
    for key in body:
        if key not in BACKFILL_FIELDS:
            raise FieldError(key, f"unknown field (accepted: {', '.join(sorted(BACKFILL_FIELDS))})")
    start, end = runcontext.parse_day("from", body.get("from")), runcontext.parse_day("to", body.get("to"))
    if end < start:
        raise FieldError("to", "must not be before from")
    cap = ctx.settings.limits.backfill_runs
    with ctx.db() as s:
        row = own(s, caller, job_id)
        schedule = row.spec.get("schedule")
        if not schedule:
            raise FieldError("id", f"job {row.name} has no schedule: it has no ticks to back-fill")
        owner = await entitlements.acting_for(ctx, caller, row, "run")
        if row.hold is not None:
            raise Conflict("id", f"job {row.name} is suspended: {row.hold.reason}")
        # the owner may run it as defined (a refusal now, not at each start)
        sha = snapshots.sha_of(row, row.version) or ""
        defn = jobspec.stored(row)
        entitlements.cronjob(ctx, defn, owner, row.version, names(row), sha)
        await secrets.check(ctx, owner, defn.secret_uses())
        now = utcnow()
        ticks = [t for t in runcontext.scheduled_ticks(schedule, row.spec.get("timezone") or "UTC", start, end, cap)]
        ticks = [t for t in ticks if t <= now]
        covered = _covered(row)
        todo = [t for t in ticks if utc(t) not in covered]
        waiting = s.scalar(
            select(func.count())
            .select_from(RunRow)
            .join(DefinitionRow)
            .where(DefinitionRow.owner == row.owner, RunRow.status == "waiting")
        )
        check_count("to", "back-filled runs waiting to start", (waiting or 0) + len(todo) - 1, cap)
        made = []
        for t in todo:
            name = f"{row.cronjob[:45]}-b{int(t.timestamp()) // 60}"
            run = new_run(row, name, "backfill")
            run.status = "waiting"
            s.add(run)
            s.add(RunContextRow(job_name=name, definition_id=row.id, scheduled_for=t))
            made.append(run)
        audit.record(s, caller.name, "backfill", row, f"{len(made)} run(s) from {start} to {end}")
        s.commit()
        for run in made:
            s.refresh(run)
        return {
            "runs": [views.run(r) for r in made],
            "skipped": [t.isoformat() for t in ticks if utc(t) in covered],
        }


async def start_waiting(ctx: Context) -> None:
    """Start back-filled runs as their jobs' concurrency policies allow (each pass of the
    sync loop). A Job that exists already (a start the service did not get to record before
    a restart) counts as started."""
    with ctx.db() as s:
        rows = list(s.scalars(select(DefinitionRow).join(RunRow).where(RunRow.status == "waiting").distinct()))
        for row in rows:
            if row.hold is not None:
                continue
            waiting = sorted(
                (r for r in row.runs if r.status == "waiting"),
                key=lambda r: (
                    utc(r.context.scheduled_for) if r.context and r.context.scheduled_for else utc(r.created),
                    r.id,
                ),
            )
            mine = sum(1 for r in row.runs if r.status in ACTIVE)
            if row.spec.get("concurrency", "skip") == "allow":
                free = ctx.settings.limits.active_runs_per_user - _active(s, row.owner)
            else:
                free = 0 if mine else 1
            if free <= 0:
                continue
            try:
                owner = await entitlements.runner(ctx, row)
            except (Unavailable, Forbidden) as e:
                logger.warning("back-fill of %s waits: %s", row.name, e)
                continue
            for run in waiting[:free]:
                at = run.context.scheduled_for if run.context and run.context.scheduled_for else run.created
                try:
                    job = await job_for(ctx, s, row, owner, run.version, run.job_name, "backfill", utc(at))
                    await create_job(ctx, job)
                except ChoiceError as e:
                    run.status, run.finished, run.reason = "cancelled", utcnow(), f"not started: {e}"[:1024]
                    continue
                except client.ApiException as e:
                    if e.status != 409:
                        logger.warning("back-filled run %s not started: %s", run.job_name, e.reason)
                        break
                run.status = "queued"
        s.commit()


def find(s: Session, caller: Caller, job_id: int, run_id: int) -> RunRow:
    own(s, caller, job_id)
    run = s.get(RunRow, run_id)
    if run is None or run.definition_id != job_id:
        raise NotFound("run", f"no run {run_id} of job {job_id}")
    return run


def job_of(run: RunRow, task: str | None) -> str:
    """The Kubernetes Job whose pod, log and outputs are asked for: the run's own, or (in a
    pipeline run) its task ``task``'s latest attempt."""
    if not task:
        if run.tasks:
            raise FieldError("task", f"run {run.job_name} is a pipeline run: name one of its tasks (?task=)")
        return run.job_name
    found = next((t for t in run.tasks if t.task == task), None)
    if found is None:
        raise NotFound("task", f"run {run.job_name} has no task {task!r}")
    return found.job_name


def listed(ctx: Context, caller: Caller, job_id: int) -> list[dict[str, Any]]:
    with ctx.db() as s:
        row = own(s, caller, job_id)
        return [views.run(r) for r in sorted(row.runs, key=lambda r: r.id, reverse=True)]


async def stop_job(ctx: Context, name: str) -> None:
    with gone_ok():
        await ctx.batch.delete_namespaced_job(name, ctx.settings.namespace, propagation_policy="Background")


async def cancel(ctx: Context, caller: Caller, job_id: int, run_id: int) -> dict[str, Any]:
    with ctx.db() as s:
        run = find(s, caller, job_id, run_id)
        if run.definition.team is not None:  # a team's editors (or a job admin) cancel
            await teams.check(ctx, caller, run.definition, "cancel")
        if run.status in ENDED:
            raise Conflict("run", f"run {run_id} already ended ({run.status})")
        await stop_job(ctx, run.job_name)
        for t in run.tasks:  # a pipeline's tasks that have not ended stop with it
            if t.status in ("queued", "running"):
                await stop_job(ctx, t.job_name)
            if t.status in ("pending", "queued", "running"):
                t.status, t.reason, t.finished = "cancelled", f"cancelled by {caller.name}", utcnow()
        run.status, run.reason, run.finished = "cancelled", f"cancelled by {caller.name}", utcnow()
        audit.record(s, caller.name, "cancel", run.definition, run.job_name)
        s.commit()
        if run.definition.owner != caller.name:
            text = f"{caller.name} cancelled run {run.job_name} of your job {run.definition.name}.\n"
            await audit.tell_owner(ctx, run.definition, f"run cancelled by {caller.name}", text)
        return views.run(run)


async def output(ctx: Context, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> bytes:
    """The run's executed notebook as it sent it, its job's secrets masked (as in its log,
    whoever asks); 404 (saying where else to look) when none. Besides the job's owner (and
    job admins), a member of a team the run's output is shared with may read it (``shares``)."""
    with ctx.db() as s:
        try:
            run = find(s, caller, job_id, run_id)
        except NotFound:
            shared = shares.shared_output_run(s, caller, job_id, run_id)
            if shared is None:
                raise
            run = shared
        name = job_of(run, task)
        where = run.output if not task else f"jobs/{run.definition.name}/{name}.ipynb"
        owner, uses = runner_name(run.definition), jobspec.stored(run.definition).secret_uses()
    data = await asyncio.to_thread(ctx.outputs.notebook, name)
    if data is None:
        raise NotFound("run", f"run {name} kept no output (it did not get to send it); see {where} in the workspace")
    values = await secrets.values(ctx, owner, uses)
    return await asyncio.to_thread(sec.mask_bytes, data, values) if values else data


def files(ctx: Context, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
    with ctx.db() as s:
        name = job_of(find(s, caller, job_id, run_id), task)
    return ctx.outputs.files(name)


async def file(
    ctx: Context, caller: Caller, job_id: int, run_id: int, path: str, task: str | None = None
) -> tuple[str, bytes]:
    """A kept file's name and bytes: as the run wrote it for its owner, with the job's secrets
    masked for anyone else (a job admin); values shorter than 8 characters are left, as a
    binary file holds short sequences by chance."""
    with ctx.db() as s:
        run = find(s, caller, job_id, run_id)
        name = job_of(run, task)
        owner, uses = runner_name(run.definition), jobspec.stored(run.definition).secret_uses()
    found = ctx.outputs.file(name, path)
    if found is None:
        raise NotFound("path", f"run {name} kept no file {path}")
    data = await asyncio.to_thread(found.read_bytes)
    if caller.name != owner and uses:
        values = await secrets.values(ctx, owner, uses)
        data = await asyncio.to_thread(sec.mask_bytes, data, values, 8)
    return found.name, data


async def log(ctx: Context, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> dict[str, Any] | None:
    """The run's (or its task's) log (:mod:`.run_logs`: its newest pod's while there is one,
    else the copy kept when it ended) and the progress recorded for the run; None without."""
    with ctx.db() as s:
        run = find(s, caller, job_id, run_id)
        name = job_of(run, task)
        progress = views.progress(run)
        owner, uses = runner_name(run.definition), jobspec.stored(run.definition).secret_uses()
    found = await run_logs.read(ctx, name, owner, uses)
    return None if found is None else {**found, "progress": progress}


async def resources(ctx: Context, caller: Caller, job_id: int, run_id: int, task: str | None = None) -> dict[str, Any]:
    """What the run (or its task) used, kept from Prometheus when it ended
    (:mod:`.run_resources`); ``{"kept": false}`` while it runs, or when none was kept (no
    Prometheus, or it did not answer)."""
    with ctx.db() as s:
        run = find(s, caller, job_id, run_id)
        name = job_of(run, task)
    found = await asyncio.to_thread(ctx.outputs.resources, name)
    return {"kept": False} if found is None else {"kept": True, **found}
