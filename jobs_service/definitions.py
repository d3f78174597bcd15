"""Job definitions: create, change (new notebook content freezes a new version), list,
read, delete. Validation and the owner's entitlements are checked before anything is
written, so a refused request leaves nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import func, select

from moonhub_core.errors import ChoiceError, Conflict, FieldError, Forbidden, NotFound

from . import (
    audit,
    entitlements,
    gpu_queues,
    jobspec,
    manifests,
    secrets,
    snapshots,
    teams,
    upstream,
    validation,
    views,
    workspaces,
)
from .context import ENDED, Caller, Context, gone_ok, names, own
from .db import DefinitionRow
from .limits import check_count

log = logging.getLogger("moonhub.jobs")


def parse(ctx: Context, body: dict[str, Any], owner: str) -> jobspec.Definition:
    """A definition from a request body, with its notification targets checked."""
    defn = validation.parse(body)
    if defn.notify.get("webhook"):
        ctx.settings.webhooks.check_url(defn.notify["webhook"])
    ctx.settings.emails.check(owner, defn.notify.get("emails") or [])
    return defn


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object")
    return dict(body)


async def _frozen(content: Any) -> tuple[snapshots.Frozen, int]:
    """The notebook checked and ready to store, and how large it was as sent."""
    checked = validation.check_notebook(content)
    return await asyncio.to_thread(lambda: (snapshots.Frozen.of(checked), len(json.dumps(checked))))


async def _frozen_tasks(defn: jobspec.Definition, contents: Any) -> dict[str, tuple[snapshots.Frozen, int]]:
    """A pipeline's notebooks (``notebook_contents``: task name -> notebook), one per task."""
    if not isinstance(contents, dict):
        raise FieldError("notebook_contents", "must be an object of task name: notebook, one for each task")
    tasks = [t.name for t in defn.task_list()]
    missing = [t for t in tasks if t not in contents]
    extra = [k for k in contents if k not in tasks]
    if missing or extra:
        what = (f"no notebook for {', '.join(missing)}" if missing else "") + (
            f"{'; ' if missing else ''}no task named {', '.join(map(str, extra))}" if extra else ""
        )
        raise FieldError("notebook_contents", f"needs one notebook per task: {what}")
    found = {}
    for t in tasks:
        try:
            found[t] = await _frozen(contents[t])
        except FieldError as e:
            raise FieldError(f"notebook_contents.{t}", e.message) from None
    return found


def _pick_contents(defn: jobspec.Definition, body: dict[str, Any]) -> tuple[Any, Any]:
    """``notebook_content`` (a job of one notebook) or ``notebook_contents`` (a pipeline)."""
    content, contents = body.pop("notebook_content", None), body.pop("notebook_contents", None)
    if defn.tasks and content is not None:
        raise FieldError("notebook_content", "a pipeline sends notebook_contents: one notebook per task")
    if not defn.tasks and contents is not None:
        raise FieldError("notebook_contents", "is for pipelines (jobs with tasks); send notebook_content")
    return content, contents


def _unique_in_team(s: Any, team: str | None, name: str, but: int | None = None) -> None:
    """A team has one job of a name, whichever member made it."""
    if team is None:
        return
    q = select(DefinitionRow.id).where(DefinitionRow.team == team, DefinitionRow.name == name)
    if but is not None:
        q = q.where(DefinitionRow.id != but)
    if s.scalar(q.limit(1)) is not None:
        raise Conflict("name", f"team {team} already has a job named {name!r}")


async def create(ctx: Context, caller: Caller, body: Any) -> dict[str, Any]:
    body = _body(body)
    team = teams.checked_name(body.pop("team", None))
    defn = parse(ctx, {k: v for k, v in body.items() if k not in CONTENT_FIELDS}, caller.name)
    content, contents = _pick_contents(defn, body)
    if defn.tasks:
        pipeline = await _frozen_tasks(defn, contents)
        notebooks, sha = [f for f, _ in pipeline.values()], ""
    else:
        frozen, sent = await _frozen(content)
        notebooks, sha = [frozen], frozen.sha256
    n = manifests.Names(caller.name, defn.name, team=team or "")
    if team is not None:  # the team's job: it runs as the team (``teams``)
        await teams.may_join(ctx, caller, team)  # the hub has the team, and the caller edits for it
        owner = teams.as_team(team)
    else:
        owner = await entitlements.owner(ctx, caller.name, caller)
    # entitlements and secrets checked before anything exists
    cron = entitlements.cronjob(ctx, defn, owner, 1, n, sha)
    await secrets.check(ctx, owner, defn.secret_uses())
    for f in notebooks:
        await secrets.refuse_in_notebook(ctx, owner, defn.secret_uses(), f.data)
    with ctx.db() as s:
        if s.scalar(select(DefinitionRow).where(DefinitionRow.owner == caller.name, DefinitionRow.name == defn.name)):
            raise Conflict("name", f"you already have a job named {defn.name!r}")
        _unique_in_team(s, team, defn.name)
        upstream.check(s, caller.name, defn.name, defn.after)
        have = s.scalar(select(func.count()).select_from(DefinitionRow).where(DefinitionRow.owner == caller.name))
        check_count("name", "jobs", have or 0, ctx.settings.limits.jobs_per_user)
    if team is None:
        uid = await workspaces.ensure(ctx, caller.name, owner.groups, owner.created)
        if uid != owner.uid:  # the workspace was made just now: its runs run as its uid
            owner = dataclasses.replace(owner, uid=uid)
            cron = entitlements.cronjob(ctx, defn, owner, 1, n, sha)
    spec, form = jobspec.to_stored(defn)
    with ctx.db() as s:
        row = DefinitionRow(
            owner=caller.name,
            team=team,
            name=defn.name,
            spec=spec,
            spec_version=form,
            version=1,
            cronjob=n.cronjob,
        )
        if defn.tasks:
            row.versions.append(await snapshots.freeze_tasks(ctx, s, caller.name, 1, pipeline))
        else:
            row.versions.append(await snapshots.freeze(ctx, s, caller.name, 1, frozen, sent))
        s.add(row)
        s.flush()
        try:
            await gpu_queues.ensure_for(ctx, owner, cron)
            await ctx.batch.create_namespaced_cron_job(ctx.settings.namespace, cron)  # type: ignore[arg-type]
        except client.ApiException:
            s.rollback()  # nothing half-made: the rows go, and the files unless another version has them
            snapshots.forget_files(ctx, s, caller.name, [f.sha256 for f in notebooks])
            raise
        audit.record(s, caller.name, "create", row, f"for team {team}" if team else "")
        s.commit()
        log.info("job %s of %s created (cronjob %s)", defn.name, team or caller.name, n.cronjob)
        return views.job(row)


#: the request fields that carry notebooks, not the definition
CONTENT_FIELDS = ("notebook_content", "notebook_contents")


def _same_notebooks(row: DefinitionRow, defn: jobspec.Definition) -> bool:
    """The current version has a notebook for what ``defn`` runs (one, or one per task)."""
    v = next((v for v in row.versions if v.number == row.version), None)
    if v is None:
        return False
    if not defn.tasks:
        return v.stored is not None
    return {t.task for t in v.tasks} == {t.name for t in defn.task_list()} and all(
        t.notebook == old.get("notebook")
        for t in defn.task_list()
        for old in row.spec.get("tasks") or []
        if old.get("name") == t.name
    )


def _action(row: DefinitionRow, body: dict[str, Any], content: Any) -> tuple[str, set[str]]:
    """What an update does (edit, pause or resume), and the fields it changes."""
    changes = {k for k, v in body.items() if row.spec.get(k) != v}
    if content is not None or changes - {"active"}:
        return "edit", changes
    return ("resume" if body.get("active", row.spec.get("active", True)) else "pause"), changes


async def update(ctx: Context, caller: Caller, job_id: int, body: Any) -> dict[str, Any]:
    """Change a definition; new notebook content freezes a new snapshot version. A body
    whose ``team`` differs from the job's moves it (:func:`move`)."""
    body = _body(body)
    with ctx.db() as s:
        row = own(s, caller, job_id)
        if "team" in body:
            if body["team"] != row.team:
                if set(body) != {"team"}:
                    raise FieldError("team", "moving a job to a team (or back) is a request of its own")
                return await move(ctx, caller, job_id, body["team"])
            del body["team"]
        if "name" in body and body["name"] != row.name:
            raise FieldError("name", "a job can not be renamed; create a new one")
        fields = {k: v for k, v in body.items() if k not in CONTENT_FIELDS}
        if "tasks" in fields and "notebook" not in fields:
            fields["notebook"] = None  # a pipeline's own notebook follows its first task
        defn = parse(ctx, {**row.spec, **fields}, row.owner)
        content, contents = _pick_contents(defn, body)
        action, changes = _action(row, body, content if content is not None else contents)
        owner = await entitlements.acting_for(ctx, caller, row, action)
        upstream.check(s, row.owner, row.name, defn.after)
        version, sha = row.version, snapshots.sha_of(row, row.version) or ""
        frozen: snapshots.Frozen | None = None
        pipeline: dict[str, tuple[snapshots.Frozen, int]] | None = None
        if content is not None:
            frozen, sent = await _frozen(content)
            version, sha = version + 1, frozen.sha256
        elif contents is not None:
            pipeline = await _frozen_tasks(defn, contents)
            version, sha = version + 1, ""
        elif not _same_notebooks(row, defn):
            field = "notebook_contents" if defn.tasks else "notebook_content"
            raise FieldError(field, "the job's notebooks changed: send them (a new version)")
        added = [f for f, _ in pipeline.values()] if pipeline else [frozen] if frozen else []
        n = names(row)
        held = row.hold is not None
        try:
            cron: dict[str, Any] | None = entitlements.cronjob(ctx, defn, owner, version, n, sha)
        except ChoiceError:
            if not (action == "pause" and held):  # pausing a held job needs no entitlement
                raise
            cron = None
        if cron is not None:
            await secrets.check(ctx, owner, defn.secret_uses())
            for f in added:
                await secrets.refuse_in_notebook(ctx, owner, defn.secret_uses(), f.data)
        if cron is None:
            row.spec, row.spec_version = jobspec.to_stored(defn)
            audit.record(s, caller.name, action, row)
            s.commit()
            return views.job(row)
        if frozen is not None:
            row.versions.append(await snapshots.freeze(ctx, s, row.owner, version, frozen, sent))
        elif pipeline is not None:
            row.versions.append(await snapshots.freeze_tasks(ctx, s, row.owner, version, pipeline))
        try:
            await put_cronjob(ctx, row.cronjob, cron, True, owner)
        except client.ApiException:
            if added:  # leave nothing half-made: the new version goes too
                s.rollback()
                snapshots.forget_files(ctx, s, row.owner, [f.sha256 for f in added])
            raise
        (row.spec, row.spec_version), row.version = jobspec.to_stored(defn), version
        if held:
            row.hold = None
        detail = ", ".join(sorted(changes)) + (f"; notebook version {version}" if added else "")
        audit.record(s, caller.name, action, row, detail)
        s.commit()
        snapshots.prune(ctx, s, row)
        s.commit()
        if row.owner != caller.name:
            await audit.tell_owner(ctx, row, f"{action} by {caller.name}", f"{caller.name} ({action}) {detail}\n")
        return views.job(row)


async def move(ctx: Context, caller: Caller, job_id: int, team: Any) -> dict[str, Any]:
    """Give a job to ``team`` (a hub group), to another team, or back to its owner (``team``
    None). Its owner, an editor of both sides, or a job admin (who may give a departed
    owner's held job to a team) moves it. It is checked as its new runner would run it
    (the team's folder, secrets and entitlements, or the owner's) before anything changes;
    its CronJob is rewritten; a hold it had is lifted, since it may run again."""
    team = teams.checked_name(team)
    with ctx.db() as s:
        row = own(s, caller, job_id)
        if row.team is not None:  # leaving a team takes an editor of it
            await teams.check(ctx, caller, row, "move")
        if row.owner != caller.name and not caller.admin:
            if team is None:
                raise Forbidden("team", f"only {row.owner}, who owns it, may take the job back from team {row.team}")
            if row.team is None:
                raise NotFound("id", f"no job {job_id}")
        if team is not None:
            await teams.may_join(ctx, caller, team)
            runner = teams.as_team(team)
        else:
            runner = await entitlements.owner(ctx, row.owner, caller if caller.name == row.owner else None)
        _unique_in_team(s, team, row.name, but=row.id)
        defn = jobspec.stored(row)
        n = manifests.Names(row.owner, row.name, stored=row.cronjob, team=team or "")
        sha = snapshots.sha_of(row, row.version) or ""
        cron = entitlements.cronjob(ctx, defn, runner, row.version, n, sha)
        try:
            await secrets.check(ctx, runner, defn.secret_uses())
        except FieldError as e:
            whose = f"team {team}" if team else row.owner
            raise type(e)(e.field, f"{e.message} (as {whose} runs it)") from None
        if team is None:
            uid = await workspaces.ensure(ctx, row.owner, runner.groups, runner.created)
            if uid != runner.uid:
                runner = dataclasses.replace(runner, uid=uid)
                cron = entitlements.cronjob(ctx, defn, runner, row.version, n, sha)
        await put_cronjob(ctx, row.cronjob, cron, False, runner)  # made again if it was missing
        was = f"team {row.team}" if row.team else row.owner
        row.team = team
        now = f"team {team}" if team else row.owner
        if row.hold is not None:
            row.hold = None
            audit.record(s, caller.name, "release", row, f"given to {now}")
        audit.record(s, caller.name, "move", row, f"from {was} to {now}")
        s.commit()
        log.info("job %s moved from %s to %s by %s", row.name, was, now, caller.name)
        return views.job(row)


async def put_cronjob(ctx: Context, name: str, cron: dict[str, Any], exists: bool, owner: Caller) -> None:
    """Create the CronJob, or replace the one there (at its current resource version); a
    GPU job's owner gets their queue first."""
    await gpu_queues.ensure_for(ctx, owner, cron)
    if not exists:
        try:
            await ctx.batch.create_namespaced_cron_job(ctx.settings.namespace, cron)  # type: ignore[arg-type]
            return
        except client.ApiException as e:
            if e.status != 409:  # made meanwhile: replaced below
                raise
    current = await ctx.batch.read_namespaced_cron_job(name, ctx.settings.namespace)
    cron["metadata"]["resourceVersion"] = current.metadata.resource_version
    await ctx.batch.replace_namespaced_cron_job(name, ctx.settings.namespace, cron)  # type: ignore[arg-type]


def versions(ctx: Context, caller: Caller, job_id: int) -> list[dict[str, Any]]:
    with ctx.db() as s:
        row = own(s, caller, job_id)
        return [
            {
                "number": v.number,
                "created": v.created.isoformat(),
                "cells": v.stored.cells if v.stored else 0,
                "sha256": v.stored.sha256 if v.stored else None,
                "bytes": v.stored.size if v.stored else None,
                "sent_bytes": v.stored.sent_size if v.stored else None,
            }
            for v in sorted(row.versions, key=lambda v: v.number)
        ]


def list_jobs(ctx: Context, caller: Caller) -> list[dict[str, Any]]:
    with ctx.db() as s:
        q = select(DefinitionRow).order_by(DefinitionRow.id)
        if not caller.admin:  # their own, and their teams' (``context.visible``)
            mine = (DefinitionRow.owner == caller.name) & DefinitionRow.team.is_(None)
            q = q.where(mine | DefinitionRow.team.in_(caller.groups)) if caller.groups else q.where(mine)
        return [views.job(r) for r in s.scalars(q)]


def get(ctx: Context, caller: Caller, job_id: int) -> dict[str, Any]:
    with ctx.db() as s:
        return views.job(own(s, caller, job_id))


async def delete(ctx: Context, caller: Caller, job_id: int, why: str = "") -> None:
    """Remove the definition, its CronJob, its snapshots and its run history (the audit
    trail stays). ``why``: MoonHub's reason when it is not the caller's own request."""
    with ctx.db() as s:
        row = own(s, caller, job_id)
        if row.team is not None and not why:  # a team's editors delete its jobs
            await teams.check(ctx, caller, row, "delete")
        with gone_ok():
            await ctx.batch.delete_namespaced_cron_job(
                row.cronjob, ctx.settings.namespace, propagation_policy="Background"
            )
        files = snapshots.files_of(row)
        audit.record(s, caller.name, "delete", row, why or f"{len(row.runs)} run(s) of history removed")
        for run in row.runs:
            # runs that have not ended stop: Jobs made by hand, by a back-fill or for a
            # pipeline's tasks are not the CronJob's, so its deletion does not take them
            live = [run.job_name] if run.status not in ENDED else []
            live += [t.job_name for t in run.tasks if t.status in ("queued", "running")]
            for name in live:
                with gone_ok():
                    await ctx.batch.delete_namespaced_job(name, ctx.settings.namespace, propagation_policy="Background")
            for name in [run.job_name, *(t.job_name for t in run.tasks)]:
                ctx.outputs.remove(name)
        s.delete(row)
        snapshots.forget_files(ctx, s, row.owner, files)
        s.commit()
        if row.owner != caller.name and not why:
            await audit.tell_owner(
                ctx, row, f"deleted by {caller.name}", f"{caller.name} deleted your job {row.name}.\n"
            )
