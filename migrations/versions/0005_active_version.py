"""The active model version, recorded in the database instead of a file on one volume.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "active_version",
        sa.Column("slot", sa.String(16), primary_key=True),
        sa.Column("version", sa.String(64)),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
    )
    # The row exists from the start: activating is a single UPDATE, never a racing INSERT.
    op.bulk_insert(table, [{"slot": "local", "version": None, "activated_at": None}])


def downgrade() -> None:
    op.drop_table("active_version")
