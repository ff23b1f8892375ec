"""What training reads of the conversations: eligible replies, the conversations they are in, and the side of
the training split each conversation keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from storage.tables import ChatSession, Message
from storage.transactions import Transactional

# A reply that may become a training target: written by Groq, complete, on a calm turn,
# in a conversation whose owner consented and did not erase it.
ELIGIBLE_REPLY = (
    Message.role == "assistant",
    Message.source == "groq",
    Message.status == "ok",
    Message.risk_level == "none",
    ChatSession.training_consent.is_(True),
    ChatSession.erased_at.is_(None),
)
SIDES_PER_STATEMENT = 500  # conversation ids per UPDATE: well under SQLite's limit on bound parameters
NO_ELIGIBLE_REPLIES = ("No eligible conversations to train on yet: training needs Groq replies, "
                       "in conversations with training consent, on calm turns.")


@dataclass
class Conversation:
    """A conversation as training sees it."""

    session_id: str
    role: str
    held_out: bool | None  # the side of the training split a run first gave it; None until then
    messages: list[Message] = field(default_factory=list)
    eligible_ids: set[int] = field(default_factory=set)


class TrainingData(Transactional):
    """Training's queries on the conversations; safe to share between threads."""

    def count_eligible_replies(self, after_id: int = 0) -> int:
        """Replies that may become training examples, newer than message ``after_id``."""
        with self._read() as db:
            return db.scalar(
                select(func.count()).select_from(Message)
                .join(ChatSession, ChatSession.id == Message.session_id)
                .where(Message.id > after_id, *ELIGIBLE_REPLY)
            )

    def training_conversations(self) -> list[Conversation]:
        """Every conversation with an eligible reply, with all its messages, oldest first."""
        eligible = (
            select(Message.id, Message.session_id)
            .join(ChatSession, ChatSession.id == Message.session_id)
            .where(*ELIGIBLE_REPLY)
            .subquery()
        )
        with self._read() as db:
            eligible_ids = set(db.scalars(select(eligible.c.id)))
            rows = db.execute(
                select(Message, ChatSession.role, ChatSession.held_out)
                .join(ChatSession, ChatSession.id == Message.session_id)
                .where(Message.session_id.in_(select(eligible.c.session_id)),
                       Message.id <= max(eligible_ids, default=0))  # a fixed snapshot
                .order_by(Message.session_id, Message.id)
            )
            conversations: dict[str, Conversation] = {}
            for message, role, held_out in rows:
                conversation = conversations.setdefault(message.session_id,
                                                        Conversation(message.session_id, role, held_out))
                conversation.messages.append(message)
                if message.id in eligible_ids:
                    conversation.eligible_ids.add(message.id)
        return list(conversations.values())

    def keep_split_sides(self, held_out: set[str], trained: set[str]) -> None:
        """Record the side of the training split of conversations that have none yet; recorded sides stay."""
        with self._write() as db:
            for ids, side in ((sorted(held_out), True), (sorted(trained), False)):
                for start in range(0, len(ids), SIDES_PER_STATEMENT):
                    chunk = ids[start:start + SIDES_PER_STATEMENT]
                    # updated_at stays: recording a side is not a change to the conversation
                    db.execute(update(ChatSession).where(ChatSession.id.in_(chunk), ChatSession.held_out.is_(None))
                               .values(held_out=side, updated_at=ChatSession.updated_at)
                               .execution_options(synchronize_session=False))
