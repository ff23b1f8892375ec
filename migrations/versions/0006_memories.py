"""Memory across sessions: server-issued memory ids, message embeddings, near-duplicates per run.

On Postgres with the pgvector extension available, embeddings are a vector(384) column with an
HNSW index; otherwise (SQLite, or Postgres without the extension) float32 bytes searched exactly.
The column's type is how every process later tells which backend it has.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import logging

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.exc import DBAPIError

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DIMENSIONS = 384  # all-MiniLM-L6-v2
log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("forgotten_at", sa.DateTime(timezone=True)),
    )
    with op.batch_alter_table("chat_sessions") as batch:
        batch.add_column(sa.Column("memory_id", sa.String(64),
                                   sa.ForeignKey("memories.id", name="fk_chat_sessions_memory_id")))
        batch.create_index("ix_chat_sessions_memory_id", ["memory_id"])
    pgvector = _create_vector_extension()
    op.create_table(
        "message_embeddings",
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("memory_id", sa.String(64), sa.ForeignKey("memories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("exchange_id", sa.BigInteger(), nullable=False),  # the id of the turn's user message
        sa.Column("embedding", VECTOR(DIMENSIONS) if pgvector else sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_message_embeddings_memory_id", "message_embeddings", ["memory_id"])
    op.create_index("ix_message_embeddings_session_id", "message_embeddings", ["session_id"])
    if pgvector:
        op.execute("CREATE INDEX ix_message_embeddings_hnsw ON message_embeddings "
                   "USING hnsw (embedding vector_cosine_ops)")
    op.add_column("training_runs", sa.Column("near_duplicates", sa.Integer()))


def _create_vector_extension() -> bool:
    """True when the pgvector extension exists or could be created here; never fails the migration."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    if not bind.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").first():
        log.info("pgvector is not installed on this PostgreSQL server: embeddings are stored as float32 bytes")
        return False
    try:
        with bind.begin_nested():  # a refusal (no privilege) must not abort the rest of the migration
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except DBAPIError as e:
        log.warning("CREATE EXTENSION vector failed (%s): embeddings are stored as float32 bytes",
                    type(e.orig).__name__)
        return False
    return True


def downgrade() -> None:
    op.drop_column("training_runs", "near_duplicates")
    op.drop_table("message_embeddings")
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_index("ix_chat_sessions_memory_id")
        batch.drop_column("memory_id")
    op.drop_table("memories")
