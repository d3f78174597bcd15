"""What the usage reports cost the jobs service at the scale tier's size: one sample's database
write with ``--users`` owners holding something (every 15 s), and the report's answer over
``--days`` days of stored rows, against the GPU-hours report over the same rows (the
baseline: the route admins had before, which reads one table of the two); and the series the
usage counters add to the service's ``/metrics``.

The jobs service's own database code on SQLite in a temporary folder (its default), filled
with a row per user and day (a tenth of the users with GPU-seconds too, the users in
``--teams`` teams). Printed: medians of ``--repeat`` calls, and sizes of the answers.

    .venv/bin/python -m benchmarks.usage_report [--users 2000] [--days 30] [--teams 20]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import REGISTRY, generate_latest

from jobs_service import gpu_usage, usage, usage_report
from jobs_service.context import Caller
from jobs_service.db import GpuUsageRow, UsageRow, open_db, utcnow

_COUNTED = ("moonhub_gpu_seconds_total{", "moonhub_cpu_reserved_seconds_total{", "moonhub_memory_reserved_gib")


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median seconds of ``repeat`` calls, and the last answer."""
    took, got = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = call()
        took.append(time.perf_counter() - t0)
    return statistics.median(took), got


def fill(db: Any, users: int, days: int, teams: int) -> None:
    today = utcnow().date()
    with db() as s:
        for d in range(days):
            day = (today - datetime.timedelta(days=d)).isoformat()
            for u in range(users):
                team = f"team-{u % teams}"
                s.add(
                    UsageRow(
                        day=day,
                        user=f"user-{u}",
                        team=team,
                        cpu_seconds=3600.0 * (u % 7),
                        memory_gib_seconds=4 * 3600.0 * (u % 7),
                        storage_gib_seconds=10 * 86400.0,
                        storage_used_gib_seconds=2 * 86400.0,
                    )
                )
                if u % 10 == 0:
                    s.add(GpuUsageRow(day=day, user=f"user-{u}", team=team, gpu_seconds=3600.0))
        s.commit()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.usage_report", description=__doc__)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--teams", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        db = open_db(f"sqlite:///{Path(folder) / 'jobs.sqlite'}")
        ctx: Any = SimpleNamespace(db=db)
        t0 = time.perf_counter()
        fill(db, a.users, a.days, a.teams)
        print(f"filled {a.users} users x {a.days} days ({a.users * a.days} rows) in {time.perf_counter() - t0:.1f} s")

        held = {
            (f"user-{u}", f"team-{u % a.teams}"): usage.Held(cpu=2.0, memory_gib=8.0, gpus=int(u % 10 == 0))
            for u in range(a.users)
        }
        stored = {(f"user-{u}", ""): usage.Stored(10.0, 2.0) for u in range(a.users)}
        sample, _ = timed(lambda: usage.Sampler._record(ctx, held, usage.EVERY, {}, 0.0), a.repeat)
        with_storage, _ = timed(lambda: usage.Sampler._record(ctx, held, usage.EVERY, stored, 300.0), a.repeat)
        print(
            f"one sample's write, {a.users} owners holding CPU and memory (a tenth GPUs): {sample * 1000:.0f} ms "
            f"({100 * sample / usage.EVERY:.1f}% of its {usage.EVERY:.0f} s period); with the storage "
            f"(every {usage.STORAGE_EVERY:.0f} s): {with_storage * 1000:.0f} ms"
        )

        # the counters a sample leaves for Prometheus: a series per user and team and figure
        # (this process's registry holds only what this benchmark counted)
        scrape, text = timed(lambda: generate_latest(REGISTRY), a.repeat)
        series = sum(1 for line in text.decode().splitlines() if line.startswith(_COUNTED))
        print(
            f"the usage counters of {a.users} owners on /metrics: {series:,} series, {len(text):,} bytes, "
            f"rendered in {scrape * 1000:.0f} ms"
        )

        admin, one = Caller("admin", admin=True), Caller("user-3", groups=("team-3",))
        base, gpu = timed(lambda: gpu_usage.report(ctx, admin, a.days), a.repeat)
        cases = [
            ("everyone's, totals only (the console)", lambda: usage_report.report(ctx, admin, a.days, rows=False)),
            ("everyone's, with the rows", lambda: usage_report.report(ctx, admin, a.days)),
            ("everyone's as CSV", lambda: usage_report.as_csv(usage_report.report(ctx, admin, a.days))),
            ("one user's own and their team's (the lab)", lambda: usage_report.report(ctx, one, a.days)),
        ]
        size = len(json.dumps(gpu))
        print(f"GPU-hours report over {a.days} days (baseline): {base * 1000:.0f} ms, {size:,} bytes")
        for what, call in cases:
            took, got = timed(call, a.repeat)
            n = len(got) if isinstance(got, str) else len(json.dumps(got))
            print(f"usage report, {what}: {took * 1000:.0f} ms ({took / base:.1f}x), {n:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
