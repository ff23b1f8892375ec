"""Shadow replies: stored as they come, read back per version for the admin's shadow panel."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from storage.conversations import SessionErased, SessionNotFound, lock_live_session
from storage.tables import Message, ShadowReply
from storage.transactions import Transactional


class ShadowReplies(Transactional):
    """Short transactions over the shadow_replies table."""

    def add(self, message_id: int, prompt_id: int, session_id: str, **fields) -> None:
        """Keep one shadow reply to the turn whose user message is ``prompt_id`` and Groq reply ``message_id``.
        A conversation erased meanwhile keeps nothing."""
        with self._write() as db:
            try:
                lock_live_session(db, session_id)
            except (SessionNotFound, SessionErased):
                return
            db.add(ShadowReply(message_id=message_id, prompt_id=prompt_id, session_id=session_id, **fields))

    def report(self, version: str | None, recent: int) -> dict:
        """Counts and means over ``version``'s shadow replies, and the newest ``recent`` with both replies."""
        prompt, groq = aliased(Message), aliased(Message)
        with self._read() as db:
            count, similarity, unsafe, degenerate = db.execute(
                select(func.count(), func.avg(ShadowReply.similarity),
                       func.coalesce(func.sum(case((ShadowReply.unsafe, 1), else_=0)), 0),
                       func.count(ShadowReply.degenerate))
                .where(ShadowReply.version == version)).one()
            rows = db.execute(
                select(prompt.content, groq.content, ShadowReply.content, ShadowReply.similarity,
                       ShadowReply.unsafe, ShadowReply.degenerate, ShadowReply.created_at)
                .join(prompt, prompt.id == ShadowReply.prompt_id).join(groq, groq.id == ShadowReply.message_id)
                .where(ShadowReply.version == version).order_by(ShadowReply.id.desc()).limit(recent)).all()
        return {
            "version": version, "count": count,
            "similarity_mean": None if similarity is None else round(float(similarity), 4),
            "unsafe": int(unsafe), "degenerate": degenerate,
            "recent": [{"prompt": p, "groq": g, "local": local, "similarity": s, "unsafe": u, "degenerate": d,
                        "created_at": at} for p, g, local, s, u, d, at in rows],
        }
