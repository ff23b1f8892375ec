"""Memory across sessions: who is remembered, which messages may be, and forgetting.

A memory id is issued by the server (never chosen by a client) and is the capability to have
one's earlier conversations recalled. Only calm, complete exchanges are memorable: crisis and
at-risk turns, the safety layer's replies, withheld and failed replies are never stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from storage.tables import ChatSession, Memory, Message, MessageEmbedding, utcnow
from storage.transactions import Transactional


class MemoryNotFound(LookupError):
    """No memory has this id."""


class MemoryForgotten(LookupError):
    """The memory was forgotten at its owner's request."""


class MemoryMismatch(ValueError):
    """The conversation is remembered under another memory id (or asked to be, twice)."""


MEMORABLE = (
    ChatSession.memory_id.is_not(None),
    ChatSession.erased_at.is_(None),
    Message.status == "ok",
    Message.risk_level == "none",
    or_(Message.source.is_(None), Message.source != "safety"),
)


@dataclass(frozen=True)
class Pending:
    """A memorable message not yet embedded."""

    message_id: int
    memory_id: str
    session_id: str
    exchange_id: int  # the id of the turn's user message
    content: str


def attach(db: Session, session_memory: str | None, memory_id: str | None, remember: bool) -> str | None:
    """The memory a turn recalls with, attached to its conversation: ``memory_id`` (checked) or, with
    ``remember`` and none given, a new one. None when the request asked for neither."""
    if memory_id is not None:
        row = db.execute(select(Memory.forgotten_at).where(Memory.id == memory_id)).first()
        if row is None:
            raise MemoryNotFound(memory_id)
        if row.forgotten_at is not None:
            raise MemoryForgotten(memory_id)
    elif remember:
        memory_id = secrets.token_urlsafe(24)
        db.execute(insert(Memory).values(id=memory_id, created_at=utcnow()))
    if memory_id is not None and session_memory not in (None, memory_id):
        raise MemoryMismatch(memory_id)
    return memory_id


class Memories(Transactional):
    """Memory ids and what is remembered under them; safe to share between threads."""

    def forget(self, memory_id: str) -> None:
        """Delete every embedding of this memory and unlink its conversations; a tombstone keeps the id."""
        with self._write() as db:
            # FOR NO KEY UPDATE, not FOR UPDATE: the indexer holds a conversation's share lock, then inserts
            # an embedding whose foreign key takes a key-share lock on this row; FOR UPDATE would deadlock with it
            memory = db.get(Memory, memory_id, with_for_update={"key_share": True})
            if memory is None:
                raise MemoryNotFound(memory_id)
            if memory.forgotten_at is not None:
                raise MemoryForgotten(memory_id)
            db.execute(update(ChatSession).where(ChatSession.memory_id == memory_id).values(memory_id=None))
            db.execute(delete(MessageEmbedding).where(MessageEmbedding.memory_id == memory_id))
            memory.forgotten_at = utcnow()

    def backlog(self, limit: int) -> list[Pending]:
        """The oldest memorable messages that have no embedding yet."""
        user = aliased(Message)
        turn_start = (select(func.max(user.id)).where(user.session_id == Message.session_id, user.role == "user",
                                                      user.id <= Message.id).scalar_subquery())
        query = _waiting(select(Message.id, ChatSession.memory_id, Message.session_id, turn_start, Message.content))
        query = query.order_by(Message.id).limit(limit)
        with self._read() as db:
            return [Pending(*row) for row in db.execute(query) if row[3] is not None]

    def counts(self) -> dict:
        """Messages, embedded messages, the backlog and the memory ids in use."""
        backlog = self.waiting()
        with self._read() as db:
            return {
                "messages": db.scalar(select(func.count()).select_from(Message)),
                "embedded_messages": db.scalar(select(func.count()).select_from(MessageEmbedding)),
                "backlog": backlog,
                "memory_ids": db.scalar(select(func.count()).select_from(Memory).where(Memory.forgotten_at.is_(None))),
            }

    def waiting(self) -> int:
        """How many memorable messages have no embedding yet: the indexer's backlog."""
        with self._read() as db:
            return db.scalar(_waiting(select(func.count()).select_from(Message)))

    def exchanges(self, exchange_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
        """The remembered messages of these exchanges as (author, text), oldest first, by exchange."""
        query = (select(MessageEmbedding.exchange_id, Message.role, Message.content)
                 .join(Message, Message.id == MessageEmbedding.message_id)
                 .where(MessageEmbedding.exchange_id.in_(exchange_ids)).order_by(Message.id))
        found: dict[int, list[tuple[str, str]]] = {}
        with self._read() as db:
            for exchange_id, role, content in db.execute(query):
                found.setdefault(exchange_id, []).append((role, content))
        return found

    def still_memorable(self, db: Session, pending: list[Pending]) -> list[Pending]:
        """Those of ``pending`` whose conversation is still remembered under the same id, its share lock taken
        (an erase or a forget that comes later waits, one that came first has committed)."""
        sessions = {p.session_id for p in pending}
        live = dict(db.execute(select(ChatSession.id, ChatSession.memory_id)
                               .where(ChatSession.id.in_(sessions), ChatSession.erased_at.is_(None))
                               .with_for_update(read=True)).all())
        present = set(db.scalars(select(Message.id).where(Message.id.in_([p.message_id for p in pending]))))
        return [p for p in pending if live.get(p.session_id) == p.memory_id and p.message_id in present]


def _waiting(query):
    """``query`` over messages, narrowed to the memorable ones that have no embedding yet."""
    embedded = exists().where(MessageEmbedding.message_id == Message.id)
    return query.join(ChatSession, ChatSession.id == Message.session_id).where(*MEMORABLE, ~embedded)
