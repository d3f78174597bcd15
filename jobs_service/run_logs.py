"""A run's log, from its pod while there is one, and kept by the service once the run ends.

A run's Job and pod go away (the Job's TTL, the CronJob's history limit, a node drained), and
with them the log a user needs a day later to see why a run failed. When the sync loop sees a
run (or a pipeline task) end, it keeps the log as the log route shows it: the newest pod's
first ``limits.log_bytes`` (2 MiB), the job's secrets masked. The kept copy lives in the run's
folder of the output store, so it goes when the run goes (history trimmed, job deleted), and
all of one user's kept logs stay within ``jobs.limits.kept_log_bytes_per_user``: the oldest
go first. The log route answers from the pod while one is there and from the kept copy after.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import select
from sqlalchemy.orm import Session

from moonhub_core import secrets as sec
from moonhub_core import unread

from . import secrets
from .context import Context
from .db import DefinitionRow, RunRow, TaskRunRow, utc, utcnow
from .manifests import team_of

log = logging.getLogger("moonhub.jobs")

#: how long after a run ended its log is asked for again when the node does not give it
GIVE_UP_AFTER = datetime.timedelta(minutes=1)


async def _newest_pod(ctx: Context, job_name: str) -> Any | None:
    pods = (await ctx.core.list_namespaced_pod(ctx.settings.namespace, label_selector=f"job-name={job_name}")).items
    return max(pods, key=lambda p: p.metadata.creation_timestamp) if pods else None


async def from_pod(ctx: Context, job_name: str, owner: str, uses: Any) -> dict[str, Any] | None:
    """The newest pod's name, the first ``limits.log_bytes`` of its log (the job's secrets
    masked) and whether there was more; None without a pod."""
    pod = await _newest_pod(ctx, job_name)
    if pod is None:
        return None
    cap = ctx.settings.limits.log_bytes
    # undecoded (a log is text), but checked: a container that has not started answers 400,
    # and its Status is not the run's log
    pod_name = pod.metadata.name
    call = ctx.core.read_namespaced_pod_log(
        pod_name, ctx.settings.namespace, limit_bytes=cap + 1, _preload_content=False
    )
    try:
        data = await unread.body(call)
    except client.ApiException as e:
        if e.status not in (400, 404):  # not started yet / gone since it was listed
            raise
        data = f"(no log to show: {unread.message(e)})".encode()
    # the job's secrets never show in a log MoonHub renders
    text = sec.mask(data[:cap].decode("utf-8", "replace"), await secrets.values(ctx, owner, uses))
    return {"pod": pod_name, "log": text, "truncated": len(data) > cap}


async def read(ctx: Context, job_name: str, owner: str, uses: Any) -> dict[str, Any] | None:
    """The log of the run (or task) whose Job is ``job_name``: its pod's while there is one,
    else the copy kept when it ended (``kept_at`` says when), else None."""
    live = await from_pod(ctx, job_name, owner, uses)
    if live is not None:
        return live
    kept = await asyncio.to_thread(ctx.outputs.kept_log, job_name)
    if kept is None:
        return None
    if kept.get("dropped"):
        budget = ctx.settings.limits.kept_log_bytes_per_user
        said = f"(no log kept any more: {owner}'s kept logs passed {budget / 2**20:g} MiB, and the oldest went first)"
        return {"pod": "", "log": said, "truncated": False, "kept_at": None}
    # masked again: a secret given a new value since is not shown either
    kept["log"] = sec.mask(str(kept.get("log", "")), await secrets.values(ctx, owner, uses))
    return kept


def _runs_of(s: Session, owner: str) -> list[str]:
    """The Job names of every run and task of ``owner``'s (where their kept logs are): a
    user's personal jobs', or a team principal's team's jobs'."""
    team = team_of(owner)
    mine = (
        DefinitionRow.team == team
        if team is not None
        else (DefinitionRow.owner == owner) & DefinitionRow.team.is_(None)
    )
    defs = select(DefinitionRow.id).where(mine)
    names = list(s.scalars(select(RunRow.job_name).where(RunRow.definition_id.in_(defs))))
    tasks = select(TaskRunRow.job_name).join(RunRow, RunRow.id == TaskRunRow.run_id)
    return names + list(s.scalars(tasks.where(RunRow.definition_id.in_(defs))))


async def keep(
    ctx: Context,
    job_name: str,
    owner: str,
    uses: Any,
    ended: datetime.datetime | None,
    s: Session | None = None,
) -> None:
    """Keep the log of a run (or task) that ended (at ``ended``), within its owner's budget
    (their oldest kept logs go first). A run whose pod is gone already keeps a line that says
    so. Raises what the API server answers otherwise, and the caller tries again on its next
    pass; a log the node has not given for ``GIVE_UP_AFTER`` since the run ended is kept as a
    line that says why (a node gone, or a simulated one that serves no logs). ``s``: the
    caller's session, where it has one open."""
    try:
        found = await from_pod(ctx, job_name, owner, uses)
    except client.ApiException as e:
        if ended is None or utc(ended) > utcnow() - GIVE_UP_AFTER:
            raise
        found = {
            "pod": "",
            "log": f"(no log kept: the node did not give it: {e.status} {e.reason})",
            "truncated": False,
        }
    if found is None:
        found = {"pod": "", "log": "(no log kept: the run's pod was gone when it ended)", "truncated": False}
    found["kept_at"] = utcnow().replace(tzinfo=datetime.UTC).isoformat()
    size = len(found["log"].encode())
    if s is not None:
        names = _runs_of(s, owner)
    else:
        with ctx.db() as own:
            names = _runs_of(own, owner)
    budget = ctx.settings.limits.kept_log_bytes_per_user

    def store() -> None:
        kept = [k for k in ctx.outputs.log_sizes(names) if k[2] != job_name]
        total = sum(k[1] for k in kept) + size
        for _, bytes_, run in kept:  # the oldest first
            if total <= budget:
                break
            ctx.outputs.drop_log(run)
            total -= bytes_
            log.info("%s's kept log of %s went: their kept logs passed %d bytes", owner, run, budget)
        ctx.outputs.put_log(job_name, found)

    await asyncio.to_thread(store)
