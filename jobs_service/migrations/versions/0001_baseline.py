"""The schema as it was when the jobs database came under Alembic: every table and index
the service had made with ``create_all`` until then (a database made before migrations is
brought to this: it makes only the tables and indexes that are missing, as ``create_all``
did at each start before).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


#: (table, index, columns, unique)
INDEXES = [
    ("audit", "ix_audit_at", ["at"], False),
    ("audit", "ix_audit_job_id", ["job_id"], False),
    ("audit", "ix_audit_owner", ["owner"], False),
    ("definitions", "ix_definitions_owner", ["owner"], False),
    ("run_context", "ix_run_context_definition_id", ["definition_id"], False),
    ("runs", "ix_runs_definition_id", ["definition_id"], False),
    ("runs", "ix_runs_status", ["status"], False),
    ("snapshot_files", "ix_snapshot_files_sha256", ["sha256"], False),
    ("task_runs", "ix_task_runs_run_id", ["run_id"], False),
    ("task_snapshots", "ix_task_snapshots_sha256", ["sha256"], False),
]


def upgrade() -> None:
    bind = op.get_bind()
    have = set(sa.inspect(bind).get_table_names())
    if "accounts" not in have:
        op.create_table(
            "accounts",
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("created", sa.String(length=40), nullable=False),
            sa.PrimaryKeyConstraint("owner"),
        )
    if "audit" not in have:
        op.create_table(
            "audit",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=255), nullable=False),
            sa.Column("action", sa.String(length=64), nullable=False),
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("job_id", sa.Integer(), nullable=True),
            sa.Column("job_name", sa.String(length=64), nullable=False),
            sa.Column("detail", sa.String(length=1024), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "definitions" not in have:
        op.create_table(
            "definitions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("spec", sa.JSON(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("cronjob", sa.String(length=63), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("owner", "name"),
        )
    if "departures" not in have:
        op.create_table(
            "departures",
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("owner"),
        )
    if "gpu_usage" not in have:
        op.create_table(
            "gpu_usage",
            sa.Column("day", sa.String(length=10), nullable=False),
            sa.Column("user", sa.String(length=255), nullable=False),
            sa.Column("team", sa.String(length=255), nullable=False),
            sa.Column("gpu_seconds", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("day", "user", "team"),
        )
    if "service_keys" not in have:
        op.create_table(
            "service_keys",
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("value", sa.String(length=128), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "holds" not in have:
        op.create_table(
            "holds",
            sa.Column("definition_id", sa.Integer(), nullable=False),
            sa.Column("reason", sa.String(length=1024), nullable=False),
            sa.Column("since", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["definition_id"], ["definitions.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("definition_id"),
        )
    if "run_context" not in have:
        op.create_table(
            "run_context",
            sa.Column("job_name", sa.String(length=63), nullable=False),
            sa.Column("definition_id", sa.Integer(), nullable=False),
            sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
            sa.Column("given", sa.JSON(), nullable=True),
            sa.Column("parameters", sa.JSON(), nullable=True),
            sa.Column("rerun_of", sa.Integer(), nullable=True),
            sa.Column("upstream_run", sa.Integer(), nullable=True),
            sa.Column("overdue_told", sa.Boolean(), nullable=False),
            sa.Column("output_bytes", sa.Integer(), nullable=True),
            sa.Column("files", sa.Integer(), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["definition_id"], ["definitions.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("job_name"),
        )
    if "runs" not in have:
        op.create_table(
            "runs",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("definition_id", sa.Integer(), nullable=False),
            sa.Column("job_name", sa.String(length=63), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("trigger", sa.String(length=16), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("reason", sa.String(length=1024), nullable=False),
            sa.Column("output", sa.String(length=512), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started", sa.DateTime(timezone=True), nullable=True),
            sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
            sa.Column("notified", sa.Boolean(), nullable=False),
            sa.ForeignKeyConstraint(["definition_id"], ["definitions.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("job_name"),
            sqlite_autoincrement=True,
        )
    if "versions" not in have:
        op.create_table(
            "versions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("definition_id", sa.Integer(), nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("notebook", sa.JSON(), nullable=True),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["definition_id"], ["definitions.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("definition_id", "number"),
        )
    if "run_progress" not in have:
        op.create_table(
            "run_progress",
            sa.Column("run_id", sa.Integer(), nullable=False),
            sa.Column("cell", sa.Integer(), nullable=False),
            sa.Column("of", sa.Integer(), nullable=False),
            sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("run_id"),
        )
    if "snapshot_files" not in have:
        op.create_table(
            "snapshot_files",
            sa.Column("version_id", sa.Integer(), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("size", sa.Integer(), nullable=False),
            sa.Column("cells", sa.Integer(), nullable=False),
            sa.Column("sent_size", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(["version_id"], ["versions.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("version_id"),
        )
    if "task_runs" not in have:
        op.create_table(
            "task_runs",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("run_id", sa.Integer(), nullable=False),
            sa.Column("task", sa.String(length=32), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False),
            sa.Column("job_name", sa.String(length=63), nullable=False),
            sa.Column("reason", sa.String(length=1024), nullable=False),
            sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("started", sa.DateTime(timezone=True), nullable=True),
            sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
            sa.Column("published", sa.JSON(), nullable=False),
            sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("job_name"),
            sa.UniqueConstraint("run_id", "task"),
        )
    if "task_snapshots" not in have:
        op.create_table(
            "task_snapshots",
            sa.Column("version_id", sa.Integer(), nullable=False),
            sa.Column("task", sa.String(length=32), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("size", sa.Integer(), nullable=False),
            sa.Column("cells", sa.Integer(), nullable=False),
            sa.Column("sent_size", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(["version_id"], ["versions.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("version_id", "task"),
        )
    # every index, also on tables a version before migrations made without it
    for table, name, columns, unique in INDEXES:
        if name not in {i["name"] for i in sa.inspect(bind).get_indexes(table)}:
            op.create_index(name, table, columns, unique=unique)


def downgrade() -> None:
    raise NotImplementedError("the first schema has nothing before it: restore a backup instead")
