"""The settings each training run is made with: the contract between supervisor and training child.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("training_runs", sa.Column("config", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("config")
