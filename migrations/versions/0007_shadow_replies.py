"""Shadow replies: the active local version's answer to some of Groq's turns, for admins to judge.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "shadow_replies",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("message_id", big_id, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("prompt_id", big_id, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("similarity", sa.Float()),
        sa.Column("unsafe", sa.Boolean(), nullable=False),
        sa.Column("degenerate", sa.String(16)),
        sa.Column("latency_ms", sa.Integer()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_shadow_replies_version_id", "shadow_replies", ["version", "id"])
    op.create_index("ix_shadow_replies_session_id", "shadow_replies", ["session_id"])
    op.create_index("ix_shadow_replies_message_id", "shadow_replies", ["message_id"])


def downgrade() -> None:
    op.drop_table("shadow_replies")
