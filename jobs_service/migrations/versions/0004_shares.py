"""Servers shared through MoonHub: with whom, how far (read or full) and until when; and
runs' output pages shared with a team. The server grants themselves are JupyterHub's; only
adds tables, and the downgrade drops them (server grants stay in the hub, without an expiry,
until revoked there).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("server", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("access", sa.String(length=8), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "server", "kind", "name", name="uq_share"),
    )
    op.create_index("ix_shares_owner", "shares", ["owner"])
    op.create_index("ix_shares_name", "shares", ["name"])
    op.create_index("ix_shares_expires_at", "shares", ["expires_at"])
    op.create_table(
        "run_shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "team", name="uq_run_share"),
    )
    op.create_index("ix_run_shares_run_id", "run_shares", ["run_id"])
    op.create_index("ix_run_shares_expires_at", "run_shares", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_run_shares_expires_at", table_name="run_shares")
    op.drop_index("ix_run_shares_run_id", table_name="run_shares")
    op.drop_table("run_shares")
    op.drop_index("ix_shares_expires_at", table_name="shares")
    op.drop_index("ix_shares_name", table_name="shares")
    op.drop_index("ix_shares_owner", table_name="shares")
    op.drop_table("shares")
