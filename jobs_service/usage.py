"""Usage per user and team, by day: CPU-, memory- and GPU-hours Kueue admitted (servers and
job runs alike) and the storage their workspaces and team folders hold. Sampled by the jobs
service, stored per day (``usage`` and ``gpu_usage``), served as reports
(``GET /api/v1/usage``, JSON or CSV) and counted for Prometheus.

- **Compute** is what was *reserved*: each sample adds, for every Workload Kueue holds
  admitted, its admitted CPU cores, memory and GPUs times the time since the last sample (at
  most :data:`MAX_STEP`: a service that was down does not guess what ran meanwhile). A server
  that idles at its guarantee costs the same as one that works: that is what it kept from
  others. What pods *used* is in Prometheus (docs/observability.md).
- **Storage** is each claim's size (what the storage holds for it) and its use as the
  storage agent last measured, sampled every :data:`STORAGE_EVERY` seconds. A workspace counts
  for its user; a team folder for its team (user "").

Who sees what (:func:`report`): job admins everyone's, per user and team; a user their own
rows, and the totals of the teams they are in (not their colleagues' own figures).
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from moonhub_core import admissions
from moonhub_core import queue_objects as q
from moonhub_core import workspaces as ws
from moonhub_core.errors import FieldError, Forbidden

from .context import Caller, Context
from .db import GpuUsageRow, UsageRow, utcnow

#: seconds between samples of what Kueue holds
EVERY = 15.0
#: the longest step one sample counts
MAX_STEP = 60.0
#: seconds between samples of the claims (a list of every claim in the namespace)
STORAGE_EVERY = 300.0
#: the longest step one storage sample counts
MAX_STORAGE_STEP = 2 * STORAGE_EVERY
GIB = float(2**30)

GPU_SECONDS = Counter(
    "moonhub_gpu_seconds",
    "GPU-seconds Kueue admitted to MoonHub's servers and job runs, by user and team",
    ["user", "team"],
)
CPU_SECONDS = Counter(
    "moonhub_cpu_reserved_seconds",
    "CPU core-seconds Kueue admitted to MoonHub's servers and job runs, by user and team",
    ["user", "team"],
)
MEMORY_SECONDS = Counter(
    "moonhub_memory_reserved_gib_seconds",
    "GiB-seconds of memory Kueue admitted to MoonHub's servers and job runs, by user and team",
    ["user", "team"],
)

#: (user, team)
Owner = tuple[str, str]


@dataclass
class Held:
    """What one owner holds at a sample."""

    cpu: float = 0.0
    memory_gib: float = 0.0
    gpus: int = 0


@dataclass
class Stored:
    size_gib: float = 0.0
    used_gib: float = 0.0


def owners(cluster_queues: Iterable[Mapping[str, Any]], prefix: str) -> dict[str, Owner]:
    """Each user's LocalQueue name to (user, team), from MoonHub's ClusterQueues (pure)."""
    found: dict[str, Owner] = {}
    for cq in cluster_queues:
        meta = cq.get("metadata") or {}
        notes = meta.get("annotations") or {}
        user = notes.get(q.USER_ANNOTATION)
        if user:
            groups = (notes.get(q.GROUPS_ANNOTATION) or "").split(",")
            cohort = (cq.get("spec") or {}).get("cohortName") or ""
            found[q.user_local_queue(user, prefix)] = (user, _team(cohort, groups, prefix))
    return found


def _team(cohort: str, groups: list[str], prefix: str) -> str:
    """The group whose team cohort a queue is in ("" for the shared pool)."""
    return next((g for g in groups if g and q.team_cohort(g, prefix) == cohort), "")


def holdings(workloads: Iterable[Mapping[str, Any]], queues: Mapping[str, Owner]) -> dict[Owner, Held]:
    """What each owner's admitted Workloads hold (pure)."""
    held: dict[Owner, Held] = {}
    for wl in workloads:
        found = queues.get(str((wl.get("spec") or {}).get("queueName") or ""))
        if not found or not admissions.holds(wl):
            continue
        got = admissions.workload_usage(wl)
        h = held.setdefault(found, Held())
        h.cpu += got.get("cpu", 0.0)
        h.memory_gib += got.get("memory", 0.0) / GIB
        h.gpus += admissions.workload_gpus(wl)
    return held


def storage(claims: Iterable[Mapping[str, Any]]) -> dict[Owner, Stored]:
    """What each user's workspace and each team's folder hold (pure; claims as API dicts).
    Claims that are not MoonHub's (no owner on them) are left out."""
    out: dict[Owner, Stored] = {}
    for pvc in claims:
        u = ws.usage(pvc)
        if not u.user or u.phase not in ("Bound", ""):
            continue
        who = ("", u.user) if u.kind == ws.TEAM_FOLDER else (u.user, "")
        st = out.setdefault(who, Stored())
        st.size_gib += u.total_bytes / GIB
        st.used_gib += (u.used_bytes or 0) / GIB
    return out


@dataclass
class Sampler:
    last: float | None = None
    last_storage: float | None = None
    #: the storage as last read (counted at each storage sample)
    stored: dict[Owner, Stored] = field(default_factory=dict)

    async def sample(self, ctx: Context) -> int:
        """Add the time since the last sample to every admitted Workload's owner (and, every
        :data:`STORAGE_EVERY`, to every claim's); returns the GPUs held now."""
        now = time.monotonic()
        step = 0.0 if self.last is None else min(MAX_STEP, now - self.last)
        self.last = now
        prefix = ctx.settings.queue_prefix
        queues = owners(await ctx.queues.objects("ClusterQueue", selector=f"{q.MANAGED}={prefix}"), prefix)
        held = holdings(await ctx.queues.objects("Workload", ctx.settings.namespace), queues)
        storage_step = 0.0
        if self.last_storage is None or now - self.last_storage >= STORAGE_EVERY:
            storage_step = 0.0 if self.last_storage is None else min(MAX_STORAGE_STEP, now - self.last_storage)
            self.last_storage = now
            claims = await ctx.core.list_namespaced_persistent_volume_claim(ctx.settings.namespace)
            ser = ctx.api.sanitize_for_serialization
            self.stored = storage(ser(c) for c in claims.items)
        if step or storage_step:
            # off the event loop: with thousands of owners the write takes a while
            await asyncio.to_thread(
                self._record, ctx, held if step else {}, step, self.stored if storage_step else {}, storage_step
            )
        return sum(h.gpus for h in held.values())

    @staticmethod
    def _record(
        ctx: Context, held: dict[Owner, Held], step: float, stored: dict[Owner, Stored], storage_step: float
    ) -> None:
        """Add one sample to today's rows: an upsert of every owner's row at once."""
        day = utcnow().date().isoformat()
        gpu_rows = [
            {"day": day, "user": u, "team": t, "gpu_seconds": h.gpus * step} for (u, t), h in held.items() if h.gpus
        ]
        rows: dict[Owner, dict[str, Any]] = {}

        def row(who: Owner) -> dict[str, Any]:
            return rows.setdefault(
                who, {"day": day, "user": who[0], "team": who[1], **dict.fromkeys(_USAGE_FIGURES, 0.0)}
            )

        for who, h in held.items():
            if h.cpu or h.memory_gib:
                r = row(who)
                r["cpu_seconds"] += h.cpu * step
                r["memory_gib_seconds"] += h.memory_gib * step
        for who, st in stored.items():
            r = row(who)
            r["storage_gib_seconds"] += st.size_gib * storage_step
            r["storage_used_gib_seconds"] += st.used_gib * storage_step
        with ctx.db() as s:
            _add_to(s, GpuUsageRow, ("gpu_seconds",), gpu_rows)
            _add_to(s, UsageRow, _USAGE_FIGURES, list(rows.values()))
            s.commit()
        for (user, team), h in held.items():  # counted once the rows are written
            if h.gpus:
                GPU_SECONDS.labels(user=user, team=team).inc(h.gpus * step)
            if h.cpu or h.memory_gib:
                CPU_SECONDS.labels(user=user, team=team).inc(h.cpu * step)
                MEMORY_SECONDS.labels(user=user, team=team).inc(h.memory_gib * step)


_USAGE_FIGURES = ("cpu_seconds", "memory_gib_seconds", "storage_gib_seconds", "storage_used_gib_seconds")
_KEY = ("day", "user", "team")


def _add_to(session: Session, model: type[Any], figures: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Add ``rows``' figures to the stored rows of the same key, making those missing: one
    ``INSERT ... ON CONFLICT DO UPDATE`` for all (SQLite and PostgreSQL both have it)."""
    if not rows:
        return
    name = session.get_bind().dialect.name
    insert: Any = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}.get(name)
    if insert is None:  # another database: one row at a time
        for r in rows:
            found = session.get(model, tuple(r[k] for k in _KEY))
            if found is None:
                session.add(model(**r))
            else:
                for f in figures:
                    setattr(found, f, getattr(found, f) + r[f])
        return
    stmt = insert(model)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_KEY), set_={f: getattr(model, f) + getattr(stmt.excluded, f) for f in figures}
    )
    session.execute(stmt, rows)


# ---- reports ---------------------------------------------------------------------------

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
    total = _zero()
    for f in per_day.values():
        _add(total, f)
    return {
        "since": days[0] if days else "",
        "until": days[-1] if days else "",
        "days": len(days),
        "scope": "own" if mine_only else "all",
        "total": _rounded(total),
        "by_day": [{"day": d, **_rounded(f)} for d, f in per_day.items()],
        "users": [{"user": u, **_rounded(f)} for u, f in sorted(per_user.items(), key=lambda kv: _order(kv))],
        "teams": [{"team": t, **_rounded(f)} for t, f in sorted(per_team.items(), key=lambda kv: _order(kv))],
        "rows": listed,
    }


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
    total = _zero()
    for f in by_day.values():
        _add(total, f)
    return {
        "since": days[0] if days else "",
        "until": days[-1] if days else "",
        "days": len(days),
        "scope": "all",
        "total": _rounded(total),
        "by_day": [{"day": d, **_rounded(f)} for d, f in by_day.items()],
        "users": [{"user": u, **_rounded(f)} for u, f in sorted(users.items(), key=lambda kv: _order(kv))],
        "teams": [{"team": t, **_rounded(f)} for t, f in sorted(teams.items(), key=lambda kv: _order(kv))],
        "rows": [],
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
        for model, figures in ((UsageRow, _USAGE_FIGURES), (GpuUsageRow, ("gpu_seconds",))):
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
        columns = [UsageRow.day, UsageRow.user, UsageRow.team, *(getattr(UsageRow, f) for f in _USAGE_FIGURES)]
        for day, who, team, *figures in s.execute(select(*columns).where(mine(UsageRow))):
            merged[(day, who, team)] = dict(zip(_USAGE_FIGURES, figures, strict=True))
        gpu = select(GpuUsageRow.day, GpuUsageRow.user, GpuUsageRow.team, GpuUsageRow.gpu_seconds)
        for day, who, team, seconds in s.execute(gpu.where(mine(GpuUsageRow))):
            merged.setdefault((day, who, team), {})["gpu_seconds"] = seconds
    return [DayRow(day, who, team, **f) for (day, who, team), f in merged.items()]
