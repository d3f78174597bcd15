"""GPU-hours per user and per team, as job admins have asked for them since before the usage
reports (``GET /api/v1/gpu-usage``). The GPU-seconds are sampled with the rest of the usage
(:mod:`.usage`, which also reports them by day, with CPU, memory and storage).
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import select

from moonhub_core.errors import FieldError, Forbidden

from .context import Caller, Context
from .db import GpuUsageRow, utcnow


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
