"""Run history retention: each job keeps its newest ``keep_runs`` finished runs."""

from __future__ import annotations

from pathlib import Path

from kubernetes_asyncio import client
from sqlalchemy import select

from jobs_service import upstream
from jobs_service.db import DefinitionRow, RunRow, open_db
from jobs_service.service import JobsService
from jobs_service.settings import for_tests
from moonhub_core.catalog import CatalogStore

CATALOG = Path(__file__).resolve().parents[2] / "moonhub_core" / "examples" / "catalog.yaml"


async def test_trim_keeps_the_newest_finished_runs(tmp_path: Path) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    with db() as s:
        row = DefinitionRow(owner="ann", name="daily", spec={"keep_runs": 2}, cronjob="nb-ann-daily")
        statuses = ["succeeded", "running", "succeeded", "failed", "succeeded"]
        row.runs.extend(RunRow(job_name=f"run-{i}", version=1, status=st) for i, st in enumerate(statuses))
        s.add(row)
        # jobs within their limit are not touched (nor loaded)
        within = DefinitionRow(owner="bo", name="hourly", spec={"keep_runs": 3}, cronjob="nb-bo-hourly")
        within.runs.extend(RunRow(job_name=f"bo-{i}", version=1, status="succeeded") for i in range(3))
        s.add(within)
        s.commit()
    api = client.ApiClient()  # not called: retention only touches the database
    try:
        svc = JobsService(db, CatalogStore(CATALOG), api, for_tests(snapshot_dir=tmp_path / "snapshots"))
        assert svc.trim_history() == 2
    finally:
        await api.close()
    with db() as s:
        left = sorted((r.job_name, r.status) for r in s.query(RunRow))
    # the two newest stay; an older run that has not ended is never dropped
    assert left == [
        ("bo-0", "succeeded"),
        ("bo-1", "succeeded"),
        ("bo-2", "succeeded"),
        ("run-1", "running"),
        ("run-3", "failed"),
        ("run-4", "succeeded"),
    ]


async def test_the_jobs_that_run_after_others_follow_each_change(tmp_path: Path) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    with db() as s:
        for name, after in (("prepare", []), ("report", ["prepare"]), ("other", [])):
            s.add(DefinitionRow(owner="ann", name=name, spec={"after": after}, cronjob=f"nb-ann-{name}"))
        s.commit()
    api = client.ApiClient()  # not called: only the database is read
    try:
        ctx = JobsService(db, CatalogStore(CATALOG), api, for_tests(snapshot_dir=tmp_path / "snapshots")).ctx
        with db() as s:
            assert [d.name for d in upstream._runs_after(ctx, s)] == ["report"]
            other = s.scalar(select(DefinitionRow).where(DefinitionRow.name == "other"))
            assert other is not None
            other.spec = {"after": ["report"]}
            s.commit()
            assert sorted(d.name for d in upstream._runs_after(ctx, s)) == ["other", "report"]
            report = s.scalar(select(DefinitionRow).where(DefinitionRow.name == "report"))
            s.delete(report)
            s.commit()
            assert [d.name for d in upstream._runs_after(ctx, s)] == ["other"]
            assert len(ctx.after_index) == 2
    finally:
        await api.close()
