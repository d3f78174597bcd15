"""The jobs database's schema: migrations from empty, a database made before migrations
brought to the newest revision with its rows kept, and the models and the migrations in
step. SQLite here; tests/db/test_history_postgres.py runs the same on PostgreSQL."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from jobs_service import jobspec, schema
from jobs_service.db import Base, DefinitionRow, EnvImageRow, open_db


def made_before_migrations_is_upgraded(url: str) -> None:
    """A database an earlier version made with ``create_all`` (the first revision's schema,
    here without one table and one index, as an older version had it), holding a job, is
    brought to the newest revision on open: the table and index made, the job kept (and
    readable as the newest models say)."""
    engine = create_engine(url)
    schema.upgrade(engine, to=schema.BASELINE)
    now = datetime.datetime.now(datetime.UTC)
    with engine.begin() as c:
        c.execute(text("DROP TABLE alembic_version"))
        c.execute(text("DROP INDEX ix_runs_status"))
        c.execute(text("DROP TABLE accounts"))
        c.execute(
            text(
                "INSERT INTO definitions (owner, name, spec, version, cronjob, created, updated) "
                "VALUES ('ann', 'daily', :spec, 1, 'nb-ann-daily', :t, :t)"
            ),
            {"spec": json.dumps({"name": "daily", "notebook": "d.ipynb", "schedule": None}), "t": now},
        )
    assert schema.current(engine) is None and "accounts" not in inspect(engine).get_table_names()

    before, after = schema.upgrade(engine)
    assert (before, after) == (None, schema.head())
    found = inspect(engine)
    assert "accounts" in found.get_table_names()
    assert {i["name"]: i["column_names"] for i in found.get_indexes("runs")}.get("ix_runs_status") == ["status"]
    with open_db(url)() as s:
        rows = list(s.scalars(select(DefinitionRow)))
        assert [(r.name, r.spec_version) for r in rows] == [("daily", 1)], "the job is kept, in form 1"
        assert jobspec.stored(rows[0]).notebook == "d.ipynb"
    assert schema.upgrade(engine) == (schema.head(), schema.head()), "once more: nothing to do"
    engine.dispose()


def models_match_the_migrations(url: str) -> None:
    """A database made by the migrations alone is what the models say: a model changed
    without a revision fails here (write one in jobs_service/migrations/versions)."""
    engine = create_engine(url)
    assert schema.upgrade(engine) == (None, schema.head())
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
    assert diff == [], diff
    engine.dispose()


def ids_are_never_given_again(url: str) -> None:
    """In a database made by the migrations, a removed build's id (the highest) is not the next
    build's: a job's ``own_image`` and a server's spawn option name builds by id, and a reused
    id would hand an old job someone's newer image."""
    engine = create_engine(url)
    schema.upgrade(engine)
    with open_db(url)() as s:
        rows = [
            EnvImageRow(owner="ann", environment=f"e{n}", base="python", base_image="img@sha256:0", packages=["a==1"])
            for n in range(2)
        ]
        s.add_all(rows)
        s.commit()
        highest = max(r.id for r in rows)
        s.delete(rows[-1])
        s.commit()
        again = EnvImageRow(owner="bo", environment="e", base="python", base_image="img@sha256:0", packages=["a==1"])
        s.add(again)
        s.commit()
        assert again.id > highest, (again.id, highest)
    engine.dispose()


def taken_back_for_a_rollback(url: str) -> None:
    """Before a rollback, the newer version takes its database back to the older version's
    revision: what the newer revisions added goes, every job stays, and the older version
    (its head: 0002) opens it; upgrading again brings the table back, empty."""
    engine = create_engine(url)
    schema.upgrade(engine)
    now = datetime.datetime.now(datetime.UTC)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO definitions (owner, name, spec, version, cronjob, created, updated, spec_version) "
                "VALUES ('ann', 'daily', :spec, 1, 'nb-ann-daily', :t, :t, 1)"
            ),
            {"spec": json.dumps({"name": "daily", "notebook": "d.ipynb", "schedule": None}), "t": now},
        )
        c.execute(text("INSERT INTO usage VALUES ('2026-12-07', 'ann', '', 60, 120, 600, 60)"))
    with pytest.raises(schema.SchemaError, match="9999"):
        schema.downgrade(engine, "9999")
    assert schema.downgrade(engine, "0002") == (schema.head(), "0002")
    assert "usage" not in inspect(engine).get_table_names()
    with engine.connect() as c:
        assert c.execute(text("SELECT owner, name FROM definitions")).all() == [("ann", "daily")]
    with pytest.raises(schema.SchemaError, match="newer"):
        schema.downgrade(engine, schema.head())
    assert schema.upgrade(engine) == ("0002", schema.head())
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM usage")).scalar() == 0
    engine.dispose()


def test_a_database_is_taken_back_for_a_rollback(tmp_path: Path) -> None:
    taken_back_for_a_rollback(f"sqlite:///{tmp_path / 'jobs.sqlite'}")


def test_the_command_takes_back_and_names_its_head(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    assert schema.main(["--head"]) == 0 and capsys.readouterr().out.strip() == schema.head()
    assert schema.main(["--db", url, "--to", "0001"]) == 1
    assert "no revision yet" in capsys.readouterr().err
    assert schema.main(["--db", url]) == 0
    capsys.readouterr()
    assert schema.main(["--db", url, "--to", "0001"]) == 0
    assert capsys.readouterr().out.strip() == f"jobs database at revision 0001 (was {schema.head()})"


def test_an_old_sqlite_database_is_brought_to_the_newest_schema(tmp_path: Path) -> None:
    made_before_migrations_is_upgraded(f"sqlite:///{tmp_path / 'jobs.sqlite'}")


def test_the_models_and_the_migrations_agree_on_sqlite(tmp_path: Path) -> None:
    models_match_the_migrations(f"sqlite:///{tmp_path / 'jobs.sqlite'}")


def test_a_removed_builds_id_is_not_given_again_on_sqlite(tmp_path: Path) -> None:
    ids_are_never_given_again(f"sqlite:///{tmp_path / 'jobs.sqlite'}")


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    engine = create_engine(url)
    schema.upgrade(engine)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(schema.SchemaError, match="9999"):
        open_db(url)
    assert schema.main(["--db", url]) == 1


def test_the_command_says_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    assert schema.main(["--db", url]) == 0
    assert capsys.readouterr().out.strip() == f"jobs database at revision {schema.head()} (was none)"
    assert schema.main(["--db", url]) == 0
    assert capsys.readouterr().out.strip() == f"jobs database at revision {schema.head()} (unchanged)"
