"""The jobs database's schema, changed only by migrations (Alembic, as JupyterHub does).

Each change of ``jobs_service.db``'s models comes with a revision in
``jobs_service/migrations/versions`` (a unit test fails when the models and the newest
revision differ). :func:`upgrade` brings any database to the newest revision:

- an empty one, or one made before migrations (by ``create_all``, which every earlier
  version ran at start): every revision from the first, which makes only the tables and
  indexes that are missing (as ``create_all`` did), so the rows stay;
- one at an older revision: the revisions after it, in one transaction where the database
  can (PostgreSQL; SQLite makes each table again in batch mode).

The service upgrades its database as it starts; the chart runs ``python -m
jobs_service.schema`` before the new version serves, so a migration that fails stops the
rollout with the old pods' data as it was. A database at a newer revision than this
version knows (a rollback) is refused: the service does not start on a schema it does not
know. Before rolling back across a migration, :func:`downgrade` (``--to REVISION``, run
with the newer version) takes the database back to the older version's revision.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect

from .db import Base

log = logging.getLogger("moonhub.jobs")

MIGRATIONS = Path(__file__).with_name("migrations")
#: the revision that is the schema of a database made before migrations (once the tables
#: and indexes ``create_all`` would have added are there: the revision makes those)
BASELINE = "0001"


class SchemaError(RuntimeError):
    """The database is at a revision this version does not know (a newer one)."""


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head() -> str:
    """The newest revision this version has."""
    found = ScriptDirectory.from_config(_config(create_engine("sqlite://"))).get_current_head()
    assert found is not None
    return found


def revisions() -> set[str]:
    """Every revision this version has."""
    script = ScriptDirectory.from_config(_config(create_engine("sqlite://")))
    return {r.revision for r in script.walk_revisions()}


def current(engine: Engine) -> str | None:
    """The database's revision; None when it has none (empty, or made before migrations)."""
    with engine.connect() as c:
        return MigrationContext.configure(c).get_current_revision()


def upgrade(engine: Engine, to: str = "head") -> tuple[str | None, str]:
    """Bring the database to revision ``to`` (the newest by default): (its revision before,
    after)."""
    cfg = _config(engine)
    script = ScriptDirectory.from_config(cfg)
    before = current(engine)
    if before is not None and before not in {r.revision for r in script.walk_revisions()}:
        raise SchemaError(
            f"the jobs database is at revision {before}, which this version does not know (newest: {head()}): "
            "it was upgraded by a newer MoonHub; run that version, or restore the backup taken before the upgrade"
        )
    if before is None and set(inspect(engine).get_table_names()) & set(Base.metadata.tables):
        log.info("jobs database made before migrations: brought to revision %s first", BASELINE)
    return before, _move(engine, cfg, command.upgrade, to, before, "upgraded")


def downgrade(engine: Engine, to: str) -> tuple[str | None, str]:
    """Take the database back to revision ``to`` (one an older version knows), undoing the
    newer revisions' changes: what they added is dropped, with what was recorded in it. Run
    with the newer version's code (the older does not know the revisions to undo), before a
    rollback to the older version. (its revision before, after)."""
    cfg = _config(engine)
    known = revisions()
    if to not in known:
        raise SchemaError(f"revision {to!r} is not one this version knows ({', '.join(sorted(known))})")
    before = current(engine)
    if before is None:
        raise SchemaError("the jobs database has no revision yet: there is nothing to take back")
    if before not in known:
        raise SchemaError(f"the jobs database is at revision {before}, which this version does not know")
    script = ScriptDirectory.from_config(cfg)
    if to != before and to not in {r.revision for r in script.iterate_revisions(before, "base")}:
        raise SchemaError(f"revision {to} is newer than the database's ({before}): upgrade instead")
    return before, _move(engine, cfg, command.downgrade, to, before, "taken back")


def _move(engine: Engine, cfg: Config, step: Any, to: str, before: str | None, done: str) -> str:
    """Run Alembic's ``step`` (upgrade or downgrade) to ``to`` in one transaction; the
    revision after, logged when it changed."""
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        step(cfg, to)
    after = current(engine)
    assert after is not None
    if after != before:
        log.info("jobs database %s from revision %s to %s", done, before or "(none)", after)
    return after


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs_service.schema [--db URL] [--to REVISION | --head]``: upgrade the
    database (default: the service's, ``$MOONHUB_JOBS_DB``) to the newest revision, or take it
    back to an older one (``--to``, before rolling back to the version that knows only that
    one), and say from which revision to which. ``--head`` prints the newest revision this
    version knows."""
    p = argparse.ArgumentParser(prog="python -m jobs_service.schema", description=main.__doc__)
    p.add_argument("--db", default=os.environ.get("MOONHUB_JOBS_DB", ""), help="SQLAlchemy URL of the jobs database")
    p.add_argument("--to", default="", help="take the database back to this (older) revision")
    p.add_argument("--head", action="store_true", help="print the newest revision this version knows, and stop")
    a = p.parse_args(argv)
    if a.head:
        print(head())
        return 0
    logging.basicConfig(level=logging.INFO, format="[jobs-schema %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    if not a.db:
        print("no database: give --db or set $MOONHUB_JOBS_DB", file=sys.stderr)
        return 2
    try:
        engine = create_engine(a.db)
        before, after = downgrade(engine, a.to) if a.to else upgrade(engine)
    except SchemaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"jobs database at revision {after}" + (f" (was {before or 'none'})" if before != after else " (unchanged)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
