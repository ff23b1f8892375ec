"""Training runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("duration_s", sa.Float),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer),
        sa.Column("loss", sa.Float),
        sa.Column("eta_s", sa.Float),
        sa.Column("losses", sa.JSON),
        sa.Column("watermark", sa.BigInteger),
        sa.Column("train_examples", sa.Integer),
        sa.Column("eval_examples", sa.Integer),
        sa.Column("base_loss", sa.Float),
        sa.Column("active_loss", sa.Float),
        sa.Column("candidate_loss", sa.Float),
        sa.Column("version", sa.String(64)),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_training_runs_status", "training_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_training_runs_status", table_name="training_runs")
    op.drop_table("training_runs")
