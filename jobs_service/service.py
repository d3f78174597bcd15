"""The jobs service's operations: validate, snapshot, create Kubernetes objects, track runs.

Every operation takes the caller (:class:`Caller`) and enforces ownership: users see and
change only their own definitions; job admins see all. Validation happens before anything
is written, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hubclient.users import HubReadError, HubUsers
from moonhub_core import choices as ch
from moonhub_core.catalog import CatalogStore
from moonhub_core.errors import ChoiceError
from moonhub_core.workload import build

from . import departures, manifests, notify, validation, views
from .db import AuditRow, DefinitionRow, HoldRow, RunRow, VersionRow, utcnow
from .errors import Conflict, Forbidden, InvalidField, NotFound, Unavailable
from .limits import Limits, TooMany, check_count

log = logging.getLogger("moonhub.jobs")

ENDED = ("succeeded", "failed", "timed_out", "cancelled")


@dataclass(frozen=True)
class Caller:
    name: str
    groups: tuple[str, ...] = ()
    #: sees and manages every user's jobs (hub admins and the job-admin groups)
    admin: bool = False
    #: may use the whole catalog (hub admins); everyone else's jobs follow their groups
    hub_admin: bool = False

    @classmethod
    def from_model(cls, model: dict[str, Any], admin_groups: Iterable[str]) -> Caller:
        """The caller a JupyterHub user model describes."""
        groups = tuple(str(g) for g in model.get("groups") or ())
        hub_admin = bool(model.get("admin"))
        return cls(str(model["name"]), groups, hub_admin or bool(set(groups) & set(admin_groups)), hub_admin)


class JobsService:
    def __init__(
        self,
        db: sessionmaker[Session],
        catalog: CatalogStore,
        api: client.ApiClient,
        namespace: str,
        workspace: str,
        storage_class_override: str = "",
        smtp: notify.SmtpSettings | None = None,
        *,
        hub: HubUsers | None = None,
        admin_groups: Iterable[str] = ("job-admins",),
        limits: Limits | None = None,
        departed_grace: datetime.timedelta = datetime.timedelta(days=7),
        admins_may_edit: bool = False,
        webhooks: notify.WebhookPolicy | None = None,
        emails: notify.EmailPolicy | None = None,
    ) -> None:
        self.smtp = smtp or notify.SmtpSettings()
        self.db, self.catalog, self.namespace, self.workspace = db, catalog, namespace, workspace
        self.storage_class_override = storage_class_override
        self.api = api
        self.core, self.batch = client.CoreV1Api(api), client.BatchV1Api(api)
        #: the hub, asked for owners' groups (entitlements) and who has left; None: no hub
        #: (every owner has no groups, and nobody ever counts as departed)
        self.hub = hub
        self.admin_groups = tuple(admin_groups)
        self.limits = limits or Limits()
        self.departed_grace = departed_grace
        #: job admins may change other users' notebooks and run them (code execution as
        #: that user: off unless the operator opts in)
        self.admins_may_edit = admins_may_edit
        self.webhooks = webhooks or notify.WebhookPolicy()
        self.emails = emails or notify.EmailPolicy()
        self._streams: Counter[str] = Counter()

    # ---- helpers ---------------------------------------------------------------------
    def _own(self, s: Session, caller: Caller, job_id: int) -> DefinitionRow:
        row = s.get(DefinitionRow, job_id)
        if row is None or (row.owner != caller.name and not caller.admin):
            raise NotFound("id", f"no job {job_id}")  # another user's id looks like a missing one
        return row

    def _cronjob(
        self, defn: validation.Definition, owner: Caller, version: int, names: manifests.Names
    ) -> dict[str, Any]:
        """The CronJob of ``defn`` as ``owner`` may run it now (their groups, today's
        catalog); :class:`ChoiceError` when they may not."""
        cat = self.catalog.get()
        choice = ch.parse(defn.choices(), cat, ch.allowed(cat, owner.groups, owner.hub_admin))
        w = build(cat, choice, names.workspace_claim)
        return manifests.cronjob(defn, names, version, w, self.namespace, self.workspace)

    def _parse(self, body: dict[str, Any], owner: str) -> validation.Definition:
        defn = validation.parse(body)
        if defn.notify.get("webhook"):
            self.webhooks.check_url(defn.notify["webhook"])
        self.emails.check(owner, defn.notify.get("emails") or [])
        return defn

    async def owner(self, name: str, known: Caller | None = None) -> Caller:
        """``name`` as the hub knows them now: their groups decide what their jobs may use
        (asked each time: the model that came with a request may be minutes old). Without a
        hub: ``known``, or no groups."""
        if self.hub is None:
            return known or Caller(name)
        try:
            model = await self.hub.user(name)
        except HubReadError as e:
            raise Unavailable("owner", f"can not check {name}'s entitlements now ({e}); try again") from None
        if model is None:
            raise Forbidden("owner", f"{name} is no longer a user of this hub")
        return Caller.from_model(model, self.admin_groups)

    async def _acting_for(self, caller: Caller, row: DefinitionRow, action: str) -> Caller:
        """The owner whose entitlements apply when ``caller`` does ``action`` to ``row``.
        A job admin acting on someone else's job may pause, resume, cancel and delete it;
        changing its notebook or running it is code execution as the owner, allowed only
        when the operator opted in (``jobs.admins_may_edit``)."""
        if row.owner == caller.name:
            return await self.owner(caller.name, caller)
        if action not in ("pause", "resume", "cancel", "delete") and not self.admins_may_edit:
            raise Forbidden(
                "id",
                f"job admins may pause, resume, cancel and delete {row.owner}'s jobs, not {action} them "
                "(the operator can allow it: jobs.admins_may_edit)",
            )
        return await self.owner(row.owner)

    def _audit(self, s: Session, actor: str, action: str, row: DefinitionRow, detail: str = "") -> AuditRow:
        entry = AuditRow(
            actor=actor, action=action, owner=row.owner, job_id=row.id, job_name=row.name, detail=detail[:1024]
        )
        s.add(entry)
        return entry

    async def _tell_owner(self, row: DefinitionRow, subject: str, text: str) -> None:
        """Tell a job's owner about something done to their job by someone else (an admin,
        or MoonHub itself) at the addresses the job notifies."""
        emails = (row.spec.get("notify") or {}).get("emails") or []
        if not emails or not self.smtp.host:
            return
        try:
            self.emails.check(row.owner, emails)
        except InvalidField:
            return
        if not self.emails.take(row.owner, 1, time.time()):
            return
        try:
            await notify.plain(self.smtp, emails, f"[MoonHub] job {row.name}: {subject}", text)
        except Exception as e:
            log.warning("job %s of %s: could not tell the owner: %s", row.name, row.owner, type(e).__name__)

    async def _suspend(self, cronjob: str) -> None:
        try:
            await self.batch.patch_namespaced_cron_job(cronjob, self.namespace, {"spec": {"suspend": True}})
        except client.ApiException as e:
            if e.status != 404:
                raise

    async def _hold(self, s: Session, row: DefinitionRow, reason: str) -> None:
        """Suspend ``row`` because its owner may no longer run it as defined; tell them."""
        if row.hold is not None:
            return
        await self._suspend(row.cronjob)
        row.hold = HoldRow(reason=reason[:1024])
        self._audit(s, "moonhub", "hold", row, reason)
        log.warning("job %s of %s suspended: %s", row.name, row.owner, reason)
        await self._tell_owner(
            row,
            "suspended",
            f"Your job {row.name} was suspended: {reason}.\nEdit it with choices you may use (or ask an admin) "
            "to resume it.\n",
        )

    async def _refusal(self, row: DefinitionRow) -> str | None:
        """Why ``row``'s owner may not run it as defined now, or None. Every scheduled run is
        checked as it appears; when the hub can not be asked, the run goes on (the next
        reconcile decides)."""
        if self.hub is None:
            return None
        try:
            owner = await self.owner(row.owner)
            self._cronjob(validation.Definition(**row.spec), owner, row.version, _names(row))
        except (ChoiceError, Forbidden) as e:  # not entitled, or no longer a user of the hub
            return str(e)
        except Unavailable as e:
            log.warning("job %s of %s: entitlements not checked (%s)", row.name, row.owner, e)
        return None

    async def _stop_job(self, name: str) -> None:
        try:
            await self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
        except client.ApiException as e:
            if e.status != 404:
                raise

    async def ensure_workspace(self, owner: str) -> None:
        """Create the owner's workspace PVC when they never started a server (it is kept)."""
        names = manifests.Names(owner, "")
        try:
            await self.core.read_namespaced_persistent_volume_claim(names.workspace_claim, self.namespace)
            return
        except client.ApiException as e:
            if e.status != 404:
                raise
        st = self.catalog.get().storage
        pvc = manifests.workspace_pvc(names, st, self.storage_class_override or st.storage_class, self.namespace)
        try:
            await self.core.create_namespaced_persistent_volume_claim(self.namespace, pvc)
            log.info("created workspace volume %s for %s", names.workspace_claim, owner)
        except client.ApiException as e:
            if e.status != 409:  # made by the spawner meanwhile
                raise

    async def _prune_snapshots(self, s: Session, row: DefinitionRow, maps: list[Any] | None = None) -> None:
        """Keep the newest ``versions_per_job`` versions in the database (and any a run that
        has not ended uses), and in the cluster only the snapshots a run may still mount:
        the current and previous versions, and those of runs that have not ended. ``maps``:
        the snapshot ConfigMaps when the caller has listed them already."""
        busy = {r.version for r in row.runs if r.status not in ENDED}
        newest = sorted(row.versions, key=lambda v: v.number, reverse=True)
        for v in newest[self.limits.versions_per_job :]:
            if v.number not in busy:
                row.versions.remove(v)
        names = _names(row)
        keep = busy | {row.version, row.version - 1}
        if maps is None:
            selector = f"{manifests.LABEL}component=notebook-job,{manifests.LABEL}job={row.name}"
            maps = (await self.core.list_namespaced_config_map(self.namespace, label_selector=selector)).items
        for cm in maps:
            number = (cm.metadata.labels or {}).get(f"{manifests.LABEL}version", "")
            if not cm.metadata.name.startswith(f"{names.cronjob}-v") or not number.isdigit():
                continue
            if int(number) not in keep:
                try:
                    await self.core.delete_namespaced_config_map(cm.metadata.name, self.namespace)
                except client.ApiException as e:
                    if e.status != 404:
                        raise

    # ---- definitions -------------------------------------------------------------------
    async def create(self, caller: Caller, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidField("body", "must be a JSON object")
        body = dict(body)
        content = validation.check_notebook(body.pop("notebook_content", None))
        defn = self._parse(body, caller.name)
        names = manifests.Names(caller.name, defn.name)
        owner = await self.owner(caller.name, caller)
        cron = self._cronjob(defn, owner, 1, names)  # entitlements checked before anything exists
        with self.db() as s:
            if s.scalar(
                select(DefinitionRow).where(DefinitionRow.owner == caller.name, DefinitionRow.name == defn.name)
            ):
                raise Conflict("name", f"you already have a job named {defn.name!r}")
            have = s.scalar(select(func.count()).select_from(DefinitionRow).where(DefinitionRow.owner == caller.name))
            check_count("name", "jobs", have or 0, self.limits.jobs_per_user)
        await self.ensure_workspace(caller.name)
        with self.db() as s:
            row = DefinitionRow(
                owner=caller.name, name=defn.name, spec=dataclasses.asdict(defn), version=1, cronjob=names.cronjob
            )
            row.versions.append(VersionRow(number=1, notebook=content))
            s.add(row)
            s.flush()
            snapshot = manifests.snapshot_configmap(names, 1, content, self.namespace)
            await self.core.create_namespaced_config_map(self.namespace, snapshot)  # type: ignore[arg-type]
            try:
                await self.batch.create_namespaced_cron_job(self.namespace, cron)  # type: ignore[arg-type]
            except client.ApiException:
                await self.core.delete_namespaced_config_map(names.snapshot(1), self.namespace)
                raise
            self._audit(s, caller.name, "create", row)
            s.commit()
            log.info("job %s of %s created (cronjob %s)", defn.name, caller.name, names.cronjob)
            return views.job(row)

    async def update(self, caller: Caller, job_id: int, body: Any) -> dict[str, Any]:
        """Change a definition; new notebook content freezes a new snapshot version."""
        if not isinstance(body, dict):
            raise InvalidField("body", "must be a JSON object")
        body = dict(body)
        content = body.pop("notebook_content", None)
        with self.db() as s:
            row = self._own(s, caller, job_id)
            if "name" in body and body["name"] != row.name:
                raise InvalidField("name", "a job can not be renamed; create a new one")
            changes = {k for k, v in body.items() if row.spec.get(k) != v}
            if content is not None or changes - {"active"}:
                action = "edit"
            else:
                action = "resume" if body.get("active", row.spec.get("active", True)) else "pause"
            owner = await self._acting_for(caller, row, action)
            defn = self._parse({**row.spec, **body}, row.owner)
            version = row.version
            if content is not None:
                content = validation.check_notebook(content)
                version += 1
            names = _names(row)
            held = row.hold is not None
            try:
                cron = self._cronjob(defn, owner, version, names)
            except ChoiceError:
                if action == "pause" and held:  # pausing a held job needs no entitlement
                    cron = None
                else:
                    raise
            if cron is None:
                row.spec = dataclasses.asdict(defn)
                self._audit(s, caller.name, action, row)
                s.commit()
                return views.job(row)
            if content is not None:
                snapshot = manifests.snapshot_configmap(names, version, content, self.namespace)
                await self.core.create_namespaced_config_map(self.namespace, snapshot)  # type: ignore[arg-type]
                row.versions.append(VersionRow(number=version, notebook=content))
            try:
                current = await self.batch.read_namespaced_cron_job(row.cronjob, self.namespace)
                cron["metadata"]["resourceVersion"] = current.metadata.resource_version
                await self.batch.replace_namespaced_cron_job(row.cronjob, self.namespace, cron)  # type: ignore[arg-type]
            except client.ApiException:
                if content is not None:  # leave nothing half-made: the new snapshot goes too
                    await self.core.delete_namespaced_config_map(names.snapshot(version), self.namespace)
                raise
            row.spec, row.version = dataclasses.asdict(defn), version
            if held:
                row.hold = None
            detail = ", ".join(sorted(changes)) + (f"; notebook version {version}" if content is not None else "")
            self._audit(s, caller.name, action, row, detail)
            s.commit()
            await self._prune_snapshots(s, row)
            s.commit()
            if row.owner != caller.name:
                await self._tell_owner(row, f"{action} by {caller.name}", f"{caller.name} ({action}) {detail}\n")
            return views.job(row)

    def versions(self, caller: Caller, job_id: int) -> list[dict[str, Any]]:
        with self.db() as s:
            row = self._own(s, caller, job_id)
            return [
                {"number": v.number, "created": v.created.isoformat(), "cells": len(v.notebook.get("cells", []))}
                for v in sorted(row.versions, key=lambda v: v.number)
            ]

    def list_jobs(self, caller: Caller) -> list[dict[str, Any]]:
        with self.db() as s:
            q = select(DefinitionRow).order_by(DefinitionRow.id)
            if not caller.admin:
                q = q.where(DefinitionRow.owner == caller.name)
            return [views.job(r) for r in s.scalars(q)]

    def get(self, caller: Caller, job_id: int) -> dict[str, Any]:
        with self.db() as s:
            return views.job(self._own(s, caller, job_id))

    def audit(self, caller: Caller, owner: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Who did what to whose jobs, newest first: a job admin's view of everyone's (or
        ``owner``'s), a user's of their own."""
        with self.db() as s:
            q = select(AuditRow).order_by(AuditRow.id.desc()).limit(max(1, min(limit, 1000)))
            if not caller.admin:
                q = q.where(AuditRow.owner == caller.name)
            elif owner:
                q = q.where(AuditRow.owner == owner)
            return [views.audit(a) for a in s.scalars(q)]

    async def delete(self, caller: Caller, job_id: int, why: str = "") -> None:
        with self.db() as s:
            row = self._own(s, caller, job_id)
            try:
                await self.batch.delete_namespaced_cron_job(
                    row.cronjob, self.namespace, propagation_policy="Background"
                )
            except client.ApiException as e:
                if e.status != 404:
                    raise
            names = _names(row)
            for v in row.versions:
                try:
                    await self.core.delete_namespaced_config_map(names.snapshot(v.number), self.namespace)
                except client.ApiException as e:
                    if e.status != 404:
                        raise
            self._audit(s, caller.name, "delete", row, why or f"{len(row.runs)} run(s) of history removed")
            s.delete(row)
            s.commit()
            if row.owner != caller.name and not why:
                text = f"{caller.name} deleted your job {row.name}.\n"
                await self._tell_owner(row, f"deleted by {caller.name}", text)

    # ---- runs --------------------------------------------------------------------------
    async def run_now(self, caller: Caller, job_id: int) -> dict[str, Any]:
        """Start a run of the current version, built from the definition as its owner may
        run it today (not from the stored CronJob: groups and the catalog may have changed)."""
        with self.db() as s:
            row = self._own(s, caller, job_id)
            owner = await self._acting_for(caller, row, "run")
            if row.hold is not None:
                raise Conflict("id", f"job {row.name} is suspended: {row.hold.reason}")
            active = s.scalar(
                select(func.count())
                .select_from(RunRow)
                .join(DefinitionRow)
                .where(DefinitionRow.owner == row.owner, RunRow.status.in_(("queued", "running")))
            )
            check_count("id", "runs queued or running", active or 0, self.limits.active_runs_per_user)
            try:
                cron = self._cronjob(validation.Definition(**row.spec), owner, row.version, _names(row))
            except ChoiceError as e:
                await self._hold(s, row, str(e))
                s.commit()
                raise
            name = f"{row.cronjob[:45]}-m{secrets.token_hex(2)}"
            job = manifests.manual_job(cron, name)
            await self.batch.create_namespaced_job(self.namespace, job)  # type: ignore[arg-type]
            run = _new_run(row, name, "manual")
            s.add(run)
            self._audit(s, caller.name, "run", row, name)
            s.commit()
            return views.run(run)

    def _run(self, s: Session, caller: Caller, job_id: int, run_id: int) -> RunRow:
        self._own(s, caller, job_id)
        run = s.get(RunRow, run_id)
        if run is None or run.definition_id != job_id:
            raise NotFound("run", f"no run {run_id} of job {job_id}")
        return run

    async def cancel(self, caller: Caller, job_id: int, run_id: int) -> dict[str, Any]:
        with self.db() as s:
            run = self._run(s, caller, job_id, run_id)
            if run.status in ENDED:
                raise Conflict("run", f"run {run_id} already ended ({run.status})")
            try:
                await self.batch.delete_namespaced_job(run.job_name, self.namespace, propagation_policy="Background")
            except client.ApiException as e:
                if e.status != 404:
                    raise
            run.status, run.reason, run.finished = "cancelled", f"cancelled by {caller.name}", utcnow()
            self._audit(s, caller.name, "cancel", run.definition, run.job_name)
            s.commit()
            if run.definition.owner != caller.name:
                text = f"{caller.name} cancelled run {run.job_name} of your job {run.definition.name}.\n"
                await self._tell_owner(run.definition, f"run cancelled by {caller.name}", text)
            return views.run(run)

    async def log(self, caller: Caller, job_id: int, run_id: int) -> dict[str, Any] | None:
        """The run's latest pod, the first ``limits.log_bytes`` of its log
        and progress (cell i of n), or None without a pod."""
        with self.db() as s:
            run = self._run(s, caller, job_id, run_id)
            version = next((v for v in run.definition.versions if v.number == run.version), None)
            cells = len(version.notebook.get("cells", [])) if version else 0
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={run.job_name}")
        if not pods.items:
            return None
        pod = max(pods.items, key=lambda p: p.metadata.creation_timestamp)
        cap = self.limits.log_bytes
        resp: Any = await self.core.read_namespaced_pod_log(
            pod.metadata.name, self.namespace, limit_bytes=cap + 1, _preload_content=False
        )
        data = await resp.content.read(cap + 1)
        resp.release()
        text = data[:cap].decode("utf-8", "replace")
        return {"pod": pod.metadata.name, "log": text, "truncated": len(data) > cap, "progress": progress(text, cells)}

    @asynccontextmanager
    async def log_stream(self, caller: Caller, job_id: int, run_id: int) -> AsyncIterator[Any]:
        """An open response streaming the run's pod log as it grows (None without a started
        pod); at most ``limits.log_streams_per_user`` open per user."""
        with self.db() as s:
            run = self._run(s, caller, job_id, run_id)
        if self._streams[caller.name] >= self.limits.log_streams_per_user:
            raise TooMany(
                "follow",
                f"you have {self._streams[caller.name]} live logs open; close one (at most "
                f"{self.limits.log_streams_per_user})",
            )
        self._streams[caller.name] += 1
        resp: Any = None
        try:
            pods = await self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={run.job_name}")
            running = [p for p in pods.items if p.status.phase in ("Running", "Succeeded", "Failed")]
            if running:
                pod = max(running, key=lambda p: p.metadata.creation_timestamp)
                resp = await self.core.read_namespaced_pod_log(
                    pod.metadata.name, self.namespace, follow=True, _preload_content=False
                )
            yield resp
        finally:
            if resp is not None:
                resp.release()
            self._streams[caller.name] -= 1
            if self._streams[caller.name] <= 0:
                del self._streams[caller.name]

    def runs(self, caller: Caller, job_id: int) -> list[dict[str, Any]]:
        with self.db() as s:
            row = self._own(s, caller, job_id)
            return [views.run(r) for r in sorted(row.runs, key=lambda r: r.id, reverse=True)]

    async def sync_runs(self) -> None:
        """Record every notebook Job the cluster has and its state (Kubernetes is the truth),
        then tell owners about runs that ended."""
        jobs = await self.batch.list_namespaced_job(
            self.namespace, label_selector=f"{manifests.LABEL}component=notebook-job"
        )
        to_tell: list[tuple[dict[str, Any], dict[str, Any]]] = []
        with self.db() as s:
            known = {r.job_name: r for r in s.scalars(select(RunRow))}
            by_cron = {d.cronjob: d for d in s.scalars(select(DefinitionRow))}
            seen: set[str] = set()
            for job in jobs.items:
                name = job.metadata.name
                run = known.get(name)
                if run is None:
                    owner_cron = next(
                        (o.name for o in job.metadata.owner_references or [] if o.kind == "CronJob"), None
                    )
                    defn = by_cron.get(owner_cron or "")
                    if defn is None:
                        continue
                    run = _new_run(defn, name, "schedule")
                    s.add(run)
                    refused = await self._refusal(defn)
                    if refused:  # started by the CronJob before a reconcile suspended it
                        await self._stop_job(name)
                        run.status, run.finished = "cancelled", utcnow()
                        run.reason = f"not started: {refused}"[:1024]
                        await self._hold(s, defn, refused)
                if run.status != "cancelled":
                    was = run.status
                    _apply_job_status(run, job)
                    if run.status == "failed" and was != "failed":
                        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}")
                        why = failure_reason(pods.items)
                        if why:
                            run.reason = f"{why} ({run.reason})"[:1024]
                s.flush()
                seen.add(name)
                wants = run.definition.spec.get("notify") or {}
                ended_badly = run.status in ("failed", "timed_out")
                if not run.notified and (ended_badly or (run.status == "succeeded" and wants.get("on_success"))):
                    run.notified = True
                    if wants.get("emails") or wants.get("webhook"):
                        to_tell.append((views.job(run.definition), views.run(run)))
            # a run whose Job vanished before it ended was replaced ("replace the previous run")
            # or deleted behind our back
            grace = utcnow() - datetime.timedelta(seconds=30)
            for name, run in known.items():
                created = run.created.replace(tzinfo=datetime.UTC) if run.created.tzinfo is None else run.created
                if name not in seen and run.status in ("queued", "running") and created < grace:
                    run.status, run.finished = "cancelled", utcnow()
                    run.reason = "its Job is gone: replaced by a newer run, or deleted"
            s.commit()
        for job_view, run_view in to_tell:
            await self._tell(job_view, run_view)

    async def _tell(self, job: dict[str, Any], run: dict[str, Any]) -> None:
        wants = job.get("notify") or {}
        try:
            if wants.get("emails"):
                await notify.email(self.smtp, job, run, wants["emails"], self.emails)
            if wants.get("webhook"):
                await notify.webhook(wants["webhook"], job, run, self.webhooks)
        except Exception as e:
            log.warning("job %s of %s: notification failed: %s", job["name"], job["owner"], e)

    async def reconcile(self) -> dict[str, list[str]]:
        """Make Kubernetes match the database: recreate missing CronJobs and snapshots,
        remove orphaned CronJobs, suspend jobs their owners may no longer run as defined (and
        resume them when they may again), and remove the jobs of users gone from the hub for
        the grace period. Nothing is decided from a hub answer that could not be read in full."""
        report: dict[str, list[str]] = {
            "recreated": [],
            "orphans_removed": [],
            "owner_gone": [],
            "suspended": [],
            "resumed": [],
        }
        selector = f"{manifests.LABEL}component=notebook-job"
        existing = {
            c.metadata.name
            for c in (await self.batch.list_namespaced_cron_job(self.namespace, label_selector=selector)).items
        }
        snapshot_maps = (await self.core.list_namespaced_config_map(self.namespace, label_selector=selector)).items
        snapshots = {c.metadata.name for c in snapshot_maps}
        users: dict[str, dict[str, Any]] | None = None
        if self.hub is not None:
            try:
                users = {u["name"]: u for u in await self.hub.all_users()}
            except HubReadError as e:
                log.warning("reconcile: %s; entitlements and departures wait for the next pass", e)
        with self.db() as s:
            owners = set(s.scalars(select(DefinitionRow.owner)))
        gone: set[str] = set()
        if self.hub is not None and users is not None:
            gone = await departures.departed(self.hub, self.db, owners, set(users), self.departed_grace)
        with self.db() as s:
            rows = list(s.scalars(select(DefinitionRow)))
            for row in rows:
                if row.owner in gone:
                    report["owner_gone"].append(row.cronjob)
                    continue
                names = _names(row)
                if names.snapshot(row.version) not in snapshots:
                    current = next((v for v in row.versions if v.number == row.version), None)
                    if current is not None:
                        cm = manifests.snapshot_configmap(names, row.version, current.notebook, self.namespace)
                        await self.core.create_namespaced_config_map(self.namespace, cm)  # type: ignore[arg-type]
                if self.hub is None:
                    owner: Caller | None = Caller(row.owner)
                elif users is None or row.owner not in users:
                    owner = None  # unknown now: leave the job as it is
                else:
                    owner = Caller.from_model(users[row.owner], self.admin_groups)
                if owner is None:
                    continue
                try:
                    cron = self._cronjob(validation.Definition(**row.spec), owner, row.version, names)
                except ChoiceError as e:
                    if row.hold is None:
                        await self._hold(s, row, str(e))
                        report["suspended"].append(row.cronjob)
                    continue
                if row.hold is not None:
                    row.hold = None
                    self._audit(s, "moonhub", "release", row, "the owner may run it again")
                    await self._put_cronjob(row.cronjob, cron, row.cronjob in existing)
                    report["resumed"].append(row.cronjob)
                elif row.cronjob not in existing:
                    await self._put_cronjob(row.cronjob, cron, False)
                    report["recreated"].append(row.cronjob)
                await self._prune_snapshots(s, row, snapshot_maps)  # one list for every job
            s.commit()
            known = {r.cronjob for r in rows}
        for name in sorted(existing - known):
            await self.batch.delete_namespaced_cron_job(name, self.namespace, propagation_policy="Background")
            report["orphans_removed"].append(name)
        for name in report["owner_gone"]:
            with self.db() as s:
                left = s.scalar(select(DefinitionRow).where(DefinitionRow.cronjob == name))
                runs = len(left.runs) if left is not None else 0
            if left is not None:
                log.warning(
                    "reconcile: %s left the hub %s ago or earlier: removing job %s (cronjob %s, %d run(s) of history)",
                    left.owner,
                    self.departed_grace,
                    left.name,
                    name,
                    runs,
                )
                await self.delete(Caller("moonhub", admin=True), left.id, why=f"owner {left.owner} left the hub")
        for what, objects in report.items():
            if objects:
                log.warning("reconcile: %s: %s", what.replace("_", " "), ", ".join(objects))
        return report

    async def _put_cronjob(self, name: str, cron: dict[str, Any], exists: bool) -> None:
        if not exists:
            await self.batch.create_namespaced_cron_job(self.namespace, cron)  # type: ignore[arg-type]
            return
        current = await self.batch.read_namespaced_cron_job(name, self.namespace)
        cron["metadata"]["resourceVersion"] = current.metadata.resource_version
        await self.batch.replace_namespaced_cron_job(name, self.namespace, cron)  # type: ignore[arg-type]

    def trim_history(self) -> int:
        """Keep each job's newest ``keep_runs`` runs; outputs in workspaces stay."""
        removed = 0
        with self.db() as s:
            for row in s.scalars(select(DefinitionRow)):
                keep = int(row.spec.get("keep_runs", 20))
                old = sorted(row.runs, key=lambda r: r.id, reverse=True)[keep:]
                for run in old:
                    if run.status in ("succeeded", "failed", "timed_out", "cancelled"):
                        s.delete(run)
                        removed += 1
            s.commit()
        return removed

    async def sync_forever(self, interval: float = 2.0, reconcile_every: float = 300.0) -> None:
        """Follow runs every ``interval`` seconds; reconcile (entitlements and departed
        users included) every ``reconcile_every`` seconds."""
        last = time.monotonic()
        while True:
            try:
                await self.sync_runs()
                self.trim_history()
                if time.monotonic() - last >= reconcile_every:
                    last = time.monotonic()
                    await self.reconcile()
            except Exception:
                log.exception("syncing runs failed")
            await asyncio.sleep(interval)


def _names(row: DefinitionRow) -> manifests.Names:
    return manifests.Names(row.owner, row.name, stored=row.cronjob)


def _new_run(defn: DefinitionRow, job_name: str, trigger: str) -> RunRow:
    """A run of the definition's current version; its output lands in the owner's workspace."""
    output = f"{manifests.OUTPUT_DIR}/{defn.name}/{job_name}.ipynb"
    return RunRow(definition_id=defn.id, job_name=job_name, version=defn.version, trigger=trigger, output=output)


def progress(log_text: str, cells: int) -> dict[str, int] | None:
    """Cell i of n from papermill's "Executing Cell i" log lines (pure). papermill numbers
    every cell, and adds one when it injects parameters (the runner's first line lists them)."""
    found = re.findall(r"Executing Cell (\d+)-", log_text)
    if not found:
        return None
    injected = "with parameters [" in log_text and "with parameters []" not in log_text
    done = int(found[-1])
    return {"cell": done, "of": max(cells + injected, done)}


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


def _apply_job_status(run: RunRow, job: client.V1Job) -> None:
    st = job.status
    if st.start_time and not run.started:
        run.started = st.start_time
    conds = {c.type: c for c in st.conditions or [] if c.status == "True"}
    if "Complete" in conds:
        run.status, run.finished = "succeeded", st.completion_time or conds["Complete"].last_transition_time
    elif "Failed" in conds:
        c = conds["Failed"]
        run.status = "timed_out" if c.reason == "DeadlineExceeded" else "failed"
        run.reason, run.finished = f"{c.reason}: {c.message}"[:1024], c.last_transition_time or utcnow()
    elif st.active:
        run.status = "running"
