"""Run history retention: each job keeps its newest ``keep_runs`` finished runs."""

from __future__ import annotations

from pathlib import Path

from kubernetes_asyncio import client

from jobs_service.db import DefinitionRow, RunRow, open_db
from jobs_service.service import JobsService
from moonhub_core.catalog import CatalogStore

CATALOG = Path(__file__).resolve().parents[2] / "moonhub_core" / "examples" / "catalog.yaml"


async def test_trim_keeps_the_newest_finished_runs(tmp_path: Path) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    with db() as s:
        row = DefinitionRow(owner="ann", name="daily", spec={"keep_runs": 2}, cronjob="nb-ann-daily")
        statuses = ["succeeded", "running", "succeeded", "failed", "succeeded"]
        row.runs.extend(RunRow(job_name=f"run-{i}", version=1, status=st) for i, st in enumerate(statuses))
        s.add(row)
        s.commit()
    api = client.ApiClient()  # not called: retention only touches the database
    try:
        svc = JobsService(db, CatalogStore(CATALOG), api, "moonhub-users", "/home/jovyan")
        assert svc.trim_history() == 2
    finally:
        await api.close()
    with db() as s:
        left = sorted((r.job_name, r.status) for r in s.query(RunRow))
    # the two newest stay; an older run that has not ended is never dropped
    assert left == [("run-1", "running"), ("run-3", "failed"), ("run-4", "succeeded")]
