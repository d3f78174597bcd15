"""The run history on a real PostgreSQL server (Debian's, started for this test)."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from jobs_service import views
from jobs_service.db import DefinitionRow, RunRow, VersionRow, open_db
from tests.db.test_schema import made_before_migrations_is_upgraded, models_match_the_migrations

PORT = 15432


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if initdb is None:
        pytest.fail("PostgreSQL is not installed: ./moonhub test installs it (Debian package postgresql)")
    bindir = Path(initdb).resolve().parent
    data = Path(tempfile.mkdtemp(prefix="moonhub-pg-"))
    shutil.chown(data, "postgres")
    run = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(data / "log"),
            "-o",
            f"-p {PORT} -k {data} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{PORT}/postgres"
    finally:
        subprocess.run([*run, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_history_round_trips_on_postgresql(postgres_url: str) -> None:
    db = open_db(postgres_url)
    start = datetime.datetime(2026, 11, 23, 6, 0, tzinfo=datetime.UTC)
    with db() as s:
        row = DefinitionRow(
            owner="ann", name="daily", spec={"name": "daily", "parameters": {"n": [1, 2]}}, cronjob="nb-ann-daily"
        )
        row.versions.append(VersionRow(number=1, notebook={"nbformat": 4, "cells": []}))
        row.runs.append(
            RunRow(
                job_name="nb-ann-daily-1",
                version=1,
                status="succeeded",
                started=start,
                finished=start + datetime.timedelta(seconds=90),
            )
        )
        s.add(row)
        s.commit()
    with db() as s:
        got = s.scalar(select(DefinitionRow).where(DefinitionRow.owner == "ann"))
        assert got is not None and got.spec["parameters"] == {"n": [1, 2]}
        assert got.versions[0].notebook["nbformat"] == 4
        view = views.run(got.runs[0])
        assert view["duration_seconds"] == 90 and view["started"] == start.isoformat()


def _fresh(postgres_url: str, name: str) -> str:
    """A new, empty database on the test server: its URL."""
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        c.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def test_an_old_postgresql_database_is_brought_to_the_newest_schema(postgres_url: str) -> None:
    made_before_migrations_is_upgraded(_fresh(postgres_url, "made_before_migrations"))


def test_the_models_and_the_migrations_agree_on_postgresql(postgres_url: str) -> None:
    models_match_the_migrations(_fresh(postgres_url, "migrations_only"))
