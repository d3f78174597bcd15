"""Usage reports: the figures the sampler (:mod:`.usage`) stored per day, user and team, as
people ask for them — by day, per user and per team, as JSON or CSV — and who may see which
(``GET /api/v1/usage``, docs/observability.md).

Job admins see everyone's, per user and team (or one user's, or one team's); a user sees
their own rows and the totals of the teams they are in, not their colleagues' own figures.
Everyone's totals are summed by the database (a row per user and day is many rows).
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from moonhub_core.errors import FieldError, Forbidden

from .context import Caller, Context
from .db import GpuUsageRow, UsageRow, utcnow
from .usage import USAGE_FIGURES

#: a report's figures, in the order of the CSV's columns
FIGURES = ("cpu_hours", "memory_gib_hours", "gpu_hours", "storage_gib_days", "storage_used_gib_days")
MAX_DAYS = 366


@dataclass(frozen=True)
class DayRow:
    day: str
    user: str
    team: str
    cpu_seconds: float = 0.0
    memory_gib_seconds: float = 0.0
    gpu_seconds: float = 0.0
    storage_gib_seconds: float = 0.0
    storage_used_gib_seconds: float = 0.0

    def figures(self) -> dict[str, float]:
        return {
            "cpu_hours": self.cpu_seconds / 3600,
            "memory_gib_hours": self.memory_gib_seconds / 3600,
            "gpu_hours": self.gpu_seconds / 3600,
            "storage_gib_days": self.storage_gib_seconds / 86400,
            "storage_used_gib_days": self.storage_used_gib_seconds / 86400,
        }


def _zero() -> dict[str, float]:
    return dict.fromkeys(FIGURES, 0.0)


def _add(into: dict[str, float], more: Mapping[str, float]) -> None:
    for k in FIGURES:
        into[k] += more[k]


def _rounded(d: Mapping[str, float]) -> dict[str, float]:
    return {k: round(d[k], 3) for k in FIGURES}


def build(
    rows: Iterable[DayRow], days: list[str], *, own: str | None = None, teams: Iterable[str] | None = None
) -> dict[str, Any]:
    """The report over ``days`` (ISO dates, oldest first) from the stored rows (pure).

    ``own=None`` and ``teams=None``: everything (job admins). Otherwise only the rows of the
    user ``own`` are listed, and the totals of ``teams`` (the caller's groups) without their
    members' rows."""
    mine_only = own is not None or teams is not None
    team_set = set(teams or ())
    listed: list[dict[str, Any]] = []
    per_day = {d: _zero() for d in days}
    per_user: dict[str, dict[str, float]] = {}
    per_team: dict[str, dict[str, float]] = {}
    for r in sorted(rows, key=lambda r: (r.day, r.user, r.team)):
        if r.day not in per_day:
            continue
        f = r.figures()
        if r.team and (not mine_only or r.team in team_set):
            _add(per_team.setdefault(r.team, _zero()), f)
        if mine_only and r.user != own:
            continue
        listed.append({"day": r.day, "user": r.user, "team": r.team, **_rounded(f)})
        _add(per_day[r.day], f)
        if r.user:
            _add(per_user.setdefault(r.user, _zero()), f)
    return _document("own" if mine_only else "all", per_day, per_user, per_team, listed)


def totals(per_owner: Iterable[DayRow], per_day: Mapping[str, DayRow], days: list[str]) -> dict[str, Any]:
    """Everyone's report without its rows, from sums the database made (pure): ``per_owner``
    summed over the days per user and team (their ``day`` unused), ``per_day`` summed per
    day. The same figures as :func:`build` gives from the rows."""
    users: dict[str, dict[str, float]] = {}
    teams: dict[str, dict[str, float]] = {}
    for r in per_owner:
        f = r.figures()
        if r.user:
            _add(users.setdefault(r.user, _zero()), f)
        if r.team:
            _add(teams.setdefault(r.team, _zero()), f)
    by_day = {d: per_day[d].figures() if d in per_day else _zero() for d in days}
    return _document("all", by_day, users, teams, [])


def _document(
    scope: str,
    per_day: dict[str, dict[str, float]],
    per_user: dict[str, dict[str, float]],
    per_team: dict[str, dict[str, float]],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report as served: ``per_day`` names every day asked for, oldest first."""
    days = list(per_day)
    total = _zero()
    for f in per_day.values():
        _add(total, f)
    return {
        "since": days[0] if days else "",
        "until": days[-1] if days else "",
        "days": len(days),
        "scope": scope,
        "total": _rounded(total),
        "by_day": [{"day": d, **_rounded(f)} for d, f in per_day.items()],
        "users": [{"user": u, **_rounded(f)} for u, f in sorted(per_user.items(), key=lambda kv: _order(kv))],
        "teams": [{"team": t, **_rounded(f)} for t, f in sorted(per_team.items(), key=lambda kv: _order(kv))],
        "rows": rows,
    }


def _order(kv: tuple[str, Mapping[str, float]]) -> tuple[float, float, str]:
    """The largest GPU users first, then CPU, then by name."""
    return (-kv[1]["gpu_hours"], -kv[1]["cpu_hours"], kv[0])


def as_csv(report: Mapping[str, Any]) -> str:
    """The report's rows as CSV: one line per day, user and team (pure). A team folder's line
    has no user."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["day", "user", "team", *FIGURES])
    for r in report["rows"]:
        w.writerow([r["day"], r["user"], r["team"], *(f"{r[k]:.3f}" for k in FIGURES)])
    return out.getvalue()


def day_range(days: int, until: datetime.date | None = None) -> list[str]:
    """The ``days`` last days up to ``until`` (today, UTC), oldest first."""
    end = until or utcnow().date()
    return [(end - datetime.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def report(
    ctx: Context, caller: Caller, days: int, user: str | None = None, team: str | None = None, rows: bool = True
) -> dict[str, Any]:
    """Usage over the last ``days`` days (today included). Job admins: everyone's, or one
    ``user``'s or ``team``'s. Others: their own and their teams' totals; asking for another
    user, or a team they are not in, is refused (403). ``rows=False`` leaves the rows out
    (everyone's, by day, are many: the console's charts and tables need only the totals)."""
    if caller.admin and not rows and 1 <= days <= MAX_DAYS:
        return _summed(ctx, day_range(days), user, team)
    found = _report(ctx, caller, days, user, team)
    if not rows:
        found["rows"] = []
    return found


def _summed(ctx: Context, span: list[str], user: str | None, team: str | None) -> dict[str, Any]:
    """Everyone's totals (or one user's or team's), summed by the database: per user and
    team, and per day (a row per user and day is many rows to read)."""
    per_owner: dict[tuple[str, str], dict[str, float]] = {}
    per_day: dict[str, dict[str, float]] = {}
    with ctx.db() as s:
        for model, figures in ((UsageRow, USAGE_FIGURES), (GpuUsageRow, ("gpu_seconds",))):
            where = model.day >= span[0]
            if user is not None:
                where = where & (model.user == user)
            if team is not None:
                where = where & (model.team == team)
            sums = [func.sum(getattr(model, f)) for f in figures]
            for who, group, *got in s.execute(
                select(model.user, model.team, *sums).where(where).group_by(model.user, model.team)
            ):
                per_owner.setdefault((who, group), {}).update(zip(figures, (float(g or 0) for g in got), strict=True))
            for day, *got in s.execute(select(model.day, *sums).where(where).group_by(model.day)):
                per_day.setdefault(day, {}).update(zip(figures, (float(g or 0) for g in got), strict=True))
    return totals(
        [DayRow("", who, group, **f) for (who, group), f in per_owner.items()],
        {day: DayRow(day, "", "", **f) for day, f in per_day.items()},
        span,
    )


def _report(ctx: Context, caller: Caller, days: int, user: str | None, team: str | None) -> dict[str, Any]:
    if not 1 <= days <= MAX_DAYS:
        raise FieldError("days", f"must be a whole number from 1 to {MAX_DAYS}")
    if user is not None and user != caller.name and not caller.admin:
        raise Forbidden("user", "another user's usage is for job admins")
    if team is not None and team not in caller.groups and not caller.admin:
        raise Forbidden("team", f"you are not in the team {team!r}: its usage is for its members and job admins")
    span = day_range(days)
    if caller.admin:
        stored = _rows(ctx, span[0])
        if team is not None:
            stored = [r for r in stored if r.team == team]
        if user is not None:
            stored = [r for r in stored if r.user == user]
        return build(stored, span)
    teams = [team] if team is not None else list(caller.groups)
    stored = _rows(ctx, span[0], caller.name, teams)
    if team is not None:
        stored = [r for r in stored if r.team == team]
    return build(stored, span, own=caller.name, teams=teams)


def _rows(ctx: Context, since: str, user: str | None = None, teams: list[str] | None = None) -> list[DayRow]:
    """The stored rows from ``since`` on, GPU-seconds joined to the rest (plain tuples: there
    may be a row per user and day); with ``user``, only theirs and their ``teams``'."""

    def mine(model: Any) -> Any:
        if user is None:
            return model.day >= since
        return (model.day >= since) & ((model.user == user) | model.team.in_(teams or []))

    merged: dict[tuple[str, str, str], dict[str, float]] = {}
    with ctx.db() as s:
        columns = [UsageRow.day, UsageRow.user, UsageRow.team, *(getattr(UsageRow, f) for f in USAGE_FIGURES)]
        for day, who, team, *figures in s.execute(select(*columns).where(mine(UsageRow))):
            merged[(day, who, team)] = dict(zip(USAGE_FIGURES, figures, strict=True))
        gpu = select(GpuUsageRow.day, GpuUsageRow.user, GpuUsageRow.team, GpuUsageRow.gpu_seconds)
        for day, who, team, seconds in s.execute(gpu.where(mine(GpuUsageRow))):
            merged.setdefault((day, who, team), {})["gpu_seconds"] = seconds
    return [DayRow(day, who, team, **f) for (day, who, team), f in merged.items()]
