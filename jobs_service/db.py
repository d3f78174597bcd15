"""The service's database: definitions, their notebook versions, and run history.

SQLAlchemy 2 (SQLite by default, PostgreSQL through the URL). History lives here, so it
outlives Kubernetes Jobs and pods.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def utc(t: datetime.datetime) -> datetime.datetime:
    """A stored time as an aware UTC one (SQLite gives back naive datetimes; everything is
    stored in UTC)."""
    return t.replace(tzinfo=datetime.UTC) if t.tzinfo is None else t


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime.datetime: DateTime(timezone=True)}


class DefinitionRow(Base):
    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("owner", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(64))
    #: the validated definition (see validation.Definition), as JSON
    spec: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer, default=1)
    cronjob: Mapped[str] = mapped_column(String(63))
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    versions: Mapped[list[VersionRow]] = relationship(back_populates="definition", cascade="all, delete-orphan")
    runs: Mapped[list[RunRow]] = relationship(back_populates="definition", cascade="all, delete-orphan")
    hold: Mapped[HoldRow | None] = relationship(cascade="all, delete-orphan")


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("definition_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    notebook: Mapped[dict[str, Any]]
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    definition: Mapped[DefinitionRow] = relationship(back_populates="versions")


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id", ondelete="CASCADE"), index=True)
    job_name: Mapped[str] = mapped_column(String(63), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    #: queued | running | succeeded | failed | timed_out | cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str] = mapped_column(String(1024), default="")
    output: Mapped[str] = mapped_column(String(512), default="")
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    started: Mapped[datetime.datetime | None] = mapped_column(default=None)
    finished: Mapped[datetime.datetime | None] = mapped_column(default=None)
    #: the owner was told about the end of this run (kept so a restart does not tell twice)
    notified: Mapped[bool] = mapped_column(default=False)
    definition: Mapped[DefinitionRow] = relationship(back_populates="runs")
    progress: Mapped[ProgressRow | None] = relationship(cascade="all, delete-orphan", lazy="selectin")


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


class DepartureRow(Base):
    """An owner the hub answered 404 for, and since when (the grace period counts from
    here; an owner the hub knows again is forgotten)."""

    __tablename__ = "departures"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_seen: Mapped[datetime.datetime] = mapped_column(default=utcnow)


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


def open_db(url: str) -> sessionmaker[Any]:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)
