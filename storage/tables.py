"""The ORM: chat sessions, their messages, memories and message embeddings, shadow replies, training runs, the
training lease and the active model version."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime, TypeDecorator


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and read back timezone-aware on every engine."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)  # SQLite drops the offset
        return value


# SQLite only auto-increments INTEGER PRIMARY KEY, Postgres wants a BIGINT for a log table.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ChatSession(Base):
    """One conversation. Its unguessable id is the capability to read it."""

    __tablename__ = "chat_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # patient | clinician
    user_id: Mapped[str | None] = mapped_column(String(128))
    training_consent: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # tombstone after DELETE
    memory_id: Mapped[str | None] = mapped_column(ForeignKey("memories.id"), index=True)  # remembered under
    # The side of the training split a run first gave it (held out for evaluation, or trained on); null
    # until then. Kept, so that a version continued from an earlier one is never evaluated on what it learnt.
    held_out: Mapped[bool | None]

    messages: Mapped[list["Message"]] = relationship(
        back_populates="session", passive_deletes=True, order_by="Message.id"
    )


class Message(Base):
    """One turn of a conversation, from the user or the assistant."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_session_id_id", "session_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    risk_level: Mapped[str] = mapped_column(String(8), default="none")  # none | medium | high
    # User messages only: which layer set risk_level (patterns | semantic | context | judge; None when no
    # risk was found), and what the safety judge said when it was asked and answered.
    risk_layer: Mapped[str | None] = mapped_column(String(16))
    judge_level: Mapped[str | None] = mapped_column(String(8))
    # Assistant replies only:
    source: Mapped[str | None] = mapped_column(String(16))  # groq | local | safety
    model: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | truncated | error | blocked
    error: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[int | None]
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    fallback: Mapped[str | None] = mapped_column(String(64))  # why the local model did not answer

    session: Mapped[ChatSession] = relationship(back_populates="messages")


class Memory(Base):
    """A person who asked to be remembered across sessions. Its unguessable id is the capability to recall."""

    __tablename__ = "memories"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # tombstone after DELETE


class MessageEmbedding(Base):
    """A remembered message's sentence embedding.

    ``embedding`` is vector(384) on Postgres with pgvector and float32 bytes elsewhere (migration 0006
    chose); embeddings/vectors.py reads and writes it as the column it is.
    """

    __tablename__ = "message_embeddings"

    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    memory_id: Mapped[str] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True)
    exchange_id: Mapped[int] = mapped_column(BigInteger)  # the id of the turn's user message
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShadowReply(Base):
    """The active local version's reply to a turn Groq answered (SHADOW_SAMPLE_RATE): never shown, never trained
    on, read by admins beside Groq's reply."""

    __tablename__ = "shadow_replies"
    __table_args__ = (Index("ix_shadow_replies_version_id", "version", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))  # the user's
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    similarity: Mapped[float | None] = mapped_column(Float)  # cosine to Groq's reply; None without embeddings
    unsafe: Mapped[bool] = mapped_column(Boolean)  # the reply screening would have withheld it
    degenerate: Mapped[str | None] = mapped_column(String(16))  # empty | repeats | cut off
    latency_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrainingRun(Base):
    """One fine-tuning run: its progress while it runs, its outcome after."""

    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_status", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | rejected | failed
    trigger: Mapped[str] = mapped_column(String(16))  # manual | auto | admin
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[float | None]
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int | None]
    loss: Mapped[float | None]  # the latest training loss
    eta_s: Mapped[float | None]
    losses: Mapped[list | None] = mapped_column(JSON)  # [[step, loss], ...] for charts
    watermark: Mapped[int | None] = mapped_column(BigInteger)  # newest message id in the data
    train_examples: Mapped[int | None]
    eval_examples: Mapped[int | None]
    base_loss: Mapped[float | None]  # assistant-token eval loss of the base model
    active_loss: Mapped[float | None]  # ... of the version active when the run started
    candidate_loss: Mapped[float | None]  # ... of this run's model
    version: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict | None] = mapped_column(JSON)  # config.RunConfig: what the training child runs with
    near_duplicates: Mapped[int | None]  # examples dropped as near-duplicates of earlier ones
    kind: Mapped[str | None] = mapped_column(String(16))  # incremental | from_base, once the run has decided


class Lease(Base):
    """A named lock held by one process at a time, lost when its holder stops renewing it."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ActiveVersion(Base):
    """Which model version serves: one row, the one truth for every worker and replica."""

    __tablename__ = "active_version"

    slot: Mapped[str] = mapped_column(String(16), primary_key=True)  # "local"
    version: Mapped[str | None] = mapped_column(String(64))  # None until a version is first activated
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
