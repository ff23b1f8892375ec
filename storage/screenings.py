"""What the crisis screen decided about user messages, read back for the admin's safety view."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, func, select

from storage.tables import ChatSession, Message, utcnow
from storage.transactions import Transactional

LEVELS = ("none", "medium", "high")


class Screenings(Transactional):
    """Counts per level and layer, the judge's agreement with the local screen, and the newest verdicts."""

    def report(self, days: int, recent: int) -> dict:
        """Over the user messages of the last ``days`` days; ``recent`` newest screened ones, from conversations
        whose owner let them be read (training consent) and did not erase them."""
        since = utcnow() - timedelta(days=days)
        users = (Message.role == "user", Message.created_at >= since)
        changed = case((Message.risk_layer == "judge", 1), else_=0)
        with self._read() as db:
            per_layer = db.execute(select(Message.risk_level, Message.risk_layer, func.count()).where(*users)
                                   .group_by(Message.risk_level, Message.risk_layer)).all()
            answered, overruled = db.execute(
                select(func.count(), func.coalesce(func.sum(changed), 0))
                .where(*users, Message.judge_level.is_not(None))).one()
            rows = db.execute(
                select(Message.id, Message.created_at, Message.content, Message.risk_level, Message.risk_layer,
                       Message.judge_level, ChatSession.role)
                .join(ChatSession, ChatSession.id == Message.session_id)
                .where(*users, Message.risk_layer.is_not(None), ChatSession.training_consent.is_(True),
                       ChatSession.erased_at.is_(None))
                .order_by(Message.id.desc()).limit(recent)).all()
        by_level = dict.fromkeys(LEVELS, 0)
        for level, _, count in per_layer:
            by_level[level] = by_level.get(level, 0) + count
        return {
            "days": days, "by_level": by_level,
            "by_layer": [{"level": level, "layer": layer, "count": count}
                         for level, layer, count in sorted(per_layer, key=lambda r: (r[0], r[1] or ""))],
            "judge": {"answered": answered, "agreed": answered - int(overruled), "overruled": int(overruled),
                      "agreement": round((answered - int(overruled)) / answered, 4) if answered else None},
            "recent": [{"message_id": i, "created_at": at, "text": text, "risk_level": level, "risk_layer": layer,
                        "judge_level": judged, "role": role}
                       for i, at, text, level, layer, judged, role in rows],
        }
