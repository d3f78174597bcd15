"""The database's schema on a database an older version made."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from jobs_service.db import RunRow, open_db


def indexes_gained_on_reopen(url: str) -> None:
    """A database made before ``runs.status`` was indexed (the index dropped here) gets the
    index when the service opens it again; the rows stay."""
    db = open_db(url)
    engine = db.kw["bind"]
    with db() as s:
        s.execute(text("DROP INDEX ix_runs_status"))
        s.commit()
    assert "ix_runs_status" not in {i["name"] for i in inspect(engine).get_indexes("runs")}
    engine.dispose()

    db = open_db(url)
    engine = db.kw["bind"]
    found = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("runs")}
    assert found.get("ix_runs_status") == ["status"], found
    open_db(url)  # opening once more changes nothing (the index is there)
    assert RunRow.__table__.c.status.index


def test_an_old_sqlite_database_gets_the_new_indexes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    indexes_gained_on_reopen(url)
    engine = open_db(url).kw["bind"]
    with engine.connect() as c:
        plan = " ".join(
            str(row[-1])
            for row in c.execute(text("EXPLAIN QUERY PLAN SELECT id FROM runs WHERE status IN ('queued', 'running')"))
        )
    assert "ix_runs_status" in plan, plan
