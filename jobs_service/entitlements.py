"""Whose entitlements apply to a job, and the CronJob its owner may run now. Every use of a
job (create, edit, run now, each scheduled run, each reconcile) asks the hub for the
owner's groups afresh: the model that came with a request may be minutes old."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from hubclient.users import HubReadError
from moonhub_core import choices as ch
from moonhub_core import claims, queue_objects
from moonhub_core.errors import ChoiceError, Forbidden, NotEntitled, Unavailable
from moonhub_core.workload import Workload, build

from . import env_images, jobspec, launch, manifests, secrets, teams
from .context import Caller, Context, names
from .db import DefinitionRow

log = logging.getLogger("moonhub.jobs")

#: what a job admin may do to someone else's job without ``jobs.admins_may_edit``
ADMIN_ACTIONS = ("pause", "resume", "cancel", "delete")


def _workload(ctx: Context, defn: jobspec.Definition, owner: Caller, n: manifests.Names) -> tuple[Any, Workload]:
    cat = ctx.catalog.get()
    if n.team and not any(tf.group == n.team for tf in cat.storage.team_folders):
        # its runs' workspace is the team's folder: a team without one can not own jobs
        raise NotEntitled("team", f"team {n.team} has no team folder (an admin adds one: storage.team_folders)")
    raw = defn.choices()
    own = env_images.for_job(ctx, defn.own_image, n.team or owner.name, defn.environment)
    if own is not None:
        raw["environment"] = own.base
    choice = ch.parse(raw, cat, ch.allowed(cat, owner.groups, owner.hub_admin))
    w = build(cat, choice, n.workspace_claim, owner.groups, owner.uid, ctx.settings.package_index)
    if own is not None:  # everything of its environment but the image: the build's, by digest
        w = dataclasses.replace(w, image=own.image)
    return choice, w


def _queued(ctx: Context, obj: dict[str, Any], owner: Caller) -> dict[str, Any]:
    """Every run waits in its owner's Kueue queue (its Job suspended until admitted): their
    GPU maximum, their CPU, memory and pods bounds and their team's quotas count it, whoever
    starts it (a schedule, a person, a pipeline, a repair)."""
    obj["metadata"]["labels"].update(
        queue_objects.queue_labels(owner.name, server=False, prefix=ctx.settings.queue_prefix)
    )
    return obj


def cronjob(
    ctx: Context, defn: jobspec.Definition, owner: Caller, version: int, n: manifests.Names, sha256: str
) -> dict[str, Any]:
    """The CronJob of ``defn`` (notebook version ``version``, whose digest is ``sha256``) as
    ``owner`` may run it now (their groups, today's catalog); :class:`ChoiceError` when they
    may not. A pipeline's every task is checked."""
    for task in defn.task_list():
        try:
            _workload(ctx, defn.for_task(task), owner, n)
        except ChoiceError as e:
            raise type(e)(f"tasks.{task.name}.{e.field}", f"task {task.name}: {e.message}") from None
    _, w = _workload(ctx, defn, owner, n)
    fetch = launch.for_version(ctx, n.cronjob, version, sha256)
    cron = manifests.cronjob(defn, n, version, fetch, w, ctx.settings.namespace)
    if not defn.tasks:
        _queued(ctx, cron["spec"]["jobTemplate"], owner)
    return cron


def task_job(
    ctx: Context,
    defn: jobspec.Definition,
    task: jobspec.Task,
    owner: Caller,
    version: int,
    n: manifests.Names,
    sha256: str,
    job_name: str,
    run_name: str,
    trigger: str,
) -> dict[str, Any]:
    """The Job of ``task`` in pipeline run ``run_name``, as ``owner`` may run it now."""
    d = defn.for_task(task)
    _, w = _workload(ctx, d, owner, n)
    fetch = launch.for_version(ctx, n.cronjob, version, sha256, task.name)
    job = manifests.task_job(d, n, version, fetch, w, ctx.settings.namespace, job_name, task.name, run_name, trigger)
    return _queued(ctx, job, owner)


async def owner(ctx: Context, name: str, known: Caller | None = None) -> Caller:
    """``name`` as the hub knows them now, with the uid their workspace belongs to. Without
    a hub: ``known``, or no groups."""
    if ctx.hub is None:
        who = known or Caller(name)
    else:
        try:
            model = await ctx.hub.user(name)
        except HubReadError as e:
            raise Unavailable("owner", f"can not check {name}'s entitlements now ({e}); try again") from None
        if model is None:
            raise Forbidden("owner", f"{name} is no longer a user of this hub")
        who = Caller.from_model(model, ctx.settings.admin_groups)
    uid = await claims.uid_of(ctx.core, ctx.settings.namespace, manifests.Names(name, "").workspace_claim)
    return dataclasses.replace(who, uid=uid)


def whose(row: DefinitionRow) -> str:
    return f"team {row.team}'s" if row.team is not None else f"{row.owner}'s"


async def runner(ctx: Context, row: DefinitionRow) -> Caller:
    """Whom ``row`` runs as now: its team's principal (``teams``), or its owner."""
    if row.team is not None:
        return await teams.runner(ctx, row.team)
    return await owner(ctx, row.owner)


async def acting_for(ctx: Context, caller: Caller, row: DefinitionRow, action: str) -> Caller:
    """The owner whose entitlements apply when ``caller`` does ``action`` to ``row``.
    A job admin acting on someone else's job may pause, resume, cancel and delete it;
    changing its notebook or running it is code execution as the owner, allowed only
    when the operator opted in (``jobs.admins_may_edit``). A team job's members act by
    their role in the team; it runs as the team."""
    if row.team is not None:
        if await teams.check(ctx, caller, row, action) is not None:  # the hub has the team
            return teams.as_team(row.team)
    elif row.owner == caller.name:
        return await owner(ctx, caller.name, caller)
    if action not in ADMIN_ACTIONS and not ctx.settings.admins_may_edit:
        raise Forbidden(
            "id",
            f"job admins may pause, resume, cancel and delete {whose(row)} jobs, not {action} them "
            "(the operator can allow it: jobs.admins_may_edit)",
        )
    return await runner(ctx, row)


async def refusal(ctx: Context, row: DefinitionRow) -> str | None:
    """Why ``row``'s owner may not run it as defined now, or None. Every scheduled run is
    checked as it appears; when the hub can not be asked, the run goes on (the next
    reconcile decides)."""
    if ctx.hub is None:
        return None
    try:
        who = await runner(ctx, row)
        defn = jobspec.stored(row)
        cronjob(ctx, defn, who, row.version, names(row), "")
        await secrets.check(ctx, who, defn.secret_uses())
    except (ChoiceError, Forbidden) as e:  # not entitled, or no longer a user of the hub
        return str(e)
    except Unavailable as e:
        log.warning("job %s of %s: entitlements not checked (%s)", row.name, row.owner, e)
    return None
