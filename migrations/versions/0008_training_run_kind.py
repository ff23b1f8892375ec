"""Training runs record whether they continued the active version or retrained from the base model.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("training_runs", sa.Column("kind", sa.String(16)))


def downgrade() -> None:
    op.drop_column("training_runs", "kind")
