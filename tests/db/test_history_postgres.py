"""The run history on a real PostgreSQL server (Debian's, started for this test)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from jobs_service import views
from jobs_service.db import DefinitionRow, RunRow, VersionRow, open_db
from tests.db.test_schema import (
    ids_are_never_given_again,
    made_before_migrations_is_upgraded,
    models_match_the_migrations,
    taken_back_for_a_rollback,
)
from tests.db.test_usage_store import samples_add_up_and_totals_agree
from tests.postgres import fresh_database, postgres_server

PORT = 15432


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server(PORT) as url:
        yield url


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
    return fresh_database(postgres_url, name)


def test_an_old_postgresql_database_is_brought_to_the_newest_schema(postgres_url: str) -> None:
    made_before_migrations_is_upgraded(_fresh(postgres_url, "made_before_migrations"))


def test_the_models_and_the_migrations_agree_on_postgresql(postgres_url: str) -> None:
    models_match_the_migrations(_fresh(postgres_url, "migrations_only"))


def test_a_postgresql_database_is_taken_back_for_a_rollback(postgres_url: str) -> None:
    taken_back_for_a_rollback(_fresh(postgres_url, "taken_back"))


def test_a_removed_builds_id_is_not_given_again_on_postgresql(postgres_url: str) -> None:
    ids_are_never_given_again(_fresh(postgres_url, "build_ids"))


def test_samples_add_up_and_totals_agree_on_postgresql(postgres_url: str) -> None:
    samples_add_up_and_totals_agree(_fresh(postgres_url, "usage_store"))
