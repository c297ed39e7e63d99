"""Chat sessions: creation, listing, soft deletion and ownership checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from common.errors import Forbidden, NotFound
from common.models import ChatSession
from web.extensions import db


def check_owned(found: Any, user_id: str, session_id: str) -> None:
    """NotFound unless `found` (a ChatSession, or a row of its columns) exists and is not
    deleted; Forbidden unless it belongs to the user."""
    if found is None or found.deleted_at is not None:
        raise NotFound(f"Unknown session_id '{session_id}'.")
    if found.user_id != user_id:
        raise Forbidden("This session belongs to another user.")


def get_owned_session(user_id: str, session_id: str) -> ChatSession:
    """The session if it exists, is not deleted and belongs to the user."""
    session = db.session.get(ChatSession, session_id)
    check_owned(session, user_id, session_id)
    return session


def user_owns_session(user_id: str, session_id: str) -> bool:
    session = db.session.get(ChatSession, session_id)
    return session is not None and session.deleted_at is None and session.user_id == user_id


def create_session(user_id: str, platform: str | None) -> dict[str, Any]:
    session = ChatSession(user_id=user_id, platform=platform, mode="chat", intro_done=False)
    db.session.add(session)
    db.session.commit()
    return {"session_id": session.session_id, "intro_done": session.intro_done}


def list_sessions(user_id: str, n_sessions: int, offset: int) -> dict[str, Any]:
    """Sessions with at least one message, most recently active first."""
    sessions = db.session.scalars(
        select(ChatSession)
        .where(
            ChatSession.user_id == user_id,
            ChatSession.deleted_at.is_(None),
            ChatSession.last_message_date.isnot(None),
        )
        .order_by(ChatSession.last_message_date.desc(), ChatSession.session_id)
        .offset(offset)
        .limit(n_sessions)
    ).all()
    return {
        "sessions": [
            {
                "session_id": s.session_id,
                "title": s.title,
                "creation_date": s.creation_date.isoformat(),
                "last_message_date": s.last_message_date.isoformat()
                if s.last_message_date
                else None,
            }
            for s in sessions
        ]
    }


def delete_session(user_id: str, session_id: str) -> dict[str, Any]:
    session = get_owned_session(user_id, session_id)
    session.deleted_at = datetime.now(UTC)
    db.session.commit()
    return {"session_id": session_id}
