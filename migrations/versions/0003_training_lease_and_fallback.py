"""The training lease, and why a reply came from the fallback provider.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-20
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lease = op.create_table(
        "leases",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(128)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    # One row per lease, present from the start: taking it is a single conditional UPDATE.
    op.bulk_insert(lease, [{"name": "training", "holder": None,
                            "expires_at": datetime(1970, 1, 1, tzinfo=timezone.utc)}])
    op.add_column("messages", sa.Column("fallback", sa.String(64)))


def downgrade() -> None:
    op.drop_column("messages", "fallback")
    op.drop_table("leases")
