"""Jobs a team owns: a definition may belong to a hub group (``team``), which then runs it
as the team (its folder, its secrets, its queue) and whose members see and change it. The
person who made or moved it stays recorded as ``owner``. And each account's groups as last
seen (the teams a departed owner's jobs are offered to). Only adds columns; the downgrade
drops them (team jobs then read as their owners' personal jobs).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("definitions") as batch:
        batch.add_column(sa.Column("team", sa.String(length=255), nullable=True))
        batch.create_index("ix_definitions_team", ["team"])
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("groups", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("groups")
    with op.batch_alter_table("definitions") as batch:
        batch.drop_index("ix_definitions_team")
        batch.drop_column("team")
