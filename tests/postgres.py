"""A real PostgreSQL server for a test (Debian's, which ``./moonhub test`` installs): a data
folder of its own, started as the ``postgres`` user, stopped and removed after."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text


def _bindir() -> Path:
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed: ./moonhub test installs it (Debian package postgresql)")
    return Path(initdb).resolve().parent


@contextmanager
def postgres_server(
    port: int, address: str = "127.0.0.1", password: str = "", clients: tuple[str, ...] | list[str] = ()
) -> Iterator[str]:
    """A server listening on ``address:port``; yields the SQLAlchemy URL of its ``postgres``
    database. Without a password only this machine's loopback may connect (trust); with one,
    ``clients`` (CIDRs, e.g. the pods' range) may connect with it (scram-sha-256)."""
    bindir = _bindir()
    where = Path(tempfile.mkdtemp(prefix="moonhub-pg-"))
    shutil.chown(where, "postgres")
    data = where / "data"  # initdb wants it empty; the password file goes beside it
    run = ["runuser", "-u", "postgres", "--"]
    init = [*run, str(bindir / "initdb"), "-D", str(data), "-U", "postgres"]
    if password:
        pwfile = where / "pw"
        pwfile.write_text(password + "\n")
        shutil.chown(pwfile, "postgres")
        init += ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
    else:
        init += ["-A", "trust"]
    try:
        subprocess.run(init, check=True, capture_output=True)
        with (data / "pg_hba.conf").open("a") as hba:
            hba.writelines(f"host all all {cidr} scram-sha-256\n" for cidr in clients)
        opts = f"-p {port} -k {data} -c listen_addresses={address}"
        subprocess.run(
            [*run, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o", opts, "start"],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as e:
        shutil.rmtree(where, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start on {address}:{port}: {e.stderr.decode()[-2000:]}") from e
    auth = f"postgres:{password}" if password else "postgres"
    try:
        yield f"postgresql+psycopg://{auth}@{address}:{port}/postgres"
    finally:
        subprocess.run([*run, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """A new, empty database on the server ``url`` names: its URL."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        c.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"
