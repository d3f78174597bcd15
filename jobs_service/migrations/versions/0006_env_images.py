"""Images built from users' environments (issue 35, item 3): one row per build, with its
state, its image and its kept log. Only adds a table; the downgrade drops it (the images
stay in the registry, unlisted).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "env_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("base", sa.String(length=255), nullable=False),
        sa.Column("base_image", sa.String(length=1024), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("image", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("added_bytes", sa.BigInteger(), nullable=False),
        sa.Column("log", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        # ids are never given again (a job's own_image names one)
        sqlite_autoincrement=True,
    )
    op.create_index("ix_env_images_owner", "env_images", ["owner"])
    op.create_index("ix_env_images_state", "env_images", ["state"])


def downgrade() -> None:
    op.drop_index("ix_env_images_state", table_name="env_images")
    op.drop_index("ix_env_images_owner", table_name="env_images")
    op.drop_table("env_images")
