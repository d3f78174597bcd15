"""The service's database: definitions, their notebook versions, and run history.

SQLAlchemy 2 (SQLite by default, PostgreSQL through the URL). History lives here, so it
outlives Kubernetes Jobs and pods.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship, sessionmaker


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def utc(t: datetime.datetime) -> datetime.datetime:
    """A time as an aware UTC one (a naive one is taken to be UTC already)."""
    return t.replace(tzinfo=datetime.UTC) if t.tzinfo is None else t.astimezone(datetime.UTC)


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """Times stored in UTC and read back aware. SQLite keeps no offset: an aware time in
    another zone (a tick in Asia/Shanghai) would otherwise be stored as its wall clock and
    read back as that hour in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime.datetime | None, dialect: Any) -> datetime.datetime | None:
        return utc(value) if value is not None else None

    def process_result_value(self, value: datetime.datetime | None, dialect: Any) -> datetime.datetime | None:
        return utc(value) if value is not None else None


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime.datetime: UtcDateTime()}


class DefinitionRow(Base):
    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("owner", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: who made the job (or moved it to its team last); a personal job's owner runs it
    owner: Mapped[str] = mapped_column(String(255), index=True)
    #: the hub group that owns the job (``teams``): it runs as the team, and the team's
    #: members see and change it by their role; None: a personal job
    team: Mapped[str | None] = mapped_column(String(255), index=True, default=None)
    name: Mapped[str] = mapped_column(String(64))
    #: the validated definition (see jobspec.Definition), as JSON, in the form of
    #: ``spec_version`` (jobspec.SPEC_VERSION when written; read through jobspec.stored)
    spec: Mapped[dict[str, Any]]
    spec_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    version: Mapped[int] = mapped_column(Integer, default=1)
    cronjob: Mapped[str] = mapped_column(String(63))
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    versions: Mapped[list[VersionRow]] = relationship(back_populates="definition", cascade="all, delete-orphan")
    runs: Mapped[list[RunRow]] = relationship(back_populates="definition", cascade="all, delete-orphan")
    hold: Mapped[HoldRow | None] = relationship(cascade="all, delete-orphan")
    contexts: Mapped[list[RunContextRow]] = relationship(cascade="all, delete-orphan")


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("definition_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    #: the notebook itself, for versions frozen before the snapshot store (moved there at
    #: start, then emptied); a version of today keeps ``{}`` here and its file in the store
    notebook: Mapped[dict[str, Any]] = deferred(mapped_column(JSON))
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    definition: Mapped[DefinitionRow] = relationship(back_populates="versions")
    stored: Mapped[SnapshotRow | None] = relationship(cascade="all, delete-orphan", lazy="selectin")
    #: a pipeline's version: one notebook per task (``stored`` is None)
    tasks: Mapped[list[TaskSnapshotRow]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class SnapshotRow(Base):
    """Where a version's notebook is: its file in the snapshot store (``snapshots``), named by
    the SHA-256 of its (output-free) JSON, which the run's pod checks again."""

    __tablename__ = "snapshot_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: bytes of the notebook's JSON as stored (outputs stripped), before compression
    size: Mapped[int] = mapped_column(Integer)
    #: its cells (the run's progress is "cell i of n")
    cells: Mapped[int] = mapped_column(Integer, default=0)
    #: bytes of the notebook as it was sent (with its outputs)
    sent_size: Mapped[int] = mapped_column(Integer, default=0)


class TaskSnapshotRow(Base):
    """One task's notebook in a pipeline's version: a file in the snapshot store, as
    :class:`SnapshotRow` is for a job of one notebook."""

    __tablename__ = "task_snapshots"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    cells: Mapped[int] = mapped_column(Integer, default=0)
    sent_size: Mapped[int] = mapped_column(Integer, default=0)


class RunRow(Base):
    __tablename__ = "runs"
    #: ids are never given again (SQLite otherwise reuses the highest after a delete), so a
    #: name made from a run's id never meets an older run's Job
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"), index=True)
    job_name: Mapped[str] = mapped_column(String(63), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    #: waiting (a back-filled run not started yet) | queued | running | succeeded | failed |
    #: timed_out | cancelled
    #: indexed: the sync loop reads the runs not ended every pass, a few among a table of
    #: history (20 runs a job by default)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    output: Mapped[str] = mapped_column(String(512), default="")
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    started: Mapped[datetime.datetime | None] = mapped_column(default=None)
    finished: Mapped[datetime.datetime | None] = mapped_column(default=None)
    #: the owner was told about the end of this run (kept so a restart does not tell twice)
    notified: Mapped[bool] = mapped_column(default=False)
    definition: Mapped[DefinitionRow] = relationship(back_populates="runs")
    progress: Mapped[ProgressRow | None] = relationship(cascade="all, delete-orphan", lazy="selectin")
    #: what the run stands for and was given (``launch``), once known
    context: Mapped[RunContextRow | None] = relationship(
        primaryjoin="RunRow.job_name == foreign(RunContextRow.job_name)", viewonly=True, lazy="selectin"
    )
    #: a pipeline run's tasks (``pipelines``); empty for a run of one notebook
    tasks: Mapped[list[TaskRunRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="TaskRunRow.id"
    )


class TaskRunRow(Base):
    """One task of a pipeline run: its state, its attempt (a repair starts another), the
    Kubernetes Job of that attempt and the values it published. The orchestration's whole
    state is here: a restarted service goes on from these rows and the Jobs they name."""

    __tablename__ = "task_runs"
    __table_args__ = (UniqueConstraint("run_id", "task"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(32))
    #: pending (waits for what it depends on) | queued | running | succeeded | failed |
    #: timed_out | cancelled | upstream_failed (not run: a task it needs failed) | skipped
    #: (not run: its run_if was not met)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    #: the Kubernetes Job of this attempt (named before it is made: a start is idempotent)
    job_name: Mapped[str] = mapped_column(String(63), unique=True)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    #: when its Job was made
    queued_at: Mapped[datetime.datetime | None] = mapped_column(default=None)
    started: Mapped[datetime.datetime | None] = mapped_column(default=None)
    finished: Mapped[datetime.datetime | None] = mapped_column(default=None)
    #: small values the task's notebook published (``moonhub.publish``): its dependants get them
    published: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RunContextRow(Base):
    """What a run stands for and was given: the time it stands for (a scheduled run's tick,
    a back-filled date, a re-run's original time), the parameters it was given (resolved
    when its pod asked for them; a re-run's changed ones before), and the run it re-runs.
    Keyed by the Kubernetes Job's name, so a run's pod can ask before the run is recorded."""

    __tablename__ = "run_context"

    job_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"), index=True)
    scheduled_for: Mapped[datetime.datetime | None] = mapped_column(default=None)
    #: the parameters as given (templates unresolved: a re-run's or a back-fill's), or None
    #: for the definition's
    given: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: the parameters the run's notebook received, templates resolved
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    rerun_of: Mapped[int | None] = mapped_column(Integer, default=None)
    #: the run (of a job this one runs after) whose success started it
    upstream_run: Mapped[int | None] = mapped_column(Integer, default=None)
    #: the owner was told the run is taking longer than ``notify.overdue_after_seconds``
    overdue_told: Mapped[bool] = mapped_column(default=False)
    #: bytes of the executed notebook the run's pod sent (``outputs``); None: none sent
    output_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    #: files from its run folder it sent
    files: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class ServiceKeyRow(Base):
    """The service's own secret keys (made once, at first start), e.g. the one that signs
    what a run's pod may fetch."""

    __tablename__ = "service_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class ProgressRow(Base):
    """How far a run got: the cell it executes (or last executed) of all, recorded while it
    runs (``sync``). A table of its own, so databases made before it get it at start
    (``create_all`` adds missing tables, it does not alter existing ones)."""

    __tablename__ = "run_progress"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    cell: Mapped[int] = mapped_column(Integer, default=0)
    of: Mapped[int] = mapped_column(Integer, default=0)
    #: when the run's log was last read for it
    read_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class GpuUsageRow(Base):
    """GPU-seconds Kueue admitted per day, user and team (servers and runs together),
    sampled by the jobs service (``gpu_usage``). Kept like the audit trail: it is the
    record of who used what."""

    __tablename__ = "gpu_usage"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: the team the GPUs counted against ("" for none)
    team: Mapped[str] = mapped_column(String(255), primary_key=True)
    gpu_seconds: Mapped[float] = mapped_column(default=0.0)


class UsageRow(Base):
    """What Kueue admitted besides GPUs (CPU cores, memory) and the storage held, per day,
    user and team, sampled with the GPUs (``usage``): the basis of the usage reports. A
    table of its own beside :class:`GpuUsageRow` so that a rollback to a version without it
    only drops it (``python -m jobs_service.schema --to``)."""

    __tablename__ = "usage"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    #: "" for a team folder (it is the team's, nobody's own)
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: the team the figures counted against ("" for none)
    team: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: CPU cores admitted times seconds
    cpu_seconds: Mapped[float] = mapped_column(default=0.0)
    #: GiB of memory admitted times seconds
    memory_gib_seconds: Mapped[float] = mapped_column(default=0.0)
    #: GiB of workspace or team folder provisioned (the claim's size) times seconds
    storage_gib_seconds: Mapped[float] = mapped_column(default=0.0)
    #: GiB of it in use (as the storage agent last measured) times seconds
    storage_used_gib_seconds: Mapped[float] = mapped_column(default=0.0)


class ShareRow(Base):
    """A user's server shared through MoonHub (``shares``): with whom, how far, until when.
    The grants themselves are JupyterHub's user shares (its sharing API), one per user the
    rows name (a team's row: one per member); this row is what the hub's sharing lacks, the
    expiry, the team, the access in words, and what the expiry pass revokes."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("owner", "server", "kind", "name", name="uq_share"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    #: the server's name ("" for the user's default server)
    server: Mapped[str] = mapped_column(String(255), default="")
    #: "user" or "group"
    kind: Mapped[str] = mapped_column(String(8))
    #: the user or group shared with
    name: Mapped[str] = mapped_column(String(255), index=True)
    #: "read" or "full"
    access: Mapped[str] = mapped_column(String(8))
    #: a team's share: the members it was granted to (each holds a user share at the hub)
    members: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    #: who shared it (the owner, or an admin)
    created_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime.datetime] = mapped_column(index=True)


class EnvImageRow(Base):
    """An image a user asked to be built from one of their environments (``env_images``):
    what it is built from, where it went, how far it is, and what its build said."""

    __tablename__ = "env_images"
    #: ids are never given again: a build's id is what a job's ``own_image`` and a server's
    #: spawn option name, and SQLite would otherwise give a removed highest id to the next
    #: build, which an old job would then run
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    #: the environment's name in the owner's workspace
    environment: Mapped[str] = mapped_column(String(64))
    #: the catalog environment it is built on, and its image as pinned then
    base: Mapped[str] = mapped_column(String(255))
    base_image: Mapped[str] = mapped_column(String(1024))
    #: the environment's packages, frozen (name==version)
    packages: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: queued, building, checking, ready, failed, cancelled (moonhub_core.env_images.STATES)
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    #: why it failed, or what the check said
    message: Mapped[str] = mapped_column(String(2000), default="")
    #: the image as nodes pull it (repository:tag), and its digest once pushed
    image: Mapped[str] = mapped_column(String(1024), default="")
    digest: Mapped[str] = mapped_column(String(80), default="")
    #: compressed bytes: the whole image, and what the build added to its base
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    added_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the build's output, kept once its pod is gone (at most LOG_BYTES)
    log: Mapped[str] = mapped_column(String, default="", nullable=False, deferred=True)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(default=None)


class RunShareRow(Base):
    """A run's output page shared with a team of its owner's, until it expires: the team's
    members may open that one page (its notebook rendered, secrets masked), nothing else of
    the job."""

    __tablename__ = "run_shares"
    __table_args__ = (UniqueConstraint("run_id", "team", name="uq_run_share"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    team: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime.datetime] = mapped_column(index=True)


class DepartureRow(Base):
    """An owner the hub answered 404 for, and since when (the grace period counts from
    here; an owner the hub knows again is forgotten)."""

    __tablename__ = "departures"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_seen: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class AccountRow(Base):
    """Which account of a user name the jobs and secrets under it belong to: the hub's
    ``created`` of the user, as first seen (``accounts``; a table of its own, so older
    databases get it at start)."""

    __tablename__ = "accounts"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    created: Mapped[str] = mapped_column(String(40))
    #: the hub groups the user was last seen in (the teams a departed owner's jobs are
    #: offered to: ``accounts.hold_departed``)
    groups: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class HoldRow(Base):
    """A definition MoonHub suspended because its owner may no longer run it as defined
    (left a group, or an admin took an environment, size or GPU type away): its CronJob is
    suspended until the owner (or an admin) saves it with choices they are entitled to."""

    __tablename__ = "holds"

    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(1024))
    since: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class AuditRow(Base):
    """Who did what to whose job, and when. Kept when the job is deleted."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(255), index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    job_name: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(1024), default="")


T = TypeVar("T")
#: values one ``IN (...)`` takes at most (databases bound the parameters of a statement)
IN_CHUNK = 2000


def in_chunks(values: list[T]) -> Iterator[list[T]]:
    """``values`` in slices of at most ``IN_CHUNK``, one ``IN (...)`` each."""
    for i in range(0, len(values), IN_CHUNK):
        yield values[i : i + IN_CHUNK]


def open_db(url: str) -> sessionmaker[Any]:
    """The database at ``url``, brought to the newest schema (``jobs_service.schema``: the
    migrations; a database made before them is brought there too)."""
    from .schema import upgrade

    engine = create_engine(url)
    upgrade(engine)
    return sessionmaker(engine, expire_on_commit=False)
