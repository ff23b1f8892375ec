"""Each conversation keeps the side of the training split it was first given.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chat_sessions", sa.Column("held_out", sa.Boolean()))


def downgrade() -> None:
    op.drop_column("chat_sessions", "held_out")
