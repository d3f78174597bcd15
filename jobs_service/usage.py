"""Usage per user and team, by day: CPU-, memory- and GPU-hours Kueue admitted (servers and
job runs alike) and the storage their workspaces and team folders hold. Sampled by the jobs
service, stored per day (``usage`` and ``gpu_usage``), reported by :mod:`.usage_report`
(``GET /api/v1/usage``, JSON or CSV) and counted for Prometheus.

- **Compute** is what was *reserved*: each sample adds, for every Workload Kueue holds
  admitted, its admitted CPU cores, memory and GPUs times the time since the last sample (at
  most :data:`MAX_STEP`: a service that was down does not guess what ran meanwhile). A server
  that idles at its guarantee costs the same as one that works: that is what it kept from
  others. What pods *used* is in Prometheus (docs/observability.md).
- **Storage** is each claim's size (what the storage holds for it) and its use as the
  storage agent last measured, sampled every :data:`STORAGE_EVERY` seconds. A workspace counts
  for its user; a team folder for its team (user "").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from moonhub_core import admissions
from moonhub_core import queue_objects as q
from moonhub_core import workspaces as ws

from .context import Context
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
                who, {"day": day, "user": who[0], "team": who[1], **dict.fromkeys(USAGE_FIGURES, 0.0)}
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
            _add_to(s, UsageRow, USAGE_FIGURES, list(rows.values()))
            s.commit()
        for (user, team), h in held.items():  # counted once the rows are written
            if h.gpus:
                GPU_SECONDS.labels(user=user, team=team).inc(h.gpus * step)
            if h.cpu or h.memory_gib:
                CPU_SECONDS.labels(user=user, team=team).inc(h.cpu * step)
                MEMORY_SECONDS.labels(user=user, team=team).inc(h.memory_gib * step)


#: the figures of a stored row of ``usage`` (GPU-seconds are ``gpu_usage``'s)
USAGE_FIGURES = ("cpu_seconds", "memory_gib_seconds", "storage_gib_seconds", "storage_used_gib_seconds")
_KEY = ("day", "user", "team")


def _add_to(session: Session, model: type[Any], figures: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Add ``rows``' figures to the stored rows of the same key, making those missing: one
    ``INSERT ... ON CONFLICT DO UPDATE`` for all (SQLite and PostgreSQL both have it)."""
    if not rows:
        return
    name = session.get_bind().dialect.name
    insert: Any = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}.get(name)
    if insert is None:  # the jobs database is SQLite or PostgreSQL (docs/jobs.md)
        raise RuntimeError(f"usage figures are kept on SQLite or PostgreSQL, not on {name}")
    stmt = insert(model)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_KEY), set_={f: getattr(model, f) + getattr(stmt.excluded, f) for f in figures}
    )
    session.execute(stmt, rows)
