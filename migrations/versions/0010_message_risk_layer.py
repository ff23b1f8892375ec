"""Each user message records the layer that set its risk level, and the safety judge's verdict.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("risk_layer", sa.String(16)))
    op.add_column("messages", sa.Column("judge_level", sa.String(8)))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("judge_level")
        batch.drop_column("risk_layer")
