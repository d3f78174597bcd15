"""Jobs started by another job's success: a job with ``"after": ["prepare"]`` gets a run
each time a run of its owner's job ``prepare`` succeeds. The new run stands for the time
the upstream run stood for, so a daily chain's dates line up.

Durable without a queue: every sync pass looks at runs that succeeded in the last
``LOOKBACK`` and starts what is missing. A started run records which run triggered it, and
its Job's name is made from that run, so a restart between a success and the start, or two
passes, never start it twice.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moonhub_core.errors import ChoiceError, FieldError, Forbidden, Unavailable

from . import entitlements, runs
from .context import Context, new_run
from .db import DefinitionRow, RunContextRow, RunRow, in_chunks, utc, utcnow

log = logging.getLogger("moonhub.jobs")

MAX_AFTER = 5
#: how far back a success still starts its downstream jobs (a service down longer misses them)
LOOKBACK = datetime.timedelta(hours=24)


def check_after(name: str, after: list[str], others: dict[str, list[str]]) -> None:
    """``name`` may run after ``after``: each is one of the owner's other jobs, and no chain
    of "after" leads back to ``name`` (pure; ``others``: the owner's jobs and their "after")."""
    for up in after:
        if up == name:
            raise FieldError("after", f"job {name} can not run after itself")
        if up not in others:
            raise FieldError("after", f"you have no job {up!r} (after names your own jobs)")
    graph = {**others, name: list(after)}
    seen: set[str] = set()

    def leads_back(job: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for up in graph.get(job, []):
            if up == name:
                return (*path, up)
            if up not in seen:
                seen.add(up)
                found = leads_back(up, (*path, up))
                if found:
                    return found
        return None

    loop = leads_back(name, (name,))
    if loop:
        raise FieldError("after", f"that makes a loop: {' runs after '.join(loop)}")


def check(s: Session, owner: str, name: str, after: list[str]) -> None:
    """:func:`check_after` against ``owner``'s jobs in the database."""
    if not after:
        return
    others = {
        d.name: list(d.spec.get("after") or [])
        for d in s.scalars(select(DefinitionRow).where(DefinitionRow.owner == owner))
        if d.name != name
    }
    check_after(name, after, others)


def _name(down: DefinitionRow, up: RunRow) -> str:
    return f"{down.cronjob[:45]}-u{up.id}"[:63]


def _runs_after(ctx: Context, s: Session) -> list[DefinitionRow]:
    """The jobs that run after others (``Context.after_index``, brought up to date first)."""
    _refresh_after_index(ctx, s)
    found = [s.get(DefinitionRow, i) for i, (_, after) in ctx.after_index.items() if after]
    return [d for d in found if d is not None]


def _refresh_after_index(ctx: Context, s: Session) -> None:
    """Each job's spec is read once per change of it: a pass with nothing made, changed or
    deleted reads one row; otherwise ids and times, and the specs of the changed jobs."""
    seen = tuple(s.execute(select(func.count(), func.max(DefinitionRow.updated))).one())
    if seen == ctx.after_seen:
        return
    ctx.after_seen, index = seen, ctx.after_index
    stamps: dict[int, Any] = {i: at for i, at in s.execute(select(DefinitionRow.id, DefinitionRow.updated))}
    for gone in set(index) - set(stamps):
        del index[gone]
    changed = [i for i, at in stamps.items() if index.get(i, (None, False))[0] != at]
    for chunk in in_chunks(changed):
        for i, spec in s.execute(select(DefinitionRow.id, DefinitionRow.spec).where(DefinitionRow.id.in_(chunk))):
            index[i] = (stamps[i], bool((spec or {}).get("after")))


async def start_downstream(ctx: Context) -> None:
    """Start the runs that recent successes owe to the jobs that run after them."""
    since = utcnow() - LOOKBACK
    with ctx.db() as s:
        waiting = _runs_after(ctx, s)
        if not waiting:
            return
        for down in waiting:
            ups = [d for d in s.scalars(select(DefinitionRow).where(DefinitionRow.owner == down.owner))]
            upstream = {d.id for d in ups if d.name in down.spec["after"]}
            done = s.scalars(
                select(RunRow).where(
                    RunRow.definition_id.in_(upstream), RunRow.status == "succeeded", RunRow.finished >= since
                )
            )
            started = {c.upstream_run for c in down.contexts if c.upstream_run is not None}
            for up in done:
                if up.id in started or utc(up.created) < utc(down.created):
                    continue
                await _start(ctx, s, down, up)
                s.commit()


async def _start(ctx: Context, s: Session, down: DefinitionRow, up: RunRow) -> None:
    name = _name(down, up)
    stands_for = utc((up.context.scheduled_for if up.context else None) or up.started or up.created)
    mark = RunContextRow(job_name=name, definition_id=down.id, scheduled_for=stands_for, upstream_run=up.id)
    run = new_run(down, name, "upstream")
    if not down.spec.get("active", True) or down.hold is not None:
        why = "paused" if down.hold is None else f"suspended: {down.hold.reason}"
        run.status, run.finished, run.reason = "cancelled", utcnow(), f"not started after run {up.job_name}: {why}"
    elif down.spec.get("concurrency", "skip") == "skip" and any(r.status in runs.ACTIVE for r in down.runs):
        run.status, run.finished = "cancelled", utcnow()
        run.reason = f"not started after run {up.job_name}: the previous run is still running (skip)"
    else:
        try:
            owner = await entitlements.runner(ctx, down)
            job = await runs.job_for(ctx, s, down, owner, down.version, name, "upstream", stands_for)
            await runs.create_job(ctx, job)
        except (Unavailable, Forbidden) as e:
            log.warning("job %s of %s waits to start after %s: %s", down.name, down.owner, up.job_name, e)
            return  # the next pass tries again
        except ChoiceError as e:
            run.status, run.finished, run.reason = "cancelled", utcnow(), f"not started: {e}"[:1024]
        except client.ApiException as e:
            if e.status != 409:  # a Job of that name: started by a pass that did not get to record it
                log.warning("job %s of %s not started after %s: %s", down.name, down.owner, up.job_name, e.reason)
                return
    s.add(run)
    s.add(mark)
    log.info("job %s of %s: run %s after %s (%s)", down.name, down.owner, name, up.job_name, run.status)
