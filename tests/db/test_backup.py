"""Backup and restore of the jobs service's state (issue 33, item 5): a database with jobs,
versions, runs, pipeline tasks, contexts and audit rows and a store with notebook versions,
outputs and kept logs, backed up and restored into a new SQLite database and into PostgreSQL
(Debian's, started by the fixture), every row and file found again; what a restore refuses
changes nothing."""

from __future__ import annotations

import datetime
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from jobs_service import backup, schema
from jobs_service.db import (
    AuditRow,
    Base,
    DefinitionRow,
    ProgressRow,
    RunContextRow,
    RunRow,
    ServiceKeyRow,
    TaskRunRow,
    VersionRow,
    open_db,
)
from tests.db.test_history_postgres import _fresh, postgres_url  # noqa: F401 (the fixture)

T0 = datetime.datetime(2026, 11, 30, 6, 0, tzinfo=datetime.UTC)


def filled(url: str, store: Path, jobs: int = 6) -> None:
    """A database like a service's after some days: jobs of three owners (one a pipeline),
    versions, runs in every state, a pipeline run's tasks, contexts, progress, audit rows,
    the signing key; and a store with snapshots, outputs and kept logs."""
    db = open_db(url)
    with db() as s:
        s.add(ServiceKeyRow(name="launch", value="k" * 64))
        for i in range(jobs):
            owner = ("ann", "bo", "cyd")[i % 3]
            tasks = [{"name": "a", "notebook": "a.ipynb"}, {"name": "b", "notebook": "b.ipynb", "depends_on": ["a"]}]
            spec: dict[str, Any] = {"name": f"job{i}", "parameters": {"n": i, "when": "{{run.date}}", "é": [1.5, None]}}
            if i == 0:
                spec["tasks"] = tasks
            row = DefinitionRow(owner=owner, name=f"job{i}", spec=spec, cronjob=f"nb-{owner}-job{i}")
            row.versions.append(VersionRow(number=1, notebook={"nbformat": 4, "cells": [{"source": f"print({i})"}]}))
            for n, status in enumerate(("succeeded", "failed", "running", "queued")):
                run = RunRow(
                    job_name=f"nb-{owner}-job{i}-{n}",
                    version=1,
                    status=status,
                    trigger="manual" if n else "schedule",
                    reason="ZeroDivisionError in cell 2" if status == "failed" else "",
                    started=T0 + datetime.timedelta(hours=n),
                    finished=T0 + datetime.timedelta(hours=n, minutes=3) if status in ("succeeded", "failed") else None,
                    notified=status == "failed",
                )
                if status == "running":
                    run.progress = ProgressRow(cell=2, of=5, read_at=T0)
                if i == 0:
                    run.tasks = [TaskRunRow(task=t["name"], job_name=f"{run.job_name}-{t['name']}") for t in tasks]
                row.runs.append(run)
            s.add(row)
            s.flush()
            for run in row.runs:
                s.add(RunContextRow(job_name=run.job_name, definition_id=row.id, scheduled_for=T0, parameters={"n": i}))
            s.add(AuditRow(actor=owner, action="create", owner=owner, job_id=row.id, job_name=row.name, at=T0))
        s.commit()
    (store / "ab12" / "cd").mkdir(parents=True)
    (store / "ab12" / "cd" / "notebook.ipynb").write_bytes(b'{"nbformat": 4}')
    (store / "runs" / "nb-ann-job0-0").mkdir(parents=True)
    (store / "runs" / "nb-ann-job0-0" / "output.ipynb.gz").write_bytes(bytes(range(256)) * 40)
    (store / "runs" / "nb-ann-job0-0" / "log.json").write_text(json.dumps({"pod": "p", "log": "done\n"}))
    (store / "runs" / "nb-ann-job0-0" / ".incoming-x").write_bytes(b"half an upload")


def rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, ordered, with times as instants (each database words them its way)."""
    engine = create_engine(url)
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as c:
        for table in Base.metadata.sorted_tables:
            found = [dict(r) for r in c.execute(select(table)).mappings()]
            out[table.name] = sorted(found, key=lambda r: json.dumps(r, default=str, sort_keys=True))
    engine.dispose()
    return out


def files(store: Path) -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def made(tmp_path: Path) -> tuple[str, Path, Path]:
    """A filled SQLite database and store, and their backup (made by the command)."""
    url, store, archive = f"sqlite:///{tmp_path / 'jobs.sqlite'}", tmp_path / "store", tmp_path / "backup.tar.gz"
    filled(url, store)
    assert backup.main(["create", str(archive), "--db", url, "--store", str(store)]) == 0
    return url, store, archive


def test_a_backup_restores_into_a_new_database_and_store_with_every_row_and_file(tmp_path: Path) -> None:
    url, store, archive = made(tmp_path)
    new_url, new_store = f"sqlite:///{tmp_path / 'new.sqlite'}", tmp_path / "new-store"
    # a new install's service has started once: its schema is there, and a signing key of its own
    with open_db(new_url)() as s:
        s.add(ServiceKeyRow(name="launch", value="new-install-key"))
        s.commit()
    assert backup.main(["restore", str(archive), "--db", new_url, "--store", str(new_store)]) == 0
    assert rows(new_url) == rows(url)
    expected = {k: v for k, v in files(store).items() if ".incoming-" not in k}
    assert files(new_store) == expected, "every file but a half-received upload"
    engine = create_engine(new_url)
    assert schema.current(engine) == schema.head()
    # a run made after the restore gets an id no restored run has
    db = open_db(new_url)
    with db() as s:
        row = s.scalars(select(DefinitionRow)).first()
        assert row is not None
        row.runs.append(RunRow(job_name="after-restore", version=1))
        s.commit()
        newest = max(r.id for r in s.scalars(select(RunRow)))
        assert s.scalar(select(RunRow.id).where(RunRow.job_name == "after-restore")) == newest


def test_a_sqlite_backup_restores_into_postgresql(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    url, _, archive = made(tmp_path)
    target = _fresh(postgres_url, "restored")
    assert backup.main(["restore", str(archive), "--db", target, "--store", str(tmp_path / "pg-store")]) == 0
    assert rows(target) == rows(url)
    db = open_db(target)
    with db() as s:  # the sequences go on after the restored ids
        row = s.scalars(select(DefinitionRow)).first()
        assert row is not None
        row.runs.append(RunRow(job_name="after-restore", version=1))
        s.add(DefinitionRow(owner="dee", name="new", spec={"name": "new"}, cronjob="nb-dee-new"))
        s.commit()
    # and back: a PostgreSQL backup restores into SQLite
    again = tmp_path / "from-postgres.tar.gz"
    assert backup.main(["create", str(again), "--db", target, "--store", str(tmp_path / "pg-store")]) == 0
    back = f"sqlite:///{tmp_path / 'back.sqlite'}"
    assert backup.main(["restore", str(again), "--db", back, "--store", str(tmp_path / "back-store")]) == 0
    assert rows(back) == rows(target)


def _tampered(archive: Path, out: Path, add: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        add.size = len(data)
        dst.addfile(add, io.BytesIO(data) if data else None)
    return out


@pytest.mark.parametrize(
    "member, said",
    [
        ("store/../../escaped", "a path outside the backup"),
        ("/etc/cron.d/x", "a path outside the backup"),
        ("tables/unknown_table.jsonl", "a table this version does not know"),
        ("notes.txt", "not part of a MoonHub jobs backup"),
        ("link", "not a plain file"),
    ],
)
def test_a_tampered_backup_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], member: str, said: str
) -> None:
    _, _, archive = made(tmp_path)
    info = tarfile.TarInfo(member)
    if member == "link":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    bad = _tampered(archive, tmp_path / "bad.tar.gz", info, b"x" if member != "link" else b"")
    new_url, new_store = f"sqlite:///{tmp_path / 'new.sqlite'}", tmp_path / "new-store"
    assert backup.main(["restore", str(bad), "--db", new_url, "--store", str(new_store)]) == 1
    assert said in capsys.readouterr().err
    assert not new_store.exists(), "no file of a refused backup is written"
    if (tmp_path / "new.sqlite").exists():
        assert all(not r for r in rows(new_url).values()), "no row of a refused backup is written"
    assert not (tmp_path / "escaped").exists()


def test_a_restore_overwrites_nothing_and_a_failed_one_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, store, archive = made(tmp_path)
    before, before_files = rows(url), files(store)
    # into the database it came from: refused, nothing changed
    assert backup.main(["restore", str(archive), "--db", url, "--store", str(tmp_path / "other")]) == 1
    assert "not empty (table" in capsys.readouterr().err
    assert rows(url) == before and not (tmp_path / "other").exists()
    # into a store with files: refused
    empty_db = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    assert backup.main(["restore", str(archive), "--db", empty_db, "--store", str(store)]) == 1
    assert "is not empty" in capsys.readouterr().err and files(store) == before_files
    # rows that can not be written (two definitions with one id): the transaction is rolled
    # back and the files it wrote go
    with tarfile.open(archive, "r:gz") as src:
        defs = src.extractfile("tables/definitions.jsonl")
        assert defs is not None
        first = defs.read().decode().splitlines()[0]
    dup = tarfile.TarInfo("tables/definitions.jsonl")
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(broken, "w:gz") as dst:
        for m in src.getmembers():
            if m.name == "tables/definitions.jsonl":
                continue
            if m.name == backup.MANIFEST:
                manifest = json.loads(src.extractfile(m).read())  # type: ignore[union-attr]
                manifest["rows"]["definitions"] = 2
                data = json.dumps(manifest).encode()
                m.size = len(data)
                dst.addfile(m, io.BytesIO(data))
                continue
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        data = f"{first}\n{first}\n".encode()
        dup.size = len(data)
        dst.addfile(dup, io.BytesIO(data))
    target, target_store = f"sqlite:///{tmp_path / 'target.sqlite'}", tmp_path / "target-store"
    with pytest.raises(backup.BackupError, match="could not be written, nothing was kept"):
        backup.restore(create_engine(target), target_store, broken)
    assert all(not r for r in rows(target).values()), "no row of a failed restore stays"
    assert files(target_store) == {}, "no file of a failed restore stays"
