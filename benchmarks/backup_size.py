"""The size and time of a backup of the jobs service's state (``jobs_service/backup.py``).

A SQLite database and store as 100 users would leave them after weeks: ``--jobs`` jobs
(default 1,000), each with one notebook version (a notebook of 30 cells, about 12 KB as
stored), ``--runs`` runs kept per job (default 20, the default ``keep_runs``) with their
context and a kept log of ``--log-kib`` KiB each (default 8), and an audit row per job.
Prints the database's and the store's sizes on disk, the backup's size, and the time to make
and to restore it (into a new SQLite database and store).

    .venv/bin/python -m benchmarks.backup_size [--jobs 1000] [--runs 20] [--log-kib 8]
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine

from jobs_service import backup
from jobs_service.db import AuditRow, DefinitionRow, RunContextRow, RunRow, VersionRow, open_db


def _notebook(i: int) -> dict[str, object]:
    cells: list[dict[str, object]] = [
        {
            "cell_type": "code",
            "metadata": {},
            "source": f"# step {c} of job {i}\nimport pandas as pd\ndf = pd.read_parquet('data/part-{c}.parquet')\n"
            f"df = df[df.value > {c}].groupby('key').agg(['mean', 'max'])\nprint(df.head())\n" * 3,
            "outputs": [],
            "execution_count": None,
        }
        for c in range(30)
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def fill(url: str, store: Path, jobs: int, runs: int, log_kib: int) -> None:
    db = open_db(url)
    t0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
    rng = random.Random(7)

    def log_text() -> str:
        """A papermill-like log: timestamps, cells and figures that differ line by line (a
        log of one repeated line would compress a hundredfold, which no real log does)."""
        out, size = [], 0
        while size < log_kib * 1024:
            line = (
                f"2026-11-01 06:{rng.randrange(60):02d}:{rng.randrange(60):02d},{rng.randrange(1000):03d} INFO "
                f"cell {rng.randrange(30)}: rows={rng.randrange(10**6)} loss={rng.random():.6f} "
                f"batch={rng.getrandbits(40):x}\n"
            )
            out.append(line)
            size += len(line)
        return "".join(out)[: log_kib * 1024]

    with db() as s:
        for i in range(jobs):
            owner = f"user{i % 100}"
            row = DefinitionRow(
                owner=owner,
                name=f"job{i}",
                spec={"name": f"job{i}", "schedule": "0 6 * * *", "parameters": {"day": "{{run.date}}", "rows": i}},
                cronjob=f"nb-{owner}-job{i}",
            )
            row.versions.append(VersionRow(number=1, notebook=_notebook(i)))
            for n in range(runs):
                at = t0 + datetime.timedelta(days=n)
                row.runs.append(
                    RunRow(
                        job_name=f"nb-{owner}-job{i}-{n}",
                        version=1,
                        status="succeeded",
                        started=at,
                        finished=at + datetime.timedelta(minutes=4),
                    )
                )
            s.add(row)
            s.flush()
            for run in row.runs:
                s.add(RunContextRow(job_name=run.job_name, definition_id=row.id, scheduled_for=run.started))
                folder = store / "runs" / run.job_name
                folder.mkdir(parents=True)
                (folder / "log.json").write_text(json.dumps({"pod": f"{run.job_name}-x", "log": log_text()}))
            s.add(AuditRow(actor=owner, action="create", owner=owner, job_id=row.id, job_name=row.name))
            if i % 100 == 99:
                s.commit()
        s.commit()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--log-kib", type=int, default=8)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="moonhub-backup-bench-") as tmp:
        root = Path(tmp)
        db_file, store, archive = root / "jobs.sqlite", root / "store", root / "backup.tar.gz"
        url = f"sqlite:///{db_file}"
        t = time.monotonic()
        fill(url, store, a.jobs, a.runs, a.log_kib)
        print(
            f"filled: {a.jobs} jobs, {a.jobs * a.runs} runs, a {a.log_kib} KiB log each ({time.monotonic() - t:.1f}s)"
        )
        print(f"database on disk:  {_size(db_file) / 2**20:8.1f} MiB")
        print(f"store on disk:     {_size(store) / 2**20:8.1f} MiB")
        t = time.monotonic()
        with archive.open("wb") as f:
            manifest = backup.create(create_engine(url), store, f)
        made = time.monotonic() - t
        print(
            f"backup:            {_size(archive) / 2**20:8.1f} MiB  "
            f"({sum(manifest['rows'].values())} rows, {manifest['files']} files) made in {made:.1f}s"
        )
        t = time.monotonic()
        backup.restore(create_engine(f"sqlite:///{root / 'restored.sqlite'}"), root / "restored", archive)
        print(f"restored into a new SQLite database and store in {time.monotonic() - t:.1f}s")


if __name__ == "__main__":
    main()
