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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spawner_ext import choices as ch
from spawner_ext.catalog import CatalogStore
from spawner_ext.workload import build

from . import manifests, notify, validation, views
from .db import DefinitionRow, RunRow, VersionRow, utcnow
from .errors import Conflict, InvalidField, NotFound

log = logging.getLogger("moonhub.jobs")


@dataclass(frozen=True)
class Caller:
    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False


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
    ) -> None:
        self.smtp = smtp or notify.SmtpSettings()
        self.db, self.catalog, self.namespace, self.workspace = db, catalog, namespace, workspace
        self.storage_class_override = storage_class_override
        self.api = api
        self.core, self.batch = client.CoreV1Api(api), client.BatchV1Api(api)

    # ---- helpers ---------------------------------------------------------------------
    def _own(self, s: Session, caller: Caller, job_id: int) -> DefinitionRow:
        row = s.get(DefinitionRow, job_id)
        if row is None or (row.owner != caller.name and not caller.admin):
            raise NotFound("id", f"no job {job_id}")  # another user's id looks like a missing one
        return row

    def _cronjob(self, defn: validation.Definition, owner: Caller, version: int) -> dict[str, Any]:
        cat = self.catalog.get()
        choice = ch.parse(defn.choices(), cat, ch.allowed(cat, owner.groups, owner.admin))
        w = build(cat, choice, manifests.Names(owner.name, defn.name).workspace_claim)
        return manifests.cronjob(
            defn, manifests.Names(owner.name, defn.name), version, w, self.namespace, self.workspace
        )

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

    # ---- definitions -------------------------------------------------------------------
    async def create(self, caller: Caller, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidField("body", "must be a JSON object")
        body = dict(body)
        content = validation.check_notebook(body.pop("notebook_content", None))
        defn = validation.parse(body)
        cron = self._cronjob(defn, caller, 1)  # entitlements checked before anything exists
        names = manifests.Names(caller.name, defn.name)
        await self.ensure_workspace(caller.name)
        with self.db() as s:
            if s.scalar(
                select(DefinitionRow).where(DefinitionRow.owner == caller.name, DefinitionRow.name == defn.name)
            ):
                raise Conflict("name", f"you already have a job named {defn.name!r}")
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
            merged = {**row.spec, **body}
            defn = validation.parse(merged)
            version = row.version
            if content is not None:
                content = validation.check_notebook(content)
                version += 1
            owner = caller if row.owner == caller.name else Caller(row.owner)
            cron = self._cronjob(defn, owner, version)
            names = manifests.Names(row.owner, row.name)
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
            s.commit()
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

    async def delete(self, caller: Caller, job_id: int) -> None:
        with self.db() as s:
            row = self._own(s, caller, job_id)
            try:
                await self.batch.delete_namespaced_cron_job(
                    row.cronjob, self.namespace, propagation_policy="Background"
                )
            except client.ApiException as e:
                if e.status != 404:
                    raise
            names = manifests.Names(row.owner, row.name)
            for v in row.versions:
                try:
                    await self.core.delete_namespaced_config_map(names.snapshot(v.number), self.namespace)
                except client.ApiException as e:
                    if e.status != 404:
                        raise
            s.delete(row)
            s.commit()

    # ---- runs --------------------------------------------------------------------------
    async def run_now(self, caller: Caller, job_id: int) -> dict[str, Any]:
        with self.db() as s:
            row = self._own(s, caller, job_id)
            cron = await self.batch.read_namespaced_cron_job(row.cronjob, self.namespace)
            raw = self.api.sanitize_for_serialization(cron)
            name = f"{row.cronjob[:45]}-m{secrets.token_hex(2)}"
            job = manifests.manual_job(raw, name)
            await self.batch.create_namespaced_job(self.namespace, job)  # type: ignore[arg-type]
            run = _new_run(row, name, "manual")
            s.add(run)
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
            if run.status in ("succeeded", "failed", "timed_out", "cancelled"):
                raise Conflict("run", f"run {run_id} already ended ({run.status})")
            try:
                await self.batch.delete_namespaced_job(run.job_name, self.namespace, propagation_policy="Background")
            except client.ApiException as e:
                if e.status != 404:
                    raise
            run.status, run.reason, run.finished = "cancelled", f"cancelled by {caller.name}", utcnow()
            s.commit()
            return views.run(run)

    async def log(self, caller: Caller, job_id: int, run_id: int) -> dict[str, Any] | None:
        """The run's latest pod, its log and progress (cell i of n), or None without a pod."""
        with self.db() as s:
            run = self._run(s, caller, job_id, run_id)
            version = next((v for v in run.definition.versions if v.number == run.version), None)
            cells = len(version.notebook.get("cells", [])) if version else 0
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={run.job_name}")
        if not pods.items:
            return None
        pod = max(pods.items, key=lambda p: p.metadata.creation_timestamp)
        resp: Any = await self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace, _preload_content=False)
        text = await resp.text()
        return {"pod": pod.metadata.name, "log": text, "progress": progress(text, cells)}

    async def follow_log(self, caller: Caller, job_id: int, run_id: int) -> Any:
        """An open response streaming the run's pod log as it grows, or None without a pod."""
        with self.db() as s:
            run = self._run(s, caller, job_id, run_id)
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={run.job_name}")
        running = [p for p in pods.items if p.status.phase in ("Running", "Succeeded", "Failed")]
        if not running:
            return None
        pod = max(running, key=lambda p: p.metadata.creation_timestamp)
        return await self.core.read_namespaced_pod_log(
            pod.metadata.name, self.namespace, follow=True, _preload_content=False
        )

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
                await notify.email(self.smtp, job, run, wants["emails"])
            if wants.get("webhook"):
                await notify.webhook(wants["webhook"], job, run)
        except Exception as e:
            log.warning("job %s of %s: notification failed: %s", job["name"], job["owner"], type(e).__name__)

    async def reconcile(self, hub_users: set[str] | None = None) -> dict[str, list[str]]:
        """Make Kubernetes match the database: recreate missing CronJobs and snapshots, remove
        orphaned CronJobs, and remove the jobs of users the hub no longer has."""
        report: dict[str, list[str]] = {"recreated": [], "orphans_removed": [], "owner_gone": []}
        selector = f"{manifests.LABEL}component=notebook-job"
        existing = {
            c.metadata.name
            for c in (await self.batch.list_namespaced_cron_job(self.namespace, label_selector=selector)).items
        }
        snapshots = {
            c.metadata.name
            for c in (await self.core.list_namespaced_config_map(self.namespace, label_selector=selector)).items
        }
        with self.db() as s:
            rows = list(s.scalars(select(DefinitionRow)))
            for row in rows:
                if hub_users is not None and row.owner not in hub_users:
                    report["owner_gone"].append(row.cronjob)
                    continue
                names = manifests.Names(row.owner, row.name)
                for v in row.versions:
                    if names.snapshot(v.number) not in snapshots and v.number == row.version:
                        cm = manifests.snapshot_configmap(names, v.number, v.notebook, self.namespace)
                        await self.core.create_namespaced_config_map(self.namespace, cm)  # type: ignore[arg-type]
                if row.cronjob not in existing:
                    defn = validation.Definition(**row.spec)
                    cron = self._cronjob(defn, Caller(row.owner, admin=True), row.version)
                    await self.batch.create_namespaced_cron_job(self.namespace, cron)  # type: ignore[arg-type]
                    report["recreated"].append(row.cronjob)
            known = {r.cronjob for r in rows}
        for name in sorted(existing - known):
            await self.batch.delete_namespaced_cron_job(name, self.namespace, propagation_policy="Background")
            report["orphans_removed"].append(name)
        for name in report["owner_gone"]:
            with self.db() as s:
                gone = s.scalar(select(DefinitionRow).where(DefinitionRow.cronjob == name))
            if gone is not None:
                await self.delete(Caller(gone.owner, admin=True), gone.id)
        for what, objects in report.items():
            if objects:
                log.warning("reconcile: %s: %s", what.replace("_", " "), ", ".join(objects))
        return report

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

    async def sync_forever(
        self,
        interval: float = 2.0,
        reconcile_every: float = 300.0,
        hub_users: Callable[[], Awaitable[set[str] | None]] | None = None,
    ) -> None:
        """Follow runs every ``interval`` seconds; reconcile (departed users included) every
        ``reconcile_every`` seconds."""
        last = time.monotonic()
        while True:
            try:
                await self.sync_runs()
                self.trim_history()
                if time.monotonic() - last >= reconcile_every:
                    last = time.monotonic()
                    await self.reconcile(await hub_users() if hub_users else None)
            except Exception:
                log.exception("syncing runs failed")
            await asyncio.sleep(interval)


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
