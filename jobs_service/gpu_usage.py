"""GPU-hours per user and per team: sampled from what Kueue has admitted (servers and job
runs alike), stored per day, served to job admins (``GET /api/v1/gpu-usage``) and counted for
Prometheus (``moonhub_gpu_seconds_total``).

Each sample adds, for every admitted Workload, its GPUs times the time since the last sample
(at most :data:`MAX_STEP`: a service that was down does not guess what ran meanwhile).
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from prometheus_client import Counter
from sqlalchemy import select

from moonhub_core import admissions
from moonhub_core import queue_objects as q
from moonhub_core.admissions import holds
from moonhub_core.errors import FieldError, Forbidden

from .context import Caller, Context
from .db import GpuUsageRow, utcnow

#: seconds between samples
EVERY = 15.0
#: the longest step one sample counts
MAX_STEP = 60.0

GPU_SECONDS = Counter(
    "moonhub_gpu_seconds",
    "GPU-seconds Kueue admitted to MoonHub's servers and job runs, by user and team",
    ["user", "team"],
)


class Sampler:
    def __init__(self) -> None:
        self.last: float | None = None

    async def sample(self, ctx: Context) -> int:
        """Add the time since the last sample to every admitted Workload's owner; returns
        the GPUs held now."""
        now = time.monotonic()
        step = 0.0 if self.last is None else min(MAX_STEP, now - self.last)
        self.last = now
        owners: dict[str, tuple[str, str]] = {}
        for cq in await ctx.queues.objects("ClusterQueue", selector=f"{q.MANAGED}={ctx.settings.queue_prefix}"):
            meta = cq.get("metadata") or {}
            user = (meta.get("annotations") or {}).get(q.USER_ANNOTATION)
            if user:
                team = ((meta.get("annotations") or {}).get(q.GROUPS_ANNOTATION) or "").split(",")
                cohort = (cq.get("spec") or {}).get("cohortName") or ""
                owners[q.user_local_queue(user, ctx.settings.queue_prefix)] = (
                    user,
                    _team(cohort, team, ctx.settings.queue_prefix),
                )
        held: dict[tuple[str, str], int] = {}
        for wl in await ctx.queues.objects("Workload", ctx.settings.namespace):
            found = owners.get(str((wl.get("spec") or {}).get("queueName") or ""))
            gpus = admissions.workload_gpus(wl) if found and holds(wl) else 0
            if found and gpus:  # (CPU-only servers and runs are queued too: not GPU usage)
                held[found] = held.get(found, 0) + gpus
        if step:
            day = utcnow().date().isoformat()
            with ctx.db() as s:
                for (user, team), gpus in held.items():
                    row = s.get(GpuUsageRow, (day, user, team)) or GpuUsageRow(day=day, user=user, team=team)
                    row.gpu_seconds = (row.gpu_seconds or 0.0) + gpus * step
                    s.add(row)
                    GPU_SECONDS.labels(user=user, team=team).inc(gpus * step)
                s.commit()
        return sum(held.values())


def _team(cohort: str, groups: list[str], prefix: str) -> str:
    """The group whose team cohort a queue is in ("" for the shared pool)."""
    return next((g for g in groups if g and q.team_cohort(g, prefix) == cohort), "")


def report(ctx: Context, caller: Caller, days: int) -> dict[str, Any]:
    """GPU-hours over the last ``days`` days (today included), per user and per team."""
    if not caller.admin:
        raise Forbidden("gpu-usage", "GPU usage of all users is for job admins")
    if not 1 <= days <= 366:
        raise FieldError("days", "must be a whole number from 1 to 366")
    since = (utcnow().date() - datetime.timedelta(days=days - 1)).isoformat()
    users: dict[str, float] = {}
    teams: dict[str, float] = {}
    with ctx.db() as s:
        for row in s.scalars(select(GpuUsageRow).where(GpuUsageRow.day >= since)):
            users[row.user] = users.get(row.user, 0.0) + row.gpu_seconds / 3600
            teams[row.team] = teams.get(row.team, 0.0) + row.gpu_seconds / 3600

    def listed(d: dict[str, float], key: str) -> list[dict[str, Any]]:
        return [{key: k, "gpu_hours": round(v, 3)} for k, v in sorted(d.items(), key=lambda kv: -kv[1])]

    return {"since": since, "days": days, "users": listed(users, "user"), "teams": listed(teams, "team")}
