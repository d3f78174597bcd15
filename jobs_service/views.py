"""Definitions and runs as the API shows them. Pure (rows in, JSON-ready dicts out)."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import preview
from .db import AuditRow, DefinitionRow, RunRow, TaskRunRow, utc


def _utc(t: datetime.datetime | None) -> datetime.datetime | None:
    return utc(t) if t else None


def _iso(t: datetime.datetime | None) -> str | None:
    return utc(t).isoformat() if t else None


def job(row: DefinitionRow) -> dict[str, Any]:
    """A definition with its schedule in words, its next run (while active) and its newest run."""
    spec = row.spec
    schedule, tz = spec.get("schedule"), spec.get("timezone") or "UTC"
    now = datetime.datetime.now(datetime.UTC)
    last = max(row.runs, key=lambda r: r.id, default=None)
    return {
        "id": row.id,
        "owner": row.owner,
        # the team that owns it (its members see it; it runs as the team), or None
        "team": row.team,
        "version": row.version,
        "cronjob": row.cronjob,
        "created": row.created.isoformat(),
        "updated": row.updated.isoformat(),
        "kernel": "",  # (not stored when unset: jobspec.to_stored)
        **spec,
        "schedule_description": preview.describe(schedule) if schedule else preview.BY_HAND,
        "next_run": preview.next_runs(schedule, tz, now, 1)[0].isoformat()
        if schedule and spec.get("active", True) and not row.hold
        else None,
        "last_run": run(last) if last else None,
        # suspended by MoonHub: the owner may no longer run it as defined
        "suspended_reason": row.hold.reason if row.hold else None,
    }


def run(r: RunRow) -> dict[str, Any]:
    started, finished, created = _utc(r.started), _utc(r.finished), _utc(r.created)
    c = r.context
    deps = {t["name"]: t for t in r.definition.spec.get("tasks") or []}
    duration = (finished - started).total_seconds() if started and finished else None
    return {
        "id": r.id,
        "job_id": r.definition_id,
        "name": r.job_name,
        "version": r.version,
        "trigger": r.trigger,
        "status": r.status,
        "reason": r.reason,
        "output": r.output,
        "created": created.isoformat() if created else None,
        "started": started.isoformat() if started else None,
        "finished": finished.isoformat() if finished else None,
        "duration_seconds": duration,
        "progress": progress(r),
        # the time the run stands for (in the job's time zone: its date is {{run.date}}),
        # what its notebook received, the run it repeats
        "scheduled_for": _in_zone(c.scheduled_for, r.definition.spec.get("timezone")) if c else None,
        "parameters": (c.parameters if c.parameters is not None else c.given) if c else None,
        "rerun_of": c.rerun_of if c else None,
        "upstream_run": c.upstream_run if c else None,
        # what it kept with it (``outputs``): its executed notebook, and files of its run folder
        "output_kept": bool(c and c.output_bytes is not None),
        "files": c.files if c else 0,
        # a pipeline run's tasks, in the job's order, with what they depend on
        "tasks": [task(t, deps.get(t.task)) for t in r.tasks] if r.tasks else None,
    }


def task(t: TaskRunRow, spec: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "name": t.task,
        "status": t.status,
        "attempt": t.attempt,
        "job_name": t.job_name,
        "reason": t.reason,
        "started": _iso(t.started),
        "finished": _iso(t.finished),
        "depends_on": list((spec or {}).get("depends_on") or []),
        "run_if": (spec or {}).get("run_if") or "all_succeeded",
        "published": t.published or {},
    }


def _in_zone(t: datetime.datetime | None, zone: str | None) -> str | None:
    return utc(t).astimezone(ZoneInfo(zone or "UTC")).isoformat() if t else None


def progress(r: RunRow) -> dict[str, int] | None:
    """Cell i of n, as last recorded while the run ran (None before its first cell)."""
    p = r.progress
    return {"cell": p.cell, "of": p.of} if p is not None and p.cell else None


def audit(a: AuditRow) -> dict[str, Any]:
    at = _utc(a.at)
    return {
        "at": at.isoformat() if at else None,
        "actor": a.actor,
        "action": a.action,
        "owner": a.owner,
        "job_id": a.job_id,
        "job": a.job_name,
        "detail": a.detail,
    }
