"""The usage reports' table: CPU-, memory- and storage-seconds per day, user and team,
beside the GPU-seconds of ``gpu_usage``. Only adds a table: the downgrade drops it (and the
figures recorded since the upgrade with it).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("team", sa.String(length=255), nullable=False),
        sa.Column("cpu_seconds", sa.Double(), nullable=False),
        sa.Column("memory_gib_seconds", sa.Double(), nullable=False),
        sa.Column("storage_gib_seconds", sa.Double(), nullable=False),
        sa.Column("storage_used_gib_seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("day", "user", "team"),
    )


def downgrade() -> None:
    op.drop_table("usage")
