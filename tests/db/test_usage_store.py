"""The usage figures in the database (jobs_service/usage.py): each sample adds to today's row
of each owner in one upsert, and everyone's totals summed by the database are those the rows
give. SQLite here; tests/db/test_history_postgres.py runs the same on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from jobs_service import usage, usage_report
from jobs_service.context import Caller
from jobs_service.db import GpuUsageRow, UsageRow, open_db, utcnow


def samples_add_up_and_totals_agree(url: str) -> None:
    ctx: Any = SimpleNamespace(db=open_db(url))
    held = {
        ("ann", "ml"): usage.Held(cpu=2.0, memory_gib=4.0, gpus=1),
        ("bob", ""): usage.Held(cpu=0.5, memory_gib=1.0),
    }
    stored = {("ann", ""): usage.Stored(10.0, 1.0), ("", "ml"): usage.Stored(50.0, 5.0)}
    usage.Sampler._record(ctx, held, 15.0, stored, 300.0)
    usage.Sampler._record(ctx, held, 15.0, {}, 0.0)  # the row is added to, not replaced
    usage.Sampler._record(ctx, {("cat", "vision"): usage.Held(gpus=2)}, 10.0, {}, 0.0)
    today = utcnow().date().isoformat()
    with ctx.db() as s:
        ann = s.get(UsageRow, (today, "ann", "ml"))
        assert ann is not None and (ann.cpu_seconds, ann.memory_gib_seconds) == (60.0, 120.0)
        space = s.get(UsageRow, (today, "ann", ""))
        assert space is not None and (space.storage_gib_seconds, space.storage_used_gib_seconds) == (3000.0, 300.0)
        gpu = s.get(GpuUsageRow, (today, "ann", "ml"))
        assert gpu is not None and gpu.gpu_seconds == 30.0
        assert s.get(UsageRow, (today, "cat", "vision")) is None, "GPUs alone make no CPU row"
    admin = Caller("admin", admin=True)
    whole = usage_report.report(ctx, admin, 7)
    assert whole["total"]["cpu_hours"] == round(75.0 / 3600, 3) and whole["total"]["gpu_hours"] == round(50 / 3600, 3)
    assert usage_report.report(ctx, admin, 7, rows=False) == {**whole, "rows": []}, "the database's sums are the rows'"
    for user, team in (("ann", None), (None, "ml")):
        one = usage_report.report(ctx, admin, 7, user, team)
        assert usage_report.report(ctx, admin, 7, user, team, rows=False) == {**one, "rows": []}


def test_samples_add_up_and_totals_agree_on_sqlite(tmp_path: Path) -> None:
    samples_add_up_and_totals_agree(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
