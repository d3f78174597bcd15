"""Back up and restore the jobs service's state: its database and its store (notebook
versions, runs' outputs and kept logs), in one ``.tar.gz``.

    python -m jobs_service.backup create FILE     (FILE "-": standard output)
    python -m jobs_service.backup restore FILE    (into an empty database and store)

The database and the store are the service's (``$MOONHUB_JOBS_DB``, ``$MOONHUB_JOBS_SNAPSHOTS``,
as the service reads them), or ``--db`` and ``--store``. On a Helm install, run it in the jobs
service's pod (helm/README.md).

The archive holds ``manifest.json`` (the format, the schema revision, row counts), the rows of
every table as JSON lines (``tables/<name>.jsonl``, read in one transaction, so they agree with
each other) and the store's files (``store/...``). Rows, not a database's own dump: a backup of
a SQLite database restores into PostgreSQL and the other way round, and ``pg_dump`` need not
be in the image.

A restore refuses a database with rows or a store with files in it (nothing is overwritten;
only the signing key a new install makes at its first start is replaced by the backup's),
checks the whole archive before it writes anything (a path outside the store, a link, a table
or a revision this version does not know: refused, naming it), brings the empty database to the
backup's revision, writes every row in one transaction and then the files, and then upgrades
the database to this version's revision, so a backup of an older version restores into a
newer one. A failure leaves the database as it was (the transaction is rolled back) and takes
away the files it wrote.

What a backup does not hold: the Kubernetes objects (CronJobs, Secrets, queues) and the users'
workspaces. The service makes the CronJobs and queues again from the database at its first
reconcile; users' secrets are Kubernetes Secrets (back them up with the cluster); workspaces
are volumes (back them up with the storage).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy import Engine, Table, create_engine, delete, func, insert, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from . import schema
from .db import Base
from .settings import DB_ENV, SNAPSHOTS_ENV

log = logging.getLogger("moonhub.jobs")

#: the archive's format (a restore refuses a newer one)
FORMAT = 1
MANIFEST = "manifest.json"


class BackupError(RuntimeError):
    """A backup that can not be made or restored, saying why."""


def _tables() -> list[Table]:
    """Every table, parents before children (the order rows are written in)."""
    return list(Base.metadata.sorted_tables)


def _encode(value: Any) -> Any:
    """A column's value as JSON (times are the only kind JSON lacks: no column holds bytes)."""
    return {"$datetime": value.isoformat()} if isinstance(value, datetime.datetime) else value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and "$datetime" in value:
        return datetime.datetime.fromisoformat(value["$datetime"])
    return value


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(datetime.datetime.now().timestamp()), 0o600
    tar.addfile(info, io.BytesIO(data))


def create(engine: Engine, store: Path, out: IO[bytes]) -> dict[str, Any]:
    """Write the backup of the database at ``engine`` and the store folder ``store`` to ``out``;
    returns its manifest."""
    revision = schema.current(engine)
    if revision is None:
        raise BackupError("the jobs database has no schema revision: is it the jobs service's database?")
    counts: dict[str, int] = {}
    with tarfile.open(fileobj=out, mode="w|gz") as tar:
        # one transaction for every table (REPEATABLE READ where the database has it): the
        # rows agree with each other even while the service goes on writing
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                for table in _tables():
                    lines = []
                    for row in conn.execute(select(table)).mappings():
                        lines.append(json.dumps({k: _encode(v) for k, v in row.items()}, separators=(",", ":")))
                    counts[table.name] = len(lines)
                    _add(tar, f"tables/{table.name}.jsonl", ("\n".join(lines) + "\n" if lines else "").encode())
        files = 0
        if store.exists():
            for path in sorted(store.rglob("*")):
                if path.is_file() and not path.is_symlink() and not path.name.startswith(".incoming-"):
                    tar.add(str(path), arcname=f"store/{path.relative_to(store).as_posix()}", recursive=False)
                    files += 1
        manifest = {
            "format": FORMAT,
            "schema_revision": revision,
            "made_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "rows": counts,
            "files": files,
        }
        _add(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def _read(tar: tarfile.TarFile) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], list[tarfile.TarInfo]]:
    """The manifest, rows per table and store files (their members) of an archive, every
    name checked before anything is written."""
    rows: dict[str, list[dict[str, Any]]] = {}
    files: list[tarfile.TarInfo] = []
    manifest: dict[str, Any] | None = None
    known = {t.name for t in _tables()}
    try:
        for member in tar.getmembers():
            name = PurePosixPath(member.name)
            if member.isdir():
                continue
            if not member.isfile():
                raise BackupError(f"{member.name}: not a plain file (links are never restored)")
            if name.is_absolute() or ".." in name.parts:
                raise BackupError(f"{member.name}: a path outside the backup")
            if name.parts[0] == "store" and len(name.parts) > 1:
                files.append(member)
                continue
            f = tar.extractfile(member)
            assert f is not None
            data = f.read()
            if str(name) == MANIFEST:
                manifest = json.loads(data)
            elif name.parts[0] == "tables" and len(name.parts) == 2 and name.suffix == ".jsonl":
                if name.stem not in known:
                    raise BackupError(f"{member.name}: a table this version does not know")
                rows[name.stem] = [json.loads(line) for line in data.decode().splitlines() if line]
            else:
                raise BackupError(f"{member.name}: not part of a MoonHub jobs backup")
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BackupError(f"not a readable backup: {e}") from e
    if manifest is None:
        raise BackupError(f"not a MoonHub jobs backup: no {MANIFEST}")
    if int(manifest.get("format", 0)) > FORMAT:
        raise BackupError(f"backup format {manifest.get('format')} is newer than this version reads ({FORMAT})")
    for table, count in (manifest.get("rows") or {}).items():
        if len(rows.get(table, [])) != count:
            raise BackupError(f"tables/{table}.jsonl holds {len(rows.get(table, []))} rows, the manifest says {count}")
    return manifest, rows, files


#: what a new install writes at its first start, replaced by the backup's (the key that signs
#: what runs' pods fetch: Jobs and CronJobs the cluster kept carry keys it signed)
REPLACED = ("service_keys",)


def _empty(engine: Engine) -> None:
    """Refuse a database that holds rows of any of the service's tables (but :data:`REPLACED`)."""
    names = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in _tables():
            if table.name in REPLACED:
                continue
            if table.name in names and conn.execute(select(func.count()).select_from(table)).scalar():
                raise BackupError(f"the database is not empty (table {table.name} has rows): restore into a new one")


def restore(engine: Engine, store: Path, archive: Path) -> dict[str, Any]:
    """Restore the backup in the file ``archive`` into the empty database at ``engine`` and
    the empty store folder ``store``; returns the backup's manifest."""
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except (tarfile.TarError, OSError) as e:
        raise BackupError(f"not a readable backup: {e}") from e
    with tar:
        return _restore(engine, store, tar)


def _restore(engine: Engine, store: Path, tar: tarfile.TarFile) -> dict[str, Any]:
    manifest, rows, files = _read(tar)
    revision = str(manifest.get("schema_revision") or "")
    if revision not in schema.revisions():
        raise BackupError(
            f"the backup's schema revision {revision!r} is not one this version knows (newest: {schema.head()})"
        )
    _empty(engine)
    if store.exists() and any(store.iterdir()):
        raise BackupError(f"the store {store} is not empty: restore into a new one")
    before = schema.current(engine)
    if before is not None and before != revision:
        raise BackupError(
            f"the database is at revision {before}, the backup at {revision}: restore into a new database"
        )
    schema.upgrade(engine, revision)
    written: list[Path] = []
    try:
        with engine.begin() as conn:
            for table in _tables():
                found = rows.get(table.name, [])
                if table.name in REPLACED and found:
                    conn.execute(delete(table))
                columns = {c.name for c in table.columns}
                for i in range(0, len(found), 500):
                    chunk = [{k: _decode(v) for k, v in row.items() if k in columns} for row in found[i : i + 500]]
                    conn.execute(insert(table), chunk)
            if engine.dialect.name == "postgresql":  # ids go on after the restored ones
                for table in _tables():
                    key = table.c.get("id")
                    if key is not None and key.autoincrement and rows.get(table.name):
                        conn.execute(
                            text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), :n)"),
                            {"n": max(int(r["id"]) for r in rows[table.name])},
                        )
            store.mkdir(parents=True, exist_ok=True)
            for member in files:
                target = store / PurePosixPath(*PurePosixPath(member.name).parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                written.append(target)
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except BaseException as e:
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(e, SQLAlchemyError):
            raise BackupError(f"the backup's rows could not be written, nothing was kept: {e}") from e
        raise
    schema.upgrade(engine)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs_service.backup", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["create", "restore"])
    p.add_argument("file", help='the backup (.tar.gz); "-": standard output or input')
    p.add_argument("--db", default=os.environ.get(DB_ENV, ""), help=f"the jobs database's URL (default: ${DB_ENV})")
    p.add_argument(
        "--store",
        default=os.environ.get(SNAPSHOTS_ENV, ""),
        help=f"the service's store folder (default: ${SNAPSHOTS_ENV})",
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[jobs-backup %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    if not a.db or not a.store:
        print(
            f"error: give --db and --store, or set ${DB_ENV} and ${SNAPSHOTS_ENV} (as the service has them)",
            file=sys.stderr,
        )
        return 2
    engine, store = create_engine(a.db), Path(a.store)
    try:
        if a.action == "create":
            if a.file == "-":
                made = create(engine, store, sys.stdout.buffer)
            else:
                fd, tmp = tempfile.mkstemp(dir=Path(a.file).resolve().parent, prefix=".backup-")
                try:
                    with os.fdopen(fd, "wb") as f:
                        made = create(engine, store, f)
                    os.replace(tmp, a.file)
                finally:
                    Path(tmp).unlink(missing_ok=True)
            print(
                f"backup of revision {made['schema_revision']}: "
                f"{sum(made['rows'].values())} rows, {made['files']} files",
                file=sys.stderr,
            )
        else:
            if a.file == "-":  # read twice (checked, then written): spooled to a file first
                with tempfile.NamedTemporaryFile(prefix="moonhub-restore-") as spool:
                    shutil.copyfileobj(sys.stdin.buffer, spool)
                    spool.flush()
                    made = restore(engine, store, Path(spool.name))
            else:
                made = restore(engine, store, Path(a.file))
            print(
                f"restored a backup of {made['made_at']} (revision {made['schema_revision']}): "
                f"{sum(made['rows'].values())} rows, {made['files']} files; database at revision {schema.head()}",
                file=sys.stderr,
            )
    except BackupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
