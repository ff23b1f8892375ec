"""Conversations and their messages: a turn stored, history read, consent changed, a conversation erased."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from storage import memories
from storage.tables import ChatSession, Message, MessageEmbedding, ShadowReply, utcnow
from storage.transactions import Transactional


class SessionNotFound(LookupError):
    """No conversation has this id."""


class SessionErased(LookupError):
    """The conversation was deleted at its owner's request."""


class RoleMismatch(ValueError):
    """A turn names a different role than the conversation was started with."""


# Replies never shown again: failed ones, and unsafe ones withheld by the safety layer (kept for review).
HIDDEN = ("error", "blocked")


@dataclass(frozen=True)
class Turn:
    """What storing a user message tells the caller."""

    session_id: str
    message_id: int
    role: str
    memory_id: str | None = None  # the memory this turn may recall from: given or just created
    remembered: bool = False  # the conversation's messages are stored as memory
    consent: bool = False  # the conversation may be used for training (and so read by admins)


class Conversations(Transactional):
    """The chat service's queries on conversations and their messages; safe to share between threads."""

    def start_turn(
        self, session_id: str | None, role: str | None, user_id: str | None,
        consent: bool | None, consent_default: bool, content: str, risk_level: str,
        memory_id: str | None = None, remember: bool = False, risk_layer: str | None = None,
    ) -> Turn:
        """Store a user message, creating its conversation when no id is given, and attaching the memory
        the request names or asks for (storage.memories.attach); commits."""
        # Core statements, not the unit of work: this runs on every chat request.
        with self._write() as db:
            if session_id is None:
                session_id, role = secrets.token_urlsafe(24), role or "patient"
                memory_id = session_memory = memories.attach(db, None, memory_id, remember)
                consent = consent_default if consent is None else consent
                db.execute(insert(ChatSession).values(
                    id=session_id, role=role, user_id=user_id, memory_id=memory_id, training_consent=consent,
                ))
            else:
                row = db.execute(select(ChatSession.role, ChatSession.erased_at, ChatSession.memory_id,
                                        ChatSession.training_consent).where(ChatSession.id == session_id)).first()
                _check_live(row, session_id)
                if role is not None and role != row.role:
                    raise RoleMismatch(row.role)
                role = row.role
                memory_id = memories.attach(db, row.memory_id, memory_id, remember)
                session_memory = row.memory_id or memory_id
                changes = {"training_consent": consent} if consent is not None else {}
                consent = row.training_consent if consent is None else consent
                if memory_id is not None and row.memory_id is None:
                    changes["memory_id"] = memory_id
                if changes:
                    db.execute(update(ChatSession).where(ChatSession.id == session_id)
                               .values(**changes, updated_at=utcnow()))
            message_id = db.scalar(insert(Message).returning(Message.id).values(
                session_id=session_id, role="user", content=content, risk_level=risk_level, risk_layer=risk_layer,
            ))
            return Turn(session_id, message_id, role, memory_id, session_memory is not None, bool(consent))

    def judged(self, message_id: int, risk_level: str, risk_layer: str | None, judge_level: str | None) -> None:
        """Record the safety judge's verdict on a user message, and the level it settled; commits."""
        with self._write() as db:
            db.execute(update(Message).where(Message.id == message_id)
                       .values(risk_level=risk_level, risk_layer=risk_layer, judge_level=judge_level))

    def history(self, session_id: str, before_id: int, turns: int) -> list[tuple[str, str]]:
        """The last ``turns`` exchanges before a message as (author, text), oldest first, failed replies left out."""
        if turns == 0:
            return []
        query = (
            select(Message.role, Message.content)
            .where(Message.session_id == session_id, Message.id < before_id, Message.status.not_in(HIDDEN))
            .order_by(Message.id.desc())
            .limit(2 * turns)
        )
        with self._read() as db:
            return [(row.role, row.content) for row in reversed(db.execute(query).all())]

    def recent_user_messages(self, session_id: str, count: int) -> list[str]:
        """The last ``count`` messages the user sent in a conversation, oldest first; none for an unknown id."""
        query = (select(Message.content).where(Message.session_id == session_id, Message.role == "user")
                 .order_by(Message.id.desc()).limit(count))
        with self._read() as db:
            return list(reversed(db.scalars(query).all()))

    def store_reply(self, session_id: str, risk_level: str, **fields) -> int:
        """Store an assistant reply with its source, model, timings and status; commits.

        Raises SessionErased when the conversation was erased while the reply was made: the
        owner asked for it to be gone, so the reply is not kept either.
        """
        with self._write() as db:
            lock_live_session(db, session_id)
            return db.scalar(insert(Message).returning(Message.id).values(
                session_id=session_id, role="assistant", risk_level=risk_level, **fields,
            ))

    def messages(self, session_id: str, limit: int, before: int | None = None) -> tuple[list[Message], bool]:
        """The newest ``limit`` messages the user may see (older than ``before``), oldest first, and whether
        there are older ones. Withheld replies are never shown."""
        query = select(Message).where(Message.session_id == session_id, Message.status != "blocked")
        if before is not None:
            query = query.where(Message.id < before)
        with self._read() as db:
            _live_session(db, session_id)
            newest = list(db.scalars(query.order_by(Message.id.desc()).limit(limit + 1)))
        return list(reversed(newest[:limit])), len(newest) > limit

    def set_consent(self, session_id: str, consent: bool) -> ChatSession:
        """Record whether a conversation may be used for training."""
        with self._write() as db:
            chat = _live_session(db, session_id)
            chat.training_consent = consent
            chat.updated_at = utcnow()
            return chat

    def erase(self, session_id: str) -> None:
        """Delete a conversation's messages and what memory kept of them; a tombstone keeps its id from being
        reused."""
        with self._write() as db:
            chat = _live_session(db, session_id, lock=True)  # before the delete: see lock_live_session
            db.execute(delete(MessageEmbedding).where(MessageEmbedding.session_id == session_id))
            db.execute(delete(ShadowReply).where(ShadowReply.session_id == session_id))
            db.execute(delete(Message).where(Message.session_id == session_id))
            chat.user_id = None
            chat.training_consent = False
            chat.erased_at = chat.updated_at = utcnow()


def lock_live_session(db: Session, session_id: str) -> None:
    """Take a shared lock on a conversation's row, or raise SessionNotFound or SessionErased: an erase that
    started first has committed, one that comes later waits for this transaction and then deletes what it
    wrote with the rest."""
    row = db.execute(select(ChatSession.erased_at).where(ChatSession.id == session_id)
                     .with_for_update(read=True)).first()
    _check_live(row, session_id)


def _live_session(db: Session, session_id: str, lock: bool = False) -> ChatSession:
    """The conversation with this id, unless it never existed or was erased; ``lock`` takes its row FOR UPDATE."""
    chat = db.get(ChatSession, session_id, with_for_update=lock or None)
    _check_live(chat, session_id)
    return chat


def _check_live(chat, session_id: str) -> None:
    """Raise unless ``chat`` (a row or None) is a conversation that was not erased."""
    if chat is None:
        raise SessionNotFound(session_id)
    if chat.erased_at is not None:
        raise SessionErased(session_id)
