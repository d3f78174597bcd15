"""Each stored definition says which form of the definition it is (``spec_version``), so
that a later version can upgrade the stored ones (``jobspec.stored``). Every definition
stored before is form 1.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("definitions") as batch:
        batch.add_column(sa.Column("spec_version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("definitions") as batch:
        batch.drop_column("spec_version")
