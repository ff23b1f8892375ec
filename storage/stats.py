"""Message counts for the admin's overview: totals per author, role and source, and per day."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from storage.tables import ChatSession, Message, utcnow
from storage.transactions import Transactional


class Stats(Transactional):
    """Counts over the messages; safe to share between threads."""

    def totals(self) -> dict:
        """Message counts per author role, per session role and per reply source."""
        with self._read() as db:
            by_author = dict(db.execute(select(Message.role, func.count()).group_by(Message.role)).all())
            by_source = dict(db.execute(
                select(Message.source, func.count()).where(Message.role == "assistant").group_by(Message.source)
            ).all())
            by_session_role = dict(db.execute(
                select(ChatSession.role, func.count(Message.id))
                .join(Message, Message.session_id == ChatSession.id)
                .where(Message.role == "user")
                .group_by(ChatSession.role)
            ).all())
            sessions = db.scalar(select(func.count()).select_from(ChatSession).where(ChatSession.erased_at.is_(None)))
        return {
            "messages": sum(by_author.values()),
            "sessions": sessions,
            "by_author": by_author,
            "user_messages_by_role": by_session_role,
            "replies_by_source": {str(k): v for k, v in by_source.items()},
        }

    def messages_per_day(self, days: int = 30) -> list[dict]:
        """Messages per UTC day and author for the last ``days`` days, oldest first."""
        day = func.date(Message.created_at)
        since = utcnow() - timedelta(days=days)
        with self._read() as db:
            rows = db.execute(select(day, Message.role, func.count()).where(Message.created_at >= since)
                              .group_by(day, Message.role).order_by(day)).all()
        per_day: dict[str, dict] = {}
        for when, author, count in rows:
            per_day.setdefault(str(when), {"day": str(when), "user": 0, "assistant": 0})[author] = count
        return list(per_day.values())
