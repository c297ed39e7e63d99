"""Socket.IO handlers: authenticated connections, joining a session's room."""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, join_room
from sqlalchemy.exc import OperationalError

from common.errors import Unauthorized
from web.auth import authenticated_user_id
from web.extensions import socketio
from web.services.sessions import user_owns_session
from web.sockets.delivery_listener import replay_unacknowledged

log = logging.getLogger(__name__)

DATABASE_DOWN = "The database is unavailable; try again shortly."

# sid -> user_id of the authenticated sockets of this node.
_socket_users: dict[str, str] = {}


@socketio.on("connect")
def on_connect(auth: Any = None) -> None:
    token = auth.get("token") if isinstance(auth, dict) else None
    try:
        user_id = authenticated_user_id(token)
    except Unauthorized as exc:
        raise ConnectionRefusedError(exc.message) from None
    except OperationalError as exc:
        log.error("socket refused, database unavailable: %s", str(exc).splitlines()[0])
        raise ConnectionRefusedError(DATABASE_DOWN) from None
    _socket_users[request.sid] = user_id  # type: ignore[attr-defined]


@socketio.on("disconnect")
def on_disconnect(*_args: Any) -> None:
    _socket_users.pop(request.sid, None)  # type: ignore[attr-defined]


@socketio.on("start_session")
def on_start_session(data: Any = None) -> dict[str, Any]:
    """Join the session's room (only its owner may) and replay what the
    client has not acknowledged yet."""
    user_id = _socket_users.get(request.sid)  # type: ignore[attr-defined]
    session_id = data.get("session_id") if isinstance(data, dict) else None
    if user_id is None:
        return {"error": "Not authenticated."}
    if not isinstance(session_id, str) or not session_id:
        return {"error": "Missing field 'session_id'."}
    try:
        if not user_owns_session(user_id, session_id):
            log.info("user %s refused to join session %s", user_id, session_id)
            return {"error": "Unknown session_id, or it belongs to another user."}
        join_room(session_id)
        replay_unacknowledged(session_id, request.sid)  # type: ignore[attr-defined]
    except OperationalError as exc:
        # An answer at once, as PUT's 503: without it the client's call waits out its
        # own timeout (10 s in `make soak`) before it tries again.
        log.error("start_session: database unavailable: %s", str(exc).splitlines()[0])
        return {"error": DATABASE_DOWN}
    return {"session_id": session_id, "joined": True}
