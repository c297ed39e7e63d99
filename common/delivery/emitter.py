"""Socket.IO emission to a session's room, from any process.

On a web node the Flask-SocketIO server registers itself here; elsewhere
(Celery workers) a write-only emitter publishes through the Redis message
queue that every web node listens to.
"""

from __future__ import annotations

import threading
from typing import Any

from flask_socketio import SocketIO

from common.settings import get_settings

_emitter: SocketIO | None = None
_lock = threading.Lock()


def use_server_emitter(socketio: SocketIO) -> None:
    """Called by the web app factory: emit through the node's own server."""
    global _emitter
    _emitter = socketio


def _get_emitter() -> SocketIO:
    global _emitter
    if _emitter is None:
        with _lock:
            if _emitter is None:
                # Without an app, Flask-SocketIO is a write-only emitter. Its async
                # mode is said, not detected: detection imports gevent into a threaded
                # Celery worker, stalling its running turns, and picks gevent where
                # nothing is patched (docs/performance.md, "Emitter async mode").
                _emitter = SocketIO(message_queue=get_settings().redis_url, async_mode="threading")
    return _emitter


def emit_to_session(event: str, payload: dict[str, Any], session_id: str) -> None:
    """Emit an event to everyone in the session's room, on every web node."""
    _get_emitter().emit(event, {**payload, "session_id": session_id}, to=session_id)
